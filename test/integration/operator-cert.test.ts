// The issuer's certificate against a real etcd with --client-cert-auth (#16): etcd accepts the
// certificate the handler issued in the caller's name, and refuses one of another CA.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { LocalCertFiles } from "../../agent/adapters/local-disk.js";
import { handleIssue, type IssuedCert } from "../../agent/tls/operator-issuer.js";
import { type CertKey, createCa } from "../../agent/tls/pki.js";
import { type SingleEtcd, startSingleEtcd } from "../support/etcd-process.js";

const IP = "127.0.29.1";
let etcd: SingleEtcd;
let ca: CertKey;
const dir = mkdtempSync(join(tmpdir(), "operator-cert-"));

beforeAll(async () => {
  ca = await createCa("operator-cert test CA", new Date(), 1);
  etcd = await startSingleEtcd(IP, { tls: true, ca });
}, 60_000);
afterAll(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function issuedBy(signer: CertKey, name: string) {
  const res = await handleIssue(
    {
      body: '{"hours":1}',
      requestContext: {
        authorizer: { iam: { userArn: `arn:aws:sts::123456789012:assumed-role/Ops/${name}` } },
      },
    },
    { readCaSecret: async () => JSON.stringify(signer), now: () => new Date(), log: () => {} },
  );
  expect(res.statusCode).toBe(200);
  const { cert, key } = JSON.parse(res.body) as IssuedCert;
  const files = {
    caFile: join(dir, `${name}.ca`),
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
  };
  // The cluster's CA to verify etcd's server certificate; the issued certificate to present.
  await new LocalCertFiles(files).write({ ca: ca.cert, cert, key });
  return new Etcd3Cluster({ callTimeoutMs: 2000, tls: files });
}

describe("an operator's certificate from the issuer, at a real etcd with --client-cert-auth", () => {
  it("is accepted: etcd answers its status", async () => {
    const client = await issuedBy(ca, "dave");
    try {
      const status = await client.status(etcd.clientUrl);
      expect(status?.leaderId).not.toBe("0");
      expect(status).not.toBeNull();
    } finally {
      await client.close();
    }
  });

  it("one the issuer made from another CA is refused", async () => {
    const client = await issuedBy(await createCa("another CA", new Date(), 1), "mallory");
    try {
      expect(await client.status(etcd.clientUrl)).toBeNull();
    } finally {
      await client.close();
    }
  });
});

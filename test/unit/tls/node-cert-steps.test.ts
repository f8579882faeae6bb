// Certificate issuance and renewal survive a crash after every one of their steps (issue #13):
// after the next run the node's files hold a matching pair signed by the cluster CA, and the CA
// was created once. A half-written pair (new key, old certificate) is never kept.
import { describe, expect, it } from "vitest";
import { SimulatedCrashError } from "../../../agent/apply/steps.js";
import { parseConfig } from "../../../agent/config/config.js";
import { createLogger } from "../../../agent/log.js";
import type { CertBundle, CertFile, CertFiles } from "../../../agent/ports/cert-files.js";
import type { Ports } from "../../../agent/ports/index.js";
import {
  CA_STEPS,
  ensureNodeCert,
  keyMatchesCert,
  NODE_CERT_STEPS,
  renewalDue,
} from "../../../agent/tls/node-certs.js";
import { signedBy } from "../../../agent/tls/pki.js";
import { MapSecrets } from "../../fakes/fake-secrets.js";

/** Three files, each written whole (as the atomic rename does), the set not at once. */
class DiskLikeFiles implements CertFiles {
  files: Partial<CertBundle> = {};
  async read() {
    const { ca, cert, key } = this.files;
    return ca && cert && key ? { ca, cert, key } : null;
  }
  async write(b: CertBundle, afterFile?: (file: CertFile) => Promise<void>) {
    for (const f of ["ca", "key", "cert"] as const) {
      this.files[f] = b[f];
      await afterFile?.(f);
    }
  }
}

const LIFETIME_S = 3000;
const config = parseConfig({
  domain: "etcd.test",
  hostedZoneId: "ZTEST",
  tlsCertLifetimeSeconds: LIFETIME_S,
});
const ctx = { identity: { instanceId: "i-0abc", privateIp: "127.0.1.5" }, asgName: "etcd" };
const log = createLogger({ write: () => true } as never);
const STEPS = [...CA_STEPS, ...NODE_CERT_STEPS];

function node(secrets: MapSecrets, files: DiskLikeFiles, now: () => Date): Ports {
  return { secrets, certs: files, clock: { now } } as unknown as Ports;
}

const crashAt = (step: string) => (at: string) => {
  if (at === step) throw new SimulatedCrashError(at);
};

/** The node's files after the next run: a matching pair signed by the CA in the secret. */
function expectGoodPair(files: DiskLikeFiles, secrets: MapSecrets): void {
  const ca = JSON.parse(secrets.values.get("etcd-agent/etcd/ca") ?? "{}").cert as string;
  const { cert = "", key = "" } = files.files;
  expect(keyMatchesCert(cert, key)).toBe(true);
  expect(files.files.ca).toBe(ca);
  expect(signedBy(cert, ca)).toBe(true);
  expect(secrets.created).toBe(1);
}

describe("certificate issuance, crashed after each step", () => {
  it.each(STEPS.map((s) => [s]))("after %s: the next run leaves a matching pair and one CA", async (step) => {
    const secrets = new MapSecrets();
    const files = new DiskLikeFiles();
    const n = node(secrets, files, () => new Date());

    const crashed = await ensureNodeCert(n, config, ctx, log, { afterStep: crashAt(step) }).catch((e) => e);
    await ensureNodeCert(n, config, ctx, log);

    expect(crashed).toBeInstanceOf(SimulatedCrashError);
    expectGoodPair(files, secrets);
  });
});

describe("certificate renewal, crashed after each step", () => {
  it.each(
    NODE_CERT_STEPS.map((s) => [s]),
  )("after %s: the next run leaves a matching pair (a new key with the old certificate is replaced)", async (step) => {
    const secrets = new MapSecrets();
    const files = new DiskLikeFiles();
    let now = new Date("2026-11-23T12:00:00Z");
    const n = node(secrets, files, () => now);
    await ensureNodeCert(n, config, ctx, log);
    // Two thirds of its life later: the renewal is due.
    now = new Date(now.getTime() + (LIFETIME_S * 1000 * 2) / 3 + 60_000);

    const crashed = await ensureNodeCert(n, config, ctx, log, { afterStep: crashAt(step) }).catch((e) => e);
    const next = await ensureNodeCert(n, config, ctx, log);

    expect(crashed).toBeInstanceOf(SimulatedCrashError);
    expect(renewalDue(next.facts, now)).toBe(false);
    expectGoodPair(files, secrets);
  });

  it("a key that does not match its certificate is replaced even while the certificate is valid", async () => {
    const secrets = new MapSecrets();
    const files = new DiskLikeFiles();
    const n = node(secrets, files, () => new Date());
    await ensureNodeCert(n, config, ctx, log);
    const other = new DiskLikeFiles();
    await ensureNodeCert(
      node(secrets, other, () => new Date()),
      config,
      ctx,
      log,
    );
    files.files.key = other.files.key;

    const out = await ensureNodeCert(n, config, ctx, log);

    expect(out.kind).toBe("renewed");
    expect(out.reason).toBe("the key does not match the certificate (an interrupted write)");
    expectGoodPair(files, secrets);
  });
});

// One real etcd process for tests that need a cluster but no agent: a single member on `ip`.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { LocalCertFiles } from "../../agent/adapters/local-disk.js";
import { type CertKey, createCa, issue } from "../../agent/tls/pki.js";
import { ETCD_BIN, eventually } from "./etcd-node.js";

export interface SingleEtcd {
  clientUrl: string;
  /** With TLS: the CA and a client certificate of it, PEM files. */
  clientTls: { caFile: string; certFile: string; keyFile: string } | null;
  stop(): Promise<void>;
}

/** A CA (or `given`), a certificate for etcd at `ip` and a client certificate, written to `dir`. */
async function testPki(dir: string, ip: string, given?: CertKey) {
  const now = Date.now();
  const ca = given ?? (await createCa("test CA", new Date(now), 1));
  const window = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
  const server = await issue(ca, { commonName: "solo", names: [ip], usage: "node", ...window });
  const client = await issue(ca, { commonName: "test client", names: [], usage: "client", ...window });
  await new LocalCertFiles({
    caFile: join(dir, "ca.crt"),
    certFile: join(dir, "server.crt"),
    keyFile: join(dir, "server.key"),
  }).write({ ca: ca.cert, ...server });
  const clientTls = {
    caFile: join(dir, "ca.crt"),
    certFile: join(dir, "client.crt"),
    keyFile: join(dir, "client.key"),
  };
  await new LocalCertFiles(clientTls).write({ ca: ca.cert, ...client });
  return clientTls;
}

export async function startSingleEtcd(
  ip: string,
  options: { tls?: boolean; ca?: CertKey } = {},
): Promise<SingleEtcd> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-single-"));
  const scheme = options.tls ? "https" : "http";
  const clientTls = options.tls ? await testPki(join(dir, "tls"), ip, options.ca) : null;
  const tlsFlags = clientTls
    ? [
        ...["--cert-file", join(dir, "tls", "server.crt"), "--key-file", join(dir, "tls", "server.key")],
        ...["--trusted-ca-file", clientTls.caFile, "--client-cert-auth"],
      ]
    : [];
  const child: ChildProcess = spawn(
    ETCD_BIN,
    [
      ...tlsFlags,
      "--name",
      "solo",
      "--data-dir",
      join(dir, "data"),
      "--listen-client-urls",
      `${scheme}://${ip}:2379`,
      "--advertise-client-urls",
      `${scheme}://${ip}:2379`,
      "--listen-peer-urls",
      `http://${ip}:2380`,
      "--initial-advertise-peer-urls",
      `http://${ip}:2380`,
      "--initial-cluster",
      `solo=http://${ip}:2380`,
    ],
    { stdio: "ignore" },
  );
  const clientUrl = `${scheme}://${ip}:2379`;
  const probe = new Etcd3Cluster({ callTimeoutMs: 1000, ...(clientTls ? { tls: clientTls } : {}) });
  await eventually(`etcd on ${ip}`, 30_000, async () =>
    // null: etcd is not listening yet, which is not "has a leader".
    {
      const status = await probe.status(clientUrl);
      return status !== null && status.leaderId !== "0" ? true : undefined;
    },
  );
  await probe.close();
  return {
    clientUrl,
    clientTls,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

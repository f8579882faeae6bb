// TLS in the sandbox (every e2e file runs with it; this one checks TLS itself): the -ssl SRV
// records, refusals of a client with no certificate and of one from another CA, the CA's key on no
// node's disk, certificates renewed with etcd still running (same process, new serial served), a
// node back after its certificate expired, and the operators' certificate fetched with the binary.
import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { connect } from "node:tls";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { Etcd3, type IOptions } from "etcd3";
import { describe, expect, it } from "vitest";
import { createCa, issue } from "../../agent/tls/pki.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { operatorAwsEnv, runAgentBinary } from "../support/operator-cli.js";
import { withSandbox } from "../support/with-sandbox.js";

// Certificates live 60 s here (renewed with 20 s left); the node that is powered off for longer
// than that must not be reported unhealthy and replaced meanwhile.
const LIFETIME_S = 60;
process.env.ETCD_SANDBOX_UNHEALTHY_DEADLINE_SECONDS = "600";

/** The serial of the certificate etcd at `ip` presents now (a new TLS handshake). */
function servedSerial(sandbox: Sandbox, ip: string): Promise<string> {
  const tls = sandbox.clientTls;
  if (!tls) throw new Error("the sandbox runs without TLS");
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: ip,
      port: 2379,
      ca: readFileSync(tls.caFile),
      cert: readFileSync(tls.certFile),
      key: readFileSync(tls.keyFile),
      ALPNProtocols: ["h2"],
    });
    socket.once("secureConnect", () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.once("error", reject);
  });
}

function fileSerial(sandbox: Sandbox, id: string): string {
  const pem = readFileSync(join(sandbox.stateDir, id, "tls", "node.crt"), "utf8");
  return new X509Certificate(pem).serialNumber;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** "answered" when the peer port answers HTTP to a connection presenting `cert`, else the error (etcd closes refused ones). */
function peerAnswers(ip: string, ca: Buffer, cert: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: ip,
        port: 2380,
        path: "/version",
        ca,
        cert: cert.cert,
        key: cert.key,
        timeout: 5000,
        servername: ip,
      },
      (res) => {
        res.resume();
        resolve("answered");
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve(`refused: ${e.message}`));
    req.end();
  });
}

/** Whether a client with these options may list members (false: refused at the handshake). */
async function canList(hosts: string[], options: Pick<IOptions, "credentials">): Promise<boolean> {
  const client = new Etcd3({
    hosts,
    dialTimeout: 2000,
    ...options,
    defaultCallOptions: () => ({ deadline: Date.now() + 3000 }),
  });
  try {
    await client.cluster.memberList({});
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

describe("TLS", () => {
  it("refuses clients without a certificate of the CA, renews certificates under a running cluster, and hands operators theirs", async () => {
    await withSandbox({ subnet: "127.0.42.0/24", certLifetimeSeconds: LIFETIME_S }, async (sandbox) => {
      const instances = await worldInstances(sandbox.world);
      const hosts = instances.map((i) => sandbox.clientUrl(i.ip));
      const ca = readFileSync(sandbox.clientTls?.caFile as string);

      // DNS: the -ssl records, equal to the voters (the leader writes them once all three are healthy).
      const want = instances.map((i) => i.instanceId.toLowerCase()).sort();
      await eventually("the -ssl SRV records name the three voters", 30_000, async () =>
        JSON.stringify(await sandbox.clientSrvTargets()) === JSON.stringify(want) ? true : undefined,
      );

      // Refusals: the harness's certificate works; none, or one from another CA, does not; nor does plaintext.
      expect(await canList(hosts, sandbox.etcd3Options())).toBe(true);
      expect(await canList(hosts, { credentials: { rootCertificate: ca } })).toBe(false);
      const otherCa = await createCa("another CA", new Date(), 1);
      const stranger = await issue(otherCa, {
        commonName: "stranger",
        names: [],
        usage: "client",
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3_600_000),
      });
      expect(
        await canList(hosts, {
          credentials: {
            rootCertificate: ca,
            certChain: Buffer.from(stranger.cert),
            privateKey: Buffer.from(stranger.key),
          },
        }),
      ).toBe(false);
      expect(
        await canList(
          instances.map((i) => `http://${i.ip}:2379`),
          {},
        ),
      ).toBe(false);

      // The CA's key is in its secret and nowhere on a node; each node's own key is 0600.
      const secret = await new SecretsManagerClient({
        endpoint: sandbox.world.endpoint,
        region: sandbox.world.region,
        credentials: { accessKeyId: "sandbox", secretAccessKey: "sandbox" },
      }).send(new GetSecretValueCommand({ SecretId: `etcd-agent/${sandbox.world.asgName}/ca` }));
      const caKeyBody = (JSON.parse(secret.SecretString ?? "{}").key as string).split("\n")[1] as string;
      expect(caKeyBody.length).toBeGreaterThan(20);

      // The peer port (#16): a certificate of this CA that does not name the cluster domain (as the
      // operators' does not) is refused; one that names it, as every node's does, is answered.
      const caPair = JSON.parse(secret.SecretString ?? "{}") as { cert: string; key: string };
      const leaf = (names: string[]) =>
        issue(caPair, {
          commonName: "peer-probe",
          names,
          usage: "node",
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 3_600_000),
        });
      const peerIp = instances[0]?.ip as string;
      // Both name 127.0.0.1, the address the test connects from: etcd's peer listener also checks
      // that a client certificate names the connection's source (the sandbox's nodes name it too).
      expect(await peerAnswers(peerIp, ca, await leaf([sandbox.world.domain, "127.0.0.1"]))).toBe("answered");
      expect(await peerAnswers(peerIp, ca, await leaf(["127.0.0.1"]))).toMatch(/^refused: /);
      for (const i of instances) {
        for (const f of filesUnder(join(sandbox.stateDir, i.instanceId))) {
          if (statSync(f).size < 10_000_000)
            expect(readFileSync(f, "utf8").includes(caKeyBody), f).toBe(false);
        }
        expect(statSync(join(sandbox.stateDir, i.instanceId, "tls", "node.key")).mode & 0o777).toBe(0o600);
      }

      // Renewal with etcd running: every node renews (a third of 60 s left), etcd keeps its process
      // and serves the new certificate on the next handshake.
      const before = new Map(
        instances.map((i) => [
          i.instanceId,
          { pid: sandbox.node(i.instanceId)?.etcd?.pid, serial: fileSerial(sandbox, i.instanceId) },
        ]),
      );
      await eventually("every node renewed its certificate", 90_000, async () => {
        for (const i of instances)
          if (fileSerial(sandbox, i.instanceId) === before.get(i.instanceId)?.serial) return undefined;
        return true;
      });
      for (const i of instances) {
        const now = fileSerial(sandbox, i.instanceId);
        expect(await servedSerial(sandbox, i.ip)).toBe(now);
        expect(sandbox.node(i.instanceId)?.etcd?.pid).toBe(before.get(i.instanceId)?.pid);
        expect(readFileSync(join(sandbox.stateDir, i.instanceId, "agent.log"), "utf8")).toContain(
          '"msg":"renewed this node\'s certificate"',
        );
      }
      expect(await sandbox.settledInstances(3)).toBeDefined();

      // A node powered off for longer than its certificate lives: boot renews the expired one
      // before etcd starts, and the node rejoins with its data.
      const off = instances[1]?.instanceId as string;
      await sandbox.halt(off);
      await new Promise((r) => setTimeout(r, (LIFETIME_S + 5) * 1000));
      const expired = fileSerial(sandbox, off);
      sandbox.resume(off);
      await eventually("the node back with a new certificate", 120_000, async () =>
        fileSerial(sandbox, off) !== expired && (await sandbox.settledInstances(3)) ? true : undefined,
      );
      const offLog = readFileSync(join(sandbox.stateDir, off, "agent.log"), "utf8");
      expect(offLog).toMatch(
        /"msg":"renewed this node's certificate"[^\n]*"reason":"a third or less of its life is left \(expires/,
      );
      expect(offLog).toContain('"msg":"boot decision: rejoin"');

      // The operators' certificate, fetched with the binary as on the bastion, then used by status.
      const out = join(sandbox.stateDir, "bastion-tls");
      const aws = operatorAwsEnv(sandbox);
      const fetched = await runAgentBinary(["client-cert", "--out", out, "--json"], aws);
      expect(fetched.code, fetched.err).toBe(0);
      const files = JSON.parse(fetched.out) as { caFile: string; certFile: string; keyFile: string };
      expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
      const status = await runAgentBinary(["status", "--json"], {
        ...aws,
        ETCD_AGENT_TLS_CA_FILE: files.caFile,
        ETCD_AGENT_TLS_CERT_FILE: files.certFile,
        ETCD_AGENT_TLS_KEY_FILE: files.keyFile,
      });
      expect(status.code, status.err).toBe(0);
      // Without a certificate the operator gets the fix, not a hang.
      const none = await runAgentBinary(["status"], {
        ...aws,
        ETCD_AGENT_TLS_CA_FILE: files.caFile,
        ETCD_AGENT_TLS_CERT_FILE: join(out, "missing.crt"),
        ETCD_AGENT_TLS_KEY_FILE: files.keyFile,
      });
      expect(none.code).toBe(3); // INVALID_INPUT
      expect(none.err).toMatch(/missing\.crt cannot be read \(ENOENT\).*etcd-agent client-cert/);
    });
  }, 600_000);
});

// A CA rotation end to end, without a restore (#16): the operator's `etcd-agent ca-rotate begin`,
// `promote`, `finish` through the binary, each refused until the cluster followed the step before;
// the agents restart their etcd (which reads its trusted CA files only at start) one at a time
// under the restart lock; the continuous writer loses no acknowledged write, and at the end only
// the new CA is trusted: a client of the old CA is refused by every member.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { Etcd3 } from "etcd3";
import { describe, expect, it } from "vitest";
import { type CertKey, issue, signedBy } from "../../agent/tls/pki.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { operatorAwsEnv, runAgentBinary } from "../support/operator-cli.js";
import { openScenario } from "../support/with-sandbox.js";

async function caSecret(sandbox: Sandbox): Promise<CertKey & { next?: CertKey }> {
  const out = await new SecretsManagerClient({
    endpoint: sandbox.world.endpoint,
    region: sandbox.world.region,
    credentials: { accessKeyId: "sandbox", secretAccessKey: "sandbox" },
  }).send(new GetSecretValueCommand({ SecretId: `etcd-agent/${sandbox.world.asgName}/ca` }));
  return JSON.parse(out.SecretString ?? "{}");
}

async function clientOf(ca: CertKey): Promise<CertKey> {
  return issue(ca, {
    commonName: "rotation-test",
    names: [],
    usage: "client",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
  });
}

/** Whether the member at `host` answers a client with this certificate, trusting `trust`. */
async function accepts(host: string, trust: string, client: CertKey): Promise<boolean> {
  const etcd = new Etcd3({
    hosts: [host],
    dialTimeout: 2000,
    credentials: {
      rootCertificate: Buffer.from(trust),
      certChain: Buffer.from(client.cert),
      privateKey: Buffer.from(client.key),
    },
    defaultCallOptions: () => ({ deadline: Date.now() + 3000 }),
  });
  try {
    await etcd.maintenance.status();
    return true;
  } catch {
    return false;
  } finally {
    etcd.close();
  }
}

/** The agents' restarts of etcd for the rotation, as [start, end] times from their logs. */
function restartSpans(sandbox: Sandbox, ids: string[]): Array<{ id: string; from: number; to: number }> {
  const spans: Array<{ id: string; from: number; to: number }> = [];
  for (const id of ids) {
    let from: number | null = null;
    for (const line of readFileSync(join(sandbox.stateDir, id, "agent.log"), "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      const e = JSON.parse(line) as { msg?: string; ts?: string };
      if (e.msg === "CA rotation: restarting etcd to load the trusted CA bundle")
        from = Date.parse(e.ts ?? "");
      if (e.msg === "CA rotation: etcd restarted on the trusted CA bundle" && from !== null) {
        spans.push({ id, from, to: Date.parse(e.ts ?? "") });
        from = null;
      }
    }
  }
  return spans.sort((a, b) => a.from - b.from);
}

describe("CA rotation", () => {
  it("begin, promote, finish: both CAs trusted in the overlap, one etcd restart at a time, no acknowledged write lost, only the new CA trusted at the end", async () => {
    const scenario = await openScenario({ subnet: "127.0.71.0/24" });
    try {
      const { sandbox } = scenario;
      const ids = (await worldInstances(sandbox.world)).map((i) => i.instanceId);
      const hosts = (await worldInstances(sandbox.world)).map((i) => sandbox.clientUrl(i.ip));
      const rotate = (step: string) => runAgentBinary(["ca-rotate", step, "--json"], operatorAwsEnv(sandbox));
      const old = await caSecret(sandbox);

      // Out of order: refused, nothing changed.
      const early = await rotate("finish");
      expect(early.code, early.err).toBe(5); // REFUSED
      expect(early.err).toContain("ca-rotation-not-converged");

      const begun = await rotate("begin");
      expect(begun.code, begun.err).toBe(0);
      const fresh = (await caSecret(sandbox)).next as CertKey;
      expect(fresh.cert).not.toBe(old.cert);
      // promote waits for every member's etcd to trust the new CA (each restarted once, in turn).
      const promoted = await eventually("promote accepted", 240_000, async () => {
        const r = await rotate("promote");
        return r.code === 0 ? r : undefined;
      });
      expect(JSON.parse(promoted.out).now).toBe("sign-next");
      await sandbox.renewHarnessCert();
      scenario.writer?.reconnect();

      await eventually("finish accepted", 240_000, async () => {
        const r = await rotate("finish");
        return r.code === 0 ? r : undefined;
      });
      await sandbox.renewHarnessCert();
      scenario.writer?.reconnect();

      // Every member drops the old CA (a second restart each), and trusts the new one.
      const oldClient = await clientOf(old);
      const newClient = await clientOf(fresh);
      // (A member being restarted refuses both; one that runs on the new CA alone accepts only the new.)
      await eventually(
        "every member accepts a client of the new CA and refuses one of the old",
        240_000,
        async () => {
          for (const h of hosts) {
            if (!(await accepts(h, fresh.cert, newClient))) return undefined;
            if (await accepts(h, fresh.cert, oldClient)) return undefined;
          }
          return true;
        },
      );
      for (const id of ids) {
        const dir = join(sandbox.stateDir, id, "tls");
        expect(readFileSync(join(dir, "ca.crt"), "utf8").trim()).toBe(fresh.cert.trim());
        expect(signedBy(readFileSync(join(dir, "node.crt"), "utf8"), fresh.cert)).toBe(true);
      }
      const secret = await caSecret(sandbox);
      expect(secret.cert).toBe(fresh.cert);
      expect(JSON.stringify(secret)).not.toContain(old.key.split("\n")[1]);

      // Two restarts per member (load the bundle, drop the old CA), never two at once.
      // (The agent logs the restart once its etcd answered healthy again, a moment after it does.)
      const spans = await eventually("each agent logged both restarts", 60_000, async () => {
        const found = restartSpans(sandbox, ids);
        return found.length >= 2 * ids.length ? found : undefined;
      });
      expect(spans.map((s) => s.id).sort()).toEqual([...ids, ...ids].sort());
      for (let i = 1; i < spans.length; i++)
        expect((spans[i] as { from: number }).from).toBeGreaterThanOrEqual(
          (spans[i - 1] as { to: number }).to,
        );
      expect(await sandbox.settledInstances(3)).toBeDefined();
    } finally {
      await scenario.close();
    }
  }, 900_000);
});

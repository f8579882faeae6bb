// Storage with real etcd 3.4: three members started from the environment boot wrote, with a 2 MiB
// quota (--etcd-quota-backend-bytes), filled until etcd raises NOSPACE. The leader's agent
// compacts, defragments the followers and then itself, one at a time, and disarms; writes are
// accepted again and no write etcd acknowledged meanwhile is lost. Nodes on 127.0.64.x.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { observeCluster } from "../../agent/observe/observe.js";
import { parseEnvFile } from "../../agent/planner/etcd-env.js";
import { alarmsOf } from "../../agent/planner/membership.js";
import { FakeAws } from "../fakes/fake-aws.js";
import { ContinuousWriter } from "../sandbox/writer.js";
import { bringUp, eventually, makeNode, shutdown, type TestNode } from "../support/etcd-node.js";

const ipOf = (n: number) => `127.0.64.${n}`;
const QUOTA = 2 * 1024 * 1024;

describe("NOSPACE with real etcd: compact, defragment, disarm", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-storage-"));
  const aws = new FakeAws();
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const nodes: TestNode[] = [];
  const urls = () => nodes.map((n) => `http://${n.ip}:2379`);
  const client = new Etcd3({ hosts: [1, 2, 3].map((n) => `http://${ipOf(n)}:2379`) });
  const writer = new ContinuousWriter(async () => urls(), { intervalMs: 50, maxMinutes: 3 });

  beforeAll(async () => {
    for (const n of [1, 2, 3])
      nodes.push(makeNode(aws, root, n, ipOf(n), { config: { etcdQuotaBackendBytes: String(QUOTA) } }));
    // The first bootstraps; the others join it as learners and are promoted by their own loops.
    await bringUp(nodes[0] as TestNode);
    for (const node of nodes.slice(1)) await bringUp(node);
    await eventually("three healthy voters", 60_000, async () => {
      const c = await observeCluster(probe, urls(), null, 2379);
      return c?.members.length === 3 && c.members.every((m) => !m.isLearner && m.status !== null)
        ? true
        : undefined;
    });
  });

  afterAll(async () => {
    await writer.close();
    client.close();
    await shutdown(nodes);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("recovers from NOSPACE with the writer running and loses no acknowledged write", async () => {
    writer.start();
    // Overwrites of one key: every revision is kept until a compaction, so the db grows to the quota.
    const value = Buffer.alloc(64 * 1024, 7);
    const refused = await eventually<Error>("etcd refusing writes (NOSPACE)", 60_000, async () => {
      for (let i = 0; i < 16; i++) {
        try {
          await client.put("filler").value(value);
        } catch (error) {
          return error as Error;
        }
      }
      return undefined;
    });
    await eventually("NOSPACE disarmed and a write accepted", 90_000, async () => {
      const c = await observeCluster(probe, urls(), null, 2379);
      if (c === null || alarmsOf(c.members).length > 0) return undefined;
      await client.put("after").value("accepted");
      return true;
    }).catch((error: Error) => {
      // What the agents said about storage, so that a failure here says which rule held them.
      for (const node of nodes) {
        const said = readFileSync(join(node.dir, "agent.log"), "utf8")
          .split("\n")
          .filter((l) => /defrag|compact|alarm|NOSPACE|storage|"rule"/i.test(l))
          .slice(-25);
        process.stderr.write(
          `--- ${node.instanceId} agent.log (storage lines, last 25)\n${said.join("\n")}\n`,
        );
      }
      throw error;
    });
    const report = await writer.stopAndVerify();
    const cluster = await observeCluster(probe, urls(), null, 2379);
    const leaderName = cluster?.members.find((m) => m.id === cluster.leaderId)?.name;
    const leader = nodes.find((n) => n.instanceId === leaderName);
    const lines = readFileSync(join(leader?.dir ?? "", "agent.log"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { msg: string; member_id?: string });
    const steps = lines
      .filter((l) =>
        [
          "compacted the key space for NOSPACE",
          "defragmented a member",
          "disarmed NOSPACE: etcd accepts writes again",
        ].includes(l.msg),
      )
      .map((l) =>
        l.msg === "defragmented a member"
          ? `defragmented ${l.member_id === cluster?.leaderId ? "leader" : "follower"}`
          : l.msg,
      );

    expect(refused.message).toMatch(/database space exceeded/);
    expect(parseEnvFile(readFileSync(nodes[0]?.config.envFile ?? "", "utf8")).ETCD_QUOTA_BACKEND_BYTES).toBe(
      String(QUOTA),
    );
    expect(steps).toEqual([
      "compacted the key space for NOSPACE",
      "defragmented follower",
      "defragmented follower",
      "defragmented leader",
      "disarmed NOSPACE: etcd accepts writes again",
    ]);
    expect(cluster?.members.every((m) => (m.status?.dbSize ?? QUOTA) < QUOTA * 0.9)).toBe(true);
    expect(report.acknowledged).toBeGreaterThan(0);
    expect(report.missing).toEqual([]);
    expect(report.wrong).toEqual([]);
  });
});

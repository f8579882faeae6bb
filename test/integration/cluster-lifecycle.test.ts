// Real etcd (Debian's etcd-server) on 127.0.21.x, the agent in process, AWS as in-memory fakes.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import type { Member } from "../../agent/planner/observation.js";
import { FakeAws } from "../fakes/fake-aws.js";
import {
  boot,
  bringUp,
  eventually,
  killEtcd,
  makeNode,
  shutdown,
  startEtcd,
  startLoop,
  stopLoop,
  stopNode,
  type TestNode,
} from "../support/etcd-node.js";

const SUBNET = "127.0.21";
const ipOf = (n: number) => `${SUBNET}.${n}`;

describe("a cluster's life with real etcd", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-it-"));
  const aws = new FakeAws();
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const nodes = new Map<number, TestNode>();

  const node = (n: number) => {
    const found = nodes.get(n);
    if (!found) throw new Error(`no node ${n}`);
    return found;
  };
  const add = (n: number) => {
    const made = makeNode(aws, root, n, ipOf(n));
    nodes.set(n, made);
    return made;
  };
  const endpoints = () => [...nodes.values()].filter((n) => n.etcd).map((n) => `http://${n.ip}:2379`);
  const members = async (): Promise<Member[]> => (await probe.memberList(endpoints())).members;
  /** Resolves when the members are exactly these started voters, each healthy, with one cluster ID. */
  const settledOn = (ns: number[]) =>
    eventually(`voters ${ns.join(",")}`, 60_000, async () => {
      const list = await members();
      const names = list.map((m) => m.name).sort();
      const want = ns.map((n) => node(n).instanceId).sort();
      if (JSON.stringify(names) !== JSON.stringify(want) || list.some((m) => m.isLearner)) return undefined;
      const statuses = await Promise.all(ns.map((n) => probe.status(`http://${ipOf(n)}:2379`)));
      if (statuses.some((s) => s === null || s.leaderId === "0")) return undefined;
      const clusterIds = await Promise.all(
        ns.map(async (n) => (await probe.memberList([`http://${ipOf(n)}:2379`])).clusterId),
      );
      return { list, clusterIds };
    });
  const dnsEquals = (ns: number[]) =>
    eventually(`DNS for ${ns.join(",")}`, 30_000, async () => {
      const srv = aws.record("_etcd-client._tcp.etcd.test", "SRV");
      const want = ns.map((n) => `0 0 2379 ${node(n).instanceId}.etcd.test`).sort();
      return JSON.stringify(srv?.values.slice().sort()) === JSON.stringify(want) ? srv : undefined;
    });

  beforeAll(() => {
    for (const n of [1, 2, 3]) add(n);
  });

  afterAll(async () => {
    await shutdown([...nodes.values()]);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("three nodes booting at once form exactly one cluster, all voters, with DNS equal to the members", async () => {
    const results = await Promise.all([1, 2, 3].map((n) => bringUp(node(n))));

    const { clusterIds } = await settledOn([1, 2, 3]);
    expect(results.map((r) => r.decision).sort()).toEqual(["bootstrap", "join", "join"]);
    expect(new Set(clusterIds).size).toBe(1);
    await dnsEquals([1, 2, 3]);
    expect(aws.record("_etcd-cluster.etcd.test", "TXT")?.values[0]).toContain("state=active");
  });

  it("removes the member of a crashed, terminated instance and keeps quorum", async () => {
    await stopNode(node(3), true);
    aws.terminate(node(3).instanceId);
    nodes.delete(3);

    await settledOn([1, 2]);
    await dnsEquals([1, 2]);
    expect(aws.record(`${"i-00000003"}.etcd.test`, "A")).toBeUndefined();
    // The log keys are a contract: instance_id is the writer, target_instance_id what it acted on.
    const removals = [1, 2].flatMap((n) =>
      readFileSync(join(node(n).dir, "agent.log"), "utf8")
        .split("\n")
        .filter((l) => l.includes('"msg":"removed member"'))
        .map((l) => ({ writer: node(n).instanceId, line: JSON.parse(l) as Record<string, unknown> })),
    );
    expect(removals).toHaveLength(1);
    expect(removals[0]?.line).toMatchObject({
      instance_id: removals[0]?.writer,
      target_instance_id: "i-00000003",
      action: "remove-member",
    });
  });

  it("a replacement instance joins as a learner and is promoted", async () => {
    const fresh = add(4);
    const result = await bringUp(fresh);

    expect(result.decision).toBe("join");
    await settledOn([1, 2, 4]);
    await dnsEquals([1, 2, 4]);
  });

  it("a node restarted with its data rejoins unchanged", async () => {
    const before = (await members()).find((m) => m.name === node(2).instanceId)?.id;
    await stopNode(node(2));

    const result = await bringUp(node(2));

    expect(result).toMatchObject({ decision: "rejoin", memberId: before });
    const { list } = await settledOn([1, 2, 4]);
    expect(list.find((m) => m.name === node(2).instanceId)?.id).toBe(before);
  });

  it("a node whose member was removed moves its data aside and joins again", async () => {
    const old = (await members()).find((m) => m.name === node(4).instanceId)?.id as string;
    await stopNode(node(4));
    await probe.memberRemove(endpoints(), old);

    const result = await bringUp(node(4));

    expect(result.decision).toBe("join");
    expect(result.memberId).not.toBe(old);
    const { list } = await settledOn([1, 2, 4]);
    expect(list.some((m) => m.id === old)).toBe(false);
  });

  it("an agent killed after MemberAdd converges on re-run with no orphan member", async () => {
    const fresh = makeNode(aws, root, 5, ipOf(5), {
      ports: (p) => ({
        ...p,
        etcd: Object.assign(Object.create(Object.getPrototypeOf(p.etcd)), p.etcd, {
          memberAdd: async (...args: Parameters<typeof p.etcd.memberAdd>) => {
            await p.etcd.memberAdd(...args);
            throw new Error("agent killed right after MemberAdd");
          },
        }),
      }),
    });
    await expect(boot(fresh)).rejects.toThrow(/killed right after MemberAdd/);
    const orphan = (await members()).find((m) => m.peerUrls.includes(`http://${ipOf(5)}:2380`));
    expect(orphan?.name).toBe("");

    const rerun = makeNode(aws, root, 5, ipOf(5));
    nodes.set(5, rerun);
    const result = await boot(rerun);

    expect(result).toMatchObject({ decision: "join", memberId: orphan?.id });
    await startEtcd(rerun);
    startLoop(rerun);
    await settledOn([1, 2, 4, 5]);
  });

  it("an agent killed after writing the env file converges on re-run", async () => {
    const fresh = makeNode(aws, root, 6, ipOf(6), {
      ports: (p) => ({
        ...p,
        local: Object.assign(Object.create(Object.getPrototypeOf(p.local)), p.local, {
          writeEnvFile: async (content: string) => {
            await p.local.writeEnvFile(content);
            throw new Error("agent killed right after the env file");
          },
        }),
      }),
    });
    await expect(boot(fresh)).rejects.toThrow(/killed right after the env file/);

    const rerun = makeNode(aws, root, 6, ipOf(6));
    nodes.set(6, rerun);
    const first = (await members()).filter((m) => m.peerUrls.includes(`http://${ipOf(6)}:2380`));
    const result = await boot(rerun);

    expect(first).toHaveLength(1);
    expect(result.memberId).toBe(first[0]?.id);
    await startEtcd(rerun);
    startLoop(rerun);
    await settledOn([1, 2, 4, 5, 6]);
  });

  it("an agent killed before promoting its learner promotes it on restart", async () => {
    // Scale back to 3 first: the leader removes members whose instances leave.
    for (const n of [5, 6]) {
      await stopNode(node(n), true);
      aws.terminate(node(n).instanceId);
      nodes.delete(n);
    }
    await settledOn([1, 2, 4]);
    const fresh = add(7);
    await boot(fresh);
    await startEtcd(fresh);
    const learner = await eventually("a started learner", 30_000, async () =>
      (await members()).find((m) => m.name === fresh.instanceId && m.isLearner),
    );
    expect(learner.isLearner).toBe(true);

    await killEtcd(fresh, "SIGTERM");
    const result = await bringUp(fresh);

    expect(result.decision).toBe("rejoin");
    await settledOn([1, 2, 4, 7]);
  });

  it("a joiner whose make-room removal loses the race to the leader observes again and joins", async () => {
    // Loops stopped so the removal is the joiner's; its MemberRemove then finds the member gone,
    // as when the leader's loop removes the same dead member first (seen in CI).
    for (const n of [1, 2, 4, 7]) await stopLoop(node(n));
    await stopNode(node(7), true);
    aws.terminate(node(7).instanceId);
    nodes.delete(7);
    const dead = (await members()).find((m) => m.name === "i-00000007")?.id as string;
    let removals = 0;
    const fresh = makeNode(aws, root, 8, ipOf(8), {
      ports: (p) => ({
        ...p,
        etcd: Object.assign(Object.create(Object.getPrototypeOf(p.etcd)), p.etcd, {
          memberRemove: async (...args: Parameters<typeof p.etcd.memberRemove>) => {
            removals++;
            await p.etcd.memberRemove(...args); // the leader, first
            return p.etcd.memberRemove(...args); // this joiner: member not found
          },
        }),
      }),
    });
    nodes.set(8, fresh);

    const result = await boot(fresh);

    expect(removals).toBe(1);
    expect(result.decision).toBe("join");
    const lines = readFileSync(join(fresh.dir, "agent.log"), "utf8")
      .split("\n")
      .filter((l) => l.includes("already removed"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ action: "remove-member", member_id: dead })]);
    await startEtcd(fresh);
    for (const n of [1, 2, 4, 8]) startLoop(node(n));
    await settledOn([1, 2, 4, 8]);
  });

  it("stops its loop cleanly", async () => {
    const n = node(1);
    await stopLoop(n);
    expect(n.loop).toBeNull();
    startLoop(n);
  });
});

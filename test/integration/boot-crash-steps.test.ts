// A boot killed right after each of its named steps, then booted again as systemd would, and etcd
// started as its unit starts it: the nodes still form exactly one cluster, with no member left
// added-but-never-started, and the marker active with that cluster's ID. Real etcd on 127.0.27.x,
// the agent in process, AWS as in-memory fakes. Bootstrap, join (activate marker, make room, move
// aside, member add, write state, write env) and a resumed join, a crash after every step.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { SimulatedCrashError } from "../../agent/apply/steps.js";
import { BOOTSTRAP_STEPS, JOIN_STEPS, RESUME_STEPS } from "../../agent/commands/boot.js";
import { decodeMarker } from "../../agent/planner/marker.js";
import { FakeAws } from "../fakes/fake-aws.js";
import {
  boot,
  eventually,
  makeNode,
  runEtcdUnit,
  shutdown,
  startLoop,
  type TestNode,
} from "../support/etcd-node.js";

const SUBNET = "127.0.27";
const ipOf = (n: number) => `${SUBNET}.${n}`;
const url = (n: TestNode) => `http://${n.ip}:2379`;
/** A peer address no instance has: a member added for it never starts. */
const NOWHERE = `http://${ipOf(250)}:2380`;

const roots: string[] = [];
const all: TestNode[] = [];
const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
let nextIp = 1;

afterAll(async () => {
  await shutdown(all);
  await probe.close();
  if (!process.env.KEEP_TEST_DIRS) for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A fresh world with `count` instances on addresses no other case used. */
function world(count: number): { aws: FakeAws; nodes: TestNode[] } {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-steps-"));
  roots.push(root);
  const aws = new FakeAws();
  const nodes = Array.from({ length: count }, () => {
    const n = nextIp++;
    return makeNode(aws, root, n, ipOf(n));
  });
  all.push(...nodes);
  return { aws, nodes };
}

/** etcd data from some earlier life: boot must move it aside. */
function staleData(node: TestNode): void {
  mkdirSync(join(node.config.dataDir, "member", "wal"), { recursive: true });
}

/** A hook that crashes the boot right after `step`, once; `crashed` says whether it did. */
function crashAfter(step: string) {
  const hook = {
    crashed: false,
    afterStep: (done: string) => {
      if (done === step && !hook.crashed) {
        hook.crashed = true;
        throw new SimulatedCrashError(done);
      }
    },
  };
  return hook;
}

/** Boot, killed after `step`; then boot again (the unit's restart) and etcd as its unit starts it. */
async function crashThenRecover(node: TestNode, step: string): Promise<void> {
  const hook = crashAfter(step);
  const first = await boot(node, "boot", hook.afterStep).catch((error: Error) => error);
  expect(first).toBeInstanceOf(SimulatedCrashError);
  expect(hook.crashed).toBe(true);
  await boot(node);
  expect(await runEtcdUnit(node)).toMatchObject({ running: true });
  startLoop(node);
}

async function upAsUnits(node: TestNode): Promise<void> {
  await boot(node);
  expect(await runEtcdUnit(node)).toMatchObject({ running: true });
  startLoop(node);
}

/**
 * The invariants: every node's etcd answers for one and the same cluster, whose members are
 * exactly these nodes, all started voters (no orphan), and the marker is active with its ID.
 */
async function expectOneCluster(aws: FakeAws, nodes: TestNode[]): Promise<void> {
  const want = nodes.map((n) => n.instanceId).sort();
  const seen = await eventually(`one cluster of ${want.join(",")}`, 90_000, async () => {
    const lists = await Promise.all(nodes.map((n) => probe.memberList([url(n)])));
    const ids = new Set(lists.map((l) => l.clusterId));
    const names = (lists[0]?.members ?? []).map((m) => m.name).sort();
    const allVoters = (lists[0]?.members ?? []).every((m) => !m.isLearner);
    const marker = decodeMarker(aws.record("_etcd-cluster.etcd.test", "TXT")?.values[0] ?? "");
    const done =
      ids.size === 1 &&
      JSON.stringify(names) === JSON.stringify(want) &&
      allVoters &&
      marker?.state === "active" &&
      marker.cluster !== undefined;
    return done ? { ids: [...ids], names, marker, members: lists[0]?.members ?? [] } : undefined;
  });
  expect(seen.names).toEqual(want);
  expect(seen.members.filter((m) => m.name === "" || m.isLearner)).toEqual([]);
  expect(seen.ids).toHaveLength(1);
  expect(seen.marker).toMatchObject({ state: "active", cluster: seen.ids[0] });
}

describe("bootstrap survives a crash after every step", () => {
  it.each(BOOTSTRAP_STEPS)("crash after %s", async (step) => {
    const { aws, nodes } = world(2);
    const [first, second] = nodes as [TestNode, TestNode];
    staleData(first);

    await crashThenRecover(first, step);
    await upAsUnits(second);

    await expectOneCluster(aws, nodes);
  });
});

/**
 * A one-member cluster whose marker is still claimed (its daemon not started yet), a learner
 * added for an address no instance has (it blocks the join until removed: make-room), and a
 * joiner with stale data: one boot of the joiner runs every join step.
 */
async function joinWorld(): Promise<{ aws: FakeAws; nodes: TestNode[]; leader: TestNode; joiner: TestNode }> {
  const { aws, nodes } = world(2);
  const [leader, joiner] = nodes as [TestNode, TestNode];
  await boot(leader);
  expect(await runEtcdUnit(leader)).toMatchObject({ running: true });
  await eventually("the bootstrapped member serves", 30_000, async () => {
    const s = await probe.status(url(leader));
    return s !== null && s.leaderId !== "0" ? s : undefined;
  });
  await probe.memberAdd([url(leader)], [NOWHERE], true);
  staleData(joiner);
  return { aws, nodes, leader, joiner };
}

describe("join survives a crash after every step", () => {
  it.each(JOIN_STEPS)("crash after %s", async (step) => {
    const { aws, nodes, leader, joiner } = await joinWorld();

    await crashThenRecover(joiner, step);
    startLoop(leader);

    await expectOneCluster(aws, nodes);
  });
});

describe("a resumed join survives a crash after every step", () => {
  it.each(RESUME_STEPS)("crash after %s", async (step) => {
    const { aws, nodes, leader, joiner } = await joinWorld();
    // An earlier boot added the member and died before writing anything.
    const added = crashAfter("join:member-add");
    await boot(joiner, "boot", added.afterStep).catch(() => undefined);
    expect(added.crashed).toBe(true);
    staleData(joiner);

    await crashThenRecover(joiner, step);
    startLoop(leader);

    await expectOneCluster(aws, nodes);
  });
});

// Real etcd on 127.0.26.x, the agent in process, AWS as in-memory fakes: a joiner is never stuck on
// a frozen ETCD_INITIAL_CLUSTER (issue #13, defect 5), and a claim is never taken over from a
// claimant that is still leaving (defect 4: two clusters).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { WaitingError } from "../../agent/errors.js";
import { FakeAws } from "../fakes/fake-aws.js";
import {
  boot,
  bringUp,
  eventually,
  killEtcd,
  makeNode,
  runEtcdUnit,
  shutdown,
  startEtcd,
  startLoop,
  stopNode,
  type TestNode,
} from "../support/etcd-node.js";

const SUBNET = "127.0.26";
const ipOf = (n: number) => `${SUBNET}.${n}`;
const url = (n: number) => `http://${ipOf(n)}:2379`;

describe("a joiner whose membership changed between MemberAdd and etcd's first start (defect 5)", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-frozen-"));
  const aws = new FakeAws();
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const nodes: TestNode[] = [];
  const add = (n: number) => {
    const made = makeNode(aws, root, n, ipOf(n));
    nodes.push(made);
    return made;
  };

  afterAll(async () => {
    await shutdown(nodes);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("starts on the current member list at its next start and is promoted", async () => {
    const [n1, n2, n3] = [add(1), add(2), add(3)];
    await bringUp(n1);
    await bringUp(n2);
    await eventually("two voters", 60_000, async () => {
      const list = await probe.memberList([url(1)]);
      return list.members.length === 2 && list.members.every((m) => !m.isLearner && m.name !== "")
        ? list
        : undefined;
    });
    // Node 3 is added as a learner (its env file names members 1, 2 and 3), then node 2 leaves
    // (its member is removed, as a graceful leave does) before node 3's etcd first starts.
    const joined = await boot(n3);
    expect(joined.decision).toBe("join");
    const two = (await probe.memberList([url(1)])).members.find((m) => m.name === n2.instanceId);
    expect(two).toBeDefined();
    await probe.memberRemove([url(1)], two?.id ?? "");
    await stopNode(n2, true);
    aws.terminate(n2.instanceId);
    // etcd on the env file written at MemberAdd refuses: this is what a boot that runs once leaves.
    await startEtcd(n3);
    const code = await new Promise<number | null>((resolve) => n3.etcd?.once("exit", resolve));
    n3.etcd = null;
    expect(code).not.toBe(0);
    expect(readFileSync(join(n3.dir, "etcd.log"), "utf8")).toContain("member count is unequal");

    // The unit starts etcd again (Restart=on-failure); what runs before each start decides.
    const unit = await runEtcdUnit(n3, { starts: 4 });

    expect(unit).toMatchObject({ running: true });
    startLoop(n3);
    const settled = await eventually("node 3 promoted beside node 1", 60_000, async () => {
      const list = await probe.memberList([url(1)]);
      const names = list.members.map((m) => m.name).sort();
      return JSON.stringify(names) === JSON.stringify([n1.instanceId, n3.instanceId].sort()) &&
        list.members.every((m) => !m.isLearner)
        ? list
        : undefined;
    });
    expect(settled.members).toHaveLength(2);
  });
});

describe("a claimant in Terminating:Wait keeps its claim (defect 4)", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-claim-"));
  const aws = new FakeAws();
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const nodes: TestNode[] = [];
  const add = (n: number) => {
    const made = makeNode(aws, root, n, ipOf(n), { config: { bootTimeoutSeconds: 4 } });
    nodes.push(made);
    return made;
  };

  afterAll(async () => {
    await shutdown(nodes);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("no second cluster forms while the claimant's etcd may still start", async () => {
    const [n1, n2] = [add(11), add(12)];
    const claimed = await boot(n1);
    expect(claimed.decision).toBe("bootstrap");
    // The claimant is being scaled in: its env file is written and its etcd starts anyway.
    const claimant = aws.instances.get(n1.instanceId);
    if (claimant) claimant.lifecycleState = "Terminating:Wait";

    const second = await boot(n2).catch((error: Error) => error);

    expect(second).toBeInstanceOf(WaitingError);
    expect((second as WaitingError).hold?.rule).toBe("bootstrap-claimed");
    await startEtcd(n1);
    const ids = await eventually("the claimant's cluster", 30_000, async () => {
      const answers = await Promise.all(
        [11, 12].map((n) =>
          probe.memberList([url(n)]).then(
            (l) => l.clusterId,
            () => null,
          ),
        ),
      );
      return answers[0] ? answers : undefined;
    });
    expect(ids[1]).toBeNull();
    await killEtcd(n1);
  });
});

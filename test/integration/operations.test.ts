// Lifecycle hooks, health reports and the operator commands against real etcd on 127.0.22.x.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { runJoin } from "../../agent/commands/join.js";
import { runPlan } from "../../agent/commands/plan.js";
import { runRemoveMember } from "../../agent/commands/remove-member.js";
import { runStatus } from "../../agent/commands/status.js";
import { RefusedError } from "../../agent/errors.js";
import { silentLogger } from "../../agent/log.js";
import { RULES } from "../../agent/planner/rules.js";
import { FakeAws } from "../fakes/fake-aws.js";
import {
  bringUp,
  eventually,
  killEtcd,
  makeNode,
  shutdown,
  startEtcd,
  startLoop,
  stopLoop,
  type TestNode,
} from "../support/etcd-node.js";
import { messagePositions } from "../support/log-order.js";

const ipOf = (n: number) => `127.0.22.${n}`;

describe("operations with real etcd", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-ops-"));
  const aws = new FakeAws();
  aws.hooks = { launch: "etcd-launch", terminate: "etcd-terminate" };
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const nodes = new Map<number, TestNode>();
  const node = (n: number) => nodes.get(n) as TestNode;
  const add = (n: number) => {
    aws.launch(n, ipOf(n), "Pending:Wait");
    const made = makeNode(aws, root, n, ipOf(n), { config: { unhealthyDeadlineSeconds: 30 } });
    nodes.set(n, made);
    return made;
  };
  const live = () => [...nodes.values()].filter((n) => n.etcd).map((n) => `http://${n.ip}:2379`);
  const members = async () => (await probe.memberList(live())).members;
  const healthyVoters = (count: number) =>
    eventually(`${count} healthy voters`, 60_000, async () => {
      const observer = [...nodes.values()].find((n) => n.etcd) as TestNode;
      const report = await runStatus(observer.ports, observer.config, silentLogger);
      return report.healthy && report.quorum?.voters === count && report.drift.length === 0
        ? report
        : undefined;
    });

  beforeAll(async () => {
    for (const n of [1, 2, 3]) add(n);
    await Promise.all([1, 2, 3].map((n) => bringUp(node(n))));
  });

  afterAll(async () => {
    await shutdown([...nodes.values()]);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("completes each launch hook with CONTINUE once the member is a healthy voter", async () => {
    await healthyVoters(3);
    await eventually("three launch completions", 30_000, async () =>
      aws.completed.length >= 3 ? true : undefined,
    );

    expect(aws.completed.map((c) => [c.instanceId, c.hookName, c.result]).sort()).toEqual(
      [1, 2, 3].map((n) => [node(n).instanceId, "etcd-launch", "CONTINUE"]),
    );
    expect([...aws.instances.values()].map((i) => i.lifecycleState)).toEqual([
      "InService",
      "InService",
      "InService",
    ]);
  });

  it("status reports a healthy cluster with DNS equal to the voters", async () => {
    const report = await runStatus(node(1).ports, node(1).config, silentLogger);

    expect(report.healthy).toBe(true);
    expect(report.members.map((m) => m.instanceId).sort()).toEqual([1, 2, 3].map((n) => node(n).instanceId));
    expect(report.members.filter((m) => m.leader)).toHaveLength(1);
    expect(report.dns.pending).toEqual([]);
    expect(report.marker).toMatchObject({ kind: "present", marker: { state: "active" } });
  });

  it("plan on a settled cluster has nothing to do", async () => {
    const report = await runPlan(node(2).ports, node(2).config, silentLogger);
    expect(report.plan.actions).toEqual([]);
    expect(report.asOf?.memberId).toBeDefined();
  });

  it("remove-member refuses a removal that breaks quorum, names the rule, and changes nothing", async () => {
    await killEtcd(node(3));
    await eventually("member 3 down", 20_000, async () => {
      const r = await runStatus(node(1).ports, node(1).config, silentLogger);
      return r.members.some((m) => m.instanceId === node(3).instanceId && !m.healthy) ? true : undefined;
    });
    const before = await members();

    const attempt = runRemoveMember(node(1).ports, node(1).config, silentLogger, node(2).instanceId, {
      force: false,
      dryRun: false,
    });

    await expect(attempt).rejects.toBeInstanceOf(RefusedError);
    await expect(attempt).rejects.toThrow(
      /\[rule: quorum-after-removal\].*leaves 1 healthy of 2 voters, 2 needed/,
    );
    expect((await members()).map((m) => m.id).sort()).toEqual(before.map((m) => m.id).sort());
  });

  it("remove-member --force --dry-run reports the override and still changes nothing", async () => {
    const before = await members();
    const result = await runRemoveMember(node(1).ports, node(1).config, silentLogger, node(2).instanceId, {
      force: true,
      dryRun: true,
    });
    expect(result).toMatchObject({ forced: true, dryRun: true });
    expect((await members()).length).toBe(before.length);
  });

  it("reports a member that stays unhealthy past the deadline to the ASG, once", async () => {
    await eventually("a health report", 60_000, async () =>
      aws.reportedUnhealthy.length > 0 ? true : undefined,
    );
    expect(aws.reportedUnhealthy).toEqual([node(3).instanceId]);
  });

  it("the node comes back with its data and the cluster heals", async () => {
    await stopLoop(node(3));
    const inst = aws.instances.get(node(3).instanceId);
    if (inst) inst.healthStatus = "Healthy";
    await bringUp(node(3));
    await healthyVoters(3);
  });

  it("a terminating leader hands leadership away, leaves, and completes its hook", async () => {
    const leaderId = (await probe.status(`http://${ipOf(1)}:2379`))?.leaderId as string;
    const list = await members();
    const leaderName = list.find((m) => m.id === leaderId)?.name as string;
    const leaving = [...nodes.values()].find((n) => n.instanceId === leaderName) as TestNode;
    const inst = aws.instances.get(leaving.instanceId);
    if (!inst) throw new Error(`no instance ${leaving.instanceId}`);

    inst.lifecycleState = "Terminating:Wait";
    inst.targetLifecycleState = "Terminated";

    // The drain adds the records' TTL (30 s) before the member leaves etcd.
    await eventually("the terminate hook completed", 120_000, async () =>
      aws.completed.some((c) => c.instanceId === leaving.instanceId && c.hookName === "etcd-terminate")
        ? true
        : undefined,
    );
    const after = await probe.memberList(live().filter((u) => !u.includes(leaving.ip)));
    expect(after.members.map((m) => m.name)).not.toContain(leaving.instanceId);
    const log = await import("node:fs/promises").then((fs) =>
      fs.readFile(join(leaving.dir, "agent.log"), "utf8"),
    );
    const order = messagePositions(log, [
      "handed leadership away",
      `held back: ${RULES["dns-drain"]}`,
      "removed member",
      "completed the terminate lifecycle action",
    ]);
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);

    await stopLoop(leaving);
    await killEtcd(leaving, "SIGTERM");
    nodes.delete(leaving.n);
    await healthyVoters(2);
  });

  it("join from the bastion adds a named instance as a learner, idempotently, and prints its environment", async () => {
    const fresh = add(5);
    const bastion = [...nodes.values()].find((n) => n.etcd) as TestNode;

    const first = await runJoin(bastion.ports, bastion.config, silentLogger, {
      instanceId: fresh.instanceId,
    });
    const second = await runJoin(bastion.ports, bastion.config, silentLogger, {
      instanceId: fresh.instanceId,
    });

    expect(first.decision).toBe("join");
    expect(second.memberId).toBe(first.memberId);
    expect(first.envFileContent).toContain("ETCD_INITIAL_CLUSTER_STATE=existing");
    expect(first.nextStep).toContain(fresh.instanceId);
    writeFileSync(
      fresh.config.envFile,
      (second.envFileContent as string).replaceAll(bastion.config.dataDir, fresh.config.dataDir),
    );
    await startEtcd(fresh);
    startLoop(fresh);
    await healthyVoters(3);
  });

  it("join from the bastion for an instance whose member has started removes nothing: it refuses, naming the rule", async () => {
    const bastion = [...nodes.values()].find((n) => n.etcd) as TestNode;
    const target = [...nodes.values()].find((n) => n.etcd && n !== bastion) as TestNode;
    const before = await probe.memberList(live());

    // The bastion holds no data for the target: that says nothing of the node's own disk.
    const attempt = runJoin(bastion.ports, bastion.config, silentLogger, { instanceId: target.instanceId });

    await expect(attempt).rejects.toThrow(RULES["remote-member-started"]);
    const after = await probe.memberList(live());
    expect(after.members.map((m) => m.id).sort()).toEqual(before.members.map((m) => m.id).sort());
    await healthyVoters(3);
  });
});

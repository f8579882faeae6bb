// AWS failing under the agents (through the sandbox's fault injection): retries, and no
// destructive action on partial information.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { Sandbox } from "../sandbox/sandbox.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { expectClusterInvariants, withSandbox } from "../support/with-sandbox.js";

function agentLogs(root: string, ids: string[]): string {
  return ids
    .map((id) => {
      try {
        return readFileSync(join(root, id, "agent.log"), "utf8");
      } catch {
        return "";
      }
    })
    .join("\n");
}

describe("AWS faults", () => {
  it("with the ASG unreadable the leader removes no member, and heals once it can read again", async () => {
    await withSandbox({ subnet: "127.0.32.0/24" }, async (sandbox) => {
      const before = await worldInstances(sandbox.world);
      const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
      const status = await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string));
      // An unanswered status would make any member, the leader too, "not the leader".
      if (status === null || status.leaderId === "0")
        throw new Error("no leader to spare: the status did not answer");
      const victim = list.members.find((m) => m.id !== status.leaderId)?.name as string;

      sandbox.gaps.setFaults([{ api: "autoscaling:DescribeAutoScalingGroups", share: 1, kind: "5xx" }]);
      await clients(sandbox.world.endpoint).ec2.send(
        new TerminateInstancesCommand({ InstanceIds: [victim] }),
      );
      await new Promise((r) => setTimeout(r, 25_000));

      const during = await sandbox.probe.memberList(
        before.filter((i) => i.instanceId !== victim).map((i) => sandbox.clientUrl(i.ip)),
      );
      expect(during.members.map((m) => m.name)).toContain(victim);
      const logs = agentLogs(
        sandbox.stateDir,
        before.map((i) => i.instanceId),
      );
      expect(logs).toContain('"rule":"partial-information"');
      expect(logs).not.toContain('"msg":"removed member"');
      expect(sandbox.gaps.calls.get("autoscaling:DescribeAutoScalingGroups")?.failed).toBeGreaterThan(0);

      sandbox.gaps.setFaults([]);
      await eventually("the cluster healed", 150_000, () => sandbox.settledInstances(3));
    });
  });

  it("30% of every AWS call throttled during a fresh boot: one cluster still forms", async () => {
    const root = mkdtempSync(join(tmpdir(), "etcd-agent-faults-"));
    const sandbox = await Sandbox.create({ nodes: 3, stateDir: root, subnetCidr: "127.0.33.0/24" });
    try {
      sandbox.gaps.setFaults([{ api: "*", share: 0.3, kind: "throttle" }]);
      sandbox.startHypervisor();
      await sandbox.waitHealthy(180_000);
      const instances = await worldInstances(sandbox.world);
      const ids = await Promise.all(
        instances.map(async (i) => (await sandbox.probe.memberList([sandbox.clientUrl(i.ip)])).clusterId),
      );
      const failed = [...sandbox.gaps.calls.values()].reduce((n, c) => n + c.failed, 0);

      expect(new Set(ids).size).toBe(1);
      expect(failed).toBeGreaterThan(0);
      // Not a withSandbox scenario (the faults start before the first boot): the frame's invariants.
      await expectClusterInvariants(sandbox);
    } finally {
      await sandbox.stop();
      if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
    }
  });
});

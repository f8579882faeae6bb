// Healing in the sandbox: a member that cannot get healthy is reported and replaced; the group
// scales out and in with the members following. The continuous writer runs through both.
import { SetDesiredCapacityCommand } from "@aws-sdk/client-auto-scaling";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

function settled(sandbox: Sandbox, count: number, ms: number) {
  return eventually(`${count} voters equal to the instances`, ms, () => sandbox.settledInstances(count));
}

describe("healing in the sandbox", () => {
  it("a member that stays unhealthy past the deadline is reported, replaced and the cluster heals", async () => {
    // Production's hooks; no grace period, so that the report made about 30 s after the freeze
    // counts (the grace period's own behaviour is in aws-group.test.ts).
    await withSandbox({ subnet: "127.0.35.0/24", healthCheckGracePeriodSeconds: 0 }, async (sandbox) => {
      const before = await worldInstances(sandbox.world);
      const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
      const leaderId = (await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string)))?.leaderId;
      const victim = list.members.find((m) => m.id !== leaderId)?.name as string;

      // Frozen, not dead: the process is there but does not answer.
      sandbox.node(victim)?.etcd?.kill("SIGSTOP");

      await eventually("the instance reported and replaced", 120_000, async () =>
        sandbox.gaps.replaced.includes(victim) ? true : undefined,
      );
      const healed = await settled(sandbox, 3, 150_000);
      expect(healed.map((i) => i.instanceId)).not.toContain(victim);
      // Terminate-and-launch (AWS's default order): no livelock, the replacement's launch hook
      // completed rather than abandoned while the old instance waited in Terminating:Wait.
      expect(sandbox.gaps.waitLog.filter((l) => l.includes("Pending:Wait ABANDON"))).toEqual([]);
    });
  }, 300_000);

  // Two graceful leaves, one at a time, each drained from DNS (TTL 30 s) before it leaves etcd.
  it("scales 3 -> 5 -> 3 with the members following; the victims leave through the terminate hook", async () => {
    await withSandbox({ subnet: "127.0.36.0/24" }, async (sandbox) => {
      // Through the gap filler, as an operator's call reaches AWS: it chooses the victims and
      // holds them in Terminating:Wait until their agents have left.
      const { asg } = clients(sandbox.gaps.url);

      await asg.send(
        new SetDesiredCapacityCommand({ AutoScalingGroupName: sandbox.world.asgName, DesiredCapacity: 5 }),
      );
      const five = await settled(sandbox, 5, 180_000);
      expect(five).toHaveLength(5);

      await asg.send(
        new SetDesiredCapacityCommand({ AutoScalingGroupName: sandbox.world.asgName, DesiredCapacity: 3 }),
      );
      const three = await settled(sandbox, 3, 180_000);
      expect(three).toHaveLength(3);
      expect(sandbox.gaps.scaleInVictims).toHaveLength(2);
      for (const v of sandbox.gaps.scaleInVictims) expect(three.map((i) => i.instanceId)).not.toContain(v);
      // Each victim's agent completed its hook (CONTINUE) rather than the 10-minute timeout.
      await eventually("both victims terminated", 60_000, async () =>
        Object.keys(sandbox.gaps.waits()).length === 0 ? true : undefined,
      );
      // In the order they completed, which need not be the order they were chosen in.
      expect(sandbox.gaps.waitLog.filter((l) => l.includes("Terminating:Wait")).sort()).toEqual(
        sandbox.gaps.scaleInVictims
          .map((v) => `${v} Terminating:Wait CONTINUE (CompleteLifecycleAction)`)
          .sort(),
      );
    });
  }, 300_000);
});

// A frozen voter replaced launch-before-terminate (#15): an instance maintenance policy keeps the
// unhealthy instance InService until its replacement is in service, and the replacement's agent
// completes its launch hook only as a healthy voter. The dead member must not hold the join, or
// the launch hook is abandoned every 15 minutes and nothing converges. (Terminate-and-launch,
// AWS's default, is heal.test.ts's first scenario.) Production's hooks; the writer runs through.
import { describe, expect, it } from "vitest";
import { worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

describe("replacement orders", () => {
  it("launch-before-terminate: the frozen voter's member goes, the replacement joins, then the old instance terminates", async () => {
    await withSandbox(
      {
        subnet: "127.0.60.0/24",
        healthCheckGracePeriodSeconds: 0,
        replacementOrder: "launch-before-terminate",
      },
      async (sandbox) => {
        const before = await worldInstances(sandbox.world);
        const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
        const leaderId = (await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string)))?.leaderId;
        const victim = list.members.find((m) => m.id !== leaderId)?.name as string;

        sandbox.node(victim)?.etcd?.kill("SIGSTOP");

        await eventually("the instance reported", 90_000, async () =>
          sandbox.gaps.replaced.includes(victim) ? true : undefined,
        );
        // Launch before terminate: the old instance is still InService beside its replacement.
        expect(sandbox.gaps.waits()[victim]).toBeUndefined();
        const healed = await eventually("3 voters without the frozen one", 150_000, () =>
          sandbox.settledInstances(3),
        );
        expect(healed.map((i) => i.instanceId)).not.toContain(victim);
        await eventually("the old instance terminating after its replacement", 60_000, async () =>
          sandbox.gaps.waitLog.some((l) => l.startsWith(victim)) || sandbox.gaps.waits()[victim]
            ? true
            : undefined,
        );
        expect(sandbox.gaps.waitLog.filter((l) => l.includes("Pending:Wait ABANDON"))).toEqual([]);
      },
    );
  }, 420_000);
});

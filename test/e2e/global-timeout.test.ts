// A terminate wait heartbeated past the hook's global timeout (#15). A voter leaving through the
// terminate hook while another voter is frozen may not leave (quorum-after-removal): its agent
// holds and heartbeats. No heartbeat extends a wait past the global timeout (AWS: 48 h or 100 x
// the heartbeat timeout, about 16.7 h with production's 10-minute hook); then the group takes the
// hook's default result (CONTINUE) and terminates the instance with its member still in etcd.
// Once the frozen voter answers again, the agents must remove that stale member and the
// replacement must join. The gap filler's test-only globalTimeoutSeconds makes the cap 45 s; the
// terminate hook's heartbeat timeout is 30 s (AWS's minimum), so the wait outlives it only by the
// agent's heartbeats. Production's launch hook and grace period; the writer runs through.

import { TerminateInstanceInAutoScalingGroupCommand } from "@aws-sdk/client-auto-scaling";
import { describe, expect, it } from "vitest";
import { PRODUCTION_GROUP } from "../sandbox/aws-gaps.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

const CAP_SECONDS = 45;

describe("a terminate wait heartbeated past the global timeout", () => {
  it("the group ends the wait, the instance goes, and the agents remove its stale member", async () => {
    await withSandbox(
      {
        subnet: "127.0.63.0/24",
        hooks: {
          launch: PRODUCTION_GROUP.launch,
          terminate: { ...PRODUCTION_GROUP.terminate, heartbeatTimeoutSeconds: 30 },
        },
        globalTimeoutSeconds: CAP_SECONDS,
      },
      async (sandbox) => {
        const before = await worldInstances(sandbox.world);
        const urlOf = (id: string) =>
          sandbox.clientUrl(before.find((i) => i.instanceId === id)?.ip as string);
        const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
        const leaderId = (await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string)))?.leaderId;
        const leader = list.members.find((m) => m.id === leaderId)?.name as string;
        const [leaving, frozen] = list.members.filter((m) => m.id !== leaderId).map((m) => m.name) as [
          string,
          string,
        ];

        // One voter frozen (inside the grace period, so the group ignores the reports about it),
        // then another asked to leave: leaving would leave 1 healthy of 2 voters.
        sandbox.node(frozen)?.etcd?.kill("SIGSTOP");
        await clients(sandbox.gaps.url).asg.send(
          new TerminateInstanceInAutoScalingGroupCommand({
            InstanceId: leaving,
            ShouldDecrementDesiredCapacity: false,
          }),
        );
        expect(sandbox.gaps.waits()[leaving]).toBe("Terminating:Wait");

        // Heartbeated past the hook's 30 s heartbeat timeout, ended only by the cap.
        await eventually("the global timeout to end the wait", (CAP_SECONDS + 45) * 1000, async () =>
          sandbox.gaps.waitLog.some((l) => l.startsWith(`${leaving} Terminating`)) ? true : undefined,
        );
        expect(sandbox.gaps.waitLog.filter((l) => l.startsWith(`${leaving} Terminating`))).toEqual([
          `${leaving} Terminating:Wait CONTINUE (global timeout)`,
        ]);
        await eventually("the instance gone", 30_000, async () =>
          sandbox.node(leaving) === undefined &&
          !(await worldInstances(sandbox.world)).some((i) => i.instanceId === leaving)
            ? true
            : undefined,
        );
        // Its member is stale: nothing could remove it without a quorum.
        const stale = await sandbox.probe.memberList([urlOf(leader)]);
        expect(stale.members.map((m) => m.name)).toContain(leaving);

        sandbox.node(frozen)?.etcd?.kill("SIGCONT");
        const healed = await eventually(
          "3 voters with the replacement, without the stale member",
          180_000,
          () => sandbox.settledInstances(3),
        );
        expect(healed.map((i) => i.instanceId)).not.toContain(leaving);
        expect(healed.map((i) => i.instanceId)).toEqual(expect.arrayContaining([leader, frozen]));
        const after = await sandbox.probe.memberList(healed.map((i) => sandbox.clientUrl(i.ip)));
        expect(after.members.map((m) => m.name)).not.toContain(leaving);
        expect(sandbox.gaps.replaced).toEqual([]);
        expect(sandbox.gaps.waitLog.filter((l) => l.includes("Pending:Wait ABANDON"))).toEqual([]);
      },
    );
  }, 420_000);
});

// Scale-in as AWS does it (#15): 5 -> 3 by UpdateAutoScalingGroup through the gap filler, which
// chooses the two victims with AWS's default termination policy and holds each in
// Terminating:Wait (production's terminate hook, CONTINUE after 10 min). The leader is one of
// them. Both leave gracefully: the leader hands over before its member goes, the members leave one
// at a time, each agent completes its own hook; the continuous writer loses nothing.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UpdateAutoScalingGroupCommand } from "@aws-sdk/client-auto-scaling";
import { describe, expect, it } from "vitest";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { expectEveryWriteReadable, openScenario } from "../support/with-sandbox.js";

describe("scale-in through the terminate hook", () => {
  it("5 -> 3 with the leader among the victims: both leave gracefully, one member at a time", async () => {
    const scenario = await openScenario({ subnet: "127.0.58.0/24", nodes: 5 });
    try {
      const { sandbox } = scenario;
      const five = await worldInstances(sandbox.world);
      const endpoints = five.map((i) => sandbox.clientUrl(i.ip));
      const victims = await sandbox.gaps.previewScaleIn(2);
      expect(victims).toHaveLength(2);

      // Make the first victim the leader (the policy does not look at etcd; AWS may pick the leader).
      const list = await sandbox.probe.memberList(endpoints);
      const leaderId = (await sandbox.probe.status(endpoints[0] as string))?.leaderId as string;
      const idOf = (name: string) => list.members.find((m) => m.name === name)?.id as string;
      const leaderName = list.members.find((m) => m.id === leaderId)?.name as string;
      if (!victims.includes(leaderName)) {
        const leaderUrl = sandbox.clientUrl(five.find((i) => i.instanceId === leaderName)?.ip as string);
        await sandbox.probe.moveLeader(leaderUrl, idOf(victims[0] as string));
      }
      const leader = await eventually("a victim leads", 20_000, async () => {
        const s = await sandbox.probe.status(endpoints[0] as string);
        const name = list.members.find((m) => m.id === s?.leaderId)?.name;
        return name && victims.includes(name) ? name : undefined;
      });

      const asg = clients(sandbox.gaps.url).asg;
      await asg.send(
        new UpdateAutoScalingGroupCommand({
          AutoScalingGroupName: sandbox.world.asgName,
          MinSize: 3,
          DesiredCapacity: 3,
        }),
      );
      expect(sandbox.gaps.scaleInVictims).toEqual(victims);
      for (const v of victims) expect(sandbox.gaps.waits()[v]).toBe("Terminating:Wait");

      // Watched from outside every 100 ms, from the members that stay.
      const stay = five.filter((i) => !victims.includes(i.instanceId)).map((i) => sandbox.clientUrl(i.ip));
      const counts: number[] = [];
      const at: { handedOver?: number; leaderRemoved?: number } = {};
      for (let i = 0; i < 1200 && Object.keys(sandbox.gaps.waits()).length > 0; i++) {
        const now = Date.now();
        const leaders = (await Promise.all(stay.map((u) => sandbox.probe.status(u))))
          .map((st) => st?.leaderId)
          .filter((x) => x && x !== "0");
        if (at.handedOver === undefined && leaders.length > 0 && leaders.every((x) => x !== idOf(leader)))
          at.handedOver = now;
        const names = (await sandbox.probe.memberList(stay).catch(() => null))?.members.map((m) => m.name);
        if (names) {
          if (counts.at(-1) !== names.length) counts.push(names.length);
          if (at.leaderRemoved === undefined && !names.includes(leader)) at.leaderRemoved = now;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(sandbox.gaps.waits()).toEqual({});
      expect(at.handedOver).toBeDefined();
      expect(at.leaderRemoved).toBeDefined();
      expect(at.handedOver as number).toBeLessThan(at.leaderRemoved as number);
      // One member at a time: 5, then 4, then 3.
      expect(counts).toEqual([5, 4, 3]);
      // Each victim's own agent completed its hook; none waited out the 10-minute timeout.
      expect(sandbox.gaps.waitLog.filter((l) => l.includes("Terminating:Wait")).sort()).toEqual(
        victims.map((v) => `${v} Terminating:Wait CONTINUE (CompleteLifecycleAction)`).sort(),
      );
      for (const v of victims) {
        const log = readFileSync(join(scenario.root, v, "agent.log"), "utf8");
        expect(log).toContain('"msg":"completed the terminate lifecycle action"');
      }
      const three = await eventually("three voters", 60_000, () => sandbox.settledInstances(3));
      expect(three.map((i) => i.instanceId).sort()).toEqual(
        five
          .map((i) => i.instanceId)
          .filter((id) => !victims.includes(id))
          .sort(),
      );
      if (!scenario.writer) throw new Error("the writer did not start");
      await expectEveryWriteReadable(scenario.writer);
    } finally {
      await scenario.close();
    }
  }, 420_000);
});

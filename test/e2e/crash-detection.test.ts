// A crash as AWS sees it (#15), in one sandbox: the instance dies but stays InService for a while
// (EC2's status checks take time to notice), then the group terminates it and launches a
// replacement that gets the dead node's address (AWS may hand a freed address out again; moto
// never does, the gap filler's reuseAddresses does). Nothing is removed before the group has
// acted, and afterwards no member is confused with another: the replacement joins as itself.
// Production's hooks; the writer runs through.
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

/** Shorter than the sandbox's unhealthy deadline (30 s): the agents only wait. */
const DETECTION_MS = 20_000;

describe("a crash detected after a delay, replaced on the same address", () => {
  it("no member removed before the group acts; the replacement on the dead node's IP joins as itself", async () => {
    await withSandbox({ subnet: "127.0.61.0/24", reuseAddresses: true }, async (sandbox) => {
      const before = await worldInstances(sandbox.world);
      const endpoints = before.map((i) => sandbox.clientUrl(i.ip));
      const list = await sandbox.probe.memberList(endpoints);
      const leaderId = (await sandbox.probe.status(endpoints[0] as string))?.leaderId;
      const victim = list.members.find((m) => m.id !== leaderId)?.name as string;
      const victimIp = before.find((i) => i.instanceId === victim)?.ip as string;
      const others = before.filter((i) => i.instanceId !== victim).map((i) => sandbox.clientUrl(i.ip));

      // The machine dies; the group does not know yet.
      await sandbox.halt(victim);
      const until = Date.now() + DETECTION_MS;
      for (let i = 0; i < 100 && Date.now() < until; i++) {
        const names = (await sandbox.probe.memberList(others)).members.map((m) => m.name);
        expect(names, "a member removed before the group noticed the crash").toContain(victim);
        await new Promise((r) => setTimeout(r, 1000));
      }
      expect(sandbox.gaps.replaced).toEqual([]);

      // Detected: the group terminates it and launches a replacement.
      await clients(sandbox.world.endpoint).ec2.send(
        new TerminateInstancesCommand({ InstanceIds: [victim] }),
      );
      const healed = await eventually("3 voters with the replacement", 150_000, () =>
        sandbox.settledInstances(3),
      );
      const fresh = healed.find((i) => !before.some((b) => b.instanceId === i.instanceId));
      expect(fresh?.ip).toBe(victimIp);
      expect(sandbox.gaps.reusedAddresses).toEqual([`${fresh?.instanceId} ${victimIp} (was ${victim}'s)`]);
      // The member on the reused address is the replacement's, under its own name and a new ID.
      const after = await sandbox.probe.memberList(healed.map((i) => sandbox.clientUrl(i.ip)));
      const onIp = after.members.filter((m) => m.peerUrls.some((u) => u.includes(`//${victimIp}:`)));
      expect(onIp.map((m) => m.name)).toEqual([fresh?.instanceId]);
      expect(onIp[0]?.id).not.toBe(list.members.find((m) => m.name === victim)?.id);
    });
  }, 420_000);
});

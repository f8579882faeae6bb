// Machines that go down with their disks and come back: a reboot through the EC2 API, then two of
// three down at once (quorum lost). While quorum is gone nothing may be removed, reported or
// seeded; when the machines return with their data the same cluster carries on. The continuous
// writer runs throughout; every write it got acknowledged must be there at the end.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { RebootInstancesCommand } from "@aws-sdk/client-ec2";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

const log = (sandbox: Sandbox, id: string) => readFileSync(join(sandbox.stateDir, id, "agent.log"), "utf8");

async function markerOf(sandbox: Sandbox): Promise<string | undefined> {
  const { r53 } = clients(sandbox.world.endpoint);
  const out = await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: sandbox.world.hostedZoneId }));
  return out.ResourceRecordSets?.find((r) => r.Type === "TXT")?.ResourceRecords?.[0]?.Value;
}

async function membersById(sandbox: Sandbox, endpoints: string[]): Promise<Record<string, string>> {
  const list = await sandbox.probe.memberList(endpoints);
  return Object.fromEntries(list.members.map((m) => [m.name, m.id]));
}

describe("machines down with their disks", () => {
  it("a reboot, then 2 of 3 down: nothing removed or seeded without quorum; the same cluster recovers", async () => {
    await withSandbox({ subnet: "127.0.37.0/24" }, async (sandbox) => {
      const instances = await worldInstances(sandbox.world);
      const ids = instances.map((i) => i.instanceId).sort();
      const endpoints = instances.map((i) => sandbox.clientUrl(i.ip));
      const clusterId = (await sandbox.probe.memberList(endpoints)).clusterId;
      const memberIds = await membersById(sandbox, endpoints);
      const marker = await markerOf(sandbox);

      // A reboot through the EC2 API: the machine comes back with its disk and its member.
      const rebooted = ids[0] as string;
      await clients(sandbox.gaps.url).ec2.send(new RebootInstancesCommand({ InstanceIds: [rebooted] }));
      await eventually("the rebooted node down", 15_000, async () =>
        sandbox.node(rebooted) === undefined ? true : undefined,
      );
      await eventually("the rebooted node back as a voter", 120_000, () => sandbox.settledInstances(3));
      expect(log(sandbox, rebooted)).toContain("this node holds its data");

      // Two of three down, the ASG none the wiser (hung or rebooting machines).
      const leaderId = (await sandbox.probe.status(endpoints[0] as string))?.leaderId;
      // An unanswered status would take down no leader at all.
      if (leaderId === undefined || leaderId === "0") throw new Error("no leader: the status did not answer");
      const leaderName = Object.entries(memberIds).find(([, id]) => id === leaderId)?.[0] as string;
      const down = [leaderName, ids.find((id) => id !== leaderName) as string];
      const survivor = ids.find((id) => !down.includes(id)) as string;
      const survivorUrl = sandbox.clientUrl(instances.find((i) => i.instanceId === survivor)?.ip as string);
      await Promise.all(down.map((id) => sandbox.halt(id)));

      // Longer than the sandbox's unhealthy deadline (30 s) plus a reconcile interval (10 s).
      await new Promise((r) => setTimeout(r, 45_000));

      expect(await membersById(sandbox, [survivorUrl])).toEqual(memberIds);
      expect(sandbox.gaps.replaced).toEqual([]);
      const { asg } = clients(sandbox.world.endpoint);
      const group = await asg.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [sandbox.world.asgName] }),
      );
      expect((group.AutoScalingGroups?.[0]?.Instances ?? []).map((i) => i.InstanceId).sort()).toEqual(ids);
      expect(await markerOf(sandbox)).toBe(marker);
      const survivorLog = log(sandbox, survivor);
      expect(survivorLog).not.toContain('"msg":"removed member"');
      expect(survivorLog).not.toContain('"msg":"reported instance unhealthy"');

      for (const id of down) sandbox.resume(id);
      const back = await eventually("the cluster back on the same instances", 150_000, () =>
        sandbox.settledInstances(3),
      );
      expect(back.map((i) => i.instanceId).sort()).toEqual(ids);
      expect((await sandbox.probe.memberList(endpoints)).clusterId).toBe(clusterId);
      expect(await membersById(sandbox, endpoints)).toEqual(memberIds);
      // One instance ever bootstrapped (its own boot before etcd's first start says "bootstrap" again,
      // resuming its claim: that is the same cluster, as the ID above shows).
      expect(ids.filter((id) => log(sandbox, id).includes('"msg":"boot decision: bootstrap"'))).toHaveLength(
        1,
      );
      for (const id of down) expect(log(sandbox, id)).toContain("this node holds its data");
    });
  });
});

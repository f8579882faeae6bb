// End to end with what ships: the sandbox (moto + real etcd + the x64 binary, an IMDSv2 endpoint
// per node) on 127.0.31.x. A node is its processes; an instance that goes loses them.

import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, type WorldInstance, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { expectEveryWriteReadable, openScenario, type Scenario } from "../support/with-sandbox.js";

describe("the sandbox: three nodes from the binary on moto", () => {
  let sandbox: Sandbox;
  let scenario: Scenario | undefined;

  const instances = () => worldInstances(sandbox.world);
  const settled = (ms: number) =>
    eventually("members equal to the instances", ms, () => sandbox.settledInstances());
  const dnsEquals = (now: WorldInstance[]) =>
    eventually("DNS equal to the members", 60_000, async () => {
      const { r53 } = clients(sandbox.world.endpoint);
      const out = await r53.send(
        new ListResourceRecordSetsCommand({ HostedZoneId: sandbox.world.hostedZoneId }),
      );
      const srv = out.ResourceRecordSets?.find(
        (r) => r.Name?.replace(/\.$/, "") === `${sandbox.clientSrvPrefix()}.${sandbox.world.domain}`,
      );
      const values = (srv?.ResourceRecords ?? []).map((r) => r.Value as string).sort();
      const want = now.map((i) => `0 0 2379 ${i.instanceId}.${sandbox.world.domain}`).sort();
      return JSON.stringify(values) === JSON.stringify(want) ? out.ResourceRecordSets : undefined;
    });

  beforeAll(async () => {
    scenario = await openScenario({ subnet: "127.0.31.0/24" });
    sandbox = scenario.sandbox;
  });

  afterAll(async () => {
    await scenario?.close();
    await sandbox.probe.close();
  });

  it("gives every instance a loopback address", async () => {
    const now = await instances();
    expect(now).toHaveLength(3);
    for (const i of now) expect(i.ip).toMatch(/^127\.0\.31\.\d+$/);
  });

  it("forms one cluster of three voters named after the instances, with DNS and the marker", async () => {
    const now = await settled(60_000);
    const records = await dnsEquals(now);
    const a = (records ?? []).filter((r) => r.Type === "A" && r.Name?.startsWith("i-"));
    expect(a.map((r) => r.ResourceRecords?.[0]?.Value).sort()).toEqual(now.map((i) => i.ip).sort());
    expect((records ?? []).find((r) => r.Type === "TXT")?.ResourceRecords?.[0]?.Value).toContain(
      "state=active",
    );
  });

  it("heals a crash of the leader's instance: stale member removed, replacement joined, DNS updated", async () => {
    const before = await instances();
    const status = await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string));
    const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
    const leaderName = list.members.find((m) => m.id === status?.leaderId)?.name as string;
    const { ec2 } = clients(sandbox.world.endpoint);

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [leaderName] }));

    const after = await eventually("a replacement instance", 60_000, async () => {
      const now = await instances();
      return now.length === 3 && !now.some((i) => i.instanceId === leaderName) ? now : undefined;
    });
    const healed = await settled(120_000);
    expect(healed.map((i) => i.instanceId).sort()).toEqual(after.map((i) => i.instanceId).sort());
    await dnsEquals(healed);
  });

  it("every write acknowledged while this ran is readable", async () => {
    if (!scenario?.writer) throw new Error("the writer did not start");
    await expectEveryWriteReadable(scenario.writer);
  });
});

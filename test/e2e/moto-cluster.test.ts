// End to end with what ships: the sandbox (moto + real etcd + the x64 binary, an IMDSv2 endpoint
// per node) on 127.0.31.x. A node is its processes; an instance that goes loses them.

import { GetMetricDataCommand, ListMetricsCommand } from "@aws-sdk/client-cloudwatch";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SANDBOX_METRICS } from "../sandbox/node-process.js";
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

  it("publishes the cluster's vital signs: the leader to CloudWatch (read back from moto), every node on its Prometheus endpoint", async () => {
    const now = await settled(60_000);
    const { cw } = clients(sandbox.world.endpoint);
    const cluster = [{ Name: "ClusterName", Value: sandbox.world.asgName }];
    // The backup's age is known once the leader has read the snapshot listing (a cycle or two).
    const listed = await eventually("the leader's metrics in CloudWatch", 45_000, async () => {
      const out = await cw.send(new ListMetricsCommand({ Namespace: SANDBOX_METRICS.namespace }));
      const names = new Set((out.Metrics ?? []).map((m) => m.MetricName));
      return names.has("Members") && names.has("BackupAgeSeconds") ? out.Metrics : undefined;
    });
    expect(new Set(listed?.map((m) => m.MetricName))).toEqual(
      new Set([
        "Members",
        "Voters",
        "HealthyVoters",
        "LearnersWaiting",
        "UnhealthyMembers",
        "EtcdAlarms",
        "LeaderChanges",
        "CycleFailures",
        "QuotaBytes",
        "QuotaUsedPercent",
        "BackupAgeSeconds",
        "DbSizeBytes",
        "DbSizeInUseBytes",
        "ActionsTaken",
        "HeldBack",
      ]),
    );
    for (const m of listed ?? []) expect(m.Dimensions?.[0]).toEqual(cluster[0]);
    const end = new Date(Date.now() + 60_000);
    const got = await cw.send(
      new GetMetricDataCommand({
        StartTime: new Date(end.getTime() - 900_000),
        EndTime: end,
        MetricDataQueries: [
          {
            Id: "members",
            MetricStat: {
              Metric: { Namespace: SANDBOX_METRICS.namespace, MetricName: "Members", Dimensions: cluster },
              Period: 60,
              Stat: "Maximum",
            },
          },
        ],
      }),
    );
    const members = got.MetricDataResults?.[0]?.Values ?? [];
    expect(members.length).toBeGreaterThan(0);
    expect(Math.max(...members)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...members)).toBeLessThanOrEqual(3);
    // Every node serves its own view on its IP; one of them leads.
    const leaders: string[] = [];
    for (const i of now) {
      const text = await eventually(`metrics from ${i.instanceId}`, 20_000, async () => {
        const res = await fetch(`http://${i.ip}:${SANDBOX_METRICS.port}/metrics`).catch(() => null);
        const body = res?.ok ? await res.text() : "";
        return /^etcd_agent_voters 3$/m.test(body) ? body : undefined;
      });
      for (const j of now) expect(text).toContain(`etcd_agent_db_size_bytes{member="${j.instanceId}"}`);
      if (/^etcd_agent_is_leader 1$/m.test(text ?? "")) leaders.push(i.instanceId);
    }
    expect(leaders).toHaveLength(1);
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

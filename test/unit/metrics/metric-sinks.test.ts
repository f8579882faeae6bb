// The metric sinks (issue #18): CloudWatch from the leader, one PutMetricData a period whatever the
// cluster's size, never blocking or failing the loop; this node's Prometheus endpoint.
import { createServer } from "node:http";
import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CloudWatchMetrics } from "../../../agent/adapters/cloudwatch-metrics.js";
import { PrometheusMetrics } from "../../../agent/adapters/prometheus-metrics.js";
import { runLoop } from "../../../agent/commands/run.js";
import { parseConfig } from "../../../agent/config/config.js";
import { createLogger } from "../../../agent/log.js";
import type { Plan } from "../../../agent/planner/reconcile-plan.js";
import { ETCD_DEFAULT_QUOTA_BYTES, type VitalSigns, vitalSigns } from "../../../agent/planner/vital-signs.js";
import type { Ports } from "../../../agent/ports/index.js";
import type { MetricsSink } from "../../../agent/ports/metrics.js";
import { cluster, member, reconcileObs } from "../../support/fixtures.js";

const cw = mockClient(CloudWatchClient);
beforeEach(() => cw.reset());

function logs() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ write: (l: string) => lines.push(JSON.parse(l)) > 0 } as never, {
    level: "debug",
  });
  return { lines, log };
}

function clock(start = 0) {
  let now = start;
  return {
    now: () => new Date(now),
    sleep: async () => {},
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function signsOf(size: number, over: Partial<VitalSigns> = {}): VitalSigns {
  const members = Array.from({ length: size }, (_, i) => member(i + 1));
  const plan: Plan = { role: "leader", actions: [], holds: [] };
  return {
    ...vitalSigns({
      obs: reconcileObs(1, { cluster: cluster(members) }),
      plan,
      applied: [],
      previousLeaderId: "1",
      lastBackupAt: "2026-11-22T11:50:00.000Z",
      quotaBytes: ETCD_DEFAULT_QUOTA_BYTES,
    }),
    ...over,
  };
}

async function startedCloudWatch(c = clock()) {
  const { lines, log } = logs();
  const sink = new CloudWatchMetrics(new CloudWatchClient({ region: "eu-west-1" }), {
    namespace: "EtcdAgent",
    clock: c,
    log,
  });
  await sink.start({ clusterName: "etcd-prod" });
  return { sink, lines, clock: c };
}

const puts = () => cw.commandCalls(PutMetricDataCommand).map((c) => c.args[0].input);

describe("CloudWatch: the leader's PutMetricData", () => {
  it.each([3, 7])("is one call a period for %i members, with each member's db sizes in it", async (size) => {
    cw.on(PutMetricDataCommand).resolves({});
    const { sink, clock: c } = await startedCloudWatch();
    for (let cycle = 0; cycle < 6; cycle++) {
      sink.record(signsOf(size));
      await sink.settled();
      c.advance(10_000);
    }
    expect(puts()).toHaveLength(1);
    const [put] = puts();
    expect(put?.Namespace).toBe("EtcdAgent");
    const names = (put?.MetricData ?? []).map((d) => d.MetricName);
    expect(names.filter((n) => n === "DbSizeBytes")).toHaveLength(size);
    expect(names).toEqual(
      expect.arrayContaining([
        "Members",
        "Voters",
        "HealthyVoters",
        "LearnersWaiting",
        "UnhealthyMembers",
        "LeaderChanges",
        "QuotaBytes",
        "QuotaUsedPercent",
        "EtcdAlarms",
        "BackupAgeSeconds",
        "ActionsTaken",
        "HeldBack",
      ]),
    );
    for (const d of put?.MetricData ?? [])
      expect(d.Dimensions?.[0]).toEqual({ Name: "ClusterName", Value: "etcd-prod" });
    c.advance(1);
    sink.record(signsOf(size));
    await sink.settled();
    expect(puts()).toHaveLength(2);
  });

  it("is not sent by a follower, whose counts (a leader change, actions, holds) go into its first publish as leader", async () => {
    cw.on(PutMetricDataCommand).resolves({});
    const { sink, clock: c } = await startedCloudWatch();
    sink.record(
      signsOf(3, { leader: false, leaderChanged: true, actions: ["promote-self"], holds: ["no-leader"] }),
    );
    c.advance(10_000);
    sink.record(signsOf(3, { leader: false, holds: ["no-leader"] }));
    expect(puts()).toHaveLength(0);
    c.advance(10_000);
    sink.record(signsOf(3, { leaderChanged: true, actions: ["update-dns"] }));
    await sink.settled();
    const data = puts()[0]?.MetricData ?? [];
    const value = (name: string, dim?: string) =>
      data.find(
        (d) =>
          d.MetricName === name &&
          (dim === undefined ? d.Dimensions?.length === 1 : d.Dimensions?.[1]?.Value === dim),
      )?.Value;
    expect(value("LeaderChanges")).toBe(2);
    expect(value("ActionsTaken")).toBe(2);
    expect(value("ActionsTaken", "promote-self")).toBe(1);
    expect(value("HeldBack", "no-leader")).toBe(2);
    expect(value("QuotaUsedPercent")).toBeCloseTo((20480 / ETCD_DEFAULT_QUOTA_BYTES) * 100, 2);
  });

  it("never holds the loop: record returns while a call hangs, and no second call starts meanwhile", async () => {
    let release: () => void = () => {};
    let called: () => void = () => {};
    const sent = new Promise<void>((r) => {
      called = r;
    });
    cw.on(PutMetricDataCommand)
      .callsFakeOnce(
        () =>
          new Promise((resolve) => {
            release = () => resolve({});
            called();
          }),
      )
      .resolves({});
    const { sink, clock: c } = await startedCloudWatch();
    sink.record(signsOf(3));
    await sent;
    c.advance(120_000);
    sink.record(signsOf(3));
    expect(puts()).toHaveLength(1);
    release();
    await sink.settled();
    c.advance(60_000);
    sink.record(signsOf(3));
    await sink.settled();
    expect(puts()).toHaveLength(2);
  });

  it("logs a failing call once per ten minutes, with how many it left out, and never throws", async () => {
    cw.on(PutMetricDataCommand).rejects(
      new Error("AccessDenied: not authorized to perform cloudwatch:PutMetricData"),
    );
    const { sink, lines, clock: c } = await startedCloudWatch();
    for (let i = 0; i < 12; i++) {
      expect(() => sink.record(signsOf(3))).not.toThrow();
      await sink.settled();
      c.advance(60_000);
    }
    const warned = lines.filter((l) => l.action === "put-metric-data" && l.level === "warn");
    expect(warned).toHaveLength(2);
    expect(warned[0]?.error).toContain("AccessDenied");
    expect(warned[1]?.suppressed).toBe(9);
    expect(puts()).toHaveLength(12);
  });
});

async function scrape(port: number | null): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

describe("Prometheus: this node's endpoint", () => {
  let sink: PrometheusMetrics | null = null;
  afterEach(async () => {
    await sink?.close();
    sink = null;
  });

  it("serves the vital signs as Prometheus text, and a member that left disappears", async () => {
    const { log } = logs();
    sink = new PrometheusMetrics({ host: "127.0.0.1", port: 0 }, log);
    await sink.start({ clusterName: "etcd" });
    sink.record(signsOf(3, { alarms: ["NOSPACE"], holds: ["startup-grace"], actions: ["update-dns"] }));
    const text = await scrape(sink.port());
    expect(text).toContain('etcd_agent_db_size_bytes{member="i-00000003"} 20480');
    expect(text).toMatch(/^etcd_agent_voters 3$/m);
    expect(text).toMatch(/^etcd_agent_is_leader 1$/m);
    expect(text).toContain('etcd_agent_etcd_alarm{alarm="NOSPACE"} 1');
    expect(text).toContain('etcd_agent_held_back{rule="startup-grace"} 1');
    expect(text).toContain('etcd_agent_actions_total{action="update-dns"} 1');
    expect(text).toMatch(/^etcd_agent_backup_age_seconds 600$/m);
    sink.record(signsOf(2));
    const after = await scrape(sink.port());
    expect(after).not.toContain('member="i-00000003"');
    expect(after).not.toContain('alarm="NOSPACE"');
    expect(after).toContain('etcd_agent_actions_total{action="update-dns"} 1');
  });

  it("answers 404 off /metrics", async () => {
    sink = new PrometheusMetrics({ host: "127.0.0.1", port: 0 }, logs().log);
    await sink.start({ clusterName: "etcd" });
    expect((await fetch(`http://127.0.0.1:${sink.port()}/`)).status).toBe(404);
  });

  it("with its port taken, logs it and the agent runs on", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const address = taken.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const { lines, log } = logs();
    sink = new PrometheusMetrics({ host: "127.0.0.1", port }, log);
    await sink.start({ clusterName: "etcd" });
    taken.close();
    expect(sink.port()).toBeNull();
    expect(lines.find((l) => l.action === "metrics-listen")).toMatchObject({ level: "warn" });
    expect(() => sink?.record(signsOf(3))).not.toThrow();
  });
});

describe("the loop and its sinks", () => {
  it("hands every cycle to the sinks, counts failed cycles, and a sink that throws fails no cycle", async () => {
    const seen: string[] = [];
    const throwing: MetricsSink = {
      start: async () => {
        throw new Error("cannot start");
      },
      record: () => {
        seen.push("record");
        throw new Error("broken sink");
      },
      cycleFailed: () => {
        seen.push("failed");
        throw new Error("broken sink");
      },
      close: async () => {},
    };
    let now = 0;
    const ports = {
      clock: {
        now: () => new Date(now),
        sleep: async (ms: number) => {
          now += ms;
        },
      },
      serviceManager: {
        ready: async () => {},
        status: async () => {},
        stopping: async () => {},
        watchdog: async () => {},
      },
      etcd: {
        memberList: async () => ({ clusterId: "1", memberId: "1", members: [] }),
        status: async () => null,
        close: async () => {},
      },
      // No metadata port: every cycle fails at once, as a cycle may.
      metrics: [throwing],
    } as unknown as Ports;
    const config = parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST", plaintext: true });
    const ctx = { identity: { instanceId: "i-0self", privateIp: "127.0.0.9" }, asgName: "etcd" } as never;
    const cycles = await runLoop(ports, config, ctx, logs().log, { maxCycles: 3 });
    expect(cycles).toBe(3);
    expect(seen).toEqual(["failed", "failed", "failed"]);
  });
});

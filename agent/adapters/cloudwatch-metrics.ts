// The cluster's vital signs to CloudWatch with PutMetricData, from the leader only and at most
// once a period, in one call: the calls per cluster stay constant in its size (per-member figures
// are more data in the same call). Counters (leader changes, actions, holds, failed cycles) add up
// on every node between publishes, so a new leader's first publish includes the change it saw.
// Never blocks the loop: the call runs beside it with its own deadline, one at a time; a failure
// is logged (once per window) and the figures of that period are dropped.
import {
  type CloudWatchClient,
  type MetricDatum,
  PutMetricDataCommand,
  type StandardUnit,
} from "@aws-sdk/client-cloudwatch";
import type { Logger } from "../log.js";
import type { VitalSigns } from "../planner/vital-signs.js";
import type { Clock } from "../ports/clock.js";
import { CLUSTER_DIMENSION, CLOUDWATCH_METRICS as M, type MetricsSink } from "../ports/metrics.js";
import { RateLimitedLog } from "./rate-limited-log.js";

/** One PutMetricData a minute at most: CloudWatch's standard resolution. */
export const CLOUDWATCH_PERIOD_MS = 60_000;
/** A PutMetricData that has not answered by then is abandoned; the next period tries again. */
export const PUT_TIMEOUT_MS = 10_000;
/** PutMetricData takes at most 1000 metrics per call. */
const MAX_DATA = 1000;

export class CloudWatchMetrics implements MetricsSink {
  private lastPutAt: number | null = null;
  private inFlight: Promise<void> | null = null;
  private leaderChanges = 0;
  private cycleFailures = 0;
  private actions = new Map<string, number>();
  private holds = new Map<string, number>();
  private readonly warn: RateLimitedLog;
  /** The group's name, the ClusterName dimension; null until the loop starts this sink. */
  private clusterName: string | null = null;

  constructor(
    private readonly client: CloudWatchClient,
    private readonly options: {
      namespace: string;
      clock: Clock;
      log: Logger;
      periodMs?: number;
    },
  ) {
    this.warn = new RateLimitedLog(options.log, 600_000, () => options.clock.now().getTime());
  }

  async start(cluster: { clusterName: string }): Promise<void> {
    this.clusterName = cluster.clusterName;
  }

  cycleFailed(): void {
    this.cycleFailures++;
  }

  record(signs: VitalSigns): void {
    if (signs.leaderChanged) this.leaderChanges++;
    for (const a of signs.actions) this.actions.set(a, (this.actions.get(a) ?? 0) + 1);
    for (const r of signs.holds) this.holds.set(r, (this.holds.get(r) ?? 0) + 1);
    if (!signs.leader || this.inFlight !== null || this.clusterName === null) return;
    const now = this.options.clock.now().getTime();
    if (this.lastPutAt !== null && now - this.lastPutAt < (this.options.periodMs ?? CLOUDWATCH_PERIOD_MS))
      return;
    this.lastPutAt = now;
    const data = this.data(signs, this.clusterName);
    this.leaderChanges = 0;
    this.cycleFailures = 0;
    this.actions = new Map();
    this.holds = new Map();
    this.inFlight = this.put(data).finally(() => {
      this.inFlight = null;
    });
  }

  /** The publish running now, if any (tests and close wait for it). */
  settled(): Promise<void> {
    return this.inFlight ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.settled();
  }

  private async put(data: MetricDatum[]): Promise<void> {
    try {
      await this.client.send(
        new PutMetricDataCommand({ Namespace: this.options.namespace, MetricData: data.slice(0, MAX_DATA) }),
        { abortSignal: AbortSignal.timeout(PUT_TIMEOUT_MS) },
      );
      this.options.log.debug("published the cluster's metrics to CloudWatch", {
        action: "put-metric-data",
        metrics: data.length,
      });
    } catch (error) {
      this.warn.warn("could not publish the cluster's metrics to CloudWatch; trying again next period", {
        action: "put-metric-data",
        error: (error as Error).message,
      });
    }
  }

  private data(signs: VitalSigns, clusterName: string): MetricDatum[] {
    const Timestamp = new Date(signs.at);
    const cluster = [{ Name: CLUSTER_DIMENSION, Value: clusterName }];
    const datum = (
      name: string,
      value: number,
      unit: StandardUnit,
      extra: Array<{ Name: string; Value: string }> = [],
    ): MetricDatum => ({
      MetricName: name,
      Dimensions: [...cluster, ...extra],
      Timestamp,
      Value: value,
      Unit: unit,
    });
    const out: MetricDatum[] = [];
    const c = signs.cluster;
    if (c !== null) {
      out.push(
        datum(M.members, c.members, "Count"),
        datum(M.voters, c.voters, "Count"),
        datum(M.healthyVoters, c.healthyVoters, "Count"),
        datum(M.learners, c.learners, "Count"),
        datum(M.unhealthyMembers, c.unhealthyMembers, "Count"),
        datum(M.alarms, signs.alarms.length, "Count"),
      );
    }
    out.push(
      datum(M.leaderChanges, this.leaderChanges, "Count"),
      datum(M.cycleFailures, this.cycleFailures, "Count"),
      datum(M.quota, signs.quotaBytes, "Bytes"),
    );
    if (signs.quotaUsedRatio !== null)
      out.push(datum(M.quotaUsed, Math.round(signs.quotaUsedRatio * 10_000) / 100, "Percent"));
    if (signs.backupAgeSeconds !== null) out.push(datum(M.backupAge, signs.backupAgeSeconds, "Seconds"));
    for (const m of signs.members) {
      const member = [{ Name: "Member", Value: m.member }];
      if (m.dbSizeBytes !== null) out.push(datum(M.dbSize, m.dbSizeBytes, "Bytes", member));
      if (m.dbSizeInUseBytes !== null) out.push(datum(M.dbSizeInUse, m.dbSizeInUseBytes, "Bytes", member));
    }
    let actions = 0;
    for (const [action, n] of this.actions) {
      actions += n;
      out.push(datum(M.actions, n, "Count", [{ Name: "Action", Value: action }]));
    }
    out.push(datum(M.actions, actions, "Count"));
    let holds = 0;
    for (const [rule, n] of this.holds) {
      holds += n;
      out.push(datum(M.holds, n, "Count", [{ Name: "Rule", Value: rule }]));
    }
    out.push(datum(M.holds, holds, "Count"));
    return out;
  }
}

// This node's view of the cluster as a Prometheus text endpoint (GET /metrics), for those who
// scrape: every node serves its own figures (the members it sees, their db sizes, its own actions
// and holds), bound to the address and port it is given (loopback by default). Serving never
// touches the loop: the figures are set when a cycle ends and read when a scraper asks.
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Registry } from "prom-client";
import type { Logger } from "../log.js";
import type { VitalSigns } from "../planner/vital-signs.js";
import type { MetricsSink } from "../ports/metrics.js";

export class PrometheusMetrics implements MetricsSink {
  readonly registry = new Registry();
  private server: Server | null = null;
  private readonly g: ReturnType<typeof gauges>;
  private readonly leaderChanges: Counter<string>;
  private readonly actions: Counter<string>;
  private readonly heldCycles: Counter<string>;
  private readonly cycleFailures: Counter<string>;

  constructor(
    private readonly listen: { host: string; port: number },
    private readonly log: Logger,
  ) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name: `etcd_agent_${name}`, help, labelNames, registers });
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new Counter({ name: `etcd_agent_${name}`, help, labelNames, registers });
    this.g = gauges(gauge);
    this.leaderChanges = counter("leader_changes_total", "leader changes this node saw");
    this.actions = counter("actions_total", "actions this node applied, by type", ["action"]);
    this.heldCycles = counter("held_back_cycles_total", "cycles in which a rule held something back", [
      "rule",
    ]);
    this.cycleFailures = counter("cycle_failures_total", "cycles that failed before they had figures");
  }

  start(_cluster: { clusterName: string }): Promise<void> {
    const server = createServer((req, res) => {
      if (req.method !== "GET" || (req.url ?? "/").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("GET /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    return new Promise((resolve) => {
      server.once("error", (error) => {
        this.log.warn("could not serve the metrics endpoint; the agent runs on without it", {
          action: "metrics-listen",
          reason: `${this.listen.host}:${this.listen.port}: ${error.message}`,
        });
        resolve();
      });
      server.listen(this.listen.port, this.listen.host, () => {
        this.server = server;
        this.log.info("serving metrics", {
          action: "metrics-listen",
          url: `http://${this.listen.host}:${this.listen.port}/metrics`,
        });
        resolve();
      });
    });
  }

  /** The bound port (the one given, or the one the system chose for port 0); null: not serving. */
  port(): number | null {
    const a = this.server?.address();
    return a && typeof a === "object" ? a.port : null;
  }

  cycleFailed(): void {
    this.cycleFailures.inc();
  }

  record(s: VitalSigns): void {
    const g = this.g;
    g.leader.set(s.leader ? 1 : 0);
    for (const key of ["members", "voters", "healthyVoters", "learners", "unhealthy"] as const)
      g[key].reset();
    if (s.cluster) {
      g.members.set(s.cluster.members);
      g.voters.set(s.cluster.voters);
      g.healthyVoters.set(s.cluster.healthyVoters);
      g.learners.set(s.cluster.learners);
      g.unhealthy.set(s.cluster.unhealthyMembers);
    }
    // Members that left, alarms cleared and holds lifted disappear rather than keep their last value.
    g.dbSize.reset();
    g.dbInUse.reset();
    for (const m of s.members) {
      if (m.dbSizeBytes !== null) g.dbSize.set({ member: m.member }, m.dbSizeBytes);
      if (m.dbSizeInUseBytes !== null) g.dbInUse.set({ member: m.member }, m.dbSizeInUseBytes);
    }
    g.quota.set(s.quotaBytes);
    g.quotaUsed.reset();
    if (s.quotaUsedRatio !== null) g.quotaUsed.set(s.quotaUsedRatio);
    g.alarms.reset();
    for (const a of s.alarms) g.alarms.set({ alarm: a }, 1);
    g.backupAge.reset();
    if (s.backupAgeSeconds !== null) g.backupAge.set(s.backupAgeSeconds);
    g.holds.reset();
    for (const r of s.holds) {
      g.holds.set({ rule: r }, 1);
      this.heldCycles.inc({ rule: r });
    }
    for (const a of s.actions) this.actions.inc({ action: a });
    if (s.leaderChanged) this.leaderChanges.inc();
    g.lastCycle.set(Date.parse(s.at) / 1000);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function gauges(gauge: (name: string, help: string, labelNames?: string[]) => Gauge<string>) {
  return {
    leader: gauge("is_leader", "1 when this node's member leads the cluster"),
    members: gauge("members", "etcd members, voters and learners, as this node sees them"),
    voters: gauge("voters", "voting members"),
    healthyVoters: gauge("healthy_voters", "voting members that answer with a leader"),
    learners: gauge("learners_waiting", "learners waiting for promotion"),
    unhealthy: gauge("unhealthy_members", "members that did not answer with a leader this cycle"),
    dbSize: gauge("db_size_bytes", "a member's backend database size, allocated", ["member"]),
    dbInUse: gauge("db_size_in_use_bytes", "a member's backend database size, in use", ["member"]),
    quota: gauge("quota_bytes", "etcd's quota-backend-bytes"),
    quotaUsed: gauge("quota_used_ratio", "the fullest member's db size against the quota"),
    alarms: gauge("etcd_alarm", "1 while etcd has this alarm raised", ["alarm"]),
    backupAge: gauge("backup_age_seconds", "seconds since the newest snapshot (the leader knows)"),
    holds: gauge("held_back", "1 while this rule holds something back", ["rule"]),
    lastCycle: gauge("last_cycle_timestamp_seconds", "when the last cycle ended, Unix time"),
  };
}

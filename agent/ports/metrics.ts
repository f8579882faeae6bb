import type { VitalSigns } from "../planner/vital-signs.js";

/**
 * Where the cluster's vital signs go (CloudWatch, a Prometheus endpoint). The loop hands each
 * cycle's figures over and moves on: `record` returns at once and never throws (a sink ships in
 * the background and logs its own failures), so metrics can neither block nor fail a cycle.
 */
export interface MetricsSink {
  /**
   * Binds what the sink needs, once, when the loop starts, for the cluster named by its Auto
   * Scaling group; failures are logged, not thrown.
   */
  start(cluster: { clusterName: string }): Promise<void>;
  record(signs: VitalSigns): void;
  /** A cycle failed before it had figures: counted, so a failing agent shows. */
  cycleFailed(): void;
  close(): Promise<void>;
}

/**
 * The CloudWatch metrics the leader publishes, by name: the agent writes them and the CDK
 * construct's dashboard and alarms read them, so both take the names from here. Every metric has
 * the dimension `ClusterName` (the Auto Scaling group's name); the per-member ones add `Member`
 * (the instance ID), actions add `Action`, holds add `Rule`.
 */
export const CLOUDWATCH_METRICS = {
  members: "Members",
  voters: "Voters",
  healthyVoters: "HealthyVoters",
  learners: "LearnersWaiting",
  unhealthyMembers: "UnhealthyMembers",
  leaderChanges: "LeaderChanges",
  dbSize: "DbSizeBytes",
  dbSizeInUse: "DbSizeInUseBytes",
  quota: "QuotaBytes",
  quotaUsed: "QuotaUsedPercent",
  alarms: "EtcdAlarms",
  backupAge: "BackupAgeSeconds",
  actions: "ActionsTaken",
  holds: "HeldBack",
  cycleFailures: "CycleFailures",
} as const;

/** The dimension every CloudWatch metric of the agent carries. */
export const CLUSTER_DIMENSION = "ClusterName";

// What wakes an operator, all to the cluster's alarm topic: the dashboard and metric alarms
// (cluster-monitoring.ts), too few members in service, and EventBridge rules on the group's failed
// lifecycle actions and on the records the agent writes under the backup prefix (a restore, a
// foreign cluster, an etcd alarm, a refused snapshot) or a permanent delete there.
import {
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cwActions,
  Duration,
  aws_events as events,
  aws_events_targets as eventTargets,
  type aws_s3 as s3,
  type aws_sns as sns,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import { DEFAULTS } from "../../../agent/config/config.js";
import { ClusterMonitoring } from "../cluster-monitoring.js";
import type { ValidSettings } from "../props.js";

export interface AlarmsProps {
  settings: ValidSettings;
  asgName: string;
  alarmTopic: sns.ITopic;
  backupBucket: s3.IBucket;
  backupPrefix: string;
}

/** Made in `scope` itself (the EtcdCluster), so each resource keeps its construct path and logical ID. */
export function alarms(scope: Construct, props: AlarmsProps): ClusterMonitoring {
  const { settings: s, asgName, alarmTopic, backupBucket, backupPrefix } = props;
  const monitoring = new ClusterMonitoring(scope, "Monitoring", {
    asgName,
    alarmTopic,
    backupIntervalMinutes: DEFAULTS.backupIntervalMinutes,
  });
  new cloudwatch.Alarm(scope, "MembersInService", {
    alarmDescription: `fewer than ${s.clusterSize} instances of ${asgName} in service for 15 minutes: a member could not join or was reported unhealthy`,
    metric: new cloudwatch.Metric({
      namespace: "AWS/AutoScaling",
      metricName: "GroupInServiceInstances",
      dimensionsMap: { AutoScalingGroupName: asgName },
      statistic: "Minimum",
      period: Duration.minutes(5),
    }),
    threshold: s.clusterSize,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: 3,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  }).addAlarmAction(new cwActions.SnsAction(alarmTopic));
  const rule = (id: string, description: string, eventPattern: events.EventPattern) =>
    new events.Rule(scope, id, {
      description,
      eventPattern,
      targets: [new eventTargets.SnsTopic(alarmTopic)],
    });
  /** A record the agent wrote under events/ with this key prefix (the bucket sends object-created events). */
  const record = (keyPrefix: string): events.EventPattern => ({
    source: ["aws.s3"],
    detailType: ["Object Created"],
    detail: {
      bucket: { name: [backupBucket.bucketName] },
      object: { key: [{ prefix: `${backupPrefix}events/${keyPrefix}` }] },
    },
  });

  rule(
    "LifecycleFailures",
    `launches and terminations of ${asgName} that failed (a lifecycle action abandoned or timed out)`,
    {
      source: ["aws.autoscaling"],
      detailType: ["EC2 Instance Launch Unsuccessful", "EC2 Instance Terminate Unsuccessful"],
      detail: { AutoScalingGroupName: [asgName] },
    },
  );
  rule(
    "UnhealthyMembers",
    `members of ${asgName} the agent reported unhealthy (SetInstanceHealth) and the group replaced`,
    {
      source: ["aws.autoscaling"],
      detailType: ["EC2 Instance Terminate Successful"],
      detail: { AutoScalingGroupName: [asgName], Cause: [{ wildcard: "*health*" }] },
    },
  );
  rule(
    "RestoredFromSnapshot",
    `${asgName} was restored from a snapshot: every member had been lost and writes after the snapshot are gone (the record under ${backupPrefix}events/ says which snapshot and why)`,
    record("restore-"),
  );
  rule(
    "ForeignClusterFound",
    `Two etcd clusters answer for ${asgName}: a leader found the cluster marker naming another cluster and stopped writing DNS (the record under ${backupPrefix}events/ names both; see docs/architecture.md, "Why exactly one cluster forms")`,
    record("foreign-cluster-"),
  );
  // etcd raised an alarm (NOSPACE: the leader compacts, defragments and disarms it; CORRUPT: an
  // operator must look): the leader's agent writes a record of it there (agent/commands/storage.ts).
  rule(
    "EtcdAlarmRaised",
    `etcd raised an alarm in ${asgName} (NOSPACE: writes refused until the agent has compacted, defragmented and disarmed; CORRUPT: never disarmed by the agent, an operator checks the data; the record under ${backupPrefix}events/ names it)`,
    record("etcd-alarm-"),
  );
  // Deletes under the prefix that remove data for good (a version, not a delete marker): no node
  // can (no s3:DeleteObjectVersion; Object Lock on top), so one is a person or a stolen role.
  // The agent's own retention adds delete markers, which stay recoverable and do not alarm here.
  rule(
    "SnapshotsDeletedForGood",
    `an object under ${backupPrefix} was permanently deleted (a version, not a delete marker): nothing in the agent does that`,
    {
      source: ["aws.s3"],
      detailType: ["Object Deleted"],
      detail: {
        bucket: { name: [backupBucket.bucketName] },
        object: { key: [{ prefix: backupPrefix }] },
        "deletion-type": ["Permanently Deleted"],
      },
    },
  );
  // Snapshots the agent refused (a key from the future, another cluster's, overwritten): the
  // agent writes events/refused-*.json, as it does for a restore.
  rule(
    "RefusedSnapshots",
    `the agent of ${asgName} refused a snapshot under ${backupPrefix} as planted or overwritten (the record under ${backupPrefix}events/ names it and why)`,
    record("refused-"),
  );
  return monitoring;
}

// The cluster seen from CloudWatch: a dashboard of the agent's metrics (membership, leader
// changes, db size against the quota, backup age, the agent's actions and holds) and the alarms
// an operator is woken for, all to the cluster's alarm topic. The metric names are the agent's own
// (CLOUDWATCH_METRICS), published by the leader with the dimension ClusterName = the group's name.
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { CLOUDWATCH_METRICS as M } from "../../agent/ports/metrics.js";

/** The namespace the nodes publish to; the nodes' IAM allows PutMetricData to this one only. */
export const METRICS_NAMESPACE = "EtcdAgent";
/** The db-size alarm: the fullest member above this share of etcd's quota, in percent. */
export const QUOTA_ALARM_PERCENT = 80;

export interface ClusterMonitoringProps {
  asgName: string;
  alarmTopic: sns.ITopic;
  /** How often the leader takes a snapshot; "stale" is two of these without one. */
  backupIntervalMinutes: number;
}

export class ClusterMonitoring extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: Record<string, cloudwatch.Alarm> = {};

  constructor(scope: Construct, id: string, props: ClusterMonitoringProps) {
    super(scope, id);
    const dimensionsMap = { ClusterName: props.asgName };
    const metric = (metricName: string, statistic: string, period = Duration.minutes(1), label?: string) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap,
        statistic,
        period,
        ...(label ? { label } : {}),
      });
    const search = (metricName: string, by: string, statistic: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('{${METRICS_NAMESPACE},ClusterName,${by}} MetricName="${metricName}" ClusterName="${props.asgName}"', '${statistic}', 300)`,
        label,
        period: Duration.minutes(5),
      });
    const action = new cwActions.SnsAction(props.alarmTopic);
    const alarm = (name: string, p: cloudwatch.AlarmProps) => {
      const a = new cloudwatch.Alarm(this, name, p);
      a.addAlarmAction(action);
      a.addOkAction(action);
      this.alarms[name] = a;
      return a;
    };
    const staleSeconds = 2 * props.backupIntervalMinutes * 60;

    alarm("BackupsStale", {
      alarmDescription: `no successful snapshot of ${props.asgName} for two backup intervals (${2 * props.backupIntervalMinutes} minutes), or no leader publishing its age`,
      metric: metric(M.backupAge, "Minimum", Duration.minutes(5)),
      threshold: staleSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    alarm("DbNearQuota", {
      alarmDescription: `a member of ${props.asgName} holds more than ${QUOTA_ALARM_PERCENT}% of etcd's quota: NOSPACE (writes refused) comes at 100%`,
      metric: metric(M.quotaUsed, "Maximum", Duration.minutes(5)),
      threshold: QUOTA_ALARM_PERCENT,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm("EtcdAlarmRaised", {
      alarmDescription: `etcd of ${props.asgName} has raised an alarm (NOSPACE: writes refused; CORRUPT: the agent holds every removal); see etcd-agent status`,
      metric: metric(M.alarms, "Maximum"),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm("MemberUnhealthy", {
      alarmDescription: `a member of ${props.asgName} has not answered with a leader for 10 minutes (the agent reports its instance after its deadline)`,
      metric: metric(M.unhealthyMembers, "Minimum", Duration.minutes(5)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm("LearnerNotPromoted", {
      alarmDescription: `a learner of ${props.asgName} has waited 15 minutes without being promoted (it cannot catch up, or promotion is held: see the HeldBack metric and the agent's log)`,
      metric: metric(M.learners, "Minimum", Duration.minutes(5)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm("AgentNotReporting", {
      alarmDescription: `no leader's agent of ${props.asgName} has published for 10 minutes: the agent's service is failing, or the cluster has no leader`,
      metric: metric(M.members, "SampleCount", Duration.minutes(5)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    alarm("AgentCyclesFailing", {
      alarmDescription: `the leader's agent of ${props.asgName} failed 3 or more cycles in 5 minutes (see its log: journalctl -u etcd-agent, or CloudWatch Logs)`,
      metric: metric(M.cycleFailures, "Sum", Duration.minutes(5)),
      threshold: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `etcd-${props.asgName}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 255),
      defaultInterval: Duration.hours(3),
    });
    const wide = { width: 12, height: 6 };
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Membership",
        left: [
          metric(M.members, "Maximum", undefined, "members"),
          metric(M.voters, "Maximum", undefined, "voters"),
          metric(M.healthyVoters, "Minimum", undefined, "healthy voters"),
          metric(M.learners, "Maximum", undefined, "learners waiting"),
          metric(M.unhealthyMembers, "Maximum", undefined, "unhealthy members"),
        ],
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: "Leader changes and etcd alarms",
        left: [metric(M.leaderChanges, "Sum", Duration.minutes(5), "leader changes")],
        right: [metric(M.alarms, "Maximum", undefined, "etcd alarms raised")],
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "DB size per member against the quota",
        left: [
          search(M.dbSize, "Member", "Maximum", "db size"),
          search(M.dbSizeInUse, "Member", "Maximum", "in use"),
          metric(M.quota, "Maximum", Duration.minutes(5), "quota"),
        ],
        right: [metric(M.quotaUsed, "Maximum", Duration.minutes(5), "fullest member, % of quota")],
        rightAnnotations: [{ value: QUOTA_ALARM_PERCENT, label: "alarm" }],
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: "Age of the newest snapshot (seconds)",
        left: [metric(M.backupAge, "Maximum", Duration.minutes(5), "backup age")],
        leftAnnotations: [{ value: staleSeconds, label: "stale (two intervals)" }],
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "The agent: holds by rule (cycles held)",
        left: [search(M.holds, "Rule", "Sum", "")],
        stacked: true,
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: "The agent: actions taken, and failed cycles",
        left: [search(M.actions, "Action", "Sum", "")],
        right: [metric(M.cycleFailures, "Sum", Duration.minutes(5), "failed cycles")],
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: "Alarms",
        alarms: Object.values(this.alarms),
        width: 24,
        height: 3,
      }),
    );
  }
}

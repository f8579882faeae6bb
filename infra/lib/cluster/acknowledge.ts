// cdk-nag AwsSolutions findings this design accepts, each on the construct it concerns and with the
// reason a reviewer needs (also in docs/deploy.md). Nothing else is acknowledged.
import { Validations } from "aws-cdk-lib";
import type { Construct } from "constructs";

export function acknowledge(construct: Construct, findings: Record<string, string>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(construct).acknowledge({ id, reason });
}

export const DESCRIBE_STAR =
  "autoscaling:DescribeAutoScalingGroups, DescribeAutoScalingInstances, DescribeLifecycleHooks and ec2:DescribeInstances support no resource-level permissions: AWS requires Resource *. They only read. The nodes' cloudwatch:PutMetricData has none either; a condition limits it to the agent's namespace.";

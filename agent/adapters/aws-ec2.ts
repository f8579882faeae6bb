import { DescribeInstancesCommand, type EC2Client } from "@aws-sdk/client-ec2";
import type { Ec2, InstanceFacts } from "../ports/ec2.js";
import { awsCall } from "./aws-error.js";

/** DescribeInstances takes at most 200 values in one filter. */
const CHUNK = 200;

export class AwsEc2 implements Ec2 {
  constructor(private readonly client: EC2Client) {}

  async describeInstances(instanceIds: string[]): Promise<InstanceFacts[]> {
    const facts: InstanceFacts[] = [];
    for (let i = 0; i < instanceIds.length; i += CHUNK) {
      const ids = instanceIds.slice(i, i + CHUNK);
      let nextToken: string | undefined;
      // A filter (unlike InstanceIds) does not fail the whole call when one instance is already gone.
      for (let page = 0; page < 100; page++) {
        const out = await awsCall("EC2", "DescribeInstances", () =>
          this.client.send(
            new DescribeInstancesCommand({
              Filters: [{ Name: "instance-id", Values: ids }],
              ...(nextToken ? { NextToken: nextToken } : {}),
            }),
          ),
        );
        for (const r of out.Reservations ?? []) {
          for (const inst of r.Instances ?? []) {
            if (!inst.InstanceId) continue;
            facts.push({
              instanceId: inst.InstanceId,
              privateIp: inst.PrivateIpAddress ?? null,
              launchTime: inst.LaunchTime ? new Date(inst.LaunchTime).toISOString() : null,
              state: inst.State?.Name ?? "unknown",
            });
          }
        }
        nextToken = out.NextToken;
        if (!nextToken) break;
      }
    }
    return facts;
  }
}

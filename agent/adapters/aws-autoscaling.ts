import {
  type AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeLifecycleHooksCommand,
  RecordLifecycleActionHeartbeatCommand,
  SetInstanceHealthCommand,
} from "@aws-sdk/client-auto-scaling";
import { AwsApiError } from "../errors.js";
import type { AutoScaling, GroupDescription, LifecycleHooks } from "../ports/autoscaling.js";
import { awsCall } from "./aws-error.js";

const S = "AutoScaling";

export class AwsAutoScaling implements AutoScaling {
  constructor(private readonly client: AutoScalingClient) {}

  async groupOf(instanceId: string): Promise<string | null> {
    const out = await awsCall(S, "DescribeAutoScalingInstances", () =>
      this.client.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] })),
    );
    return out.AutoScalingInstances?.[0]?.AutoScalingGroupName ?? null;
  }

  async describeGroup(name: string): Promise<GroupDescription> {
    const out = await awsCall(S, "DescribeAutoScalingGroups", () =>
      this.client.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] })),
    );
    const group = out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name);
    if (group === undefined) {
      throw new AwsApiError(
        `Auto Scaling group ${JSON.stringify(name)} does not exist; check --asg-name (ETCD_AGENT_ASG_NAME) and the region`,
        S,
        "DescribeAutoScalingGroups",
      );
    }
    if (group.DesiredCapacity === undefined || group.Instances === undefined) {
      throw new AwsApiError(
        `Auto Scaling group ${name} came back without capacity or instances`,
        S,
        "DescribeAutoScalingGroups",
      );
    }
    return {
      name,
      desiredCapacity: group.DesiredCapacity,
      instances: group.Instances.flatMap((i) =>
        i.InstanceId && i.LifecycleState && i.HealthStatus
          ? [{ instanceId: i.InstanceId, lifecycleState: i.LifecycleState, healthStatus: i.HealthStatus }]
          : [],
      ),
    };
  }

  async lifecycleHooks(groupName: string): Promise<LifecycleHooks> {
    const out = await awsCall(S, "DescribeLifecycleHooks", () =>
      this.client.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: groupName })),
    );
    const hooks = out.LifecycleHooks ?? [];
    const named = (transition: string) =>
      hooks.find((h) => h.LifecycleTransition === transition)?.LifecycleHookName ?? null;
    return {
      launch: named("autoscaling:EC2_INSTANCE_LAUNCHING"),
      terminate: named("autoscaling:EC2_INSTANCE_TERMINATING"),
    };
  }

  async completeLifecycleAction(input: {
    groupName: string;
    hookName: string;
    instanceId: string;
    result: "CONTINUE" | "ABANDON";
  }): Promise<void> {
    await awsCall(S, "CompleteLifecycleAction", () =>
      this.client.send(
        new CompleteLifecycleActionCommand({
          AutoScalingGroupName: input.groupName,
          LifecycleHookName: input.hookName,
          InstanceId: input.instanceId,
          LifecycleActionResult: input.result,
        }),
      ),
    );
  }

  async recordLifecycleActionHeartbeat(input: {
    groupName: string;
    hookName: string;
    instanceId: string;
  }): Promise<void> {
    await awsCall(S, "RecordLifecycleActionHeartbeat", () =>
      this.client.send(
        new RecordLifecycleActionHeartbeatCommand({
          AutoScalingGroupName: input.groupName,
          LifecycleHookName: input.hookName,
          InstanceId: input.instanceId,
        }),
      ),
    );
  }

  async setInstanceUnhealthy(instanceId: string): Promise<void> {
    await awsCall(S, "SetInstanceHealth", () =>
      this.client.send(
        new SetInstanceHealthCommand({
          InstanceId: instanceId,
          HealthStatus: "Unhealthy",
          ShouldRespectGracePeriod: true,
        }),
      ),
    );
  }
}

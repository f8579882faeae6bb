import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
  SetInstanceHealthCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  ChangeResourceRecordSetsCommand,
  InvalidChangeBatch,
  ListResourceRecordSetsCommand,
  Route53Client,
} from "@aws-sdk/client-route-53";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { AwsAutoScaling } from "../../../agent/adapters/aws-autoscaling.js";
import { AwsEc2 } from "../../../agent/adapters/aws-ec2.js";
import { Route53Dns } from "../../../agent/adapters/route53.js";
import { SecretsManagerStore } from "../../../agent/adapters/secrets-manager.js";
import { AwsApiError, MarkerConflictError } from "../../../agent/errors.js";

const asgMock = mockClient(AutoScalingClient);
const ec2Mock = mockClient(EC2Client);
const r53Mock = mockClient(Route53Client);
const smMock = mockClient(SecretsManagerClient);

beforeEach(() => {
  asgMock.reset();
  ec2Mock.reset();
  r53Mock.reset();
  smMock.reset();
});

describe("AwsAutoScaling", () => {
  const asg = () => new AwsAutoScaling(new AutoScalingClient({ region: "eu-west-1" }));

  it("describes a group's instances with their lifecycle states", async () => {
    asgMock.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: "etcd",
          DesiredCapacity: 3,
          MinSize: 3,
          MaxSize: 3,
          DefaultCooldown: 0,
          AvailabilityZones: [],
          HealthCheckType: "EC2",
          CreatedTime: new Date(),
          Instances: [
            {
              InstanceId: "i-1",
              LifecycleState: "Pending:Wait",
              HealthStatus: "Healthy",
              AvailabilityZone: "a",
              ProtectedFromScaleIn: false,
            },
          ],
        },
      ],
    });
    expect(await asg().describeGroup("etcd")).toEqual({
      name: "etcd",
      desiredCapacity: 3,
      instances: [{ instanceId: "i-1", lifecycleState: "Pending:Wait", healthStatus: "Healthy" }],
    });
  });

  it("names the group and the fix when the group does not exist", async () => {
    asgMock.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    await expect(asg().describeGroup("nope")).rejects.toThrow(/"nope" does not exist; check --asg-name/);
  });

  it("finds the launch and terminate hooks by transition", async () => {
    asgMock.on(DescribeLifecycleHooksCommand).resolves({
      LifecycleHooks: [
        { LifecycleHookName: "in", LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING" },
        { LifecycleHookName: "out", LifecycleTransition: "autoscaling:EC2_INSTANCE_TERMINATING" },
      ],
    });
    expect(await asg().lifecycleHooks("etcd")).toEqual({ launch: "in", terminate: "out" });
  });

  it("completes a lifecycle action with CONTINUE for this instance", async () => {
    asgMock.on(CompleteLifecycleActionCommand).resolves({});
    await asg().completeLifecycleAction({
      groupName: "etcd",
      hookName: "in",
      instanceId: "i-1",
      result: "CONTINUE",
    });
    expect(asgMock.commandCalls(CompleteLifecycleActionCommand)[0]?.args[0].input).toEqual({
      AutoScalingGroupName: "etcd",
      LifecycleHookName: "in",
      InstanceId: "i-1",
      LifecycleActionResult: "CONTINUE",
    });
  });

  it("reports an instance unhealthy respecting the grace period", async () => {
    asgMock.on(SetInstanceHealthCommand).resolves({});
    await asg().setInstanceUnhealthy("i-9");
    expect(asgMock.commandCalls(SetInstanceHealthCommand)[0]?.args[0].input).toEqual({
      InstanceId: "i-9",
      HealthStatus: "Unhealthy",
      ShouldRespectGracePeriod: true,
    });
  });

  it("turns an SDK failure into an AwsApiError naming the operation", async () => {
    asgMock
      .on(CompleteLifecycleActionCommand)
      .rejects(Object.assign(new Error("boom"), { name: "InternalFailure" }));
    const call = asg().completeLifecycleAction({
      groupName: "etcd",
      hookName: "in",
      instanceId: "i-1",
      result: "CONTINUE",
    });
    await expect(call).rejects.toBeInstanceOf(AwsApiError);
    await expect(call).rejects.toThrow(/AutoScaling CompleteLifecycleAction failed: InternalFailure/);
  });
});

describe("AwsEc2", () => {
  it("reads addresses and launch times by filter, so a vanished instance does not fail the call", async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: "i-1",
              PrivateIpAddress: "127.0.1.1",
              LaunchTime: new Date("2026-11-22T10:00:00Z"),
              State: { Name: "running" },
            },
            { InstanceId: "i-2", State: { Name: "pending" } },
          ],
        },
      ],
    });
    const facts = await new AwsEc2(new EC2Client({ region: "eu-west-1" })).describeInstances([
      "i-1",
      "i-2",
      "i-gone",
    ]);
    expect(facts).toEqual([
      { instanceId: "i-1", privateIp: "127.0.1.1", launchTime: "2026-11-22T10:00:00.000Z", state: "running" },
      { instanceId: "i-2", privateIp: null, launchTime: null, state: "pending" },
    ]);
    expect(ec2Mock.commandCalls(DescribeInstancesCommand)[0]?.args[0].input.Filters).toEqual([
      { Name: "instance-id", Values: ["i-1", "i-2", "i-gone"] },
    ]);
  });

  it("asks in chunks of 200 instance IDs", async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const ids = Array.from({ length: 450 }, (_, i) => `i-${i}`);
    await new AwsEc2(new EC2Client({ region: "eu-west-1" })).describeInstances(ids);
    expect(
      ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input.Filters?.[0]?.Values?.length),
    ).toEqual([200, 200, 50]);
  });
});

describe("Route53Dns", () => {
  const dns = () => new Route53Dns(new Route53Client({ region: "eu-west-1" }), "ZTEST");

  it("lists the records under the domain across pages, names normalised", async () => {
    r53Mock
      .on(ListResourceRecordSetsCommand)
      .resolvesOnce({
        ResourceRecordSets: [
          { Name: "etcd.test.", Type: "SOA", TTL: 900, ResourceRecords: [{ Value: "x" }] },
          {
            Name: "_etcd-client._tcp.etcd.test.",
            Type: "SRV",
            TTL: 30,
            ResourceRecords: [{ Value: "0 0 2379 i-1.etcd.test" }],
          },
        ],
        IsTruncated: true,
        NextRecordName: "i-1.etcd.test.",
        NextRecordType: "A",
        MaxItems: 1,
      })
      .resolvesOnce({
        ResourceRecordSets: [
          { Name: "i-1.etcd.test.", Type: "A", TTL: 30, ResourceRecords: [{ Value: "127.0.1.1" }] },
          { Name: "other.example.", Type: "A", TTL: 30, ResourceRecords: [{ Value: "127.0.0.9" }] },
        ],
        IsTruncated: false,
        MaxItems: 1,
      });
    expect(await dns().listRecords("etcd.test")).toEqual([
      { name: "_etcd-client._tcp.etcd.test", type: "SRV", ttl: 30, values: ["0 0 2379 i-1.etcd.test"] },
      { name: "i-1.etcd.test", type: "A", ttl: 30, values: ["127.0.1.1"] },
    ]);
    expect(r53Mock.commandCalls(ListResourceRecordSetsCommand)[1]?.args[0].input).toMatchObject({
      StartRecordName: "i-1.etcd.test.",
      StartRecordType: "A",
    });
  });

  it("swaps the marker as one batch: DELETE of the exact old value, then CREATE", async () => {
    r53Mock
      .on(ChangeResourceRecordSetsCommand)
      .resolves({ ChangeInfo: { Id: "c", Status: "PENDING", SubmittedAt: new Date() } });
    const old = { name: "_etcd-cluster.etcd.test", type: "TXT" as const, ttl: 60, values: ['"old"'] };
    const next = { ...old, values: ['"new"'] };
    await dns().swapTxt(old.name, old, next);
    expect(
      r53Mock.commandCalls(ChangeResourceRecordSetsCommand)[0]?.args[0].input.ChangeBatch?.Changes,
    ).toEqual([
      {
        Action: "DELETE",
        ResourceRecordSet: { Name: old.name, Type: "TXT", TTL: 60, ResourceRecords: [{ Value: '"old"' }] },
      },
      {
        Action: "CREATE",
        ResourceRecordSet: { Name: old.name, Type: "TXT", TTL: 60, ResourceRecords: [{ Value: '"new"' }] },
      },
    ]);
  });

  it("reports a lost race on the marker as a MarkerConflictError", async () => {
    r53Mock.on(ChangeResourceRecordSetsCommand).rejects(
      new InvalidChangeBatch({
        message: "Tried to create resource record set but it already exists",
        $metadata: {},
      }),
    );
    const next = { name: "_etcd-cluster.etcd.test", type: "TXT" as const, ttl: 60, values: ['"x"'] };
    await expect(dns().swapTxt(next.name, null, next)).rejects.toBeInstanceOf(MarkerConflictError);
  });

  it("passes other failures through as AwsApiError", async () => {
    r53Mock
      .on(ChangeResourceRecordSetsCommand)
      .rejects(Object.assign(new Error("slow down"), { name: "Throttling" }));
    const next = { name: "_etcd-cluster.etcd.test", type: "TXT" as const, ttl: 60, values: ['"x"'] };
    await expect(dns().swapTxt(next.name, null, next)).rejects.toBeInstanceOf(AwsApiError);
  });
});

describe("SecretsManagerStore", () => {
  const store = () => new SecretsManagerStore(new SecretsManagerClient({ region: "eu-west-1" }));

  it("creates a secret under the KMS key it is given (#16), and without KmsKeyId otherwise", async () => {
    smMock.on(CreateSecretCommand).resolves({});
    const key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    expect(await store().createIfAbsent("etcd-agent/e/ca", "{}", "ca", { kmsKeyId: key })).toBe(true);
    expect(await store().createIfAbsent("etcd-agent/e/operator", "{}", "operator")).toBe(true);
    const sent = smMock.commandCalls(CreateSecretCommand).map((c) => c.args[0].input);
    expect(sent.map((i) => [i.Name, i.KmsKeyId])).toEqual([
      ["etcd-agent/e/ca", key],
      ["etcd-agent/e/operator", undefined],
    ]);
  });
});

// The gap filler's Auto Scaling group in front of moto (no etcd, no agent): every termination the
// group starts goes through the terminate hook, with AWS's victim choice, wait states, global
// timeout, grace period and replacement orders; faults come in each service's own protocol, so
// the SDK retries a throttled call as it would on AWS.
import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  RecordLifecycleActionHeartbeatCommand,
  SetDesiredCapacityCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AwsGaps, type GroupBehaviour, type HookConfig, startAwsGaps } from "../sandbox/aws-gaps.js";
import { type MotoServer, startMoto } from "../sandbox/moto-server.js";
import { clients, createWorld, REGION, type World, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";

const CREDENTIALS = { accessKeyId: "x", secretAccessKey: "x" };
const LAUNCH: HookConfig = { name: "etcd-launch", heartbeatTimeoutSeconds: 900, defaultResult: "ABANDON" };
const TERMINATE: HookConfig = {
  name: "etcd-terminate",
  heartbeatTimeoutSeconds: 600,
  defaultResult: "CONTINUE",
};

describe("the Auto Scaling group through the sandbox's gap filler", () => {
  let moto: MotoServer;
  const proxies: AwsGaps[] = [];
  let n = 0;

  beforeAll(async () => {
    moto = await startMoto();
  });

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await moto?.stop();
  });

  /** A group of `nodes` in moto, the gap filler configured with `behaviour`, an ASG client through it. */
  async function group(nodes: number, behaviour: Omit<GroupBehaviour, "asgName">) {
    n++;
    const world: World = await createWorld(moto.url, {
      nodes,
      asgName: `group-${n}`,
      domain: `group-${n}.test`,
      subnetCidr: `127.0.${100 + n}.0/24`,
      plaintext: true,
    });
    const gaps = await startAwsGaps(moto.url);
    proxies.push(gaps);
    gaps.configureHooks({ asgName: world.asgName, ...behaviour });
    const asg = new AutoScalingClient({ endpoint: gaps.url, region: REGION, credentials: CREDENTIALS });
    const describe = async () =>
      (await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [world.asgName] })))
        .AutoScalingGroups?.[0];
    const states = async () =>
      Object.fromEntries(((await describe())?.Instances ?? []).map((i) => [i.InstanceId, i.LifecycleState]));
    /** Moto's own view: the instances still in the group, and its desired capacity. */
    const motoGroup = async () =>
      (
        await clients(moto.url).asg.send(
          new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [world.asgName] }),
        )
      ).AutoScalingGroups?.[0];
    const complete = (id: string, hook: string, result: "CONTINUE" | "ABANDON" = "CONTINUE") =>
      asg.send(
        new CompleteLifecycleActionCommand({
          AutoScalingGroupName: world.asgName,
          LifecycleHookName: hook,
          InstanceId: id,
          LifecycleActionResult: result,
        }),
      );
    return { world, gaps, asg, describe, states, motoGroup, complete };
  }

  it("scale-in puts each victim through the terminate hook: Terminating:Wait, then Proceed, then gone", async () => {
    const g = await group(3, { launch: null, terminate: TERMINATE });
    const before = Object.keys(await g.states());
    expect(before).toHaveLength(3);

    // The minimum and the capacity lowered together, as an operator scaling in does.
    await g.asg.send(
      new UpdateAutoScalingGroupCommand({
        AutoScalingGroupName: g.world.asgName,
        MinSize: 1,
        DesiredCapacity: 1,
      }),
    );

    // moto would have removed two instances inside the call; here they wait for their agents.
    const group1 = await g.describe();
    expect(group1?.DesiredCapacity).toBe(1);
    expect(g.gaps.scaleInVictims).toHaveLength(2);
    const states = await g.states();
    expect(Object.keys(states)).toHaveLength(3);
    for (const v of g.gaps.scaleInVictims) expect(states[v]).toBe("Terminating:Wait");

    const [first, second] = g.gaps.scaleInVictims as [string, string];
    await g.complete(first, TERMINATE.name);
    expect((await g.states())[first]).toBe("Terminating:Proceed");
    await eventually("the first victim gone from moto", 10_000, async () =>
      (await g.motoGroup())?.Instances?.some((i) => i.InstanceId === first) ? undefined : true,
    );
    await g.complete(second, TERMINATE.name);
    await eventually("the second victim gone from moto", 10_000, async () =>
      (await g.motoGroup())?.Instances?.some((i) => i.InstanceId === second) ? undefined : true,
    );
    const after = await g.motoGroup();
    expect(after?.DesiredCapacity).toBe(1);
    expect(after?.Instances?.map((i) => i.InstanceId)).toEqual(
      before.filter((id) => id !== first && id !== second),
    );
  });

  it("a capacity outside the group's min and max is refused as AWS does", async () => {
    const g = await group(1, { launch: null, terminate: TERMINATE });
    await expect(
      g.asg.send(
        new SetDesiredCapacityCommand({ AutoScalingGroupName: g.world.asgName, DesiredCapacity: 9 }),
      ),
    ).rejects.toThrow(/outside the group's min 1 and max 7/);
  });

  it("a launch ABANDONed goes through the terminate hook too", async () => {
    const g = await group(1, { launch: LAUNCH, terminate: TERMINATE });
    const [id] = Object.keys(await g.states()) as [string];
    expect((await g.states())[id]).toBe("Pending:Wait");
    await g.complete(id, LAUNCH.name, "ABANDON");
    expect((await g.states())[id]).toBe("Terminating:Wait");
    expect(g.gaps.waitLog).toContain(`${id} Pending:Wait ABANDON (CompleteLifecycleAction)`);
  });

  it("a launch CONTINUEd passes Pending:Proceed before InService", async () => {
    const g = await group(1, { launch: LAUNCH, terminate: TERMINATE, timeScale: 4 });
    const [id] = Object.keys(await g.states()) as [string];
    await g.complete(id, LAUNCH.name);
    expect((await g.states())[id]).toBe("Pending:Proceed");
    await eventually("InService", 5_000, async () =>
      (await g.states())[id] === "InService" ? true : undefined,
    );
  });

  it("a wait heartbeated without end is ended by the global timeout (100 x the heartbeat timeout)", async () => {
    // 30 s heartbeat timeout (AWS's minimum), 150 times faster: 0.2 s, so the global timeout is 20 s.
    const g = await group(1, {
      launch: null,
      terminate: { ...TERMINATE, heartbeatTimeoutSeconds: 30 },
      timeScale: 150,
    });
    const [id] = Object.keys(await g.states()) as [string];
    await g.asg.send(
      new UpdateAutoScalingGroupCommand({
        AutoScalingGroupName: g.world.asgName,
        MinSize: 0,
        DesiredCapacity: 0,
      }),
    );
    expect((await g.states())[id]).toBe("Terminating:Wait");
    const started = Date.now();
    let heartbeats = 0;
    let refusal = "";
    for (let i = 0; i < 1000 && refusal === "" && Date.now() - started < 40_000; i++) {
      try {
        await g.asg.send(
          new RecordLifecycleActionHeartbeatCommand({
            AutoScalingGroupName: g.world.asgName,
            LifecycleHookName: TERMINATE.name,
            InstanceId: id,
          }),
        );
        heartbeats++;
      } catch (error) {
        refusal = (error as Error).message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(refusal).toMatch(/No active Lifecycle Action/);
    expect(heartbeats).toBeGreaterThan(100);
    expect(g.gaps.waitLog).toContain(`${id} Terminating:Wait CONTINUE (global timeout)`);
  });

  it("SetInstanceHealth inside the grace period is ignored; with ShouldRespectGracePeriod false or after it, the instance is replaced", async () => {
    // 300 s grace period, 60 times faster: 5 s.
    const g = await group(2, {
      launch: null,
      terminate: TERMINATE,
      healthCheckGracePeriodSeconds: 300,
      timeScale: 60,
    });
    const [a, b] = Object.keys(await g.states()) as [string, string];
    const unhealthy = (id: string, respect?: boolean) =>
      g.asg.send(
        new SetInstanceHealthCommand({
          InstanceId: id,
          HealthStatus: "Unhealthy",
          ...(respect === undefined ? {} : { ShouldRespectGracePeriod: respect }),
        }),
      );
    await unhealthy(a);
    expect(g.gaps.ignoredHealth).toEqual([a]);
    expect((await g.states())[a]).toBe("InService");
    expect((await g.motoGroup())?.Instances?.find((i) => i.InstanceId === a)?.HealthStatus).toBe("Healthy");

    await unhealthy(b, false);
    expect(g.gaps.replaced).toEqual([b]);
    expect((await g.states())[b]).toBe("Terminating:Wait");

    await new Promise((r) => setTimeout(r, 5_500));
    await unhealthy(a);
    expect(g.gaps.replaced).toEqual([b, a]);
  });

  it("terminate-and-launch: the replacement launches while the unhealthy instance waits in Terminating:Wait", async () => {
    const g = await group(1, { launch: LAUNCH, terminate: TERMINATE });
    const [old] = Object.keys(await g.states()) as [string];
    await g.complete(old, LAUNCH.name);
    await eventually("InService", 10_000, async () =>
      (await g.states())[old] === "InService" ? true : undefined,
    );
    await g.asg.send(new SetInstanceHealthCommand({ InstanceId: old, HealthStatus: "Unhealthy" }));
    const states = await g.states();
    expect(states[old]).toBe("Terminating:Wait");
    const fresh = Object.keys(states).filter((id) => id !== old);
    expect(fresh).toHaveLength(1);
    expect(states[fresh[0] as string]).toBe("Pending:Wait");
    expect((await g.describe())?.DesiredCapacity).toBe(1);
  });

  it("launch-before-terminate: the unhealthy instance stays InService until its replacement is InService", async () => {
    const g = await group(1, {
      launch: LAUNCH,
      terminate: TERMINATE,
      replacementOrder: "launch-before-terminate",
      timeScale: 4,
    });
    const [old] = Object.keys(await g.states()) as [string];
    await g.complete(old, LAUNCH.name);
    await eventually("InService", 10_000, async () =>
      (await g.states())[old] === "InService" ? true : undefined,
    );
    await g.asg.send(new SetInstanceHealthCommand({ InstanceId: old, HealthStatus: "Unhealthy" }));
    const states = await g.states();
    expect(states[old]).toBe("InService");
    const fresh = Object.keys(states).find((id) => id !== old) as string;
    expect(states[fresh]).toBe("Pending:Wait");
    expect((await g.motoGroup())?.Instances?.find((i) => i.InstanceId === old)?.HealthStatus).toBe(
      "Unhealthy",
    );

    await g.complete(fresh, LAUNCH.name);
    await eventually("the old instance terminating", 10_000, async () =>
      (await g.states())[old] === "Terminating:Wait" ? true : undefined,
    );
    expect((await g.states())[fresh]).toBe("InService");
    expect((await g.describe())?.DesiredCapacity).toBe(1);
  });

  it("with reuseAddresses, a replacement gets the address of the instance that left, in the hypervisor's view and the agents'", async () => {
    const g = await group(2, { launch: null, terminate: null, reuseAddresses: true });
    const world = { ...g.world, addresses: g.gaps.addresses };
    const before = await worldInstances(world);
    const gone = before[0] as { instanceId: string; ip: string };
    await g.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: gone.instanceId,
        ShouldDecrementDesiredCapacity: false,
      }),
    );
    const after = await worldInstances(world);
    expect(after).toHaveLength(2);
    const fresh = after.find((i) => !before.some((b) => b.instanceId === i.instanceId));
    expect(fresh?.ip).toBe(gone.ip);
    expect(g.gaps.reusedAddresses).toEqual([`${fresh?.instanceId} ${gone.ip} (was ${gone.instanceId}'s)`]);
    // The agents' DescribeInstances (through the gap filler) names the same address.
    const ec2 = new EC2Client({ endpoint: g.gaps.url, region: REGION, credentials: CREDENTIALS });
    const described = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [{ Name: "instance-id", Values: [fresh?.instanceId as string] }],
      }),
    );
    expect(described.Reservations?.[0]?.Instances?.[0]?.PrivateIpAddress).toBe(gone.ip);
  });

  it("with hideNewInstancesSeconds, a new instance is missing from describe answers for its first seconds", async () => {
    const g = await group(1, { launch: null, terminate: null, hideNewInstancesSeconds: 3 });
    const [id] = ((await g.motoGroup())?.Instances ?? []).map((i) => i.InstanceId as string) as [string];
    const ec2 = new EC2Client({ endpoint: g.gaps.url, region: REGION, credentials: CREDENTIALS });
    const described = async () =>
      (
        await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: [id] }] }))
      ).Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
    expect(await g.states()).toEqual({});
    expect(await described()).toEqual([]);
    await new Promise((r) => setTimeout(r, 3_200));
    expect(await g.states()).toEqual({ [id]: "InService" });
    expect(await described()).toEqual([id]);
  });

  it("throttles Secrets Manager in its JSON protocol and S3 with SlowDown: the SDK retries both", async () => {
    const gaps = await startAwsGaps(moto.url);
    proxies.push(gaps);
    const sm = new SecretsManagerClient({ endpoint: gaps.url, region: REGION, credentials: CREDENTIALS });
    const s3 = clients(gaps.url).s3;
    await createWorld(moto.url, {
      nodes: 1,
      asgName: "faults",
      subnetCidr: "127.0.99.0/24",
      plaintext: true,
    });
    // Every second call fails: the SDK's retry (3 attempts) gets each one through.
    gaps.setFaults([
      { api: "secretsmanager:CreateSecret", share: 0.5, kind: "throttle" },
      { api: "secretsmanager:GetSecretValue", share: 0.5, kind: "throttle" },
      { api: "s3:PUT", share: 0.5, kind: "throttle" },
      { api: "s3:GET", share: 0.5, kind: "throttle" },
    ]);
    await sm.send(new CreateSecretCommand({ Name: "faults-ca", SecretString: "pem" }));
    for (let i = 0; i < 3; i++) {
      const got = await sm.send(new GetSecretValueCommand({ SecretId: "faults-ca" }));
      expect(got.SecretString).toBe("pem");
    }
    for (let i = 0; i < 3; i++) {
      await s3.send(new PutObjectCommand({ Bucket: "faults-backups", Key: `k${i}`, Body: "v" }));
      const got = await s3.send(new GetObjectCommand({ Bucket: "faults-backups", Key: `k${i}` }));
      expect(await got.Body?.transformToString()).toBe("v");
    }
    expect(gaps.calls.get("secretsmanager:GetSecretValue")?.failed).toBeGreaterThanOrEqual(2);
    expect(gaps.calls.get("s3:PUT")?.failed).toBeGreaterThanOrEqual(2);
    expect(gaps.calls.get("s3:GET")?.failed).toBeGreaterThanOrEqual(2);
  });
});

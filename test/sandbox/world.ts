// The AWS side of a cluster on moto: a VPC in 127.0.0.0/16 (so instances get loopback addresses),
// a subnet, a launch template, an Auto Scaling group with its subnets set, a private hosted zone.
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import {
  CreateLaunchTemplateCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { CreateHostedZoneCommand, Route53Client } from "@aws-sdk/client-route-53";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";

/** The subnet of a sandbox that names none. */
export const DEFAULT_SUBNET = "127.0.1.0/24";

export const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "sandbox", secretAccessKey: "sandbox" };

export interface World {
  /** moto itself: what the sandbox uses to set up and watch the world. */
  endpoint: string;
  /** Where the nodes' agents send their AWS calls (the gap filler in the sandbox); default endpoint. */
  agentEndpoint?: string;
  region: string;
  asgName: string;
  hostedZoneId: string;
  domain: string;
  subnetId: string;
  /** The S3 bucket for the agents' snapshots. */
  backupBucket: string;
  /** TLS (the default): the lifetime of the certificates the agents issue; null: --plaintext. */
  tls: { certLifetimeSeconds: number | null } | null;
  /** The directory of etcd and its tools the nodes run (`--etcd-bin`); default Debian's /usr/bin (3.4). */
  etcdBin?: string;
  /**
   * Test-only: more environment for every node's agent (process mode), e.g.
   * ETCD_AGENT_ETCD_QUOTA_BACKEND_BYTES for a small quota; it wins over the sandbox's own.
   */
  agentEnvironment?: Record<string, string>;
  /** The sandbox's addresses given moto's (the gap filler's, which may reuse a freed one); default moto's. */
  addresses?: (groupIds: string[], found: { instanceId: string; ip: string }[]) => Map<string, string>;
}

export interface WorldInstance {
  instanceId: string;
  ip: string;
  availabilityZone: string;
  lifecycleState: string;
}

export function clients(endpoint: string) {
  const cfg = { endpoint, region: REGION, credentials: CREDENTIALS };
  return {
    ec2: new EC2Client(cfg),
    asg: new AutoScalingClient(cfg),
    r53: new Route53Client(cfg),
    // No per-bucket host names on 127.0.0.1: path-style, as the agents are told too.
    s3: new S3Client({ ...cfg, forcePathStyle: true }),
    cw: new CloudWatchClient(cfg),
  };
}

export async function createWorld(
  endpoint: string,
  opts: {
    nodes: number;
    domain?: string;
    asgName?: string;
    subnetCidr?: string;
    plaintext?: boolean;
    certLifetimeSeconds?: number;
  },
): Promise<World> {
  const { ec2, asg, r53, s3 } = clients(endpoint);
  const domain = opts.domain ?? "etcd.sandbox";
  const asgName = opts.asgName ?? "etcd-sandbox";
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: "127.0.0.0/16" }));
  const vpcId = vpc.Vpc?.VpcId as string;
  const subnet = await ec2.send(
    new CreateSubnetCommand({
      VpcId: vpcId,
      CidrBlock: opts.subnetCidr ?? DEFAULT_SUBNET,
      AvailabilityZone: `${REGION}a`,
    }),
  );
  const subnetId = subnet.Subnet?.SubnetId as string;
  const images = await ec2.send(new DescribeImagesCommand({}));
  const imageId = images.Images?.[0]?.ImageId;
  if (!imageId) throw new Error("moto offers no AMI");
  await ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: `${asgName}-lt`,
      LaunchTemplateData: {
        ImageId: imageId,
        InstanceType: "t3.small",
        MetadataOptions: { HttpTokens: "required" },
      },
    }),
  );
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: asgName,
      LaunchTemplate: { LaunchTemplateName: `${asgName}-lt`, Version: "$Latest" },
      MinSize: opts.nodes,
      MaxSize: Math.max(opts.nodes, 7),
      DesiredCapacity: opts.nodes,
      // Without subnets moto hands out 10.x addresses; with this one they are loopback addresses.
      VPCZoneIdentifier: subnetId,
    }),
  );
  const zone = await r53.send(
    new CreateHostedZoneCommand({
      Name: domain,
      CallerReference: `${asgName}-${Date.now()}`,
      HostedZoneConfig: { PrivateZone: true, Comment: "etcd sandbox" },
      VPC: { VPCId: vpcId, VPCRegion: REGION },
    }),
  );
  const zoneId = zone.HostedZone?.Id;
  if (!zoneId) throw new Error("moto created no hosted zone");
  const hostedZoneId = zoneId.replace("/hostedzone/", "");
  const backupBucket = `${asgName}-backups`;
  await s3.send(
    new CreateBucketCommand({
      Bucket: backupBucket,
      CreateBucketConfiguration: { LocationConstraint: REGION },
    }),
  );
  const tls = opts.plaintext ? null : { certLifetimeSeconds: opts.certLifetimeSeconds ?? null };
  return { endpoint, region: REGION, asgName, hostedZoneId, domain, subnetId, backupBucket, tls };
}

/** The ASG's instances with their addresses; refuses any address outside 127.0.0.0/8. */
export async function worldInstances(world: World): Promise<WorldInstance[]> {
  const { ec2, asg } = clients(world.endpoint);
  const group = (
    await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [world.asgName] }))
  ).AutoScalingGroups?.[0];
  const members = group?.Instances ?? [];
  if (members.length === 0) return [];
  const ids = members.map((i) => i.InstanceId as string);
  const described = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: ids }] }),
  );
  const ipOf = new Map<string, string>();
  for (const r of described.Reservations ?? []) {
    for (const i of r.Instances ?? []) {
      if (i.State?.Name === "running" && i.InstanceId && i.PrivateIpAddress)
        ipOf.set(i.InstanceId, i.PrivateIpAddress);
    }
  }
  const mapped = world.addresses?.(
    ids,
    [...ipOf].map(([instanceId, ip]) => ({ instanceId, ip })),
  );
  const out: WorldInstance[] = [];
  for (const m of members) {
    const ip = mapped?.get(m.InstanceId as string) ?? ipOf.get(m.InstanceId as string);
    if (!ip) continue;
    if (!ip.startsWith("127."))
      throw new Error(`instance ${m.InstanceId} got ${ip}, outside 127.0.0.0/8; refusing to use it`);
    out.push({
      instanceId: m.InstanceId as string,
      ip,
      availabilityZone: m.AvailabilityZone as string,
      lifecycleState: m.LifecycleState as string,
    });
  }
  return out;
}

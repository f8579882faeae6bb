// An existing VPC for the app (context keys etcd:vpcId, etcd:privateSubnetIds, etcd:publicSubnetIds,
// etcd:availabilityZones), imported by its IDs with no lookup, so a synth needs no credentials.
import { aws_ec2 as ec2 } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { EtcdClusterPropsError } from "./props.js";

export interface ExistingVpcSettings {
  vpcId?: string;
  /** 3 subnets, one per zone, with a route to the AWS APIs (NAT or endpoints): the members. */
  privateSubnetIds?: string[];
  /** A public subnet (or more) for the bastion. */
  publicSubnetIds?: string[];
  /** The subnets' zones, in the same order as privateSubnetIds. */
  availabilityZones?: string[];
}

const fail = (m: string): never => {
  throw new EtcdClusterPropsError(m);
};

/** The VPC these settings name, or undefined (a new VPC) when none of them is given. */
export function existingVpc(scope: Construct, v: ExistingVpcSettings): ec2.IVpc | undefined {
  const given = [v.vpcId, v.privateSubnetIds, v.publicSubnetIds].filter((x) => x !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3 || v.availabilityZones === undefined)
    fail(
      `an existing VPC needs etcd:vpcId, etcd:privateSubnetIds, etcd:publicSubnetIds and etcd:availabilityZones together; got ${JSON.stringify(v)}`,
    );
  if (!/^vpc-[0-9a-f]{8,17}$/.test(v.vpcId ?? ""))
    fail(`etcd:vpcId must be a VPC ID such as vpc-0123456789abcdef0, got ${JSON.stringify(v.vpcId)}`);
  const subnets = (key: string, ids: unknown, n: number | undefined) => {
    if (
      !Array.isArray(ids) ||
      ids.length === 0 ||
      (n !== undefined && ids.length !== n) ||
      ids.some((i) => typeof i !== "string" || !/^subnet-[0-9a-f]{8,17}$/.test(i))
    )
      fail(
        `etcd:${key} must be a JSON list of ${n ?? "one or more"} subnet IDs such as ["subnet-0123456789abcdef0"], got ${JSON.stringify(ids)}`,
      );
    return ids as string[];
  };
  const zones = v.availabilityZones as string[];
  if (
    !Array.isArray(zones) ||
    zones.length !== 3 ||
    zones.some((z) => !/^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$/.test(z))
  )
    fail(
      `etcd:availabilityZones must name the 3 zones of etcd:privateSubnetIds, in order, such as ["eu-west-1a", "eu-west-1b", "eu-west-1c"], got ${JSON.stringify(zones)}`,
    );
  const privateSubnetIds = subnets("privateSubnetIds", v.privateSubnetIds, zones.length);
  const publicSubnetIds = subnets("publicSubnetIds", v.publicSubnetIds, undefined);
  return ec2.Vpc.fromVpcAttributes(scope, "ExistingVpc", {
    vpcId: v.vpcId as string,
    availabilityZones: zones,
    privateSubnetIds,
    // fromVpcAttributes wants one per zone or a multiple; the bastion uses the first.
    publicSubnetIds: zones.map((_, i) => publicSubnetIds[i % publicSubnetIds.length] as string),
  });
}

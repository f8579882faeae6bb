// The cluster's network: the VPC (a new one, or the operator's), the private hosted zone, and the
// security groups: 2380 between members only; 2379 from members, clients and the bastion.
import { aws_ec2 as ec2, aws_route53 as route53, Stack, Token } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { EtcdClusterPropsError, type ValidSettings } from "../props.js";

export interface NetworkProps {
  settings: ValidSettings;
  asgName: string;
  /** The operator's VPC; default a new one in settings.availabilityZones or the region's a, b, c. */
  vpc: ec2.IVpc | undefined;
}

export interface Network {
  vpc: ec2.IVpc;
  hostedZone: route53.PrivateHostedZone;
  memberSecurityGroup: ec2.SecurityGroup;
  clientSecurityGroup: ec2.SecurityGroup;
  bastionSecurityGroup: ec2.SecurityGroup;
}

/** Made in `scope` itself (the EtcdCluster), so each resource keeps its construct path and logical ID. */
export function network(scope: Construct, { settings: s, asgName, vpc: given }: NetworkProps): Network {
  const stack = Stack.of(scope);
  let zones = s.availabilityZones;
  if (!given && !zones) {
    if (Token.isUnresolved(stack.region)) {
      throw new EtcdClusterPropsError(
        "a new VPC needs 3 availability zones: give availabilityZones, or deploy the stack to a region (env: { region }) to use its a, b and c zones",
      );
    }
    zones = ["a", "b", "c"].map((z) => `${stack.region}${z}`);
  }
  const vpc =
    given ??
    new ec2.Vpc(scope, "Vpc", {
      availabilityZones: zones,
      natGateways: s.natGateways,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "private", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs() } },
    });

  const hostedZone = new route53.PrivateHostedZone(scope, "Zone", { zoneName: s.domain, vpc });

  // Out, only what a member needs: HTTPS (AWS's APIs through the NAT or endpoints, the etcd
  // image's registry, the OS's updates) and etcd's ports to the other members. DNS (the VPC's
  // resolver), the instance metadata and the Amazon Time Sync Service (169.254.169.123) are not
  // filtered by security groups.
  const m = new ec2.SecurityGroup(scope, "Members", {
    vpc,
    description: `etcd members of ${asgName}`,
    allowAllOutbound: false,
  });
  const clients = new ec2.SecurityGroup(scope, "Clients", {
    vpc,
    description: `clients of etcd ${asgName}: members accept 2379 from this group`,
    allowAllOutbound: false,
  });
  clients.addEgressRule(m, ec2.Port.tcp(2379), "etcd client API");
  const bastion = new ec2.SecurityGroup(scope, "BastionSg", {
    vpc,
    description: `bastion of etcd ${asgName}`,
  });
  m.addIngressRule(m, ec2.Port.tcp(2380), "etcd peers");
  m.addIngressRule(m, ec2.Port.tcp(2379), "etcd client API, members (the agent)");
  m.addIngressRule(clients, ec2.Port.tcp(2379), "etcd client API, clients");
  m.addIngressRule(bastion, ec2.Port.tcp(2379), "etcd client API, operators on the bastion");
  m.addIngressRule(bastion, ec2.Port.tcp(22), "SSH from the bastion");
  m.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS: AWS APIs, the etcd image, OS updates");
  m.addEgressRule(m, ec2.Port.tcp(2380), "etcd peers");
  m.addEgressRule(m, ec2.Port.tcp(2379), "etcd client API of the other members (the agent)");
  return {
    vpc,
    hostedZone,
    memberSecurityGroup: m,
    clientSecurityGroup: clients,
    bastionSecurityGroup: bastion,
  };
}

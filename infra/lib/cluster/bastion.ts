// The bastion: SSM Session Manager, SSH only from the given CIDR; the agent binary, etcdctl and the
// cluster's settings for operators, with a read-only policy (identity.ts, grantOperators).
import {
  type aws_s3_assets as assets,
  aws_ec2 as ec2,
  type aws_route53 as route53,
  Stack,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import { ETCD_IMAGE } from "../../../ignition/etcd-image.js";
import type { ValidSettings } from "../props.js";
import { acknowledge } from "./acknowledge.js";
import type { Identity } from "./identity.js";

export interface BastionProps {
  settings: ValidSettings;
  asgName: string;
  vpc: ec2.IVpc;
  hostedZone: route53.IHostedZone;
  securityGroup: ec2.ISecurityGroup;
  binary: assets.Asset;
  identity: Identity;
}

/** Made in `scope` itself (the EtcdCluster), so each resource keeps its construct path and logical ID. */
export function bastion(scope: Construct, props: BastionProps): ec2.BastionHostLinux {
  const { settings: s, binary } = props;
  const host = new ec2.BastionHostLinux(scope, "Bastion", {
    vpc: props.vpc,
    subnetSelection: { subnetType: ec2.SubnetType.PUBLIC },
    securityGroup: props.securityGroup,
    instanceType: new ec2.InstanceType(s.architecture === "arm64" ? "t4g.micro" : "t3.micro"),
    machineImage: ec2.MachineImage.latestAmazonLinux2023({
      cpuType: s.architecture === "arm64" ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64,
    }),
    requireImdsv2: true,
    blockDevices: [{ deviceName: "/dev/xvda", volume: ec2.BlockDeviceVolume.ebs(10, { encrypted: true }) }],
  });
  // One hop: a container on the bastion cannot reach the instance's credentials.
  host.instance.instance.metadataOptions = {
    httpTokens: "required",
    httpPutResponseHopLimit: 1,
    httpEndpoint: "enabled",
  };
  if (s.bastionAllowedCidr) host.allowSshAccessFrom(ec2.Peer.ipv4(s.bastionAllowedCidr));
  if (s.bastionKeyName) host.instance.instance.keyName = s.bastionKeyName;
  host.instance.instance.monitoring = true;
  props.identity.grantOperators(host.role);
  host.instance.addUserData(
    "set -euo pipefail",
    `aws s3 cp ${binary.s3ObjectUrl} /usr/local/bin/etcd-agent`,
    `echo "${s.agentBinarySha512}  /usr/local/bin/etcd-agent" | sha512sum -c -`,
    "chmod 755 /usr/local/bin/etcd-agent",
    "cat > /etc/profile.d/etcd-agent.sh <<'EOF'",
    ...bastionProfile({
      domain: s.domain,
      hostedZoneId: props.hostedZone.hostedZoneId,
      asgName: props.asgName,
      region: Stack.of(scope).region,
    }),
    "EOF",
    // etcdctl from etcd's release, checked against the release's SHA256SUMS (fetched over TLS);
    // last, so an outage of GitHub leaves the agent and its settings in place.
    `v=${s.etcdVersion ?? ETCD_IMAGE.tag}; a=${s.architecture === "arm64" ? "arm64" : "amd64"}; t=etcd-$v-linux-$a`,
    "cd /tmp",
    'curl -fsSLO "https://github.com/etcd-io/etcd/releases/download/$v/$t.tar.gz"',
    'curl -fsSLO "https://github.com/etcd-io/etcd/releases/download/$v/SHA256SUMS"',
    'grep " $t.tar.gz$" SHA256SUMS | sha256sum -c -',
    'tar -xzf "$t.tar.gz" "$t/etcdctl"',
    'install -m 755 "$t/etcdctl" /usr/local/bin/etcdctl',
    'rm -rf "$t" "$t.tar.gz" SHA256SUMS',
  );
  acknowledge(host, {
    "AwsSolutions::AwsSolutions-IAM5[Resource::*]":
      "BastionHostLinux's own grant for SSM Session Manager (ssmmessages, ec2messages, ssm:UpdateInstanceInformation), which have no resource-level permissions.",
    "AwsSolutions::AwsSolutions-IAM5[Action::ssmmessages:*]":
      "BastionHostLinux's own grant for SSM Session Manager's message channels.",
    "AwsSolutions::AwsSolutions-IAM5[Action::ec2messages:*]":
      "BastionHostLinux's own grant for SSM Session Manager's message channels.",
    "AwsSolutions::AwsSolutions-EC29":
      "The bastion holds nothing (no data, no keys: SSM or short-lived SSH); protection would block cdk destroy and replacement.",
  });
  return host;
}

/**
 * The bastion's /etc/profile.d/etcd-agent.sh, line by line: the cluster for `etcd-agent`, and the
 * operators' certificate (where `etcd-agent client-cert` writes it) for both it and etcdctl, which
 * finds the members by the client SRV record. The e2e doc test runs the doc's commands with it.
 */
export function bastionProfile(c: {
  domain: string;
  hostedZoneId: string;
  asgName: string;
  region: string;
}): string[] {
  return [
    `export ETCD_AGENT_DOMAIN=${c.domain}`,
    `export ETCD_AGENT_HOSTED_ZONE_ID=${c.hostedZoneId}`,
    `export ETCD_AGENT_ASG_NAME=${c.asgName}`,
    `export AWS_REGION=${c.region}`,
    'export ETCD_AGENT_TLS_CA_FILE="$HOME/.etcd-agent/tls/ca.crt"',
    'export ETCD_AGENT_TLS_CERT_FILE="$HOME/.etcd-agent/tls/client.crt"',
    'export ETCD_AGENT_TLS_KEY_FILE="$HOME/.etcd-agent/tls/client.key"',
    "export ETCDCTL_API=3",
    `export ETCDCTL_DISCOVERY_SRV=${c.domain}`,
    'export ETCDCTL_CACERT="$ETCD_AGENT_TLS_CA_FILE"',
    'export ETCDCTL_CERT="$ETCD_AGENT_TLS_CERT_FILE"',
    'export ETCDCTL_KEY="$ETCD_AGENT_TLS_KEY_FILE"',
  ];
}

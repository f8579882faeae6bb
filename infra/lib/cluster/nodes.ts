// The members: the Ignition config in the user data (ignition/), the launch template, the Auto
// Scaling group with its launch and terminate lifecycle hooks, and the teardown that removes what
// the agent made when the stack is deleted.
import {
  aws_autoscaling as autoscaling,
  Duration,
  aws_ec2 as ec2,
  type aws_route53 as route53,
  type aws_sns as sns,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import { renderNodeConfig, serialize, USER_DATA_LIMIT } from "../../../ignition/render.js";
import { METRICS_NAMESPACE } from "../cluster-monitoring.js";
import { nodeImage } from "../node-image.js";
import type { ValidSettings } from "../props.js";
import { Teardown } from "../teardown/teardown.js";
import { acknowledge } from "./acknowledge.js";
import type { Identity } from "./identity.js";
import type { Storage } from "./storage.js";

/** The lifecycle hooks' names and timeouts (docs/deploy.md explains the choice). */
export const HOOKS = {
  launch: { name: "etcd-launch", timeout: Duration.minutes(15), result: autoscaling.DefaultResult.ABANDON },
  terminate: {
    name: "etcd-terminate",
    timeout: Duration.minutes(10),
    result: autoscaling.DefaultResult.CONTINUE,
  },
} as const;

// Placeholders rendered into the Ignition config and then swapped for CloudFormation values:
// the renderer validates concrete strings, and these pass its checks.
const BUCKET_PLACEHOLDER = "etcd-agent-binary-bucket-placeholder";
const KEY_PLACEHOLDER = "etcd-agent-binary-key-placeholder";
const ZONE_PLACEHOLDER = "ZETCDAGENTZONEPLACEHOLDER";
const BACKUP_PLACEHOLDER = "etcd-agent-backup-bucket-placeholder";
/** A key ID in form (the agent's config rules accept it, URL encoding leaves it as it is) until the ARN is in. */
const SECRETS_KEY_PLACEHOLDER = "5ec2e75e-cafe-4e7c-8000-000000000000";

export interface NodesProps {
  settings: ValidSettings;
  asgName: string;
  vpc: ec2.IVpc;
  hostedZone: route53.IHostedZone;
  memberSecurityGroup: ec2.ISecurityGroup;
  storage: Storage;
  identity: Identity;
  alarmTopic: sns.ITopic;
}

export interface Nodes {
  autoScalingGroup: autoscaling.AutoScalingGroup;
  teardown: Teardown;
  /** The Ignition config in the user data, before CloudFormation fills in the bucket, key and zone. */
  ignitionTemplate: string;
}

/** Made in `scope` itself (the EtcdCluster), so each resource keeps its construct path and logical ID. */
export function nodes(scope: Construct, props: NodesProps): Nodes {
  const { settings: s, asgName, hostedZone, storage, identity } = props;
  const { binary, backupBucket } = storage;
  const { secretsKey } = identity;
  const config = renderNodeConfig({
    os: s.os,
    arch: s.architecture,
    binaryUrl: `s3://${BUCKET_PLACEHOLDER}/${KEY_PLACEHOLDER}`,
    binarySha512: s.agentBinarySha512,
    agent: {
      domain: s.domain,
      hostedZoneId: ZONE_PLACEHOLDER,
      asgName,
      backupBucket: BACKUP_PLACEHOLDER,
      metricsNamespace: METRICS_NAMESPACE,
      ...(secretsKey ? { tlsSecretsKmsKey: SECRETS_KEY_PLACEHOLDER } : {}),
      ...s.agentStorage,
    },
    sshAuthorizedKeys: s.sshAuthorizedKeys,
    ...(s.etcdVersion ? { etcdImageTag: s.etcdVersion } : {}),
    ...(s.etcdImageDigest ? { etcdImageDigest: s.etcdImageDigest } : {}),
    dataDevice: "/dev/xvdb",
  });
  const ignitionTemplate = serialize(config);
  if (Buffer.byteLength(ignitionTemplate) > USER_DATA_LIMIT - 1024) {
    throw new Error(
      `the Ignition config is ${Buffer.byteLength(ignitionTemplate)} bytes, too close to EC2's 16 KB user-data limit; use renderPointerConfig`,
    );
  }
  const userData = ec2.UserData.custom(
    ignitionTemplate
      .split(BUCKET_PLACEHOLDER)
      .join(binary.s3BucketName)
      .split(KEY_PLACEHOLDER)
      .join(binary.s3ObjectKey)
      .split(ZONE_PLACEHOLDER)
      .join(hostedZone.hostedZoneId)
      .split(BACKUP_PLACEHOLDER)
      .join(backupBucket.bucketName)
      .split(SECRETS_KEY_PLACEHOLDER)
      .join(secretsKey?.keyArn ?? SECRETS_KEY_PLACEHOLDER),
  );

  const launchTemplate = new ec2.LaunchTemplate(scope, "LaunchTemplate", {
    machineImage: nodeImage(scope, { os: s.os, architecture: s.architecture, amis: s.amis }),
    instanceType: new ec2.InstanceType(s.instanceType),
    role: identity.nodeRole,
    securityGroup: props.memberSecurityGroup,
    userData,
    requireImdsv2: true,
    httpPutResponseHopLimit: 1,
    instanceMetadataTags: false,
    detailedMonitoring: true,
    blockDevices: [
      {
        deviceName: "/dev/xvda",
        volume: ec2.BlockDeviceVolume.ebs(10, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
      },
      {
        // etcd's data: formatted once by Ignition, mounted at /var/lib/etcd (ignition/render.ts).
        deviceName: "/dev/xvdb",
        volume: ec2.BlockDeviceVolume.ebs(s.dataVolumeGiB, {
          encrypted: true,
          volumeType: ec2.EbsDeviceVolumeType.GP3,
          deleteOnTermination: true,
        }),
      },
    ],
  });

  const autoScalingGroup = new autoscaling.AutoScalingGroup(scope, "Group", {
    autoScalingGroupName: asgName,
    vpc: props.vpc,
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    launchTemplate,
    minCapacity: s.clusterSize,
    // Desired starts at min; not set here, so a deploy never resets a size an operator changed.
    maxCapacity: s.clusterSize + 1,
    // The agent reports a member that cannot get healthy with SetInstanceHealth; EC2 checks the rest.
    healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: Duration.minutes(5) }),
    groupMetrics: [autoscaling.GroupMetrics.all()],
    notifications: [{ topic: props.alarmTopic, scalingEvents: autoscaling.ScalingEvents.ERRORS }],
    // One instance at a time, a new one in before an old one goes: quorum holds through an update.
    updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({
      maxBatchSize: 1,
      minInstancesInService: s.clusterSize,
      pauseTime: Duration.minutes(5),
    }),
  });
  autoScalingGroup.node.addDependency(identity.nodePolicy);
  // On stack delete: the group goes first (no node left to write), then the agent's records and
  // the TLS secrets, then the zone (infra/lib/teardown/teardown.ts).
  const teardown = new Teardown(scope, "Teardown", {
    hostedZone,
    domain: s.domain,
    recordNames: identity.recordNames,
    secrets: [identity.secrets.ca, identity.secrets.operator],
  });
  autoScalingGroup.node.addDependency(teardown);
  autoScalingGroup.addLifecycleHook("LaunchHook", {
    lifecycleHookName: HOOKS.launch.name,
    lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_LAUNCHING,
    heartbeatTimeout: HOOKS.launch.timeout,
    defaultResult: HOOKS.launch.result,
  });
  autoScalingGroup.addLifecycleHook("TerminateHook", {
    lifecycleHookName: HOOKS.terminate.name,
    lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
    heartbeatTimeout: HOOKS.terminate.timeout,
    defaultResult: HOOKS.terminate.result,
  });
  acknowledge(autoScalingGroup, {
    "AwsSolutions::AwsSolutions-AS3":
      "Launch and terminate errors go to the alarm topic (plus EventBridge rules for failed lifecycle actions and unhealthy members); successful launches and terminations are routine and would drown the alarms.",
  });
  return { autoScalingGroup, teardown, ignitionTemplate };
}

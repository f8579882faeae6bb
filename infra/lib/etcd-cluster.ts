// EtcdCluster: everything the agent does not do itself. A launch template with the Ignition user
// data from ignition/, an Auto Scaling group with launch and terminate lifecycle hooks, the agent
// binary as an S3 asset, a private hosted zone, security groups, least-privilege IAM, a backup
// bucket, a bastion, and alarms to an SNS topic.
import { fileURLToPath } from "node:url";
import {
  ArnFormat,
  aws_s3_assets as assets,
  aws_autoscaling as autoscaling,
  CfnOutput,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cwActions,
  Duration,
  aws_ec2 as ec2,
  aws_events as events,
  aws_events_targets as eventTargets,
  aws_iam as iam,
  aws_kms as kms,
  aws_logs as logs,
  RemovalPolicy,
  aws_route53 as route53,
  Stack,
  aws_s3 as s3,
  aws_sns as sns,
  Token,
  Validations,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import { DEFAULTS } from "../../agent/config/config.js";
import { MAX_ASG_NAME_LENGTH } from "../../agent/planner/marker.js";
import { ETCD_IMAGE } from "../../ignition/etcd-image.js";
import { renderNodeConfig, serialize, USER_DATA_LIMIT } from "../../ignition/render.js";
import { ClusterMonitoring, METRICS_NAMESPACE } from "./cluster-monitoring.js";
import { nodeImage } from "./node-image.js";
import { OperatorCertIssuer } from "./operator-cert-issuer.js";
import {
  EtcdClusterPropsError,
  type EtcdClusterSettings,
  type ValidSettings,
  validateSettings,
} from "./props.js";
import { Teardown } from "./teardown/teardown.js";

export interface EtcdClusterProps extends EtcdClusterSettings {
  /** The VPC to run in (its private subnets need a route to the AWS APIs); default a new one. */
  vpc?: ec2.IVpc;
  /** Where alarms go; default a new topic. */
  alarmTopic?: sns.ITopic;
  /** The one role that may call the operators' certificate issuer; without it there is no issuer. */
  operatorCertInvokerRoleArn?: string;
}

const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

// Placeholders rendered into the Ignition config and then swapped for CloudFormation values:
// the renderer validates concrete strings, and these pass its checks.
const BUCKET_PLACEHOLDER = "etcd-agent-binary-bucket-placeholder";
const KEY_PLACEHOLDER = "etcd-agent-binary-key-placeholder";
const ZONE_PLACEHOLDER = "ZETCDAGENTZONEPLACEHOLDER";
const BACKUP_PLACEHOLDER = "etcd-agent-backup-bucket-placeholder";
/** A key ID in form (the agent's config rules accept it, URL encoding leaves it as it is) until the ARN is in. */
const SECRETS_KEY_PLACEHOLDER = "5ec2e75e-cafe-4e7c-8000-000000000000";

/** The lifecycle hooks' names and timeouts (docs/deploy.md explains the choice). */
export const HOOKS = {
  launch: { name: "etcd-launch", timeout: Duration.minutes(15), result: autoscaling.DefaultResult.ABANDON },
  terminate: {
    name: "etcd-terminate",
    timeout: Duration.minutes(10),
    result: autoscaling.DefaultResult.CONTINUE,
  },
} as const;

export class EtcdCluster extends Construct {
  readonly settings: ValidSettings;
  readonly vpc: ec2.IVpc;
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly hostedZone: route53.PrivateHostedZone;
  /** Attach this to clients of etcd: members accept 2379 from it. */
  readonly clientSecurityGroup: ec2.SecurityGroup;
  readonly memberSecurityGroup: ec2.SecurityGroup;
  readonly backupBucket: s3.Bucket;
  /** The snapshots' customer-managed key (backup.customerManagedKey, default on). */
  readonly backupKey: kms.Key | undefined;
  /** Both TLS secrets' customer-managed key (secretsCustomerManagedKey, default on). */
  readonly secretsKey: kms.Key | undefined;
  readonly bastion: ec2.BastionHostLinux;
  readonly alarmTopic: sns.ITopic;
  /** The cluster's dashboard and metric alarms (infra/lib/cluster-monitoring.ts). */
  readonly monitoring: ClusterMonitoring;
  readonly nodeRole: iam.Role;
  readonly teardown: Teardown;
  /** The operators' certificate issuer, with operatorCertInvokerRoleArn. */
  readonly operatorCertIssuer: OperatorCertIssuer | undefined;
  /** The Ignition config in the user data, before CloudFormation fills in the bucket, key and zone. */
  readonly ignitionTemplate: string;

  constructor(scope: Construct, id: string, props: EtcdClusterProps) {
    super(scope, id);
    const s = validateSettings(props, PROJECT_ROOT);
    this.settings = s;
    const stack = Stack.of(this);
    const asgName = `${stack.stackName}-${id}`.slice(0, 255);
    if (asgName.length > MAX_ASG_NAME_LENGTH) {
      throw new Error(
        `the Auto Scaling group's name "${asgName.slice(0, 40)}..." (stack name + "-" + construct ID) is ${asgName.length} characters; the agent's cluster marker (one TXT string) holds at most ${MAX_ASG_NAME_LENGTH}: use a shorter stack name (etcd:stackName) or construct ID`,
      );
    }
    const d = s.domain;

    let zones = s.availabilityZones;
    if (!props.vpc && !zones) {
      if (Token.isUnresolved(stack.region)) {
        throw new EtcdClusterPropsError(
          "a new VPC needs 3 availability zones: give availabilityZones, or deploy the stack to a region (env: { region }) to use its a, b and c zones",
        );
      }
      zones = ["a", "b", "c"].map((z) => `${stack.region}${z}`);
    }
    this.vpc =
      props.vpc ??
      new ec2.Vpc(this, "Vpc", {
        availabilityZones: zones,
        natGateways: s.natGateways,
        subnetConfiguration: [
          { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: "private", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
        flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs() } },
      });

    this.hostedZone = new route53.PrivateHostedZone(this, "Zone", { zoneName: d, vpc: this.vpc });

    // ---- security groups: 2380 between members only; 2379 from members, clients, the bastion
    // Out, only what a member needs: HTTPS (AWS's APIs through the NAT or endpoints, the etcd
    // image's registry, the OS's updates) and etcd's ports to the other members. DNS (the VPC's
    // resolver), the instance metadata and the Amazon Time Sync Service (169.254.169.123) are not
    // filtered by security groups.
    this.memberSecurityGroup = new ec2.SecurityGroup(this, "Members", {
      vpc: this.vpc,
      description: `etcd members of ${asgName}`,
      allowAllOutbound: false,
    });
    this.clientSecurityGroup = new ec2.SecurityGroup(this, "Clients", {
      vpc: this.vpc,
      description: `clients of etcd ${asgName}: members accept 2379 from this group`,
      allowAllOutbound: false,
    });
    this.clientSecurityGroup.addEgressRule(this.memberSecurityGroup, ec2.Port.tcp(2379), "etcd client API");
    const bastionSg = new ec2.SecurityGroup(this, "BastionSg", {
      vpc: this.vpc,
      description: `bastion of etcd ${asgName}`,
    });
    const m = this.memberSecurityGroup;
    m.addIngressRule(m, ec2.Port.tcp(2380), "etcd peers");
    m.addIngressRule(m, ec2.Port.tcp(2379), "etcd client API, members (the agent)");
    m.addIngressRule(this.clientSecurityGroup, ec2.Port.tcp(2379), "etcd client API, clients");
    m.addIngressRule(bastionSg, ec2.Port.tcp(2379), "etcd client API, operators on the bastion");
    m.addIngressRule(bastionSg, ec2.Port.tcp(22), "SSH from the bastion");
    m.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS: AWS APIs, the etcd image, OS updates");
    m.addEgressRule(m, ec2.Port.tcp(2380), "etcd peers");
    m.addEgressRule(m, ec2.Port.tcp(2379), "etcd client API of the other members (the agent)");

    // ---- the agent binary and the backups
    const binary = new assets.Asset(this, "AgentBinary", { path: s.agentBinaryPath });
    const backupPrefix = `backups/${asgName}/`;
    // Snapshots nobody can poison after the fact (docs/security.md, "A bucket writer"): Object Lock
    // keeps every version a node wrote for the lock's days (a node can add a delete marker or a new
    // version, never remove or change a locked one); current versions never expire by a bucket rule,
    // so the newest snapshot stays whatever the clock says; what the agent expired (non-current
    // versions) goes after expireAfterDays, never before the lock ends.
    const lock = s.backupLock;
    this.backupKey = s.backupCustomerManagedKey
      ? new kms.Key(this, "BackupKey", {
          description: `etcd snapshots of ${asgName}`,
          enableKeyRotation: true,
          removalPolicy: RemovalPolicy.RETAIN,
        })
      : undefined;
    this.backupBucket = new s3.Bucket(this, "Backups", {
      versioned: true,
      ...(this.backupKey
        ? { encryption: s3.BucketEncryption.KMS, encryptionKey: this.backupKey, bucketKeyEnabled: true }
        : { encryption: s3.BucketEncryption.S3_MANAGED }),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // Off: no ObjectLockEnabled at all, as a bucket made before the lock existed. It is a
      // create-only property: false where it was absent would replace the bucket (docs/security.md).
      ...(lock
        ? {
            objectLockEnabled: true,
            objectLockDefaultRetention:
              lock.mode === "COMPLIANCE"
                ? s3.ObjectLockRetention.compliance(Duration.days(lock.days))
                : s3.ObjectLockRetention.governance(Duration.days(lock.days)),
          }
        : {}),
      lifecycleRules: [
        {
          id: "ExpiredSnapshotsGoAfterExpireAfterDays",
          noncurrentVersionExpiration: Duration.days(Math.max(s.backupExpireAfterDays, lock?.days ?? 0)),
          // Snapshots go up as multipart uploads: the parts of one a killed agent left are dropped.
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        { id: "DeleteMarkersWithNothingBehindThem", expiredObjectDeleteMarker: true },
      ],
      ...(s.backupReplicateToBucketArn
        ? {
            replicationRules: [
              {
                id: "CopyToAnotherAccount",
                destination: s3.Bucket.fromBucketArn(this, "BackupReplica", s.backupReplicateToBucketArn),
                priority: 0,
                // A node's delete markers stay here: the copy keeps what was deleted.
                deleteMarkerReplication: false,
                ...(this.backupKey ? { sseKmsEncryptedObjects: true } : {}),
                filter: { prefix: backupPrefix },
              },
            ],
          }
        : {}),
    });
    // Object-created events go to EventBridge: the RestoredFromSnapshot rule alarms on the agent's
    // restore records (no extra permission on the nodes: they already write the prefix). Set on the
    // CloudFormation resource: the Bucket's eventBridgeEnabled would add a custom-resource Lambda.
    (this.backupBucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };

    // ---- IAM for the nodes
    this.nodeRole = new iam.Role(this, "NodeRole", {
      assumedBy: new iam.ServicePrincipal("ec2.amazonaws.com"),
      description: `etcd-agent on the members of ${asgName}`,
    });
    const asgArn = stack.formatArn({
      service: "autoscaling",
      resource: "autoScalingGroup",
      resourceName: `*:autoScalingGroupName/${asgName}`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    // The -ssl SRV records with TLS; the plain ones so an agent can delete them after a move to TLS.
    const recordNames = [
      `_etcd-server-ssl._tcp.${d}`,
      `_etcd-client-ssl._tcp.${d}`,
      `_etcd-server._tcp.${d}`,
      `_etcd-client._tcp.${d}`,
      `_etcd-cluster.${d}`,
      `i-*.${d}`,
    ];
    // What nodes and the bastion both read: the group, the instances, the zone, the binary.
    const readStatements = () => [
      new iam.PolicyStatement({
        sid: "DescribeCannotBeScoped",
        actions: [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeLifecycleHooks",
          "ec2:DescribeInstances",
        ],
        resources: ["*"],
      }),
      new iam.PolicyStatement({
        sid: "ReadThisZone",
        actions: ["route53:ListResourceRecordSets"],
        resources: [this.hostedZone.hostedZoneArn],
      }),
      new iam.PolicyStatement({
        sid: "FetchTheAgentBinary",
        actions: ["s3:GetObject"],
        resources: [binary.bucket.arnForObjects(binary.s3ObjectKey)],
      }),
    ];
    // The TLS secrets (made by the first node: the CA, then the operators' certificate). Secrets
    // Manager appends six random characters to a secret's name in its ARN.
    const secretName = (name: "ca" | "operator") => `etcd-agent/${asgName}/${name}`;
    const secretArn = (name: "ca" | "operator") =>
      stack.formatArn({
        service: "secretsmanager",
        resource: "secret",
        resourceName: `${secretName(name)}-??????`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    // The secrets' key: the agent creates both secrets under it (--tls-secrets-kms-key). Used only
    // through Secrets Manager and only for the named secrets (Secrets Manager's encryption context
    // carries the secret's ARN): the nodes both, the bastion the operators' one. Deleted with the
    // stack, as the secrets are (after KMS's 7-day waiting period).
    this.secretsKey = s.secretsCustomerManagedKey
      ? new kms.Key(this, "SecretsKey", {
          description: `etcd-agent TLS secrets of ${asgName}`,
          enableKeyRotation: true,
          removalPolicy: RemovalPolicy.DESTROY,
          pendingWindow: Duration.days(7),
        })
      : undefined;
    const secretsKeyStatements = (sid: string, actions: string[], secrets: ("ca" | "operator")[]) =>
      this.secretsKey
        ? [
            new iam.PolicyStatement({
              sid,
              actions,
              resources: [this.secretsKey.keyArn],
              conditions: {
                StringEquals: { "kms:ViaService": `secretsmanager.${stack.region}.amazonaws.com` },
                StringLike: { "kms:EncryptionContext:SecretARN": secrets.map(secretArn) },
              },
            }),
          ]
        : [];
    // The snapshots' key, through S3 only (kms:ViaService): nodes encrypt and decrypt, the bastion decrypts.
    const kmsStatements = (actions: string[]) =>
      this.backupKey
        ? [
            new iam.PolicyStatement({
              sid: actions.includes("kms:GenerateDataKey")
                ? "SnapshotKeyThroughS3"
                : "SnapshotKeyDecryptThroughS3",
              actions,
              resources: [this.backupKey.keyArn],
              conditions: { StringEquals: { "kms:ViaService": `s3.${stack.region}.amazonaws.com` } },
            }),
          ]
        : [];
    const nodePolicy = new iam.Policy(this, "NodePolicy", {
      statements: [
        // The leader's metrics: PutMetricData has no resource-level permissions, so the namespace
        // condition is the scope (docs/metrics.md).
        new iam.PolicyStatement({
          sid: "PublishMetricsToOwnNamespace",
          actions: ["cloudwatch:PutMetricData"],
          resources: ["*"],
          conditions: { StringEquals: { "cloudwatch:namespace": METRICS_NAMESPACE } },
        }),
        // The CA is made once by the first node and then only read: no node can replace it.
        new iam.PolicyStatement({
          sid: "TheCaCreatedOnceThenRead",
          actions: ["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret"],
          resources: [secretArn("ca")],
        }),
        // The operators' certificate is renewed by the leader (a new version of the same secret).
        new iam.PolicyStatement({
          sid: "TheOperatorsCertificate",
          actions: [
            "secretsmanager:GetSecretValue",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
          ],
          resources: [secretArn("operator")],
        }),
        // CreateSecret and PutSecretValue under a customer-managed key need both.
        ...secretsKeyStatements(
          "SecretsKeyThroughSecretsManager",
          ["kms:Decrypt", "kms:GenerateDataKey"],
          ["ca", "operator"],
        ),
        ...readStatements(),
        new iam.PolicyStatement({
          sid: "ThisGroupOnly",
          actions: [
            "autoscaling:CompleteLifecycleAction",
            "autoscaling:RecordLifecycleActionHeartbeat",
            "autoscaling:SetInstanceHealth",
          ],
          resources: [asgArn],
        }),
        new iam.PolicyStatement({
          sid: "ChangeThisClustersRecordsOnly",
          actions: ["route53:ChangeResourceRecordSets"],
          resources: [this.hostedZone.hostedZoneArn],
          conditions: {
            "ForAllValues:StringLike": {
              "route53:ChangeResourceRecordSetsNormalizedRecordNames": recordNames,
            },
            "ForAllValues:StringEquals": {
              "route53:ChangeResourceRecordSetsRecordTypes": ["A", "SRV", "TXT"],
            },
          },
        }),
        new iam.PolicyStatement({
          sid: "BackupsOfThisCluster",
          // PutObject covers the multipart calls; aborting a failed one needs its own action.
          actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
          resources: [this.backupBucket.arnForObjects(`${backupPrefix}*`)],
        }),
        ...kmsStatements(["kms:Decrypt", "kms:GenerateDataKey"]),
        new iam.PolicyStatement({
          sid: "ListBackupsOfThisCluster",
          // Versions too: a snapshot key with a second version was overwritten, and is refused.
          actions: ["s3:ListBucket", "s3:ListBucketVersions"],
          resources: [this.backupBucket.bucketArn],
          conditions: { StringLike: { "s3:prefix": [`${backupPrefix}*`] } },
        }),
      ],
    });
    nodePolicy.attachToRole(this.nodeRole);

    // ---- the node's Ignition config
    const config = renderNodeConfig({
      os: s.os,
      arch: s.architecture,
      binaryUrl: `s3://${BUCKET_PLACEHOLDER}/${KEY_PLACEHOLDER}`,
      binarySha512: s.agentBinarySha512,
      agent: {
        domain: d,
        hostedZoneId: ZONE_PLACEHOLDER,
        asgName,
        backupBucket: BACKUP_PLACEHOLDER,
        metricsNamespace: METRICS_NAMESPACE,
        ...(this.secretsKey ? { tlsSecretsKmsKey: SECRETS_KEY_PLACEHOLDER } : {}),
        ...s.agentStorage,
      },
      sshAuthorizedKeys: s.sshAuthorizedKeys,
      ...(s.etcdVersion ? { etcdImageTag: s.etcdVersion } : {}),
      ...(s.etcdImageDigest ? { etcdImageDigest: s.etcdImageDigest } : {}),
      dataDevice: "/dev/xvdb",
    });
    this.ignitionTemplate = serialize(config);
    if (Buffer.byteLength(this.ignitionTemplate) > USER_DATA_LIMIT - 1024) {
      throw new Error(
        `the Ignition config is ${Buffer.byteLength(this.ignitionTemplate)} bytes, too close to EC2's 16 KB user-data limit; use renderPointerConfig`,
      );
    }
    const userData = ec2.UserData.custom(
      this.ignitionTemplate
        .split(BUCKET_PLACEHOLDER)
        .join(binary.s3BucketName)
        .split(KEY_PLACEHOLDER)
        .join(binary.s3ObjectKey)
        .split(ZONE_PLACEHOLDER)
        .join(this.hostedZone.hostedZoneId)
        .split(BACKUP_PLACEHOLDER)
        .join(this.backupBucket.bucketName)
        .split(SECRETS_KEY_PLACEHOLDER)
        .join(this.secretsKey?.keyArn ?? SECRETS_KEY_PLACEHOLDER),
    );

    const launchTemplate = new ec2.LaunchTemplate(this, "LaunchTemplate", {
      machineImage: nodeImage(this, { os: s.os, architecture: s.architecture, amis: s.amis }),
      instanceType: new ec2.InstanceType(s.instanceType),
      role: this.nodeRole,
      securityGroup: this.memberSecurityGroup,
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

    this.alarmTopic = props.alarmTopic ?? new sns.Topic(this, "Alarms", { enforceSSL: true });

    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, "Group", {
      autoScalingGroupName: asgName,
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate,
      minCapacity: s.clusterSize,
      // Desired starts at min; not set here, so a deploy never resets a size an operator changed.
      maxCapacity: s.clusterSize + 1,
      // The agent reports a member that cannot get healthy with SetInstanceHealth; EC2 checks the rest.
      healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: Duration.minutes(5) }),
      groupMetrics: [autoscaling.GroupMetrics.all()],
      notifications: [{ topic: this.alarmTopic, scalingEvents: autoscaling.ScalingEvents.ERRORS }],
      // One instance at a time, a new one in before an old one goes: quorum holds through an update.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({
        maxBatchSize: 1,
        minInstancesInService: s.clusterSize,
        pauseTime: Duration.minutes(5),
      }),
    });
    this.autoScalingGroup.node.addDependency(nodePolicy);
    // On stack delete: the group goes first (no node left to write), then the agent's records and
    // the TLS secrets, then the zone (infra/lib/teardown/teardown.ts).
    this.teardown = new Teardown(this, "Teardown", {
      hostedZone: this.hostedZone,
      domain: d,
      recordNames,
      secrets: (["ca", "operator"] as const).map((n) => ({ name: secretName(n), arn: secretArn(n) })),
    });
    this.autoScalingGroup.node.addDependency(this.teardown);
    if (props.operatorCertInvokerRoleArn !== undefined) {
      this.operatorCertIssuer = new OperatorCertIssuer(this, "OperatorCertIssuer", {
        caSecretName: secretName("ca"),
        caSecretArn: secretArn("ca"),
        ...(this.secretsKey ? { secretsKey: this.secretsKey } : {}),
        invokerRoleArn: props.operatorCertInvokerRoleArn,
      });
    }
    this.autoScalingGroup.addLifecycleHook("LaunchHook", {
      lifecycleHookName: HOOKS.launch.name,
      lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_LAUNCHING,
      heartbeatTimeout: HOOKS.launch.timeout,
      defaultResult: HOOKS.launch.result,
    });
    this.autoScalingGroup.addLifecycleHook("TerminateHook", {
      lifecycleHookName: HOOKS.terminate.name,
      lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
      heartbeatTimeout: HOOKS.terminate.timeout,
      defaultResult: HOOKS.terminate.result,
    });

    // ---- the bastion: SSM Session Manager, SSH only from the given CIDR; the agent binary for operators
    this.bastion = new ec2.BastionHostLinux(this, "Bastion", {
      vpc: this.vpc,
      subnetSelection: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup: bastionSg,
      instanceType: new ec2.InstanceType(s.architecture === "arm64" ? "t4g.micro" : "t3.micro"),
      machineImage: ec2.MachineImage.latestAmazonLinux2023({
        cpuType: s.architecture === "arm64" ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64,
      }),
      requireImdsv2: true,
      blockDevices: [{ deviceName: "/dev/xvda", volume: ec2.BlockDeviceVolume.ebs(10, { encrypted: true }) }],
    });
    // One hop: a container on the bastion cannot reach the instance's credentials.
    this.bastion.instance.instance.metadataOptions = {
      httpTokens: "required",
      httpPutResponseHopLimit: 1,
      httpEndpoint: "enabled",
    };
    if (s.bastionAllowedCidr) this.bastion.allowSshAccessFrom(ec2.Peer.ipv4(s.bastionAllowedCidr));
    if (s.bastionKeyName) this.bastion.instance.instance.keyName = s.bastionKeyName;
    this.bastion.instance.instance.monitoring = true;
    const bastionPolicy = new iam.Policy(this, "BastionPolicy", {
      roles: [this.bastion.role],
      statements: [
        ...readStatements(),
        // The operators' client certificate only: never the CA's secret.
        new iam.PolicyStatement({
          sid: "OperatorsCertificateOnly",
          actions: ["secretsmanager:GetSecretValue"],
          resources: [secretArn("operator")],
        }),
        ...secretsKeyStatements("OperatorsSecretKeyDecrypt", ["kms:Decrypt"], ["operator"]),
        // `etcd-agent snapshot list | restore` on the bastion: read only (an operator there holds
        // the cluster's admin certificate, so the keyspace is no secret from them).
        ...kmsStatements(["kms:Decrypt"]),
        new iam.PolicyStatement({
          sid: "ReadBackupsOfThisCluster",
          actions: ["s3:GetObject"],
          resources: [this.backupBucket.arnForObjects(`${backupPrefix}*`)],
        }),
        new iam.PolicyStatement({
          sid: "ListBackupsOfThisCluster",
          actions: ["s3:ListBucket", "s3:ListBucketVersions"],
          resources: [this.backupBucket.bucketArn],
          conditions: { StringLike: { "s3:prefix": [`${backupPrefix}*`] } },
        }),
      ],
    });
    this.bastion.instance.addUserData(
      "set -euo pipefail",
      `aws s3 cp ${binary.s3ObjectUrl} /usr/local/bin/etcd-agent`,
      `echo "${s.agentBinarySha512}  /usr/local/bin/etcd-agent" | sha512sum -c -`,
      "chmod 755 /usr/local/bin/etcd-agent",
      "cat > /etc/profile.d/etcd-agent.sh <<'EOF'",
      ...bastionProfile({
        domain: d,
        hostedZoneId: this.hostedZone.hostedZoneId,
        asgName,
        region: stack.region,
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

    // ---- alarms
    this.monitoring = new ClusterMonitoring(this, "Monitoring", {
      asgName,
      alarmTopic: this.alarmTopic,
      backupIntervalMinutes: DEFAULTS.backupIntervalMinutes,
    });
    const topicAction = new cwActions.SnsAction(this.alarmTopic);
    new cloudwatch.Alarm(this, "MembersInService", {
      alarmDescription: `fewer than ${s.clusterSize} instances of ${asgName} in service for 15 minutes: a member could not join or was reported unhealthy`,
      metric: new cloudwatch.Metric({
        namespace: "AWS/AutoScaling",
        metricName: "GroupInServiceInstances",
        dimensionsMap: { AutoScalingGroupName: asgName },
        statistic: "Minimum",
        period: Duration.minutes(5),
      }),
      threshold: s.clusterSize,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    }).addAlarmAction(topicAction);
    new events.Rule(this, "LifecycleFailures", {
      description: `launches and terminations of ${asgName} that failed (a lifecycle action abandoned or timed out)`,
      eventPattern: {
        source: ["aws.autoscaling"],
        detailType: ["EC2 Instance Launch Unsuccessful", "EC2 Instance Terminate Unsuccessful"],
        detail: { AutoScalingGroupName: [asgName] },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });
    new events.Rule(this, "UnhealthyMembers", {
      description: `members of ${asgName} the agent reported unhealthy (SetInstanceHealth) and the group replaced`,
      eventPattern: {
        source: ["aws.autoscaling"],
        detailType: ["EC2 Instance Terminate Successful"],
        detail: { AutoScalingGroupName: [asgName], Cause: [{ wildcard: "*health*" }] },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });

    new events.Rule(this, "RestoredFromSnapshot", {
      description: `${asgName} was restored from a snapshot: every member had been lost and writes after the snapshot are gone (the record under ${backupPrefix}events/ says which snapshot and why)`,
      eventPattern: {
        source: ["aws.s3"],
        detailType: ["Object Created"],
        detail: {
          bucket: { name: [this.backupBucket.bucketName] },
          object: { key: [{ prefix: `${backupPrefix}events/restore-` }] },
        },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });

    new events.Rule(this, "ForeignClusterFound", {
      description: `Two etcd clusters answer for ${asgName}: a leader found the cluster marker naming another cluster and stopped writing DNS (the record under ${backupPrefix}events/ names both; see docs/architecture.md, "Why exactly one cluster forms")`,
      eventPattern: {
        source: ["aws.s3"],
        detailType: ["Object Created"],
        detail: {
          bucket: { name: [this.backupBucket.bucketName] },
          object: { key: [{ prefix: `${backupPrefix}events/foreign-cluster-` }] },
        },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });
    // etcd raised an alarm (NOSPACE: the leader compacts, defragments and disarms it; CORRUPT: an
    // operator must look): the leader's agent writes a record of it there (agent/commands/storage.ts).
    new events.Rule(this, "EtcdAlarmRaised", {
      description: `etcd raised an alarm in ${asgName} (NOSPACE: writes refused until the agent has compacted, defragmented and disarmed; CORRUPT: never disarmed by the agent, an operator checks the data; the record under ${backupPrefix}events/ names it)`,
      eventPattern: {
        source: ["aws.s3"],
        detailType: ["Object Created"],
        detail: {
          bucket: { name: [this.backupBucket.bucketName] },
          object: { key: [{ prefix: `${backupPrefix}events/etcd-alarm-` }] },
        },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });
    // Deletes under the prefix that remove data for good (a version, not a delete marker): no node
    // can (no s3:DeleteObjectVersion; Object Lock on top), so one is a person or a stolen role.
    // The agent's own retention adds delete markers, which stay recoverable and do not alarm here.
    new events.Rule(this, "SnapshotsDeletedForGood", {
      description: `an object under ${backupPrefix} was permanently deleted (a version, not a delete marker): nothing in the agent does that`,
      eventPattern: {
        source: ["aws.s3"],
        detailType: ["Object Deleted"],
        detail: {
          bucket: { name: [this.backupBucket.bucketName] },
          object: { key: [{ prefix: backupPrefix }] },
          "deletion-type": ["Permanently Deleted"],
        },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });
    // Snapshots the agent refused (a key from the future, another cluster's, overwritten): the
    // agent writes events/refused-*.json, as it does for a restore.
    new events.Rule(this, "RefusedSnapshots", {
      description: `the agent of ${asgName} refused a snapshot under ${backupPrefix} as planted or overwritten (the record under ${backupPrefix}events/ names it and why)`,
      eventPattern: {
        source: ["aws.s3"],
        detailType: ["Object Created"],
        detail: {
          bucket: { name: [this.backupBucket.bucketName] },
          object: { key: [{ prefix: `${backupPrefix}events/refused-` }] },
        },
      },
      targets: [new eventTargets.SnsTopic(this.alarmTopic)],
    });

    // ---- outputs: each one's key is the construct's ID and a fixed name (EtcdBastionInstanceId for
    // the app's "Etcd"), which docs/deploy.md uses verbatim; keep them.
    const output = (name: string, value: string, description: string) =>
      new CfnOutput(this, name, { value, description }).overrideLogicalId(`${id}${name}`);
    output("BastionInstanceId", this.bastion.instanceId, "aws ssm start-session --target <this>");
    output("BastionPublicDnsName", this.bastion.instancePublicDnsName, "SSH, if bastionAllowedCidr is set");
    output(
      "AlarmTopicArn",
      this.alarmTopic.topicArn,
      "aws sns subscribe --topic-arn <this> --protocol email --notification-endpoint you@example.com",
    );
    output(
      "ClientSrvRecord",
      `_etcd-client-ssl._tcp.${d}`,
      "Clients discover the members here (etcdctl --discovery-srv), with TLS",
    );
    output("ServerSrvRecord", `_etcd-server-ssl._tcp.${d}`, "The members' peer URLs");
    output("ClientSecurityGroupId", this.clientSecurityGroup.securityGroupId, "Attach to etcd clients");
    output("HostedZoneId", this.hostedZone.hostedZoneId, `The private zone ${d}`);
    output("AutoScalingGroupName", asgName, "The members' group");
    output(
      "DashboardName",
      this.monitoring.dashboard.dashboardName,
      "The cluster's CloudWatch dashboard (membership, db size against the quota, backup age, the agent's holds)",
    );
    output(
      "BackupBucketName",
      this.backupBucket.bucketName,
      `Snapshots under ${backupPrefix}; kept on delete`,
    );
    output(
      "OperatorSecretName",
      secretName("operator"),
      "The operators' client certificate (etcd-agent client-cert fetches it on the bastion)",
    );
    output("CaSecretName", secretName("ca"), "The cluster's CA (the nodes only); deleted with the stack");
    if (this.operatorCertIssuer)
      output(
        "OperatorCertIssuerUrl",
        this.operatorCertIssuer.url.url,
        "etcd-agent client-cert --issuer-url <this>: a certificate in your own name, 8 hours (at most 12)",
      );
    // The new VPC's flow-log group (CDK keeps log groups on delete): its name, to remove it later.
    const flowLogGroup = this.vpc.node.tryFindChild("all")?.node.tryFindChild("LogGroup");
    if (flowLogGroup instanceof logs.LogGroup)
      output("FlowLogGroupName", flowLogGroup.logGroupName, "The VPC's flow logs; kept on delete");

    this.acknowledge(nodePolicy, {
      "AwsSolutions::AwsSolutions-IAM5[Resource::*]": DESCRIBE_STAR,
      [`AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:${Token.isUnresolved(stack.region) ? "<AWS::Region>" : stack.region}:${Token.isUnresolved(stack.account) ? "<AWS::AccountId>" : stack.account}:autoScalingGroup:*:autoScalingGroupName/${asgName}]`]:
        "The * is the group's generated UUID, unknown before it exists; the group name after it is fixed, so this is one group.",
      [`AwsSolutions::AwsSolutions-IAM5[Resource::<${stack.getLogicalId(this.backupBucket.node.defaultChild as s3.CfnBucket)}.Arn>/${backupPrefix}*]`]:
        "Snapshot objects are named by time under this cluster's own prefix; the agent writes, lists, reads and expires them there and nowhere else.",
    });
    this.acknowledge(bastionPolicy, {
      "AwsSolutions::AwsSolutions-IAM5[Resource::*]": DESCRIBE_STAR,
      [`AwsSolutions::AwsSolutions-IAM5[Resource::<${stack.getLogicalId(this.backupBucket.node.defaultChild as s3.CfnBucket)}.Arn>/${backupPrefix}*]`]:
        "Operators list and read this cluster's snapshots (etcd-agent snapshot list | restore), read only, under its own prefix.",
    });
    this.acknowledge(this.bastion, {
      "AwsSolutions::AwsSolutions-IAM5[Resource::*]":
        "BastionHostLinux's own grant for SSM Session Manager (ssmmessages, ec2messages, ssm:UpdateInstanceInformation), which have no resource-level permissions.",
      "AwsSolutions::AwsSolutions-IAM5[Action::ssmmessages:*]":
        "BastionHostLinux's own grant for SSM Session Manager's message channels.",
      "AwsSolutions::AwsSolutions-IAM5[Action::ec2messages:*]":
        "BastionHostLinux's own grant for SSM Session Manager's message channels.",
      "AwsSolutions::AwsSolutions-EC29":
        "The bastion holds nothing (no data, no keys: SSM or short-lived SSH); protection would block cdk destroy and replacement.",
    });
    this.acknowledge(this.backupBucket, {
      "AwsSolutions::AwsSolutions-S1":
        "Only the nodes' role can write here and the agent logs every snapshot it writes or expires; an access-log bucket would need its own retention. Enable CloudTrail S3 data events for an audit trail.",
    });
    if (s.backupReplicateToBucketArn) {
      const bucketId = stack.getLogicalId(this.backupBucket.node.defaultChild as s3.CfnBucket);
      this.acknowledge(this.backupBucket, {
        [`AwsSolutions::AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/*]`]:
          "S3's replication role (made by the Bucket for replicationRules) reads every version of this bucket to copy it.",
        [`AwsSolutions::AwsSolutions-IAM5[Resource::${s.backupReplicateToBucketArn}/*]`]:
          "S3's replication role writes the copies into the operator's replica bucket, in another account.",
      });
    }
    this.acknowledge(this.autoScalingGroup, {
      "AwsSolutions::AwsSolutions-AS3":
        "Launch and terminate errors go to the alarm topic (plus EventBridge rules for failed lifecycle actions and unhealthy members); successful launches and terminations are routine and would drown the alarms.",
    });
  }

  /**
   * cdk-nag AwsSolutions findings this design accepts, each on the construct it concerns and with
   * the reason a reviewer needs (also in docs/deploy.md). Nothing else is acknowledged.
   */
  private acknowledge(construct: Construct, findings: Record<string, string>): void {
    for (const [id, reason] of Object.entries(findings))
      Validations.of(construct).acknowledge({ id, reason });
  }
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

const DESCRIBE_STAR =
  "autoscaling:DescribeAutoScalingGroups, DescribeAutoScalingInstances, DescribeLifecycleHooks and ec2:DescribeInstances support no resource-level permissions: AWS requires Resource *. They only read. The nodes' cloudwatch:PutMetricData has none either; a condition limits it to the agent's namespace.";

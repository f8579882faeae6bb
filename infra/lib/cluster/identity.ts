// What each role may do, least privilege: the nodes' role and policy, the operators' policy on the
// bastion, the TLS secrets' names and key, and the snapshots' key through S3. docs/deploy.md and
// test/infra/etcd-cluster.test.ts ("IAM: each role's statements against the table") hold the same
// tables; a statement widened here fails there.
import {
  ArnFormat,
  Duration,
  aws_iam as iam,
  aws_kms as kms,
  RemovalPolicy,
  type aws_route53 as route53,
  Stack,
  type aws_s3 as s3,
  Token,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import { METRICS_NAMESPACE } from "../cluster-monitoring.js";
import type { ValidSettings } from "../props.js";
import { acknowledge, DESCRIBE_STAR } from "./acknowledge.js";
import type { Storage } from "./storage.js";

export type SecretKind = "ca" | "operator";

export interface IdentityProps {
  settings: ValidSettings;
  asgName: string;
  hostedZone: route53.IHostedZone;
  storage: Storage;
}

export interface Identity {
  nodeRole: iam.Role;
  nodePolicy: iam.Policy;
  /** Both TLS secrets' customer-managed key (secretsCustomerManagedKey, default on). */
  secretsKey: kms.Key | undefined;
  /** The records the agent writes, by name pattern (the nodes may change these and no others). */
  recordNames: string[];
  /** The TLS secrets, made by the first node: the CA, then the operators' certificate. */
  secrets: Record<SecretKind, { name: string; arn: string }>;
  /** The operators' policy on `role` (the bastion's): read only, the operators' certificate, never the CA. */
  grantOperators(role: iam.IRole): iam.Policy;
}

/** Made in `scope` itself (the EtcdCluster), so each resource keeps its construct path and logical ID. */
export function identity(scope: Construct, props: IdentityProps): Identity {
  const { settings: s, asgName, hostedZone } = props;
  const { binary, backupBucket, backupKey, backupPrefix } = props.storage;
  const stack = Stack.of(scope);
  const d = s.domain;
  const nodeRole = new iam.Role(scope, "NodeRole", {
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
      resources: [hostedZone.hostedZoneArn],
    }),
    new iam.PolicyStatement({
      sid: "FetchTheAgentBinary",
      actions: ["s3:GetObject"],
      resources: [binary.bucket.arnForObjects(binary.s3ObjectKey)],
    }),
  ];
  // The TLS secrets (made by the first node: the CA, then the operators' certificate). Secrets
  // Manager appends six random characters to a secret's name in its ARN.
  const secretName = (name: SecretKind) => `etcd-agent/${asgName}/${name}`;
  const secretArn = (name: SecretKind) =>
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
  const secretsKey = s.secretsCustomerManagedKey
    ? new kms.Key(scope, "SecretsKey", {
        description: `etcd-agent TLS secrets of ${asgName}`,
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.DESTROY,
        pendingWindow: Duration.days(7),
      })
    : undefined;
  const secretsKeyStatements = (sid: string, actions: string[], secrets: SecretKind[]) =>
    secretsKey
      ? [
          new iam.PolicyStatement({
            sid,
            actions,
            resources: [secretsKey.keyArn],
            conditions: {
              StringEquals: { "kms:ViaService": `secretsmanager.${stack.region}.amazonaws.com` },
              StringLike: { "kms:EncryptionContext:SecretARN": secrets.map(secretArn) },
            },
          }),
        ]
      : [];
  // The snapshots' key, through S3 only (kms:ViaService): nodes encrypt and decrypt, the bastion decrypts.
  const kmsStatements = (actions: string[]) =>
    backupKey
      ? [
          new iam.PolicyStatement({
            sid: actions.includes("kms:GenerateDataKey")
              ? "SnapshotKeyThroughS3"
              : "SnapshotKeyDecryptThroughS3",
            actions,
            resources: [backupKey.keyArn],
            conditions: { StringEquals: { "kms:ViaService": `s3.${stack.region}.amazonaws.com` } },
          }),
        ]
      : [];
  const nodePolicy = new iam.Policy(scope, "NodePolicy", {
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
        resources: [hostedZone.hostedZoneArn],
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
        resources: [backupBucket.arnForObjects(`${backupPrefix}*`)],
      }),
      ...kmsStatements(["kms:Decrypt", "kms:GenerateDataKey"]),
      new iam.PolicyStatement({
        sid: "ListBackupsOfThisCluster",
        // Versions too: a snapshot key with a second version was overwritten, and is refused.
        actions: ["s3:ListBucket", "s3:ListBucketVersions"],
        resources: [backupBucket.bucketArn],
        conditions: { StringLike: { "s3:prefix": [`${backupPrefix}*`] } },
      }),
    ],
  });
  nodePolicy.attachToRole(nodeRole);

  const bucketId = () => stack.getLogicalId(backupBucket.node.defaultChild as s3.CfnBucket);
  acknowledge(nodePolicy, {
    "AwsSolutions::AwsSolutions-IAM5[Resource::*]": DESCRIBE_STAR,
    [`AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:${Token.isUnresolved(stack.region) ? "<AWS::Region>" : stack.region}:${Token.isUnresolved(stack.account) ? "<AWS::AccountId>" : stack.account}:autoScalingGroup:*:autoScalingGroupName/${asgName}]`]:
      "The * is the group's generated UUID, unknown before it exists; the group name after it is fixed, so this is one group.",
    [`AwsSolutions::AwsSolutions-IAM5[Resource::<${bucketId()}.Arn>/${backupPrefix}*]`]:
      "Snapshot objects are named by time under this cluster's own prefix; the agent writes, lists, reads and expires them there and nowhere else.",
  });

  const grantOperators = (role: iam.IRole): iam.Policy => {
    const bastionPolicy = new iam.Policy(scope, "BastionPolicy", {
      roles: [role],
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
          resources: [backupBucket.arnForObjects(`${backupPrefix}*`)],
        }),
        new iam.PolicyStatement({
          sid: "ListBackupsOfThisCluster",
          actions: ["s3:ListBucket", "s3:ListBucketVersions"],
          resources: [backupBucket.bucketArn],
          conditions: { StringLike: { "s3:prefix": [`${backupPrefix}*`] } },
        }),
      ],
    });
    acknowledge(bastionPolicy, {
      "AwsSolutions::AwsSolutions-IAM5[Resource::*]": DESCRIBE_STAR,
      [`AwsSolutions::AwsSolutions-IAM5[Resource::<${bucketId()}.Arn>/${backupPrefix}*]`]:
        "Operators list and read this cluster's snapshots (etcd-agent snapshot list | restore), read only, under its own prefix.",
    });
    return bastionPolicy;
  };

  const secret = (n: SecretKind) => ({ name: secretName(n), arn: secretArn(n) });
  return {
    nodeRole,
    nodePolicy,
    secretsKey,
    recordNames,
    secrets: { ca: secret("ca"), operator: secret("operator") },
    grantOperators,
  };
}

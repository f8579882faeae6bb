// biome-ignore-all lint/suspicious/noExplicitAny: a synthesized CloudFormation template is untyped JSON
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub strings, not templates
// The CDK construct: resources, policies and hooks as synthesized, the user data as a node would
// get it (checked by ignition-validate), property validation, and cdk-nag's AwsSolutions pack.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack, aws_s3 as s3, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/config.js";
import { parseEnvFile } from "../../agent/planner/etcd-env.js";
import { EtcdCluster, type EtcdClusterProps } from "../../infra/lib/etcd-cluster.js";
import { existingVpc } from "../../infra/lib/existing-vpc.js";
import { amiContextKey } from "../../infra/lib/node-image.js";
import { type EtcdClusterSettings, validateSettings } from "../../infra/lib/props.js";
import { bundleHandler } from "../../infra/lib/teardown/teardown.js";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const AMIS = { "eu-west-1": "ami-0123456789abcdef0" };
const work = mkdtempSync(join(tmpdir(), "infra-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function synth(props: Partial<EtcdClusterProps> = {}, extra?: (stack: Stack) => void) {
  const app = new App({ outdir: mkdtempSync(join(work, "out-")) });
  const stack = new Stack(app, "Test", { env: { region: "eu-west-1" } });
  const cluster = new EtcdCluster(stack, "Etcd", { amis: AMIS, ...props });
  extra?.(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  const template = Template.fromJSON(assembly.getStackByName("Test").template);
  return { stack, cluster, template, assembly };
}

const { cluster, template } = synth();
const SECRETS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const asgName = "Test-Etcd";

/** Resolves the intrinsic functions in the user data with fixed account, region and IDs. */
function resolve(v: unknown): string {
  if (typeof v === "string") return v;
  const o = v as Record<string, unknown>;
  if (o.Ref === "AWS::AccountId") return "123456789012";
  if (o.Ref === "AWS::Region") return "eu-west-1";
  if (o.Ref === "AWS::URLSuffix") return "amazonaws.com";
  if (typeof o.Ref === "string") {
    if (o.Ref.includes("Zone")) return "Z0123456789TESTZONE";
    if (o.Ref.includes("Backups")) return "etcd-backups-bucket";
    return `ref-${o.Ref}`;
  }
  if (o["Fn::Join"]) {
    const [sep, parts] = o["Fn::Join"] as [string, unknown[]];
    return parts.map(resolve).join(sep);
  }
  if (o["Fn::Sub"]) {
    return (o["Fn::Sub"] as string)
      .replaceAll("${AWS::AccountId}", "123456789012")
      .replaceAll("${AWS::Region}", "eu-west-1")
      .replaceAll("${AWS::Partition}", "aws");
  }
  if (o["Fn::Base64"]) return resolve(o["Fn::Base64"]);
  if (o["Fn::GetAtt"] && String((o["Fn::GetAtt"] as unknown[])[0]).includes("SecretsKey"))
    return SECRETS_KEY_ARN;
  throw new Error(`cannot resolve ${JSON.stringify(v).slice(0, 200)}`);
}

function userDataConfig(t: Template): { text: string; json: Record<string, any> } {
  // The members' template (the bastion has one of its own, for IMDSv2, with no user data).
  const lts = Object.values(t.findResources("AWS::EC2::LaunchTemplate")).filter(
    (r: any) => r.Properties.LaunchTemplateData.UserData !== undefined,
  );
  expect(lts).toHaveLength(1);
  const text = resolve((lts[0] as any).Properties.LaunchTemplateData.UserData);
  return { text, json: JSON.parse(text) };
}

describe("EtcdCluster resources", () => {
  it("launch template: IMDSv2 required with hop limit 1, encrypted root and data volumes", () => {
    template.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: Match.objectLike({ HttpTokens: "required", HttpPutResponseHopLimit: 1 }),
        InstanceType: "m6i.large",
        BlockDeviceMappings: [
          { DeviceName: "/dev/xvda", Ebs: Match.objectLike({ Encrypted: true, VolumeType: "gp3" }) },
          {
            DeviceName: "/dev/xvdb",
            Ebs: Match.objectLike({ Encrypted: true, VolumeSize: 20, VolumeType: "gp3" }),
          },
        ],
      }),
    });
  });

  it("the group: fixed name, 3 instances in the private subnets, a rolling update one at a time", () => {
    const groups = template.findResources("AWS::AutoScaling::AutoScalingGroup");
    const [group] = Object.values(groups) as any[];
    expect(group.Properties).toMatchObject({ AutoScalingGroupName: asgName, MinSize: "3", MaxSize: "4" });
    expect(group.Properties.DesiredCapacity).toBeUndefined();
    const subnets = template.findResources("AWS::EC2::Subnet");
    const privateIds = Object.entries(subnets)
      .filter(([, r]) => (r as any).Properties.Tags.some((t: any) => t.Value === "Private"))
      .map(([id]) => id);
    expect(privateIds).toHaveLength(3);
    expect(group.Properties.VPCZoneIdentifier.map((r: any) => r.Ref).sort()).toEqual(privateIds.sort());
    expect(group.UpdatePolicy.AutoScalingRollingUpdate).toMatchObject({
      MaxBatchSize: 1,
      MinInstancesInService: 3,
    });
  });

  it("launch and terminate lifecycle hooks with their timeouts and default results", () => {
    template.resourceCountIs("AWS::AutoScaling::LifecycleHook", 2);
    template.hasResourceProperties("AWS::AutoScaling::LifecycleHook", {
      LifecycleHookName: "etcd-launch",
      LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING",
      HeartbeatTimeout: 900,
      DefaultResult: "ABANDON",
    });
    template.hasResourceProperties("AWS::AutoScaling::LifecycleHook", {
      LifecycleHookName: "etcd-terminate",
      LifecycleTransition: "autoscaling:EC2_INSTANCE_TERMINATING",
      HeartbeatTimeout: 600,
      DefaultResult: "CONTINUE",
    });
  });

  it("security groups: 2380 only between members; 2379 from members, clients and the bastion", () => {
    const sgId = (c: { securityGroupId: string }) => Stack.of(cluster).resolve(c.securityGroupId);
    const members = sgId(cluster.memberSecurityGroup);
    const ingress = Object.values(template.findResources("AWS::EC2::SecurityGroupIngress")).map(
      (r: any) => r.Properties,
    );
    const toMembers = ingress.filter((p) => JSON.stringify(p.GroupId) === JSON.stringify(members));
    const peers = toMembers.filter((p) => p.FromPort === 2380);
    expect(peers).toHaveLength(1);
    expect(peers[0].SourceSecurityGroupId).toEqual(members);
    const clientPort = toMembers
      .filter((p) => p.FromPort === 2379)
      .map((p) => JSON.stringify(p.SourceSecurityGroupId));
    expect(clientPort.sort()).toEqual(
      [
        members,
        sgId(cluster.clientSecurityGroup),
        sgId(cluster.bastion.connections.securityGroups[0] as never),
      ]
        .map((x) => JSON.stringify(x))
        .sort(),
    );
    // Nothing reaches a member from an address range: only from security groups.
    expect(toMembers.every((p) => p.CidrIp === undefined)).toBe(true);
    const inline = Object.values(template.findResources("AWS::EC2::SecurityGroup")).flatMap(
      (r: any) => r.Properties.SecurityGroupIngress ?? [],
    );
    expect(inline.filter((r: any) => r.CidrIp === "0.0.0.0/0")).toEqual([]);
  });

  it("members send only what they need (#16): HTTPS out (AWS's APIs, the registry, OS updates), 2379/2380 to members", () => {
    const sgId = (c: { securityGroupId: string }) => Stack.of(cluster).resolve(c.securityGroupId);
    const members = sgId(cluster.memberSecurityGroup);
    const memberSg = Object.values(template.findResources("AWS::EC2::SecurityGroup")).find(
      (r: any) => r.Properties.GroupDescription === "etcd members of Test-Etcd",
    ) as any;
    const inline = (memberSg.Properties.SecurityGroupEgress ?? []) as any[];
    const separate = Object.values(template.findResources("AWS::EC2::SecurityGroupEgress"))
      .map((r: any) => r.Properties)
      .filter((p) => JSON.stringify(p.GroupId) === JSON.stringify(members));
    const rules = [...inline, ...separate].map((r) => ({
      proto: r.IpProtocol,
      from: r.FromPort,
      to: r.ToPort,
      dest: r.CidrIp ?? (r.DestinationSecurityGroupId ? "members" : JSON.stringify(r)),
    }));
    expect(rules.sort((a, b) => a.from - b.from)).toEqual([
      { proto: "tcp", from: 443, to: 443, dest: "0.0.0.0/0" },
      { proto: "tcp", from: 2379, to: 2379, dest: "members" },
      { proto: "tcp", from: 2380, to: 2380, dest: "members" },
    ]);
    for (const r of separate) expect(r.DestinationSecurityGroupId).toEqual(members);
  });

  it("IAM for the nodes: describe-only on *, everything else scoped to this group, zone, records and objects", () => {
    const policies = template.findResources("AWS::IAM::Policy");
    const node = Object.entries(policies).find(([id]) => id.startsWith("EtcdNodePolicy"))?.[1] as any;
    const statements = node.Properties.PolicyDocument.Statement as any[];
    const bySid = Object.fromEntries(statements.map((s) => [s.Sid, s]));
    const star = statements.filter((s) => s.Resource === "*");
    expect(star.map((s) => s.Sid).sort()).toEqual(["DescribeCannotBeScoped", "PublishMetricsToOwnNamespace"]);
    expect(
      bySid.DescribeCannotBeScoped.Action.every((a: string) => /^(autoscaling|ec2):Describe/.test(a)),
    ).toBe(true);
    expect(JSON.stringify(bySid.ThisGroupOnly.Resource)).toContain(`autoScalingGroupName/${asgName}`);
    expect(bySid.ChangeThisClustersRecordsOnly.Condition).toEqual({
      "ForAllValues:StringLike": {
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
          "_etcd-server-ssl._tcp.etcd.internal",
          "_etcd-client-ssl._tcp.etcd.internal",
          "_etcd-server._tcp.etcd.internal",
          "_etcd-client._tcp.etcd.internal",
          "_etcd-cluster.etcd.internal",
          "i-*.etcd.internal",
        ],
      },
      "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsRecordTypes": ["A", "SRV", "TXT"] },
    });
    expect(JSON.stringify(bySid.ChangeThisClustersRecordsOnly.Resource)).toContain("hostedzone/");
    expect(JSON.stringify(bySid.BackupsOfThisCluster.Resource)).toContain(`/backups/${asgName}/*`);
    expect(bySid.ListBackupsOfThisCluster.Condition).toEqual({
      StringLike: { "s3:prefix": [`backups/${asgName}/*`] },
    });
    expect(bySid.FetchTheAgentBinary.Action).toBe("s3:GetObject");
    // The bastion reads the operators' certificate, never the CA.
    const bastion = Object.entries(policies).find(([id]) => id.startsWith("EtcdBastionPolicy"))?.[1] as any;
    const bastionSecrets = (bastion.Properties.PolicyDocument.Statement as any[]).filter((st) =>
      [st.Action].flat().some((a: string) => a.startsWith("secretsmanager:")),
    );
    expect(bastionSecrets.map((st) => st.Action)).toEqual(["secretsmanager:GetSecretValue"]);
    expect(JSON.stringify(bastionSecrets[0].Resource)).toContain(`etcd-agent/${asgName}/operator-??????`);
    expect(JSON.stringify(bastion)).not.toContain(`etcd-agent/${asgName}/ca-`);
    // No action wildcard anywhere in the nodes' policy.
    expect(statements.flatMap((s) => [s.Action].flat()).some((a: string) => a.includes("*"))).toBe(false);
  });

  it("a private hosted zone in the VPC, a versioned encrypted backup bucket, alarms and outputs", () => {
    template.hasResourceProperties("AWS::Route53::HostedZone", {
      Name: "etcd.internal.",
      VPCs: [Match.objectLike({ VPCId: Match.anyValue() })],
    });
    template.hasResourceProperties("AWS::S3::Bucket", {
      VersioningConfiguration: { Status: "Enabled" },
      PublicAccessBlockConfiguration: Match.objectLike({
        BlockPublicAcls: true,
        RestrictPublicBuckets: true,
      }),
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "GroupInServiceInstances",
      Threshold: 3,
      ComparisonOperator: "LessThanThreshold",
    });
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: Match.objectLike({
        "detail-type": ["EC2 Instance Launch Unsuccessful", "EC2 Instance Terminate Unsuccessful"],
      }),
    });
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: Match.objectLike({ "detail-type": ["EC2 Instance Terminate Successful"] }),
    });
    // An automatic restore writes a record under events/; the bucket's EventBridge events alarm on it.
    template.hasResourceProperties("AWS::S3::Bucket", {
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
    });
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Created"],
        detail: {
          bucket: { name: [Match.objectLike({ Ref: Match.stringLikeRegexp("Backups") })] },
          object: { key: [{ prefix: `backups/${asgName}/events/restore-` }] },
        },
      },
      Targets: [Match.objectLike({ Arn: Match.objectLike({ Ref: Match.stringLikeRegexp("Alarms") }) })],
    });
    // A leader that finds another cluster behind the marker writes a record of its own there.
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Created"],
        detail: {
          bucket: { name: [Match.objectLike({ Ref: Match.stringLikeRegexp("Backups") })] },
          object: { key: [{ prefix: `backups/${asgName}/events/foreign-cluster-` }] },
        },
      },
      Targets: [Match.objectLike({ Arn: Match.objectLike({ Ref: Match.stringLikeRegexp("Alarms") }) })],
    });
    // An etcd alarm (NOSPACE, CORRUPT) the leader saw raised: a record of it there too (#18).
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Created"],
        detail: {
          bucket: { name: [Match.objectLike({ Ref: Match.stringLikeRegexp("Backups") })] },
          object: { key: [{ prefix: `backups/${asgName}/events/etcd-alarm-` }] },
        },
      },
      Targets: [Match.objectLike({ Arn: Match.objectLike({ Ref: Match.stringLikeRegexp("Alarms") }) })],
    });
    template.hasOutput("EtcdClientSrvRecord", { Value: "_etcd-client-ssl._tcp.etcd.internal" });
  });
});

/**
 * What each role may do, statement by statement: the actions exactly, and what each statement's
 * resource must name. A statement, action or resource beyond this table fails the test (#16).
 */
const DESCRIBE = [
  "autoscaling:DescribeAutoScalingGroups",
  "autoscaling:DescribeAutoScalingInstances",
  "autoscaling:DescribeLifecycleHooks",
  "ec2:DescribeInstances",
];
const ZONE = /^arn:<AWS::Partition>:route53:::hostedzone\/<EtcdZone[0-9A-F]+>$/;
const BINARY =
  /^arn:<AWS::Partition>:s3:::cdk-[a-z0-9]+-assets-<AWS::AccountId>-eu-west-1\/[0-9a-f]+(\.[0-9a-f]+)?$/;
const SECRET = (name: string) =>
  new RegExp(
    `^arn:<AWS::Partition>:secretsmanager:eu-west-1:<AWS::AccountId>:secret:etcd-agent/Test-Etcd/${name}-\\?{6}$`,
  );
const SNAPSHOTS = /^<EtcdBackups[0-9A-F]+\.Arn>\/backups\/Test-Etcd\/\*$/;
const BUCKET = /^<EtcdBackups[0-9A-F]+\.Arn>$/;
const ON_PREFIX = { StringLike: { "s3:prefix": ["backups/Test-Etcd/*"] } };
const KEY = /^<EtcdBackupKey[0-9A-F]+\.Arn>$/;
const VIA_S3 = { StringEquals: { "kms:ViaService": "s3.eu-west-1.amazonaws.com" } };
const SECRETS_KEY = /^<EtcdSecretsKey[0-9A-F]+\.Arn>$/;
/** Through Secrets Manager only, and only for the named secrets (its encryption context names the secret). */
const VIA_SECRETS = (...names: string[]) => ({
  StringEquals: { "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com" },
  StringLike: {
    "kms:EncryptionContext:SecretARN": names.map(
      (n) =>
        `arn:<AWS::Partition>:secretsmanager:eu-west-1:<AWS::AccountId>:secret:etcd-agent/Test-Etcd/${n}-??????`,
    ),
  },
});

/**
 * What each role may do, statement by statement: the actions exactly, the resources each must be,
 * the conditions exactly. A statement, action, resource or loosened condition beyond this table
 * fails the test (#16).
 */
const MAY: Record<
  "node" | "bastion",
  Record<string, { actions: string[]; resources: RegExp[]; condition?: unknown }>
> = {
  node: {
    DescribeCannotBeScoped: { actions: DESCRIBE, resources: [/^\*$/] },
    // PutMetricData has no resource-level permissions: the namespace condition is its scope.
    PublishMetricsToOwnNamespace: {
      actions: ["cloudwatch:PutMetricData"],
      resources: [/^\*$/],
      condition: { StringEquals: { "cloudwatch:namespace": "EtcdAgent" } },
    },
    ReadThisZone: { actions: ["route53:ListResourceRecordSets"], resources: [ZONE] },
    FetchTheAgentBinary: { actions: ["s3:GetObject"], resources: [BINARY] },
    // Created once, then read: no PutSecretValue, so a node cannot replace the CA.
    TheCaCreatedOnceThenRead: {
      actions: ["secretsmanager:CreateSecret", "secretsmanager:GetSecretValue"],
      resources: [SECRET("ca")],
    },
    TheOperatorsCertificate: {
      actions: [
        "secretsmanager:CreateSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
      ],
      resources: [SECRET("operator")],
    },
    // Any instance of this group: AWS has no condition naming the caller's own instance here.
    ThisGroupOnly: {
      actions: [
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:SetInstanceHealth",
      ],
      resources: [
        /^arn:<AWS::Partition>:autoscaling:eu-west-1:<AWS::AccountId>:autoScalingGroup:\*:autoScalingGroupName\/Test-Etcd$/,
      ],
    },
    ChangeThisClustersRecordsOnly: {
      actions: ["route53:ChangeResourceRecordSets"],
      resources: [ZONE],
      condition: {
        "ForAllValues:StringLike": {
          "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
            "_etcd-server-ssl._tcp.etcd.internal",
            "_etcd-client-ssl._tcp.etcd.internal",
            "_etcd-server._tcp.etcd.internal",
            "_etcd-client._tcp.etcd.internal",
            "_etcd-cluster.etcd.internal",
            "i-*.etcd.internal",
          ],
        },
        "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsRecordTypes": ["A", "SRV", "TXT"] },
      },
    },
    // No DeleteObjectVersion, no PutObjectRetention/LegalHold, no BypassGovernanceRetention.
    BackupsOfThisCluster: {
      actions: ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
      resources: [SNAPSHOTS],
    },
    ListBackupsOfThisCluster: {
      actions: ["s3:ListBucket", "s3:ListBucketVersions"],
      resources: [BUCKET],
      condition: ON_PREFIX,
    },
    SnapshotKeyThroughS3: {
      actions: ["kms:Decrypt", "kms:GenerateDataKey"],
      resources: [KEY],
      condition: VIA_S3,
    },
    // CreateSecret and PutSecretValue need both (Secrets Manager's documented permissions).
    SecretsKeyThroughSecretsManager: {
      actions: ["kms:Decrypt", "kms:GenerateDataKey"],
      resources: [SECRETS_KEY],
      condition: VIA_SECRETS("ca", "operator"),
    },
  },
  bastion: {
    DescribeCannotBeScoped: { actions: DESCRIBE, resources: [/^\*$/] },
    ReadThisZone: { actions: ["route53:ListResourceRecordSets"], resources: [ZONE] },
    FetchTheAgentBinary: { actions: ["s3:GetObject"], resources: [BINARY] },
    OperatorsCertificateOnly: { actions: ["secretsmanager:GetSecretValue"], resources: [SECRET("operator")] },
    ReadBackupsOfThisCluster: { actions: ["s3:GetObject"], resources: [SNAPSHOTS] },
    SnapshotKeyDecryptThroughS3: { actions: ["kms:Decrypt"], resources: [KEY], condition: VIA_S3 },
    // The operators' secret only: the key cannot open the CA's secret for the bastion.
    OperatorsSecretKeyDecrypt: {
      actions: ["kms:Decrypt"],
      resources: [SECRETS_KEY],
      condition: VIA_SECRETS("operator"),
    },
    ListBackupsOfThisCluster: {
      actions: ["s3:ListBucket", "s3:ListBucketVersions"],
      resources: [BUCKET],
      condition: ON_PREFIX,
    },
  },
};

/** A condition's values as text (arnText for each intrinsic). */
function conditionText(c: unknown): unknown {
  if (c === undefined || typeof c === "string") return c;
  if (Array.isArray(c)) return c.map(conditionText);
  const o = c as Record<string, unknown>;
  if (o.Ref || o["Fn::GetAtt"] || o["Fn::Join"] || o["Fn::Sub"]) return arnText(o);
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, conditionText(v)]));
}

/** A resource as text: Fn::Join joined, a Ref as <Name>, a GetAtt as <Name.Attr>. */
function arnText(v: unknown): string {
  if (typeof v === "string") return v;
  const o = v as Record<string, any>;
  if (o.Ref) return `<${o.Ref}>`;
  if (o["Fn::GetAtt"]) return `<${o["Fn::GetAtt"].join(".")}>`;
  if (o["Fn::Join"]) return (o["Fn::Join"][1] as unknown[]).map(arnText).join(o["Fn::Join"][0]);
  if (o["Fn::Sub"]) return (o["Fn::Sub"] as string).replace(/\$\{([^}]+)\}/g, "<$1>");
  throw new Error(`cannot read ${JSON.stringify(v)}`);
}

describe("the cluster's dashboard and metric alarms (#18)", () => {
  const alarms = template.findResources("AWS::CloudWatch::Alarm");
  const agentAlarm = (metric: string) =>
    Object.values(alarms).find(
      (a: any) => a.Properties.Namespace === "EtcdAgent" && a.Properties.MetricName === metric,
    ) as any;
  const topic = Object.keys(template.findResources("AWS::SNS::Topic"))[0] as string;

  it.each([
    // metric, statistic, comparison, threshold, periods of seconds, missing data
    ["BackupAgeSeconds", "Minimum", "GreaterThanThreshold", 2 * 15 * 60, [2, 300], "breaching"],
    ["QuotaUsedPercent", "Maximum", "GreaterThanThreshold", 80, [1, 300], "notBreaching"],
    ["EtcdAlarms", "Maximum", "GreaterThanOrEqualToThreshold", 1, [1, 60], "notBreaching"],
    ["UnhealthyMembers", "Minimum", "GreaterThanOrEqualToThreshold", 1, [2, 300], "notBreaching"],
    ["LearnersWaiting", "Minimum", "GreaterThanOrEqualToThreshold", 1, [3, 300], "notBreaching"],
    ["Members", "SampleCount", "LessThanThreshold", 1, [2, 300], "breaching"],
    ["CycleFailures", "Sum", "GreaterThanOrEqualToThreshold", 3, [1, 300], "notBreaching"],
  ] as const)("alarm on %s (%s %s %d) to the alarm topic, on this cluster's dimension", (metric, stat, cmp, threshold, [
    n,
    period,
  ], missing) => {
    const a = agentAlarm(metric);
    expect(a?.Properties).toMatchObject({
      Statistic: stat,
      ComparisonOperator: cmp,
      Threshold: threshold,
      EvaluationPeriods: n,
      Period: period,
      TreatMissingData: missing,
      Dimensions: [{ Name: "ClusterName", Value: asgName }],
      AlarmActions: [{ Ref: topic }],
      OKActions: [{ Ref: topic }],
    });
  });

  it("a dashboard of membership, leader changes, db size against the quota, backup age and the agent's holds; its name an output beside the topic's ARN", () => {
    const dashboards = Object.values(template.findResources("AWS::CloudWatch::Dashboard")) as any[];
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
    for (const title of [
      "Membership",
      "Leader changes and etcd alarms",
      "DB size per member against the quota",
      "Age of the newest snapshot (seconds)",
      "The agent: holds by rule (cycles held)",
      "The agent: actions taken, and failed cycles",
      "Alarms",
    ])
      expect(body).toContain(title);
    for (const metric of ["LearnersWaiting", "LeaderChanges", "QuotaBytes", "BackupAgeSeconds"])
      expect(body).toContain(metric);
    expect(body).toContain("SEARCH('{EtcdAgent,ClusterName,Member} MetricName=");
    expect(body).toContain("SEARCH('{EtcdAgent,ClusterName,Rule} MetricName=");
    for (const metric of ["DbSizeBytes", "DbSizeInUseBytes", "HeldBack", "ActionsTaken"])
      expect(body).toContain(metric);
    const outputs = template.findOutputs("*");
    expect(dashboards[0].Properties.DashboardName).toBe(`etcd-${asgName}`);
    expect(outputs.EtcdDashboardName?.Value).toEqual({
      Ref: expect.stringMatching(/^EtcdMonitoringDashboard/),
    });
    expect(outputs.EtcdAlarmTopicArn?.Value).toEqual({ Ref: topic });
  });

  it("the nodes publish to that namespace: the agent's settings name it", () => {
    expect(decodeURIComponent(cluster.ignitionTemplate)).toContain(
      "\nETCD_AGENT_METRICS_NAMESPACE=EtcdAgent\n",
    );
  });
});

describe("IAM: each role's statements against the table of what it may do", () => {
  const policies = template.findResources("AWS::IAM::Policy");
  const statementsOf = (prefix: string) =>
    (Object.entries(policies).find(([id]) => id.startsWith(prefix))?.[1] as any).Properties.PolicyDocument
      .Statement as any[];
  it.each([
    ["node", "EtcdNodePolicy"],
    ["bastion", "EtcdBastionPolicy"],
  ] as const)("the %s role: exactly the table's statements, actions and resources", (role, prefix) => {
    const statements = statementsOf(prefix);
    const table = MAY[role];
    expect(statements.map((st) => st.Sid).sort()).toEqual(Object.keys(table).sort());
    for (const st of statements) {
      const may = table[st.Sid] as (typeof table)[string];
      const resources = [st.Resource].flat().map(arnText);
      expect({
        sid: st.Sid,
        effect: st.Effect,
        actions: [st.Action].flat().sort(),
        n: resources.length,
      }).toEqual({
        sid: st.Sid,
        effect: "Allow",
        actions: may.actions,
        n: may.resources.length,
      });
      for (const [k, r] of resources.entries()) expect(r).toMatch(may.resources[k] as RegExp);
      expect({ sid: st.Sid, condition: conditionText(st.Condition) }).toEqual({
        sid: st.Sid,
        condition: may.condition,
      });
    }
  });

  it("the CA secret: no role may put a new value (a compromised node cannot replace the CA)", () => {
    const all = Object.values(policies).flatMap((p: any) => p.Properties.PolicyDocument.Statement as any[]);
    const onCa = all.filter((st) => JSON.stringify(st.Resource).includes("/ca-"));
    expect(onCa.length).toBeGreaterThan(0);
    expect(
      onCa
        .flatMap((st) => [st.Action].flat())
        .filter(
          (a) =>
            a !== "secretsmanager:GetSecretValue" &&
            a !== "secretsmanager:CreateSecret" &&
            !a.startsWith("secretsmanager:Delete") &&
            a !== "secretsmanager:DescribeSecret",
        ),
    ).toEqual([]);
  });
});

describe("the backup bucket: nothing a node writes can be rewritten, the newest always kept", () => {
  it("Object Lock on by default (governance, 14 days): a node cannot overwrite or delete a locked version", () => {
    template.hasResourceProperties("AWS::S3::Bucket", {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: "Enabled",
        Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 14 } },
      },
    });
  });

  it("no lifecycle rule expires a current version (the newest snapshot stays); expired ones go after the lock", () => {
    const buckets = Object.values(template.findResources("AWS::S3::Bucket")) as any[];
    const backups = buckets.filter((b) => b.Properties.ObjectLockEnabled !== undefined);
    expect(backups).toHaveLength(1);
    const rules = backups[0].Properties.LifecycleConfiguration.Rules as any[];
    expect(rules.filter((r) => r.ExpirationInDays !== undefined || r.ExpirationDate !== undefined)).toEqual(
      [],
    );
    const noncurrent = rules.map((r) => r.NoncurrentVersionExpiration?.NoncurrentDays).filter(Boolean);
    expect(noncurrent).toEqual([35]);
  });

  it("compliance mode and the lock's days are the operator's; false turns the lock off", () => {
    const compliance = synth({ backup: { objectLock: { mode: "COMPLIANCE", days: 30 } } }).template;
    compliance.hasResourceProperties("AWS::S3::Bucket", {
      ObjectLockConfiguration: {
        ObjectLockEnabled: "Enabled",
        Rule: { DefaultRetention: { Mode: "COMPLIANCE", Days: 30 } },
      },
    });
    const off = synth({ backup: { objectLock: false } }).template;
    expect(JSON.stringify(off.findResources("AWS::S3::Bucket"))).not.toContain("ObjectLockConfiguration");
  });

  // CloudFormation replaces a bucket when a create-only property changes: BucketName or
  // ObjectLockEnabled (the lock can be switched on only when the bucket is made). The construct's
  // bucket has a generated name, so what matters is its logical ID and ObjectLockEnabled.
  it("an existing stack's bucket is updated in place: the lock's mode or days, or the lock off on a stack made without it", () => {
    const backupBucket = (t: Template) =>
      Object.entries(t.findResources("AWS::S3::Bucket")).filter(([, b]: [string, any]) =>
        JSON.stringify(b.Properties.BucketEncryption ?? {}).includes("aws:kms"),
      ) as [string, any][];
    const [[id, before]] = backupBucket(template) as [[string, any]];
    const [[idAfter, after]] = backupBucket(
      synth({ backup: { objectLock: { mode: "COMPLIANCE", days: 30 } } }).template,
    ) as [[string, any]];
    expect(idAfter).toBe(id);
    expect(after.Properties.BucketName).toBe(before.Properties.BucketName);
    expect(after.Properties.ObjectLockEnabled).toBe(true);
    expect(before.Properties.ObjectLockEnabled).toBe(true);
    // A stack made before Object Lock (the same "Backups" construct, no ObjectLockEnabled at all)
    // that turns the lock off to keep its bucket: the property stays absent, as it was. (false
    // would be a change of the create-only property, from absent, and so a new, empty bucket.)
    // Turning the lock on there is such a change: docs/security.md says what to do instead.
    const [[idOff, off]] = backupBucket(synth({ backup: { objectLock: false } }).template) as [[string, any]];
    expect(idOff).toBe(id);
    expect(Object.keys(off.Properties)).not.toContain("ObjectLockEnabled");
  });

  it("replication to another account's bucket when given, delete markers not replicated", () => {
    const arn = "arn:aws:s3:::etcd-backups-copy";
    const t = synth({ backup: { replicateToBucketArn: arn } }).template;
    t.hasResourceProperties("AWS::S3::Bucket", {
      ReplicationConfiguration: Match.objectLike({
        Rules: [
          Match.objectLike({
            Destination: Match.objectLike({ Bucket: arn }),
            DeleteMarkerReplication: { Status: "Disabled" },
            Status: "Enabled",
          }),
        ],
      }),
    });
    expect(() => synth({ backup: { replicateToBucketArn: "etcd-backups-copy" } })).toThrow(
      /backup.replicateToBucketArn must be an S3 bucket ARN.*"etcd-backups-copy"/,
    );
  });

  it("permanent deletes under the prefix and snapshots the agent refused go to the alarm topic", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Deleted"],
        detail: {
          bucket: { name: [Match.objectLike({ Ref: Match.stringLikeRegexp("Backups") })] },
          object: { key: [{ prefix: `backups/${asgName}/` }] },
          "deletion-type": ["Permanently Deleted"],
        },
      },
      Targets: [Match.objectLike({ Arn: Match.objectLike({ Ref: Match.stringLikeRegexp("Alarms") }) })],
    });
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Created"],
        detail: {
          bucket: { name: [Match.objectLike({ Ref: Match.stringLikeRegexp("Backups") })] },
          object: { key: [{ prefix: `backups/${asgName}/events/refused-` }] },
        },
      },
      Targets: [Match.objectLike({ Arn: Match.objectLike({ Ref: Match.stringLikeRegexp("Alarms") }) })],
    });
  });

  it("the snapshots under a customer-managed key by default (rotated, kept); S3-managed when turned off", () => {
    template.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
    template.hasResourceProperties("AWS::S3::Bucket", {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: "aws:kms",
              KMSMasterKeyID: Match.objectLike({
                "Fn::GetAtt": [Match.stringLikeRegexp("BackupKey"), "Arn"],
              }),
            },
          }),
        ],
      },
    });
    const off = synth({ backup: { customerManagedKey: false } }).template;
    expect(Object.keys(off.findResources("AWS::KMS::Key")).filter((id) => id.includes("BackupKey"))).toEqual(
      [],
    );
    expect(JSON.stringify(off.findResources("AWS::IAM::Policy"))).not.toContain("s3.eu-west-1.amazonaws.com");
  });

  it("both TLS secrets under a customer-managed key by default (#16): rotated, the agent told to create them under it", () => {
    const keys = template.findResources("AWS::KMS::Key");
    const secretsKey = Object.entries(keys).find(([id]) => id.startsWith("EtcdSecretsKey"));
    expect(secretsKey?.[1]).toMatchObject({ Properties: { EnableKeyRotation: true } });
    const file = userDataConfig(template).json.storage.files.find(
      (f: any) => f.path === "/etc/etcd-agent/agent.env",
    );
    const env = parseEnvFile(decodeURIComponent(file.contents.source.replace(/^data:,/, "")));
    expect(env.ETCD_AGENT_TLS_SECRETS_KMS_KEY).toBe(SECRETS_KEY_ARN);

    const off = synth({ secretsCustomerManagedKey: false }).template;
    expect(
      Object.keys(off.findResources("AWS::KMS::Key")).filter((id) => id.startsWith("EtcdSecretsKey")),
    ).toEqual([]);
    const offEnv = userDataConfig(off).json.storage.files.find(
      (f: any) => f.path === "/etc/etcd-agent/agent.env",
    );
    expect(decodeURIComponent(offEnv.contents.source)).not.toContain("TLS_SECRETS_KMS_KEY");
    expect(JSON.stringify(off.findResources("AWS::IAM::Policy"))).not.toContain("secretsmanager.eu-west-1");
  });

  it("the bastion's metadata: IMDSv2 with one hop", () => {
    const instances = Object.values(template.findResources("AWS::EC2::Instance")) as any[];
    expect(instances).toHaveLength(1);
    expect(instances[0].Properties.MetadataOptions).toEqual({
      HttpTokens: "required",
      HttpPutResponseHopLimit: 1,
      HttpEndpoint: "enabled",
    });
  });
});

describe("the user data", () => {
  const { text, json } = userDataConfig(template);

  it("passes ignition-validate", () => {
    const file = join(work, "user-data.ign");
    writeFileSync(file, text);
    const r = spawnSync("ignition-validate", [file], { encoding: "utf8" });
    expect(`${r.stdout}${r.stderr}`).toBe("");
    expect(r.status).toBe(0);
  });

  it("fetches the binary asset from S3 verified by its sha512, mounts the data volume", () => {
    const sha = readFileSync(join(ROOT, "dist/etcd-agent-linux-x64.sha512"), "utf8").split(/\s+/)[0];
    const bin = json.storage.files.find((f: any) => f.path === "/opt/bin/etcd-agent");
    expect(bin.contents.source).toMatch(
      /^s3:\/\/cdk-[a-z0-9]+-assets-123456789012-eu-west-1\/[0-9a-f]{64}(\.[0-9a-f]{64})?$/,
    );
    expect(bin.contents.verification.hash).toBe(`sha512-${sha}`);
    // The data volume is found on the node (etcd-data-volume.service), not by Ignition waiting for
    // /dev/xvdb: on Nitro it is an NVMe device, and Fedora CoreOS makes no /dev/xvdb for it.
    expect(json.storage.filesystems).toBeUndefined();
    expect(text).not.toMatch(/"device":"\/dev\/xvdb"/);
    const script = json.storage.files.find((f: any) => f.path === "/opt/bin/etcd-data-volume");
    expect(decodeURIComponent(script.contents.source)).toContain("Amazon Elastic Block Store");
    const units = Object.fromEntries(json.systemd.units.map((u: any) => [u.name, u]));
    expect(units["etcd-data-volume.service"].contents).toContain("ExecStart=/opt/bin/etcd-data-volume");
    expect(units["var-lib-etcd.mount"].contents).toContain("Requires=etcd-data-volume.service");
  });

  it("gives the agent settings its own config rules accept: domain, zone, group", () => {
    const file = json.storage.files.find((f: any) => f.path === "/etc/etcd-agent/agent.env");
    const env = parseEnvFile(decodeURIComponent(file.contents.source.replace(/^data:,/, "")));
    expect(env).toMatchObject({
      ETCD_AGENT_DOMAIN: "etcd.internal",
      ETCD_AGENT_HOSTED_ZONE_ID: "Z0123456789TESTZONE",
      ETCD_AGENT_ASG_NAME: asgName,
      ETCD_AGENT_BACKUP_BUCKET: "etcd-backups-bucket",
      ETCD_AGENT_RESTORE_TOOL: "/opt/bin/etcd-restore",
      // etcd's quota sized to the default 20 GiB data volume: 40%, at most 8 GiB.
      ETCD_AGENT_ETCD_QUOTA_BACKEND_BYTES: String(8 * 1024 ** 3),
    });
    const wrapper = json.storage.files.find((f: any) => f.path === "/opt/bin/etcd-restore");
    expect(decodeURIComponent(wrapper.contents.source.replace(/^data:,/, ""))).toMatch(
      /docker run --rm --network none .* quay\.io\/coreos\/etcd:v3\.5\.\d+@sha256:[0-9a-f]{64} etcdutl "\$@"/,
    );
    const raw = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [
        k
          .replace(/^ETCD_AGENT_/, "")
          .toLowerCase()
          .replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
        v,
      ]),
    );
    expect(() => parseConfig(raw)).not.toThrow();
  });

  it("arm64 on Fedora CoreOS: a Graviton type, the arm64 binary, the podman unit", () => {
    const arm = synth({
      architecture: "arm64",
      os: "fcos",
      etcdVersion: "v3.5.21",
      etcdImageDigest: `sha256:${"b".repeat(64)}`,
    });
    arm.template.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({ InstanceType: "m7g.large" }),
    });
    const { json: cfg, text: t } = userDataConfig(arm.template);
    const sha = readFileSync(join(ROOT, "dist/etcd-agent-linux-arm64.sha512"), "utf8").split(/\s+/)[0];
    const bin = cfg.storage.files.find((f: any) => f.path === "/usr/local/bin/etcd-agent");
    expect(bin.contents.verification.hash).toBe(`sha512-${sha}`);
    expect(t).toContain(`v3.5.21@sha256:${"b".repeat(64)}`);
    // FCOS: the data volume by the same discovery, the restore's podman volume relabelled for SELinux.
    expect(cfg.storage.filesystems).toBeUndefined();
    const units = cfg.systemd.units.map((u: any) => u.name);
    expect(units).toEqual(expect.arrayContaining(["etcd-data-volume.service", "var-lib-etcd.mount"]));
    const restore = cfg.storage.files.find((f: any) => f.path === "/usr/local/bin/etcd-restore");
    expect(decodeURIComponent(restore.contents.source.replace(/^data:,/, ""))).toContain(
      "podman run --rm --network none -e ETCDCTL_API=3 -v /var/lib/etcd:/var/lib/etcd:Z ",
    );
  });
});

describe("property validation: the value and the fix, before any resource", () => {
  const cases: Array<[Partial<EtcdClusterSettings>, RegExp]> = [
    [{ clusterSize: 4 }, /clusterSize must be odd and from 1 to 7.*got 4/],
    [{ clusterSize: 9 }, /clusterSize must be odd and from 1 to 7.*got 9/],
    [{ amis: {} }, /amis must map at least one region.*or be left out to use the official image/],
    [{ amis: { "eu-west-1": "ami-xyz" } }, /amis\[eu-west-1\] must be an AMI ID.*"ami-xyz"/],
    [{ amis: { europe: "ami-0123456789abcdef0" } }, /"europe", which is not a region name/],
    [{ instanceType: "m7g.large" }, /m7g.large is a Graviton \(arm64\) type but architecture is x64/],
    [
      { architecture: "arm64", instanceType: "m6i.large" },
      /m6i.large is an x64 type but architecture is arm64/,
    ],
    [{ os: "ubuntu" as never }, /os must be "flatcar" or "fcos", got "ubuntu"/],
    [{ domain: "Etcd.Internal." }, /domain must be a lowercase DNS name.*"Etcd.Internal."/],
    [{ etcdVersion: "3.5" }, /etcdVersion must be an etcd image tag such as v3.5.17, got "3.5"/],
    [
      { etcdVersion: "v3.5.21" },
      /etcdVersion v3.5.21 needs etcdImageDigest.*crane digest quay.io\/coreos\/etcd:v3.5.21/,
    ],
    [{ bastionAllowedCidr: "0.0.0.0/0" }, /opens SSH to 4294967296 addresses/],
    [{ bastionAllowedCidr: "300.1.1.1/32" }, /bastionAllowedCidr must be an IPv4 CIDR/],
    [{ dataVolumeGiB: 2 }, /dataVolumeGiB must be a whole number from 8 to 16384, got 2/],
    [{ availabilityZones: ["eu-west-1a", "eu-west-1b"] }, /availabilityZones must name 3 zones/],
    [
      { dataVolumeGiB: 8, storage: { quotaBackendBytes: 4 * 1024 ** 3 } },
      /storage.quotaBackendBytes is 4294967296, but a 8 GiB data volume holds a quota of at most 3435134976 bytes.*raise dataVolumeGiB to at least 10/,
    ],
    [
      { storage: { extraEnv: { ETCD_INITIAL_CLUSTER_STATE: "new" } } },
      /storage: --etcd-extra-env \(ETCD_AGENT_ETCD_EXTRA_ENV\) cannot set ETCD_INITIAL_CLUSTER_STATE/,
    ],
    [{ storage: { autoCompactionRetention: "5s" } }, /storage: --etcd-auto-compaction-retention .*got "5s"/],
    [
      { agentBinaryPath: "/nonexistent/etcd-agent" },
      /\/nonexistent\/etcd-agent \(and its .sha512\) is missing; run npm run build:binary/,
    ],
  ];
  it.each(cases)("%j is refused", (over, message) => {
    expect(() => validateSettings({ amis: AMIS, ...over } as EtcdClusterSettings, ROOT)).toThrow(message);
  });

  it("an Auto Scaling group name too long for the cluster marker is refused at synth, naming the fix", () => {
    const app = new App();
    // CloudFormation allows 128-character stack names; with a long construct ID the group's name
    // (stack name, "-", ID) no longer fits the marker's one TXT string.
    const stack = new Stack(app, "S".repeat(128));
    expect(() => new EtcdCluster(stack, "EtcdCluster", { amis: AMIS })).toThrow(
      /characters; the agent's cluster marker .* holds at most \d+: use a shorter stack name/,
    );
    expect(
      () =>
        new EtcdCluster(new Stack(app, "Short", { env: { region: "eu-west-1" } }), "Etcd", { amis: AMIS }),
    ).not.toThrow();
  });

  it("the construct refuses before creating anything", () => {
    const app = new App();
    const stack = new Stack(app, "Bad");
    expect(() => new EtcdCluster(stack, "Etcd", { amis: AMIS, clusterSize: 2 })).toThrow(/clusterSize/);
    expect(stack.node.findAll().map((c) => c.node.path)).toEqual(["Bad", "Bad/Etcd"]);
  });
});

describe("cdk-nag AwsSolutions", () => {
  it("passes with every acknowledged finding carrying a reason", () => {
    // synth() above ran the pack and throws on any error it finds; here the report says so too.
    const out = synth();
    const report = JSON.parse(readFileSync(join(out.assembly.directory, "validation-report.json"), "utf8"));
    const errors = report.pluginReports.flatMap((p: any) =>
      p.violations.filter((v: any) => v.severity === "error"),
    );
    expect(errors).toEqual([]);
  });

  it("fails the synth on a finding nobody acknowledged", () => {
    expect(() => synth({}, (stack) => new s3.Bucket(stack, "Unreviewed"))).toThrow(/AwsSolutions-S1/);
  });
});

const ACCOUNT = "123456789012";

/** A synth in an account, with the lookups' answers as cdk.context.json would hold them. */
function synthIn(props: Partial<EtcdClusterProps>, answers: (stack: Stack) => Record<string, unknown>) {
  const probe = new Stack(new App(), "Test", { env: { region: "eu-west-1", account: ACCOUNT } });
  const context = {
    [`availability-zones:account=${ACCOUNT}:region=eu-west-1`]: ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    ...answers(probe),
  };
  const app = new App({ outdir: mkdtempSync(join(work, "out-")), context });
  const stack = new Stack(app, "Test", { env: { region: "eu-west-1", account: ACCOUNT } });
  new EtcdCluster(stack, "Etcd", props);
  const assembly = app.synth();
  return { template: Template.fromJSON(assembly.getStackByName("Test").template), assembly };
}

const LOOKED_UP = "ami-0fedcba9876543210";

describe("the nodes' image: the official one by lookup, or the user's, checked", () => {
  it.each([
    ["flatcar", "x64", "075585003325", "Flatcar-stable-*", "x86_64"],
    ["flatcar", "arm64", "075585003325", "Flatcar-stable-*", "arm64"],
    ["fcos", "x64", "125523088429", "fedora-coreos-*", "x86_64"],
    ["fcos", "arm64", "125523088429", "fedora-coreos-*", "arm64"],
  ] as const)("%s %s: owner %s, name %s, architecture %s, cached in the context", (os, arch, owner, name, ec2Arch) => {
    const key = amiContextKey(
      new Stack(new App(), "K", { env: { region: "eu-west-1", account: ACCOUNT } }),
      os,
      arch,
    );
    expect(key).toContain(`owners.0=${owner}`);
    expect(key).toContain(`filters.name.0=${name}`);
    expect(key).toContain(`filters.architecture.0=${ec2Arch}`);
    expect(key).toMatch(/^ami:account=123456789012:.*region=eu-west-1$/);
    if (os === "fcos") expect(key).toContain("filters.description.0=Fedora CoreOS stable *");
    const { template: t, assembly } = synthIn({ os, architecture: arch }, () => ({ [key]: LOOKED_UP }));
    t.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({ ImageId: LOOKED_UP }),
    });
    expect(assembly.manifest.missing ?? []).toEqual([]);
  });

  it("without the answer yet, the synth asks the CLI for exactly that lookup (as cdk deploy does)", () => {
    const { assembly } = synthIn({}, () => ({}));
    const key = amiContextKey(
      new Stack(new App(), "K", { env: { region: "eu-west-1", account: ACCOUNT } }),
      "flatcar",
      "x64",
    );
    expect((assembly.manifest.missing ?? []).map((m) => m.key)).toContain(key);
  });

  it("a lookup that found nothing stops the synth with the region, architecture and the fix", () => {
    expect(() =>
      synthIn({ architecture: "arm64" }, (st) => ({
        [amiContextKey(st, "flatcar", "arm64")]: {
          $providerError: "No AMI found that matched the search criteria",
        },
      })),
    ).toThrow(
      /no Flatcar Container Linux \(stable\) image for arm64 in eu-west-1 from account 075585003325 named Flatcar-stable-\*.*name one with etcd:amis/,
    );
  });

  it("the user's image is checked for the architecture: a mismatch names the AMI and the fix", () => {
    const amis = { "eu-west-1": "ami-0123456789abcdef0" };
    const key = (st: Stack) => amiContextKey(st, "flatcar", "x64", "ami-0123456789abcdef0");
    expect(key(new Stack(new App(), "K", { env: { region: "eu-west-1", account: ACCOUNT } }))).toContain(
      "filters.image-id.0=ami-0123456789abcdef0",
    );
    const ok = synthIn({ amis }, (st) => ({ [key(st)]: "ami-0123456789abcdef0" }));
    ok.template.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({ ImageId: "ami-0123456789abcdef0" }),
    });
    expect(() =>
      synthIn({ amis }, (st) => ({
        [key(st)]: { $providerError: "No AMI found that matched the search criteria" },
      })),
    ).toThrow(
      /amis\[eu-west-1\] is ami-0123456789abcdef0, which is not an x86_64 image .*set etcd:architecture/,
    );
  });

  it("a region missing from amis, or no account for a lookup: a message, not a stack trace", () => {
    const noRegion = new Stack(new App(), "A", { env: { region: "us-east-1" } });
    expect(() => new EtcdCluster(noRegion, "Etcd", { amis: AMIS })).toThrow(
      /amis has no image for us-east-1 \(it has eu-west-1\): add "us-east-1": "ami-\.\.\."/,
    );
    const noAccount = new Stack(new App(), "B", { env: { region: "eu-west-1" } });
    expect(() => new EtcdCluster(noAccount, "Etcd", {})).toThrow(
      /found by a lookup in the stack's account and region, and the stack has no account: .*etcd:account/,
    );
  });
});

describe("outputs the doc uses, under fixed keys", () => {
  it("each output's key is the construct ID and a fixed name", () => {
    // BastionHostLinux adds one of its own, with a hash in its key (the one the doc does not use).
    const keys = Object.keys(template.findOutputs("*")).filter(
      (k) => !/^EtcdBastionBastionHostId[0-9A-F]{8}$/.test(k),
    );
    expect(keys.sort()).toEqual(
      [
        "EtcdAlarmTopicArn",
        "EtcdAutoScalingGroupName",
        "EtcdBackupBucketName",
        "EtcdBastionInstanceId",
        "EtcdBastionPublicDnsName",
        "EtcdCaSecretName",
        "EtcdClientSecurityGroupId",
        "EtcdClientSrvRecord",
        "EtcdDashboardName",
        "EtcdFlowLogGroupName",
        "EtcdHostedZoneId",
        "EtcdOperatorSecretName",
        "EtcdServerSrvRecord",
      ].sort(),
    );
    template.hasOutput("EtcdOperatorSecretName", { Value: `etcd-agent/${asgName}/operator` });
    template.hasOutput("EtcdServerSrvRecord", { Value: "_etcd-server-ssl._tcp.etcd.internal" });
    template.hasOutput("EtcdAlarmTopicArn", { Value: { Ref: Match.stringLikeRegexp("^EtcdAlarms") } });
  });
});

describe("teardown on stack delete", () => {
  const resources = template.toJSON().Resources as Record<string, any>;
  const [crId, cr] = Object.entries(resources).find(([, r]) => r.Type === "Custom::EtcdAgentTeardown") ?? [];

  it("a custom resource the group depends on, which depends on the zone: group, then records, then zone", () => {
    expect(cr.Properties).toMatchObject({
      Domain: "etcd.internal",
      SecretIds: [`etcd-agent/${asgName}/ca`, `etcd-agent/${asgName}/operator`],
    });
    expect(cr.Properties.HostedZoneId.Ref).toMatch(/^EtcdZone/);
    const [group] = Object.values(template.findResources("AWS::AutoScaling::AutoScalingGroup")) as any[];
    expect(group.DependsOn).toContain(crId);
    expect(cr.DeletionPolicy ?? "Delete").toBe("Delete");
  });

  it("its Lambda may delete only the agent's records and the two secrets", () => {
    const policy = Object.entries(template.findResources("AWS::IAM::Policy")).find(([id]) =>
      id.startsWith("EtcdTeardownPolicy"),
    )?.[1] as any;
    const bySid = Object.fromEntries(
      (policy.Properties.PolicyDocument.Statement as any[]).map((st) => [st.Sid, st]),
    );
    expect(bySid.DeleteTheAgentsRecordsOnly.Condition["ForAllValues:StringEquals"]).toEqual({
      "route53:ChangeResourceRecordSetsRecordTypes": ["A", "SRV", "TXT"],
      "route53:ChangeResourceRecordSetsActions": ["DELETE"],
    });
    expect(
      bySid.DeleteTheAgentsRecordsOnly.Condition["ForAllValues:StringLike"][
        "route53:ChangeResourceRecordSetsNormalizedRecordNames"
      ],
    ).toContain("_etcd-cluster.etcd.internal");
    expect(bySid.DeleteTheClustersSecretsOnly.Action).toBe("secretsmanager:DeleteSecret");
    expect(JSON.stringify(bySid.DeleteTheClustersSecretsOnly.Resource)).toContain(
      `etcd-agent/${asgName}/ca-??????`,
    );
    expect(bySid.DeleteTheClustersSecretsOnly.Resource).toHaveLength(2);
  });

  it("the handler is inline (no asset), within CloudFormation's 4096-character ZipFile limit", () => {
    const fn = Object.values(template.findResources("AWS::Lambda::Function"))[0] as any;
    expect(fn.Properties.Code.ZipFile).toBe(bundleHandler());
    expect(fn.Properties.Code.ZipFile.length).toBeLessThan(4096);
  });
});

describe("an existing VPC (the app's etcd:vpcId, etcd:privateSubnetIds, etcd:publicSubnetIds)", () => {
  const ids = {
    vpcId: "vpc-0123456789abcdef0",
    privateSubnetIds: ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2", "subnet-0aaaaaaaaaaaaaaa3"],
    publicSubnetIds: ["subnet-0bbbbbbbbbbbbbbb1"],
    availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
  };

  it("the group runs in its private subnets, the bastion in its public one, no VPC is made", () => {
    const app = new App({ outdir: mkdtempSync(join(work, "out-")) });
    const stack = new Stack(app, "Test", { env: { region: "eu-west-1" } });
    new EtcdCluster(stack, "Etcd", { amis: AMIS, vpc: existingVpc(stack, ids) });
    const tv = Template.fromJSON(app.synth().getStackByName("Test").template);
    tv.resourceCountIs("AWS::EC2::VPC", 0);
    template.resourceCountIs("AWS::EC2::VPC", 1);
    const [group] = Object.values(tv.findResources("AWS::AutoScaling::AutoScalingGroup")) as any[];
    expect(group.Properties.VPCZoneIdentifier).toEqual(ids.privateSubnetIds);
    tv.hasResourceProperties("AWS::EC2::Instance", { SubnetId: "subnet-0bbbbbbbbbbbbbbb1" });
  });

  it.each([
    [
      { vpcId: ids.vpcId },
      /needs etcd:vpcId, etcd:privateSubnetIds, etcd:publicSubnetIds and etcd:availabilityZones together/,
    ],
    [{ ...ids, vpcId: "vpc-x" }, /etcd:vpcId must be a VPC ID.*"vpc-x"/],
    [
      { ...ids, privateSubnetIds: ids.privateSubnetIds.slice(0, 2) },
      /etcd:privateSubnetIds must be a JSON list of 3 subnet IDs/,
    ],
    [{ ...ids, availabilityZones: ["eu-west-1a"] }, /etcd:availabilityZones must name the 3 zones/],
  ])("%j is refused", (v, message) => {
    expect(() => existingVpc(new Stack(new App(), "V"), v as never)).toThrow(message);
  });
  it("none of the keys: a new VPC", () => {
    expect(existingVpc(new Stack(new App(), "V"), {})).toBeUndefined();
  });
});

describe("the bastion: etcdctl and the agent, the operators' certificate by one command", () => {
  it("installs etcdctl (checked against the release's sums) and points it and the agent at the cluster", () => {
    const [bastion] = Object.values(template.findResources("AWS::EC2::Instance")) as any[];
    const text = resolve(bastion.Properties.UserData);
    expect(text).toContain("v=v3.5.17; a=amd64; t=etcd-$v-linux-$a");
    expect(text).toContain('curl -fsSLO "https://github.com/etcd-io/etcd/releases/download/$v/$t.tar.gz"');
    expect(text).toContain("sha256sum -c -");
    expect(text).toContain('install -m 755 "$t/etcdctl" /usr/local/bin/etcdctl');
    expect(text).toContain("export ETCDCTL_DISCOVERY_SRV=etcd.internal");
    expect(text).toContain('export ETCDCTL_CERT="$ETCD_AGENT_TLS_CERT_FILE"');
    expect(text).toMatch(/sha512sum -c -/);
  });
});

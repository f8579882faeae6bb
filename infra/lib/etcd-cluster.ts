// EtcdCluster: everything the agent does not do itself, composed of parts, each in its own file
// under infra/lib/cluster/: the network (VPC, private hosted zone, security groups), storage (the
// agent binary as an S3 asset, the backup bucket and its key), identity (least-privilege IAM, the
// TLS secrets' key), the nodes (launch template with the Ignition user data from ignition/, the
// Auto Scaling group with launch and terminate lifecycle hooks, the teardown), the bastion, and
// alarms to an SNS topic. Each part is a function that makes its resources in this construct's own
// scope, so every resource keeps the construct path, and so the logical ID, it had when all of
// this was one constructor (test/infra/logical-ids.test.ts holds them): a deployed stack replaces
// nothing.
import { fileURLToPath } from "node:url";
import type { aws_autoscaling as autoscaling } from "aws-cdk-lib";
import {
  CfnOutput,
  type aws_ec2 as ec2,
  type aws_iam as iam,
  type aws_kms as kms,
  aws_logs as logs,
  type aws_route53 as route53,
  Stack,
  type aws_s3 as s3,
  aws_sns as sns,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import { MAX_ASG_NAME_LENGTH } from "../../agent/planner/marker.js";
import { alarms } from "./cluster/alarms.js";
import { bastion } from "./cluster/bastion.js";
import { identity } from "./cluster/identity.js";
import { network } from "./cluster/network.js";
import { nodes } from "./cluster/nodes.js";
import { storage } from "./cluster/storage.js";
import type { ClusterMonitoring } from "./cluster-monitoring.js";
import { OperatorCertIssuer } from "./operator-cert-issuer.js";
import { type EtcdClusterSettings, type ValidSettings, validateSettings } from "./props.js";
import type { Teardown } from "./teardown/teardown.js";

export { bastionProfile } from "./cluster/bastion.js";
export { HOOKS } from "./cluster/nodes.js";

export interface EtcdClusterProps extends EtcdClusterSettings {
  /** The VPC to run in (its private subnets need a route to the AWS APIs); default a new one. */
  vpc?: ec2.IVpc;
  /** Where alarms go; default a new topic. */
  alarmTopic?: sns.ITopic;
  /** The one role that may call the operators' certificate issuer; without it there is no issuer. */
  operatorCertInvokerRoleArn?: string;
}

const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

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

    const net = network(this, { settings: s, asgName, vpc: props.vpc });
    this.vpc = net.vpc;
    this.hostedZone = net.hostedZone;
    this.memberSecurityGroup = net.memberSecurityGroup;
    this.clientSecurityGroup = net.clientSecurityGroup;

    const store = storage(this, { settings: s, asgName });
    this.backupBucket = store.backupBucket;
    this.backupKey = store.backupKey;

    const roles = identity(this, { settings: s, asgName, hostedZone: this.hostedZone, storage: store });
    this.nodeRole = roles.nodeRole;
    this.secretsKey = roles.secretsKey;

    this.alarmTopic = props.alarmTopic ?? new sns.Topic(this, "Alarms", { enforceSSL: true });

    const members = nodes(this, {
      settings: s,
      asgName,
      vpc: this.vpc,
      hostedZone: this.hostedZone,
      memberSecurityGroup: this.memberSecurityGroup,
      storage: store,
      identity: roles,
      alarmTopic: this.alarmTopic,
    });
    this.autoScalingGroup = members.autoScalingGroup;
    this.teardown = members.teardown;
    this.ignitionTemplate = members.ignitionTemplate;

    this.bastion = bastion(this, {
      settings: s,
      asgName,
      vpc: this.vpc,
      hostedZone: this.hostedZone,
      securityGroup: net.bastionSecurityGroup,
      binary: store.binary,
      identity: roles,
    });

    if (props.operatorCertInvokerRoleArn !== undefined)
      this.operatorCertIssuer = new OperatorCertIssuer(this, "OperatorCertIssuer", {
        caSecretName: roles.secrets.ca.name,
        caSecretArn: roles.secrets.ca.arn,
        ...(this.secretsKey ? { secretsKey: this.secretsKey } : {}),
        invokerRoleArn: props.operatorCertInvokerRoleArn,
      });

    this.monitoring = alarms(this, {
      settings: s,
      asgName,
      alarmTopic: this.alarmTopic,
      backupBucket: this.backupBucket,
      backupPrefix: store.backupPrefix,
    });

    // The outputs: each one's key is the construct's ID and a fixed name (EtcdBastionInstanceId for
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
      `Snapshots under ${store.backupPrefix}; kept on delete`,
    );
    output(
      "OperatorSecretName",
      roles.secrets.operator.name,
      "The operators' client certificate (etcd-agent client-cert fetches it on the bastion)",
    );
    output(
      "CaSecretName",
      roles.secrets.ca.name,
      "The cluster's CA (the nodes only); deleted with the stack",
    );
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
  }
}

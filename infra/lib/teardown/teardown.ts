// Teardown: a custom resource that, when the stack is deleted, removes what the nodes created
// outside CloudFormation (the agent's records in the hosted zone, the CA and operators' secrets),
// so `cdk destroy` can delete the zone and leaves no secret behind. Ordered by dependencies: the
// Auto Scaling group depends on it (deleted first: no node can write again), it depends on the zone
// (deleted after it). Why a custom resource rather than a command run first: CloudFormation's
// order guarantees no node is left to put a record back, and a forgotten step cannot strand the zone.
import { fileURLToPath } from "node:url";
import {
  CustomResource,
  Duration,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  RemovalPolicy,
  type aws_route53 as route53,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import { buildSync } from "esbuild";

export interface TeardownProps {
  hostedZone: route53.IHostedZone;
  domain: string;
  /** The record names the nodes may write (their IAM condition), for the same condition here. */
  recordNames: string[];
  /** The secrets' names, and their ARNs (with Secrets Manager's -?????? suffix) for IAM. */
  secrets: Array<{ name: string; arn: string }>;
}

const HANDLER = fileURLToPath(new URL("./handler.ts", import.meta.url));

/** The handler as one CommonJS file for inline code (the runtime provides the AWS SDK). */
export function bundleHandler(): string {
  const out = buildSync({
    entryPoints: [HANDLER],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node24",
    external: ["@aws-sdk/*"],
    minify: true,
    write: false,
    legalComments: "none",
  });
  return out.outputFiles[0]?.text ?? "";
}

export class Teardown extends Construct {
  readonly function: lambda.Function;
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: TeardownProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `deletes the agent's records in ${props.domain} and the cluster's TLS secrets on stack delete`,
    });
    logGroup.grantWrite(role);
    const policy = new iam.Policy(this, "Policy", {
      roles: [role],
      statements: [
        new iam.PolicyStatement({
          sid: "ReadTheZone",
          actions: ["route53:ListResourceRecordSets"],
          resources: [props.hostedZone.hostedZoneArn],
        }),
        new iam.PolicyStatement({
          sid: "DeleteTheAgentsRecordsOnly",
          actions: ["route53:ChangeResourceRecordSets"],
          resources: [props.hostedZone.hostedZoneArn],
          conditions: {
            "ForAllValues:StringLike": {
              "route53:ChangeResourceRecordSetsNormalizedRecordNames": props.recordNames,
            },
            "ForAllValues:StringEquals": {
              "route53:ChangeResourceRecordSetsRecordTypes": ["A", "SRV", "TXT"],
              "route53:ChangeResourceRecordSetsActions": ["DELETE"],
            },
          },
        }),
        new iam.PolicyStatement({
          sid: "DeleteTheClustersSecretsOnly",
          actions: ["secretsmanager:DeleteSecret"],
          resources: props.secrets.map((s) => s.arn),
        }),
      ],
    });
    this.function = new lambda.Function(this, "Function", {
      description: "etcd-asg-agent teardown: the agent's DNS records and TLS secrets, on stack delete",
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: "index.handler",
      code: lambda.Code.fromInline(bundleHandler()),
      role,
      logGroup,
      timeout: Duration.minutes(5),
      memorySize: 256,
    });
    this.function.node.addDependency(policy);
    this.resource = new CustomResource(this, "Resource", {
      serviceToken: this.function.functionArn,
      resourceType: "Custom::EtcdAgentTeardown",
      properties: {
        HostedZoneId: props.hostedZone.hostedZoneId,
        Domain: props.domain,
        SecretIds: props.secrets.map((s) => s.name),
      },
    });
  }
}

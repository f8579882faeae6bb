// The operators' certificate issuer: a Lambda function behind a function URL with AuthType
// AWS_IAM (agent/tls/operator-issuer.ts is its handler). Lambda checks the caller's SigV4 signature
// and passes the verified caller on; the function names the certificate after the caller's role
// session and caps it at 12 hours. Its role may only read the CA secret (and decrypt it through
// Secrets Manager); only the role the administrators name may call the URL. `etcd-agent
// client-cert --issuer-url <OperatorCertIssuerUrl>` calls it (docs/security.md).
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Duration,
  aws_iam as iam,
  type aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  RemovalPolicy,
  Stack,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import { buildSync } from "esbuild";
import { EtcdClusterPropsError } from "./props.js";

export interface OperatorCertIssuerProps {
  /** The CA secret's name (the function reads it by name) and its ARN pattern (with -??????) for IAM. */
  caSecretName: string;
  caSecretArn: string;
  /** The secrets' customer-managed key, when there is one. */
  secretsKey?: kms.IKey;
  /** The only role that may call the function URL (e.g. the IAM Identity Center role of the operators). */
  invokerRoleArn: string;
}

const HANDLER = fileURLToPath(new URL("../../agent/tls/operator-issuer-lambda.ts", import.meta.url));
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;

/**
 * The handler as one CommonJS file (the runtime provides the AWS SDK), in a directory named by
 * its hash: the same sources give the same asset. Built once per process.
 */
let bundled: string | undefined;
export function bundleIssuer(): string {
  if (bundled !== undefined) return bundled;
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
  const code = out.outputFiles[0]?.text ?? "";
  const dir = join(
    tmpdir(),
    `etcd-agent-issuer-${createHash("sha256").update(code).digest("hex").slice(0, 16)}`,
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "index.js"), code);
  bundled = dir;
  return dir;
}

export class OperatorCertIssuer extends Construct {
  readonly function: lambda.Function;
  readonly url: lambda.FunctionUrl;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: OperatorCertIssuerProps) {
    super(scope, id);
    if (!ROLE_ARN.test(props.invokerRoleArn))
      throw new EtcdClusterPropsError(
        `operatorCertInvokerRoleArn must be one IAM role's ARN (arn:aws:iam::<account>:role/<name>), got ${JSON.stringify(props.invokerRoleArn)}`,
      );
    const stack = Stack.of(this);
    // Every issuance (CN, caller ARN, serial, expiry) is logged here: kept a year, and on delete.
    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "issues operators' short-lived etcd client certificates: reads the CA secret only",
    });
    logGroup.grantWrite(this.role);
    const policy = new iam.Policy(this, "Policy", {
      roles: [this.role],
      statements: [
        new iam.PolicyStatement({
          sid: "ReadTheCaOnly",
          actions: ["secretsmanager:GetSecretValue"],
          resources: [props.caSecretArn],
        }),
        ...(props.secretsKey
          ? [
              new iam.PolicyStatement({
                sid: "DecryptTheCaThroughSecretsManager",
                actions: ["kms:Decrypt"],
                resources: [props.secretsKey.keyArn],
                conditions: {
                  StringEquals: { "kms:ViaService": `secretsmanager.${stack.region}.amazonaws.com` },
                  StringLike: { "kms:EncryptionContext:SecretARN": [props.caSecretArn] },
                },
              }),
            ]
          : []),
      ],
    });
    this.function = new lambda.Function(this, "Function", {
      description: "etcd-asg-agent: operators' client certificates, named after the caller's role session",
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: "index.handler",
      code: lambda.Code.fromAsset(bundleIssuer()),
      role: this.role,
      logGroup,
      environment: { ETCD_AGENT_CA_SECRET: props.caSecretName },
      timeout: Duration.seconds(30),
      memorySize: 256,
    });
    this.function.node.addDependency(policy);
    this.url = this.function.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });
    // A function URL with AWS_IAM needs both permissions for the caller (Lambda's documentation,
    // "Control access to function URLs"); both name the one role.
    const invoker = new iam.ArnPrincipal(props.invokerRoleArn);
    this.function.addPermission("InvokeUrl", {
      principal: invoker,
      action: "lambda:InvokeFunctionUrl",
      functionUrlAuthType: lambda.FunctionUrlAuthType.AWS_IAM,
    });
    this.function.addPermission("InvokeViaUrl", {
      principal: invoker,
      action: "lambda:InvokeFunction",
      invokedViaFunctionUrl: true,
    });
  }
}

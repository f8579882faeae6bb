// biome-ignore-all lint/suspicious/noExplicitAny: a synthesized CloudFormation template is untyped JSON
// The operators' certificate issuer in the construct (infra/lib/operator-cert-issuer.ts): its
// role's statements against a table (a widening fails), the function URL's auth, the invoke
// permissions for the named role only, the bundled handler, and cdk-nag's AwsSolutions pack.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, describe, expect, it } from "vitest";
import { EtcdCluster } from "../../infra/lib/etcd-cluster.js";
import { bundleIssuer, OperatorCertIssuer } from "../../infra/lib/operator-cert-issuer.js";

const INVOKER =
  "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_EtcdOperators_0123";
const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const work = mkdtempSync(join(tmpdir(), "infra-issuer-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function synth() {
  const app = new App({ outdir: mkdtempSync(join(work, "out-")) });
  const stack = new Stack(app, "Test", { env: { region: "eu-west-1" } });
  new EtcdCluster(stack, "Etcd", {
    amis: { "eu-west-1": "ami-0123456789abcdef0" },
    operatorCertInvokerRoleArn: INVOKER,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return Template.fromJSON(app.synth().getStackByName("Test").template);
}

const template = synth();
const CA =
  "arn:<AWS::Partition>:secretsmanager:eu-west-1:<AWS::AccountId>:secret:etcd-agent/Test-Etcd/ca-??????";

/** An ARN as text: Fn::Join of strings and { Ref } or { Fn::GetAtt } as <Name> or <Name.Attr>. */
function arnText(v: any): string {
  if (typeof v === "string") return v;
  if (v.Ref) return `<${v.Ref}>`;
  if (v["Fn::GetAtt"]) return `<${v["Fn::GetAtt"].join(".")}>`;
  if (v["Fn::Join"]) return v["Fn::Join"][1].map(arnText).join(v["Fn::Join"][0]);
  throw new Error(`cannot read ${JSON.stringify(v)}`);
}

function issuerStatements(t: Template): any[] {
  return Object.entries(t.findResources("AWS::IAM::Policy"))
    .filter(([id]) => id.startsWith("EtcdOperatorCertIssuer"))
    .flatMap(([, p]: [string, any]) => p.Properties.PolicyDocument.Statement as any[])
    .map((st) => ({
      sid: st.Sid ?? null,
      actions: [st.Action].flat().sort(),
      resources: [st.Resource].flat().map(arnText),
      condition: st.Condition
        ? JSON.parse(JSON.stringify(st.Condition), (_k, v) => (v?.["Fn::Join"] ? arnText(v) : v))
        : null,
    }));
}

describe("the operators' certificate issuer (#16)", () => {
  it("its role: the CA secret read only, its key through Secrets Manager for that secret, its own logs", () => {
    expect(issuerStatements(template)).toEqual([
      {
        sid: null,
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [expect.stringMatching(/^<EtcdOperatorCertIssuerLogs[0-9A-F]+\.Arn>$/)],
        condition: null,
      },
      { sid: "ReadTheCaOnly", actions: ["secretsmanager:GetSecretValue"], resources: [CA], condition: null },
      {
        sid: "DecryptTheCaThroughSecretsManager",
        actions: ["kms:Decrypt"],
        resources: [expect.stringMatching(/^<EtcdSecretsKey[0-9A-F]+\.Arn>$/)],
        condition: {
          StringEquals: { "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com" },
          StringLike: { "kms:EncryptionContext:SecretARN": [CA] },
        },
      },
    ]);
  });

  it("its role has no managed policy and trusts Lambda only", () => {
    const roles = Object.entries(template.findResources("AWS::IAM::Role")).filter(([id]) =>
      id.startsWith("EtcdOperatorCertIssuerRole"),
    );
    expect(roles).toHaveLength(1);
    const role = (roles[0] as [string, any])[1].Properties;
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" } },
    ]);
  });

  it("the URL: AuthType AWS_IAM; only the named role may invoke it, through the URL", () => {
    template.hasResourceProperties("AWS::Lambda::Url", { AuthType: "AWS_IAM" });
    const perms = Object.values(template.findResources("AWS::Lambda::Permission"))
      .map((p: any) => p.Properties)
      .filter((p) => JSON.stringify(p.FunctionName).includes("OperatorCertIssuer"));
    expect(perms.map(({ FunctionName: _f, ...rest }) => rest)).toEqual([
      { Action: "lambda:InvokeFunctionUrl", Principal: INVOKER, FunctionUrlAuthType: "AWS_IAM" },
      { Action: "lambda:InvokeFunction", Principal: INVOKER, InvokedViaFunctionUrl: true },
    ]);
  });

  it("the function: Node 24, the bundled handler, the CA secret by name", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Runtime: "nodejs24.x",
      Handler: "index.handler",
      Environment: { Variables: { ETCD_AGENT_CA_SECRET: "etcd-agent/Test-Etcd/ca" } },
    });
    const code = readFileSync(join(bundleIssuer(), "index.js"), "utf8");
    expect(code).toContain("operator-cert-caller");
    expect(code).not.toMatch(/require\("@peculiar/);
  });

  it("the bundle loads in plain Node (the SDK from outside, as the runtime gives it) and refuses a request with no caller", () => {
    const script = `require(${JSON.stringify(join(bundleIssuer(), "index.js"))}).handler({ requestContext: {} }).then((r) => process.stdout.write("RESULT " + r.statusCode))`;
    const r = spawnSync(process.execPath, ["-e", script], {
      encoding: "utf8",
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? "", NODE_PATH: join(ROOT, "node_modules"), AWS_REGION: "eu-west-1" },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("[rule: operator-cert-caller]");
    expect(r.stdout).toMatch(/RESULT 403$/);
  });

  it("a role ARN that is not one role is refused, naming the value", () => {
    const stack = new Stack(new App(), "Bad", { env: { region: "eu-west-1" } });
    expect(
      () =>
        new OperatorCertIssuer(stack, "Issuer", {
          caSecretName: "etcd-agent/x/ca",
          caSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:etcd-agent/x/ca-??????",
          invokerRoleArn: "arn:aws:iam::123456789012:role/*",
        }),
    ).toThrow(
      /operatorCertInvokerRoleArn must be one IAM role's ARN .*got "arn:aws:iam::123456789012:role\/\*"/,
    );
  });
});

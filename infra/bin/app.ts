// The deployable app: one stack with one EtcdCluster, configured by context values (cdk.json or
// `-c key=value`; every key is in docs/deploy.md). The nodes' image is a context lookup, which needs
// the account (credentials, or etcd:account with the lookup's answer in cdk.context.json).
import { App, Stack, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { EtcdCluster } from "../lib/etcd-cluster.js";
import { existingVpc } from "../lib/existing-vpc.js";
import { EtcdClusterPropsError, type EtcdStorageSettings } from "../lib/props.js";

const app = new App();
const ctx = (key: string): unknown => app.node.tryGetContext(`etcd:${key}`);

/** Context values arrive as strings from -c and as JSON from cdk.json. */
function json<T>(key: string): T | undefined {
  const v = ctx(key);
  if (v === undefined) return undefined;
  if (typeof v !== "string") return v as T;
  try {
    return JSON.parse(v) as T;
  } catch {
    throw new EtcdClusterPropsError(`context etcd:${key} must be JSON, got ${JSON.stringify(v)}`);
  }
}
const str = (key: string) => (ctx(key) === undefined ? undefined : String(ctx(key)));
const num = (key: string) => (ctx(key) === undefined ? undefined : Number(ctx(key)));

try {
  const region = str("region") ?? process.env.CDK_DEFAULT_REGION ?? "eu-west-1";
  const account = str("account") ?? process.env.CDK_DEFAULT_ACCOUNT;
  const stack = new Stack(app, str("stackName") ?? "EtcdCluster", {
    description: "etcd on an Auto Scaling group, healed by etcd-agent (etcd-asg-agent)",
    env: { region, ...(account ? { account } : {}) },
  });
  const vpc = existingVpc(stack, {
    vpcId: str("vpcId"),
    privateSubnetIds: json<string[]>("privateSubnetIds"),
    publicSubnetIds: json<string[]>("publicSubnetIds"),
    availabilityZones: json<string[]>("availabilityZones"),
  });
  new EtcdCluster(stack, "Etcd", {
    ...(vpc ? { vpc } : { availabilityZones: json<string[]>("availabilityZones") }),
    amis: json<Record<string, string>>("amis"),
    clusterSize: num("clusterSize"),
    instanceType: str("instanceType"),
    architecture: str("architecture") as never,
    os: str("os") as never,
    domain: str("domain"),
    etcdVersion: str("etcdVersion"),
    etcdImageDigest: str("etcdImageDigest"),
    dataVolumeGiB: num("dataVolumeGiB"),
    storage: json<EtcdStorageSettings>("storage"),
    natGateways: num("natGateways"),
    bastionAllowedCidr: str("bastionAllowedCidr"),
    bastionKeyName: str("bastionKeyName"),
    sshAuthorizedKeys: json<string[]>("sshAuthorizedKeys"),
    secretsCustomerManagedKey: str("secretsCustomerManagedKey") !== "off",
    ...(str("operatorCertInvokerRoleArn")
      ? { operatorCertInvokerRoleArn: str("operatorCertInvokerRoleArn") }
      : {}),
    backup: {
      expireAfterDays: num("backupExpireAfterDays"),
      objectLock:
        str("backupObjectLock") === "off"
          ? false
          : { mode: str("backupObjectLockMode") as never, days: num("backupObjectLockDays") },
      replicateToBucketArn: str("backupReplicateToBucketArn"),
      customerManagedKey: str("backupCustomerManagedKey") !== "off",
    },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  app.synth();
} catch (error) {
  if (error instanceof EtcdClusterPropsError) {
    process.stderr.write(`etcd-asg-agent infra: ${error.message}\n`);
    process.exit(3);
  }
  throw error;
}

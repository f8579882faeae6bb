// The stack's resources by logical ID and type, in the configurations that change which resources
// exist. CloudFormation replaces a resource whose logical ID changes: logical-ids.test.ts compares
// these against logical-ids.baseline.json. After a deliberate change (a resource added or removed
// on purpose), write the baseline again with `npx tsx test/infra/logical-ids.ts --write` and say
// why in the commit.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack } from "aws-cdk-lib";
import { EtcdCluster, type EtcdClusterProps } from "../../infra/lib/etcd-cluster.js";
import { existingVpc } from "../../infra/lib/existing-vpc.js";

export const BASELINE = new URL("./logical-ids.baseline.json", import.meta.url);

const AMIS = { "eu-west-1": "ami-0123456789abcdef0" };
const EXISTING_VPC = {
  vpcId: "vpc-0123456789abcdef0",
  privateSubnetIds: ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2", "subnet-0aaaaaaaaaaaaaaa3"],
  publicSubnetIds: ["subnet-0bbbbbbbbbbbbbbb1"],
  availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
};

/** Each configuration's props (the stack added), named for what it turns on or off. */
export const CONFIGURATIONS: Record<string, (stack: Stack) => Partial<EtcdClusterProps>> = {
  "default (Flatcar, x64, new VPC, Object Lock, customer-managed keys)": () => ({}),
  // Each OS and each architecture once: they change the image and the user data, not the resources.
  "Fedora CoreOS on arm64": () => ({ os: "fcos", architecture: "arm64" }),
  "an existing VPC": (stack) => ({ vpc: existingVpc(stack, EXISTING_VPC) }),
  "Object Lock off, S3- and Secrets Manager-managed keys": () => ({
    backup: { objectLock: false, customerManagedKey: false },
    secretsCustomerManagedKey: false,
  }),
  "every option on: replication, SSH to the bastion, 5 members, the operators' certificate issuer": () => ({
    clusterSize: 5,
    operatorCertInvokerRoleArn: "arn:aws:iam::123456789012:role/etcd-operators",
    backup: { replicateToBucketArn: "arn:aws:s3:::etcd-backups-copy" },
    bastionAllowedCidr: "203.0.113.7/32",
    bastionKeyName: "operators",
    sshAuthorizedKeys: [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA op",
    ],
  }),
};

export type LogicalIds = Record<string, Record<string, string>>;

/**
 * Synthesizes every configuration with a stand-in agent binary (logical IDs do not depend on its
 * content, and hashing the real one in each synth would cost seconds) and returns, per
 * configuration, each resource's logical ID and its type, sorted by ID.
 */
export function synthesizeLogicalIds(): LogicalIds {
  const work = mkdtempSync(join(tmpdir(), "logical-ids-"));
  try {
    const binary = join(work, "etcd-agent");
    writeFileSync(binary, "stand-in agent binary\n");
    writeFileSync(`${binary}.sha512`, `${"0".repeat(128)}  etcd-agent\n`);
    const out: LogicalIds = {};
    for (const [name, props] of Object.entries(CONFIGURATIONS)) {
      const outdir = join(work, `out-${Object.keys(out).length}`);
      mkdirSync(outdir);
      const app = new App({ outdir });
      const stack = new Stack(app, "Test", { env: { region: "eu-west-1" } });
      new EtcdCluster(stack, "Etcd", { amis: AMIS, agentBinaryPath: binary, ...props(stack) });
      const resources = app.synth().getStackByName("Test").template.Resources as Record<
        string,
        { Type: string }
      >;
      out[name] = Object.fromEntries(
        Object.entries(resources)
          .map(([id, r]) => [id, r.Type] as const)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      );
    }
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith("logical-ids.ts") && process.argv[2] === "--write") {
  writeFileSync(BASELINE, `${JSON.stringify(synthesizeLogicalIds(), null, 2)}\n`);
  process.stdout.write(`wrote ${BASELINE.pathname}\n`);
}

// The EtcdCluster construct's properties and their validation: every refusal names the value and
// the fix, before any resource is made.
import { existsSync, readFileSync } from "node:fs";
import { parseConfig } from "../../agent/config/config.js";
import { quotaForVolume } from "../../agent/config/etcd-settings.js";
import { DIGEST_RE, ETCD_IMAGE } from "../../ignition/etcd-image.js";
import type { NodeArch, NodeOs } from "../../ignition/render.js";

export interface BackupSettings {
  /**
   * Days S3 keeps a snapshot after the agent expired it (its non-current version, behind a delete
   * marker) before removing it for good (default 35). Current versions never expire by a bucket
   * rule: the agent's retention always keeps the newest snapshot, and the bucket does too.
   */
  expireAfterDays?: number;
  /**
   * S3 Object Lock on every snapshot version (default governance, 14 days): no node can overwrite
   * or delete a locked version; false turns it off (not advised). Governance: a principal with
   * s3:BypassGovernanceRetention can still remove one (to clear a planted object); compliance: nobody.
   */
  objectLock?: false | { mode?: "GOVERNANCE" | "COMPLIANCE"; days?: number };
  /**
   * Replicates every object to a bucket in another account (its ARN); that account's bucket policy
   * must let this stack's replication role write (docs/security.md). Default: none.
   */
  replicateToBucketArn?: string;
  /**
   * Encrypt the snapshots with a customer-managed KMS key the construct makes (default true): only
   * principals the key's IAM grants name (the nodes, the bastion) can decrypt them, so s3:GetObject
   * alone (ReadOnlyAccess) no longer reads the keyspace. false: S3-managed keys.
   */
  customerManagedKey?: boolean;
}

/** etcd's storage settings and the leader's defragmentation (docs/operations.md, "Storage"). */
export interface EtcdStorageSettings {
  /** etcd's quota in bytes (NOSPACE above it). Default 40% of dataVolumeGiB, at most 8 GiB; refused above that. */
  quotaBackendBytes?: number;
  /** periodic (default) or revision. */
  autoCompactionMode?: "periodic" | "revision";
  /** History kept: 1m to 720h periodic (default 1h), a revision count in revision mode; "0" off. */
  autoCompactionRetention?: string;
  /** Committed entries between etcd's raft snapshots (default 10000). */
  snapshotCount?: number;
  /** More ETCD_* variables from the agent's allow-list (agent/config/etcd-settings.ts), such as { ETCD_HEARTBEAT_INTERVAL: "200" }. */
  extraEnv?: Record<string, string>;
  /** The leader defragments a member whose free space is this share of its db, in percent (default 50; 0 off). */
  defragFreePercent?: number;
  /** ... or whose db is this share of the quota, in percent (default 80; 0 off). */
  defragQuotaPercent?: number;
}

export interface EtcdClusterSettings {
  /** Members: odd, 1 to 7 (etcd's advice: 3 or 5). Default 3. */
  clusterSize?: number;
  /** EC2 instance type. Default m6i.large (x64) or m7g.large (arm64). */
  instanceType?: string;
  /** CPU architecture of the instances and the agent binary. Default x64. */
  architecture?: NodeArch;
  /** Flatcar Container Linux (default) or Fedora CoreOS. */
  os?: NodeOs;
  /**
   * The OS image per region, such as { "eu-west-1": "ami-0123..." }, instead of the official image
   * found by lookup (infra/lib/node-image.ts). Checked by a lookup too when the stack has an account.
   */
  amis?: Record<string, string>;
  /** Name of the private hosted zone and of the cluster's records. Default etcd.internal. */
  domain?: string;
  /** etcd's image tag. Default the pinned one (ignition/etcd-image.ts). */
  etcdVersion?: string;
  /** etcdVersion's image digest (sha256:...): nodes pull by digest; required with an etcdVersion other than the pinned one. */
  etcdImageDigest?: string;
  /** Size of the encrypted gp3 data volume in GiB. Default 20. */
  dataVolumeGiB?: number;
  /** etcd's storage settings, written into every node's etcd environment. */
  storage?: EtcdStorageSettings;
  backup?: BackupSettings;
  /**
   * Create both TLS secrets (the CA and the operators' certificate) under a customer-managed KMS
   * key the construct makes (default true): only the nodes (both secrets) and the bastion (the
   * operators' one) may use it, through Secrets Manager, so secretsmanager:GetSecretValue on * alone
   * no longer reads the CA. Only secrets the agent creates take it: see docs/security.md for a
   * deployment whose secrets exist already. false: Secrets Manager's aws/secretsmanager key.
   */
  secretsCustomerManagedKey?: boolean;
  /** CIDR allowed to reach the bastion over SSH; without it the bastion is reached with SSM only. */
  bastionAllowedCidr?: string;
  /** OpenSSH public keys for the `core` user on the nodes (reached from the bastion). */
  sshAuthorizedKeys?: string[];
  /** EC2 key pair name for the bastion, if SSH is wanted there. */
  bastionKeyName?: string;
  /**
   * The 3 zones a new VPC spans, such as ["eu-west-1a", "eu-west-1b", "eu-west-1c"]; default the
   * a, b and c zones of the stack's region (no lookups). A 3-member cluster in 2 zones loses quorum
   * with the zone holding 2 of them.
   */
  availabilityZones?: string[];
  /** NAT gateways of a new VPC (default 1; 3 for one per AZ). */
  natGateways?: number;
  /** The agent binaries (default dist/etcd-agent-linux-<arch> from npm run build:binary). */
  agentBinaryPath?: string;
}

export class EtcdClusterPropsError extends Error {
  override name = "EtcdClusterPropsError";
}

export interface ValidSettings {
  clusterSize: number;
  instanceType: string;
  architecture: NodeArch;
  os: NodeOs;
  amis: Record<string, string> | undefined;
  domain: string;
  etcdVersion: string | undefined;
  etcdImageDigest: string | undefined;
  dataVolumeGiB: number;
  /** The agent's settings for etcd's storage, by ETCD_AGENT_* name without the prefix (for Ignition). */
  agentStorage: Record<string, string>;
  backupExpireAfterDays: number;
  /** null: Object Lock off. */
  backupLock: { mode: "GOVERNANCE" | "COMPLIANCE"; days: number } | null;
  backupReplicateToBucketArn: string | undefined;
  backupCustomerManagedKey: boolean;
  secretsCustomerManagedKey: boolean;
  bastionAllowedCidr: string | undefined;
  sshAuthorizedKeys: string[];
  bastionKeyName: string | undefined;
  natGateways: number;
  availabilityZones: string[] | undefined;
  agentBinaryPath: string;
  agentBinarySha512: string;
}

const REGION_RE = /^[a-z]{2}(-gov)?-[a-z]+-\d$/;
const AMI_RE = /^ami-[0-9a-f]{8,17}$/;
const DOMAIN_RE = /^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const INSTANCE_TYPE_RE = /^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9]+)$/;

function fail(message: string): never {
  throw new EtcdClusterPropsError(message);
}

function wholeInRange(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max)
    fail(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return v;
}

/**
 * etcd's storage settings as the agent takes them, checked by the agent's own rules at synth, and
 * the quota against the data volume: a defragmentation needs a second copy of the db beside the
 * first, so at most 40% of the volume (quotaForVolume), which is also the default.
 */
function validateStorage(st: EtcdStorageSettings, dataVolumeGiB: number): Record<string, string> {
  const most = quotaForVolume(dataVolumeGiB);
  const quota = st.quotaBackendBytes ?? most;
  if (!Number.isInteger(quota) || quota > most)
    fail(
      `storage.quotaBackendBytes is ${JSON.stringify(st.quotaBackendBytes)}, but a ${dataVolumeGiB} GiB data volume holds a quota of at most ${most} bytes (40%, room for a defragmentation's copy, the WAL and snapshots; at most 8 GiB): lower it, or raise dataVolumeGiB to at least ${Math.ceil((quota * 100) / 40 / 1024 ** 3)}`,
    );
  const out: Record<string, string> = { etcdQuotaBackendBytes: String(quota) };
  if (st.autoCompactionMode !== undefined) out.etcdAutoCompactionMode = st.autoCompactionMode;
  if (st.autoCompactionRetention !== undefined) out.etcdAutoCompactionRetention = st.autoCompactionRetention;
  if (st.snapshotCount !== undefined) out.etcdSnapshotCount = String(st.snapshotCount);
  if (st.extraEnv !== undefined)
    out.etcdExtraEnv = Object.entries(st.extraEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(";");
  if (st.defragFreePercent !== undefined) out.defragFreePercent = String(st.defragFreePercent);
  if (st.defragQuotaPercent !== undefined) out.defragQuotaPercent = String(st.defragQuotaPercent);
  try {
    parseConfig({ domain: "etcd.internal", hostedZoneId: "Z0", ...out });
  } catch (error) {
    // The agent's message names its flag; the prop is named beside it.
    fail(`storage: ${(error as Error).message}`);
  }
  return out;
}

/** Checks the settings and fills the defaults; throws EtcdClusterPropsError naming the value and the fix. */
export function validateSettings(p: EtcdClusterSettings, projectRoot: string): ValidSettings {
  const clusterSize = p.clusterSize ?? 3;
  if (!Number.isInteger(clusterSize) || clusterSize < 1 || clusterSize > 7 || clusterSize % 2 === 0) {
    fail(
      `clusterSize must be odd and from 1 to 7 (etcd's advice: 3 or 5; an even size adds no fault tolerance), got ${JSON.stringify(p.clusterSize)}`,
    );
  }
  const architecture = p.architecture ?? "x64";
  if (architecture !== "x64" && architecture !== "arm64")
    fail(`architecture must be "x64" or "arm64", got ${JSON.stringify(p.architecture)}`);
  const os = p.os ?? "flatcar";
  if (os !== "flatcar" && os !== "fcos") fail(`os must be "flatcar" or "fcos", got ${JSON.stringify(p.os)}`);
  const instanceType = p.instanceType ?? (architecture === "arm64" ? "m7g.large" : "m6i.large");
  const it = INSTANCE_TYPE_RE.exec(instanceType);
  if (!it) fail(`instanceType must look like m6i.large, got ${JSON.stringify(instanceType)}`);
  const graviton = (it[3] ?? "").startsWith("g");
  if (graviton !== (architecture === "arm64")) {
    fail(
      `instanceType ${instanceType} is ${graviton ? "a Graviton (arm64)" : "an x64"} type but architecture is ${architecture}; set architecture: "${graviton ? "arm64" : "x64"}" or pick a ${architecture === "arm64" ? "Graviton type such as m7g.large" : "type such as m6i.large"}`,
    );
  }
  if (
    p.amis !== undefined &&
    (!p.amis || typeof p.amis !== "object" || Array.isArray(p.amis) || Object.keys(p.amis).length === 0)
  ) {
    fail(
      `amis must map at least one region to the ${os === "flatcar" ? "Flatcar" : "Fedora CoreOS"} AMI for ${architecture}, such as { "eu-west-1": "ami-0123456789abcdef0" } (context key etcd:amis), or be left out to use the official image found by lookup; got ${JSON.stringify(p.amis)}`,
    );
  }
  for (const [region, ami] of Object.entries(p.amis ?? {})) {
    if (!REGION_RE.test(region))
      fail(`amis has ${JSON.stringify(region)}, which is not a region name such as eu-west-1`);
    if (!AMI_RE.test(ami))
      fail(`amis[${region}] must be an AMI ID such as ami-0123456789abcdef0, got ${JSON.stringify(ami)}`);
  }
  const domain = p.domain ?? "etcd.internal";
  if (!DOMAIN_RE.test(domain))
    fail(
      `domain must be a lowercase DNS name such as etcd.internal (no trailing dot), got ${JSON.stringify(domain)}`,
    );
  if (p.etcdVersion !== undefined && !/^v3\.(4|5|6)\.\d+$/.test(p.etcdVersion))
    fail(`etcdVersion must be an etcd image tag such as v3.5.17, got ${JSON.stringify(p.etcdVersion)}`);
  if (p.etcdVersion !== undefined && p.etcdVersion !== ETCD_IMAGE.tag && p.etcdImageDigest === undefined)
    fail(
      `etcdVersion ${p.etcdVersion} needs etcdImageDigest (nodes pull etcd by digest): crane digest ${ETCD_IMAGE.repository}:${p.etcdVersion}`,
    );
  if (p.etcdImageDigest !== undefined && !DIGEST_RE.test(p.etcdImageDigest))
    fail(
      `etcdImageDigest must be sha256: and 64 lowercase hex digits, got ${JSON.stringify(p.etcdImageDigest)}`,
    );
  const dataVolumeGiB = wholeInRange("dataVolumeGiB", p.dataVolumeGiB, 20, 8, 16384);
  const agentStorage = validateStorage(p.storage ?? {}, dataVolumeGiB);
  const backupExpireAfterDays = wholeInRange(
    "backup.expireAfterDays",
    p.backup?.expireAfterDays,
    35,
    1,
    3650,
  );
  const lock = p.backup?.objectLock;
  let backupLock: ValidSettings["backupLock"] = null;
  if (lock !== false) {
    const mode = lock?.mode ?? "GOVERNANCE";
    if (mode !== "GOVERNANCE" && mode !== "COMPLIANCE")
      fail(`backup.objectLock.mode must be GOVERNANCE or COMPLIANCE, got ${JSON.stringify(mode)}`);
    backupLock = { mode, days: wholeInRange("backup.objectLock.days", lock?.days, 14, 1, 3650) };
  }
  const backupReplicateToBucketArn = p.backup?.replicateToBucketArn;
  if (
    backupReplicateToBucketArn !== undefined &&
    !/^arn:aws[\w-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(backupReplicateToBucketArn)
  )
    fail(
      `backup.replicateToBucketArn must be an S3 bucket ARN such as arn:aws:s3:::my-etcd-backups-copy, got ${JSON.stringify(backupReplicateToBucketArn)}`,
    );
  const natGateways = wholeInRange("natGateways", p.natGateways, 1, 0, 3);
  if (p.bastionAllowedCidr !== undefined) {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(p.bastionAllowedCidr);
    if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32)
      fail(
        `bastionAllowedCidr must be an IPv4 CIDR such as 203.0.113.7/32, got ${JSON.stringify(p.bastionAllowedCidr)}`,
      );
    if (Number(m[5]) < 16)
      fail(
        `bastionAllowedCidr ${p.bastionAllowedCidr} opens SSH to ${2 ** (32 - Number(m[5]))} addresses; give your own /32 (or a /16 or narrower), or leave it out and use SSM Session Manager`,
      );
  }
  if (p.availabilityZones !== undefined) {
    if (
      p.availabilityZones.length !== 3 ||
      p.availabilityZones.some((z) => !/^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$/.test(z))
    )
      fail(
        `availabilityZones must name 3 zones such as ["eu-west-1a", "eu-west-1b", "eu-west-1c"], got ${JSON.stringify(p.availabilityZones)}`,
      );
  }
  for (const key of p.sshAuthorizedKeys ?? []) {
    if (!/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/.test(key))
      fail(
        `sshAuthorizedKeys has a line that is not an OpenSSH public key: ${JSON.stringify(key.slice(0, 40))}`,
      );
  }
  const agentBinaryPath = p.agentBinaryPath ?? `${projectRoot}/dist/etcd-agent-linux-${architecture}`;
  if (!existsSync(agentBinaryPath) || !existsSync(`${agentBinaryPath}.sha512`)) {
    fail(`the agent binary ${agentBinaryPath} (and its .sha512) is missing; run npm run build:binary first`);
  }
  const agentBinarySha512 = readFileSync(`${agentBinaryPath}.sha512`, "utf8").trim().split(/\s+/)[0] ?? "";
  if (!/^[0-9a-f]{128}$/.test(agentBinarySha512))
    fail(`${agentBinaryPath}.sha512 does not hold a sha512; run npm run build:binary again`);
  return {
    clusterSize,
    instanceType,
    architecture,
    os,
    amis: p.amis === undefined ? undefined : { ...p.amis },
    domain,
    etcdVersion: p.etcdVersion,
    etcdImageDigest: p.etcdImageDigest,
    dataVolumeGiB,
    agentStorage,
    backupExpireAfterDays,
    backupLock,
    backupReplicateToBucketArn,
    backupCustomerManagedKey: p.backup?.customerManagedKey ?? true,
    secretsCustomerManagedKey: p.secretsCustomerManagedKey ?? true,
    bastionAllowedCidr: p.bastionAllowedCidr,
    sshAuthorizedKeys: p.sshAuthorizedKeys ?? [],
    bastionKeyName: p.bastionKeyName,
    natGateways,
    availabilityZones: p.availabilityZones,
    agentBinaryPath,
    agentBinarySha512,
  };
}

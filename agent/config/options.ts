// The agent's options, one row each: the flag, its type, default, range and help. The ETCD_AGENT_*
// name is the flag's (envName); the yargs options and --help (agent/cli.ts), the parsing
// (config.ts), DEFAULTS and the names Ignition writes (ignition/render.ts) are all read from here.
// A row's key is the flag in camelCase: the key yargs gives both the flag and the variable.
import { ETCD_DEFAULTS, MAX_QUOTA_BYTES, MIN_QUOTA_BYTES } from "./etcd-settings.js";

/**
 * The longest interval between cycles: the default startup grace. A longer one would reach the
 * in-memory deadlines (grace, unhealthy) only in steps of the interval.
 */
export const MAX_INTERVAL_SECONDS = 300;

export type OptionType = "string" | "path" | "number" | "boolean" | "choice";

export interface OptionRow {
  flag: string;
  /** path: an absolute path (trailing slashes dropped); number: a whole number from min to max. */
  type: OptionType;
  /** Used when neither the flag nor the variable is set; none: the setting is off or derived. */
  default?: string | number;
  min?: number;
  max?: number;
  choices?: readonly string[];
  /** The flag without a value is refused (numbers always). */
  requiresArg?: boolean;
  /** For --help; "{default}" is replaced by the default. */
  help: string;
}

export const OPTIONS = {
  domain: { flag: "domain", type: "string", help: "DNS domain of the cluster's records, e.g. etcd.internal" },
  hostedZoneId: { flag: "hosted-zone-id", type: "string", help: "Route53 private hosted zone ID" },
  asgName: { flag: "asg-name", type: "string", help: "Auto Scaling group; default: this instance's own" },
  region: { flag: "region", type: "string", help: "AWS region; default: AWS_REGION, else instance metadata" },
  endpoints: {
    flag: "endpoints",
    type: "string",
    requiresArg: true,
    help: "etcd client URLs to ask as well, comma-separated (when the ASG cannot be read)",
  },
  dataDir: {
    flag: "data-dir",
    type: "path",
    default: "/var/lib/etcd",
    help: "etcd data dir (default {default})",
  },
  stateDir: {
    flag: "state-dir",
    type: "path",
    default: "/var/lib/etcd-agent",
    help: "the agent's state dir (default {default})",
  },
  fileOwner: {
    flag: "file-owner",
    type: "string",
    help: "the user the agent's state and the node's certificates belong to: the user run runs as (a node: etcd-agent; default: whoever writes them)",
  },
  envFile: {
    flag: "env-file",
    type: "path",
    default: "/etc/etcd-agent/etcd.env",
    help: "etcd's environment file (default {default})",
  },
  clientPort: {
    flag: "client-port",
    type: "number",
    default: 2379,
    min: 1,
    max: 65535,
    help: "etcd client port (default {default})",
  },
  peerPort: {
    flag: "peer-port",
    type: "number",
    default: 2380,
    min: 1,
    max: 65535,
    help: "etcd peer port (default {default})",
  },
  intervalSeconds: {
    flag: "interval-seconds",
    type: "number",
    default: 10,
    min: 1,
    max: MAX_INTERVAL_SECONDS,
    help: `run: seconds between cycles, 1 to ${MAX_INTERVAL_SECONDS} and at most half the unit's WatchdogSec (default {default})`,
  },
  startupGraceSeconds: {
    flag: "startup-grace-seconds",
    type: "number",
    default: 300,
    min: 10,
    max: 86400,
    help: "seconds an added member may take to start (default {default})",
  },
  unhealthyDeadlineSeconds: {
    flag: "unhealthy-deadline-seconds",
    type: "number",
    default: 600,
    min: 30,
    max: 86400,
    help: "seconds before an unhealthy member's instance is reported (default {default})",
  },
  bootTimeoutSeconds: {
    flag: "boot-timeout-seconds",
    type: "number",
    default: 120,
    min: 1,
    max: 3600,
    help: "boot: give up after (default {default})",
  },
  metadataTimeoutSeconds: {
    flag: "metadata-timeout-seconds",
    type: "number",
    default: 30,
    min: 1,
    max: 600,
    help: "give up on instance metadata after (default {default})",
  },
  backupBucket: {
    flag: "backup-bucket",
    type: "string",
    help: "S3 bucket for snapshots; without it backups are off",
  },
  backupPrefix: {
    flag: "backup-prefix",
    type: "string",
    help: "key prefix ending in / (default backups/<asg name>/)",
  },
  backupIntervalMinutes: {
    flag: "backup-interval-minutes",
    type: "number",
    default: 15,
    min: 1,
    max: 1440,
    help: "run: minutes between the leader's snapshots (default {default})",
  },
  backupHourlyHours: {
    flag: "backup-hourly-hours",
    type: "number",
    default: 48,
    min: 0,
    max: 8760,
    help: "keep the newest snapshot of each hour this long (default {default})",
  },
  backupDailyDays: {
    flag: "backup-daily-days",
    type: "number",
    default: 30,
    min: 0,
    max: 3650,
    help: "keep the newest snapshot of each day this long (default {default})",
  },
  backupS3PathStyle: {
    flag: "backup-s3-path-style",
    type: "boolean",
    help: "path-style S3 addressing (S3-compatible endpoints)",
  },
  restoreAfterSeconds: {
    flag: "restore-after-seconds",
    type: "number",
    default: 300,
    min: 10,
    max: 86400,
    help: "boot: restore from the newest snapshot after no member answered this long, every former member gone (default {default})",
  },
  restoreTool: {
    flag: "restore-tool",
    type: "string",
    default: "etcdctl",
    help: "etcd's restore program: etcdctl (3.4) or etcdutl (3.5+), or a wrapper (default {default})",
  },
  plaintext: {
    flag: "plaintext",
    type: "boolean",
    help: "talk to etcd without TLS (the sandbox, migrations); default TLS with client certificates",
  },
  tlsDir: {
    flag: "tls-dir",
    type: "path",
    default: "/etc/etcd-agent/tls",
    help: "where a node's CA, certificate and key live (default {default})",
  },
  tlsEtcdDir: {
    flag: "tls-etcd-dir",
    type: "path",
    help: "the TLS directory as etcd sees it in its container (Flatcar: /etc/ssl/certs; default the same)",
  },
  tlsGroup: {
    flag: "tls-group",
    type: "string",
    help: "the group etcd runs as, which reads the node's certificates and key (a node: etcd; default: private to the owner)",
  },
  tlsExtraNames: {
    flag: "tls-extra-names",
    type: "string",
    help: "more IPs or DNS names for a node's certificate, comma-separated (beside its IP, A record, domain)",
  },
  tlsCaFile: {
    flag: "tls-ca-file",
    type: "path",
    help: "the cluster CA's certificate (default <tls-dir>/ca.crt)",
  },
  tlsCertFile: {
    flag: "tls-cert-file",
    type: "path",
    help: "the client certificate to present (default <tls-dir>/node.crt)",
  },
  tlsKeyFile: { flag: "tls-key-file", type: "path", help: "its private key (default <tls-dir>/node.key)" },
  tlsCaSecret: {
    flag: "tls-ca-secret",
    type: "string",
    help: "Secrets Manager secret of the cluster CA (default etcd-agent/<asg name>/ca)",
  },
  tlsOperatorSecret: {
    flag: "tls-operator-secret",
    type: "string",
    help: "Secrets Manager secret of the operators' client certificate (default etcd-agent/<asg name>/operator)",
  },
  tlsSecretsKmsKey: {
    flag: "tls-secrets-kms-key",
    type: "string",
    help: "KMS key (ID, ARN or alias) the agent creates both TLS secrets under (default Secrets Manager's aws/secretsmanager)",
  },
  tlsCertLifetimeSeconds: {
    flag: "tls-cert-lifetime-seconds",
    type: "number",
    default: 90 * 86_400,
    min: 60,
    max: 5 * 365 * 86_400,
    help: "lifetime of the certificates the agent issues, renewed with a third left (default {default})",
  },
  tlsCaCheckSeconds: {
    flag: "tls-ca-check-seconds",
    type: "number",
    default: 300,
    min: 5,
    max: 86_400,
    help: "how often run reads the CA secret for a rotation (every cycle during one; default {default})",
  },
  etcdRestartCommand: {
    flag: "etcd-restart-command",
    type: "string",
    help: "what restarts etcd to load a rotated CA bundle, run by /bin/sh (default: ask root's etcd-agent-restart-etcd.path through /run/etcd-agent/restart-etcd.request)",
  },
  restoreBumpRevision: {
    flag: "restore-bump-revision",
    type: "number",
    default: 1_000_000_000,
    min: 0,
    max: 1_000_000_000_000,
    help: "restore: add this to the snapshot's revision and mark it compacted, so watchers resync (etcdutl 3.5.10+; 0 off; default {default})",
  },
  metricsNamespace: {
    flag: "metrics-namespace",
    type: "string",
    requiresArg: true,
    help: "run: the CloudWatch namespace the leader publishes the cluster's metrics to (default: none, not published)",
  },
  metricsPeriodSeconds: {
    flag: "metrics-period-seconds",
    type: "number",
    default: 60,
    min: 10,
    max: 3600,
    help: "run: seconds between the leader's PutMetricData calls, 10 to 3600 (default {default})",
  },
  metricsListen: {
    flag: "metrics-listen",
    type: "string",
    default: "127.0.0.1:9379",
    requiresArg: true,
    help: "run: address:port of this node's Prometheus endpoint, GET /metrics, or off (default {default})",
  },
  etcdQuotaBackendBytes: {
    flag: "etcd-quota-backend-bytes",
    type: "number",
    default: ETCD_DEFAULTS.quotaBackendBytes,
    min: MIN_QUOTA_BYTES,
    max: MAX_QUOTA_BYTES,
    help: "boot: etcd's quota; NOSPACE and no writes above it (default {default}, at most 8 GiB and 40% of the data volume)",
  },
  etcdAutoCompactionMode: {
    flag: "etcd-auto-compaction-mode",
    type: "choice",
    choices: ["periodic", "revision"],
    default: ETCD_DEFAULTS.autoCompactionMode,
    help: "boot: how etcd compacts its history (default {default})",
  },
  etcdAutoCompactionRetention: {
    flag: "etcd-auto-compaction-retention",
    type: "string",
    help: `boot: history etcd keeps, 1m to 720h periodic or a revision count, 0 off (default ${ETCD_DEFAULTS.autoCompactionRetention})`,
  },
  etcdSnapshotCount: {
    flag: "etcd-snapshot-count",
    type: "number",
    default: ETCD_DEFAULTS.snapshotCount,
    min: 100,
    max: 10_000_000,
    help: "boot: committed entries between etcd's raft snapshots (default {default})",
  },
  etcdExtraEnv: {
    flag: "etcd-extra-env",
    type: "string",
    help: "boot: more etcd variables from an allow-list, KEY=VALUE;KEY=VALUE (e.g. ETCD_HEARTBEAT_INTERVAL=200;ETCD_ELECTION_TIMEOUT=2000)",
  },
  defragFreePercent: {
    flag: "defrag-free-percent",
    type: "number",
    default: ETCD_DEFAULTS.defragFreePercent,
    min: 0,
    max: 100,
    help: "run: the leader defragments a member whose free space is this share of its db, 0 off (default {default})",
  },
  defragQuotaPercent: {
    flag: "defrag-quota-percent",
    type: "number",
    default: ETCD_DEFAULTS.defragQuotaPercent,
    min: 0,
    max: 100,
    help: "run: ... or whose db is this share of the quota, 0 off (default {default})",
  },
  logLevel: {
    flag: "log-level",
    type: "choice",
    choices: ["debug", "info", "warn", "error"],
    default: "info",
    help: "how much the agent logs (default {default})",
  },
} as const satisfies Record<string, OptionRow>;

export type OptionKey = keyof typeof OPTIONS;
type Rows = typeof OPTIONS;
/** The keys of the rows of one type: parsing a number as a string does not compile. */
export type KeyOf<T extends OptionType> = {
  [K in OptionKey]: Rows[K]["type"] extends T ? K : never;
}[OptionKey];
type WithDefault = { [K in OptionKey]: Rows[K] extends { default: string | number } ? K : never }[OptionKey];

/** The environment variable of a flag: ETCD_AGENT_ and the flag in capitals, - as _. */
export const envName = (flag: string): string => `ETCD_AGENT_${flag.replace(/-/g, "_").toUpperCase()}`;

/** An option as the messages name it: the flag and its variable. */
export function describeOption(key: OptionKey): string {
  const { flag } = OPTIONS[key];
  return `--${flag} (${envName(flag)})`;
}

/** Every default, by option key. */
export const DEFAULTS = Object.fromEntries(
  Object.entries(OPTIONS).flatMap(([k, row]) => ("default" in row ? [[k, row.default]] : [])),
) as { [K in WithDefault]: Rows[K] extends { default: infer D } ? D : never };

/** The row's help with its default and, where yargs does not show it, its type. */
export function helpOf(row: OptionRow): string {
  const text = row.help.replace("{default}", String(row.default));
  // yargs shows [string] and [boolean] itself; numbers and choices reach yargs as strings, so the
  // agent's own messages name a bad value (yargs would make "abc" NaN and refuse a choice itself).
  if (row.type === "number") return `${text} [number]`;
  if (row.type === "choice") return `${text} [choices: ${row.choices?.map((c) => `"${c}"`).join(", ")}]`;
  return text;
}

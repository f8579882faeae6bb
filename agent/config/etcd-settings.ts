// etcd's own settings that operators tune, as the agent writes them into etcd's environment file:
// storage (quota, compaction, snapshots) and a narrow pass-through for a few more ETCD_* variables.
// Everything the agent derives itself (names, URLs, cluster, TLS paths) is refused here, by name.
import { ConfigError } from "../errors.js";

export interface EtcdSettings {
  /** ETCD_QUOTA_BACKEND_BYTES: etcd raises NOSPACE and refuses writes when its db file reaches it. */
  quotaBackendBytes: number;
  /** ETCD_AUTO_COMPACTION_MODE. */
  autoCompactionMode: "periodic" | "revision";
  /** ETCD_AUTO_COMPACTION_RETENTION: a duration for periodic ("1h", "30m"), a revision count for revision; "0" off. */
  autoCompactionRetention: string;
  /** ETCD_SNAPSHOT_COUNT: committed entries between etcd's own raft snapshots. */
  snapshotCount: number;
  /** More ETCD_* variables from the allow-list, in the order given. */
  extra: Array<[string, string]>;
}

/** When the leader defragments a member (besides a NOSPACE alarm, which always leads to one). */
export interface DefragSettings {
  /** Free space (db size - in use) at least this share of the db size, in percent; 0: never for this. */
  freePercent: number;
  /** The db size at least this share of the quota (and something to free), in percent; 0: never for this. */
  quotaPercent: number;
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

export const ETCD_DEFAULTS = {
  /** etcd's own default: safe on any disk the construct makes (its default volume allows 8 GiB). */
  quotaBackendBytes: 2 * GIB,
  autoCompactionMode: "periodic",
  /** An hour of history for watchers to resume from; older revisions are compacted away. */
  autoCompactionRetention: "1h",
  /** etcd 3.5's default (3.4's 100000 keeps ten times the entries in memory). */
  snapshotCount: 10_000,
  defragFreePercent: 50,
  defragQuotaPercent: 80,
} as const;

/** etcd warns above 8 GiB; larger quotas make every defragmentation and restore long. */
export const MAX_QUOTA_BYTES = 8 * GIB;
/** Below a MiB etcd's own bookkeeping fills the quota; the tests use a few MiB. */
export const MIN_QUOTA_BYTES = MIB;

/**
 * The quota a data volume of `volumeGiB` holds: a defragmentation writes a second copy of the db
 * beside the first, and the WAL and etcd's snapshots need room too, so at most 40% of the volume,
 * and never above MAX_QUOTA_BYTES.
 */
export function quotaForVolume(volumeGiB: number): number {
  return Math.min(MAX_QUOTA_BYTES, Math.floor((volumeGiB * GIB * 40) / 100 / MIB) * MIB);
}

type Check = (value: string) => string | null;

const int =
  (min: number, max: number): Check =>
  (v) =>
    /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? null : `a whole number from ${min} to ${max}`;
const oneOf =
  (...values: string[]): Check =>
  (v) =>
    values.includes(v) ? null : `one of ${values.join(", ")}`;
const duration: Check = (v) =>
  /^\d+(ms|s|m|h)$/.test(v) ? null : "a duration such as 2h, 5s or 500ms (a number and ms, s, m or h)";
const boolean = oneOf("true", "false");

/**
 * The ETCD_* variables an operator may add through the agent, each with its check. Anything not
 * listed is refused: a new one is added here with its check, not passed through blindly.
 */
export const PASS_THROUGH: Readonly<Record<string, Check>> = {
  ETCD_HEARTBEAT_INTERVAL: int(10, 10_000),
  ETCD_ELECTION_TIMEOUT: int(50, 50_000),
  ETCD_MAX_SNAPSHOTS: int(0, 1000),
  ETCD_MAX_WALS: int(0, 1000),
  ETCD_MAX_TXN_OPS: int(1, 1_000_000),
  ETCD_MAX_REQUEST_BYTES: int(1024, 64 * MIB),
  ETCD_GRPC_KEEPALIVE_MIN_TIME: duration,
  ETCD_GRPC_KEEPALIVE_INTERVAL: duration,
  ETCD_GRPC_KEEPALIVE_TIMEOUT: duration,
  ETCD_BACKEND_BATCH_INTERVAL: duration,
  ETCD_BACKEND_BATCH_LIMIT: int(1, 1_000_000),
  ETCD_LOG_LEVEL: oneOf("debug", "info", "warn", "error", "panic", "fatal"),
  ETCD_METRICS: oneOf("basic", "extensive"),
  ETCD_ENABLE_PPROF: boolean,
  ETCD_CIPHER_SUITES: (v) =>
    /^[A-Z0-9_]+(,[A-Z0-9_]+)*$/.test(v) ? null : "comma-separated Go cipher suite names",
  ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK: boolean,
  ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME: duration,
};

/** Variables the agent writes itself, or that would undo what it does, and where they come from. */
const OWNED: Array<[RegExp, string]> = [
  [/^ETCD_QUOTA_BACKEND_BYTES$/, "use --etcd-quota-backend-bytes (ETCD_AGENT_ETCD_QUOTA_BACKEND_BYTES)"],
  [/^ETCD_AUTO_COMPACTION_MODE$/, "use --etcd-auto-compaction-mode (ETCD_AGENT_ETCD_AUTO_COMPACTION_MODE)"],
  [
    /^ETCD_AUTO_COMPACTION_RETENTION$/,
    "use --etcd-auto-compaction-retention (ETCD_AGENT_ETCD_AUTO_COMPACTION_RETENTION)",
  ],
  [/^ETCD_SNAPSHOT_COUNT$/, "use --etcd-snapshot-count (ETCD_AGENT_ETCD_SNAPSHOT_COUNT)"],
  [/^ETCD_(NAME|DATA_DIR|WAL_DIR)$/, "the agent names the member after its instance and owns its data dir"],
  [
    /^ETCD_INITIAL_CLUSTER(_STATE|_TOKEN)?$/,
    "the agent decides bootstrap, join and rejoin and writes these itself (docs/architecture.md)",
  ],
  [/_URLS$/, "the agent derives every URL from the instance's address and --client-port/--peer-port"],
  [
    /(CERT_FILE|KEY_FILE|TRUSTED_CA_FILE|CLIENT_CERT_AUTH|AUTO_TLS|CRL_FILE|CERT_ALLOWED_CN|CERT_ALLOWED_HOSTNAME)$/,
    "the agent issues and writes the TLS files itself (docs/security.md); use --plaintext to turn TLS off",
  ],
  [
    /^ETCD_(STRICT_RECONFIG_CHECK|FORCE_NEW_CLUSTER|DISCOVERY.*|PROXY.*|ENABLE_V2)$/,
    "the agent relies on it as it writes it",
  ],
];

function describeFlag(flag: string): string {
  return `--${flag} (ETCD_AGENT_${flag.replace(/-/g, "_").toUpperCase()})`;
}

/**
 * Parses `--etcd-extra-env`: KEY=VALUE pairs separated by ";" (values may hold commas), each key
 * on the allow-list and its value checked. Refuses what the agent owns with where it comes from.
 */
export function parseExtraEnv(raw: string | null): Array<[string, string]> {
  if (raw === null || raw.trim() === "") return [];
  const flag = describeFlag("etcd-extra-env");
  const out: Array<[string, string]> = [];
  for (const part of raw.split(";").map((p) => p.trim())) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = eq > 0 ? part.slice(0, eq) : part;
    const value = eq > 0 ? part.slice(eq + 1) : "";
    if (eq <= 0 || !/^ETCD_[A-Z0-9_]+$/.test(key))
      throw new ConfigError(
        `${flag} takes ETCD_NAME=value pairs separated by ";", such as ETCD_HEARTBEAT_INTERVAL=200;ETCD_ELECTION_TIMEOUT=2000, got ${JSON.stringify(part)}`,
      );
    const owned = OWNED.find(([re]) => re.test(key));
    if (owned)
      throw new ConfigError(
        `${flag} cannot set ${key} (${JSON.stringify(part)}): ${owned[1]}; remove it from ${flag}`,
      );
    const check = PASS_THROUGH[key];
    if (check === undefined)
      throw new ConfigError(
        `${flag} cannot set ${key} (${JSON.stringify(part)}): it is not on the agent's pass-through list (${Object.keys(PASS_THROUGH).join(", ")}); remove it, or add it with its check to PASS_THROUGH in agent/config/etcd-settings.ts`,
      );
    const wrong = check(value);
    if (wrong !== null)
      throw new ConfigError(`${flag}: ${key} must be ${wrong}, got ${JSON.stringify(value)}`);
    if (out.some(([k]) => k === key))
      throw new ConfigError(`${flag} sets ${key} twice (${JSON.stringify(raw)}); keep one`);
    out.push([key, value]);
  }
  return out;
}

/** Checks a compaction retention against its mode; returns it as etcd takes it. */
export function checkRetention(mode: "periodic" | "revision", value: string): string {
  const flag = describeFlag("etcd-auto-compaction-retention");
  if (value === "0") return value;
  if (mode === "periodic") {
    // etcd reads a bare number as hours; a duration below a minute compacts faster than watchers resume.
    const m = /^(\d+)(s|m|h)?$/.exec(value);
    const seconds = m ? Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] ?? "h"] ?? 3600) : Number.NaN;
    if (!(seconds >= 60 && seconds <= 30 * 86_400))
      throw new ConfigError(
        `${flag} must be a duration from 1m to 720h such as 1h or 30m (periodic mode), or 0 to turn auto-compaction off, got ${JSON.stringify(value)}`,
      );
    return value;
  }
  if (!/^\d+$/.test(value) || Number(value) < 1000 || Number(value) > 1_000_000_000)
    throw new ConfigError(
      `${flag} must be a number of revisions from 1000 to 1000000000 (revision mode), or 0 to turn auto-compaction off, got ${JSON.stringify(value)}`,
    );
  return value;
}

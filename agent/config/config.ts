// Configuration from flags and ETCD_AGENT_* variables (yargs maps one onto the other), validated
// before anything touches the cluster. A bad value gets a message with the value and the fix.
import { isIP } from "node:net";
import { ConfigError } from "../errors.js";
import type { Level } from "../log.js";
import { MAX_ASG_NAME_LENGTH } from "../planner/marker.js";
import {
  checkRetention,
  type DefragSettings,
  ETCD_DEFAULTS,
  type EtcdSettings,
  parseExtraEnv,
} from "./etcd-settings.js";
import {
  DEFAULTS,
  describeOption,
  envName,
  type KeyOf,
  MAX_INTERVAL_SECONDS,
  OPTIONS,
  type OptionKey,
  type OptionRow,
} from "./options.js";

export interface AgentConfig {
  domain: string;
  hostedZoneId: string;
  /** null: discover from the instance's own ASG membership. */
  asgName: string | null;
  region: string | null;
  /** Extra etcd client URLs to ask, beside the ASG's instances (operator commands). */
  endpoints: string[];
  dataDir: string;
  stateDir: string;
  /**
   * The user the agent's files belong to (its state and the node's certificates): the user
   * `etcd-agent run` runs as (the node: etcd-agent). `boot`, as root, gives what it writes to it.
   * A name or a number; null: whoever writes them.
   */
  fileOwner: string | null;
  envFile: string;
  clientPort: number;
  peerPort: number;
  intervalSeconds: number;
  startupGraceSeconds: number;
  unhealthyDeadlineSeconds: number;
  bootTimeoutSeconds: number;
  metadataTimeoutSeconds: number;
  logLevel: Level;
  /** Snapshots to S3: null turns them off. */
  backup: BackupConfig | null;
  /** TLS to etcd (peers and clients, with client certificates): null is --plaintext. */
  tls: TlsConfig | null;
  /** "https" with TLS, "http" without: the scheme of every etcd URL the agent makes. */
  scheme: "http" | "https";
  /** The cluster's vital signs (docs/metrics.md). */
  metrics: MetricsConfig;
  /** etcd's tunable settings, written into its environment file (agent/config/etcd-settings.ts). */
  etcd: EtcdSettings;
  /** When the leader defragments a member. */
  defrag: DefragSettings;
}

export interface MetricsConfig {
  /** CloudWatch namespace the leader publishes to with PutMetricData; null: not published. */
  namespace: string | null;
  /** One PutMetricData per this many seconds at most (CloudWatch's standard resolution is 60). */
  periodSeconds: number;
  /** Where this node serves Prometheus text (GET /metrics); null: not served. */
  listen: { host: string; port: number } | null;
}

export interface TlsConfig {
  /** A node's files (etcd's and its agent's): ca.crt, node.crt, node.key. */
  dir: string;
  /** The same directory as etcd sees it (Flatcar's etcd-member mounts ETCD_SSL_DIR at /etc/ssl/certs). */
  etcdDir: string;
  /**
   * The group etcd runs as, which reads the node's certificates and key (the node: etcd): the
   * directory is then 0750 and the key 0640 in that group. A name or a number; null: private (0700, 0600).
   */
  group: string | null;
  /** The cluster CA's certificate, and the client certificate and key this agent presents, PEM files. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Secrets Manager secret of the CA (cert and key); null: etcd-agent/<asg name>/ca. */
  caSecret: string | null;
  /** Secrets Manager secret of the operators' client certificate; null: etcd-agent/<asg name>/operator. */
  operatorSecret: string | null;
  /**
   * The KMS key (ID, ARN or alias) both secrets are created under; null: Secrets Manager's own
   * (aws/secretsmanager). Only a secret the agent creates takes it: an existing one keeps its key.
   */
  secretsKmsKey: string | null;
  /** Lifetime of the certificates the agent issues; renewed when a third of it is left. */
  certLifetimeSeconds: number;
  /** More names for a node's certificate (IPs or DNS names), beside its IP, A record and the domain. */
  extraNames: string[];
  /** How often `run` reads the CA secret for a rotation (every cycle while one is under way). */
  caCheckSeconds: number;
  /**
   * The command that restarts etcd (its trusted CA bundle is read only at start); run by /bin/sh.
   * null (a node): ask root's etcd-agent-restart-etcd.path through a request file (docs/security.md).
   */
  etcdRestartCommand: string | null;
}

export interface BackupConfig {
  bucket: string;
  /** Key prefix, ending in "/"; null: backups/<asg name>/. */
  prefix: string | null;
  intervalMinutes: number;
  /** Keep the newest snapshot of each hour for this many hours. */
  hourlyHours: number;
  /** Keep the newest snapshot of each day for this many days. */
  dailyDays: number;
  /** Path-style S3 addressing, for S3-compatible endpoints that have no per-bucket host names. */
  pathStyle: boolean;
  /** Automatic recovery: how long no member may answer (with every former member gone) before a restore. */
  restoreAfterSeconds: number;
  /** etcd's restore program: etcdctl (3.4) or etcdutl (3.5+), or a wrapper that runs it. */
  restoreTool: string;
  /** Added to the restored revision (etcdutl 3.5.10+ --bump-revision with --mark-compacted); 0: off. */
  restoreBumpRevision: number;
}

export { DEFAULTS, MAX_INTERVAL_SECONDS };

/** What a row's value becomes in AgentConfig: a number, a boolean, or text (a list, or null when unset). */
type RowValue<K extends OptionKey> = (typeof OPTIONS)[K]["type"] extends "number"
  ? number
  : (typeof OPTIONS)[K]["type"] extends "boolean"
    ? boolean
    : string | string[] | null;
type Mismatched = {
  [K in keyof AgentConfig & OptionKey]: AgentConfig[K] extends RowValue<K> ? never : K;
}[keyof AgentConfig & OptionKey];
/** Checked when compiled: every AgentConfig field named after an option has that option's type. */
export const AGENT_CONFIG_MATCHES_TABLE: [Mismatched] extends [never] ? true : { mismatched: Mismatched } =
  true;

/** A node's certificate files, in the TLS directory (or as etcd sees it, in its container). */
export function nodeTlsFiles(
  tls: TlsConfig,
  as: "agent" | "etcd" = "agent",
): { caFile: string; certFile: string; keyFile: string } {
  const d = as === "etcd" ? tls.etcdDir : tls.dir;
  return { caFile: `${d}/ca.crt`, certFile: `${d}/node.crt`, keyFile: `${d}/node.key` };
}

/** The secrets a cluster's TLS lives in, by group name, when not given. */
export function tlsSecretNames(tls: TlsConfig, asgName: string): { ca: string; operator: string } {
  return {
    ca: tls.caSecret ?? `etcd-agent/${asgName}/ca`,
    operator: tls.operatorSecret ?? `etcd-agent/${asgName}/operator`,
  };
}

/** A KMS key as Secrets Manager's KmsKeyId takes it: key ID, key ARN, alias name or alias ARN. */
const KMS_KEY_RE =
  /^(?:(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|alias\/[\w/-]{1,250}|arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:(?:key\/(?:mrk-[0-9a-f]{32}|[0-9a-f-]{36})|alias\/[\w/-]{1,250}))$/;

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

type Raw = Record<string, unknown>;

const describe = describeOption;

/** A string option: null when unset (or refused when required). */
function str(raw: Raw, key: OptionKey, required: boolean): string | null {
  const v = raw[key];
  if (v === undefined || v === null || v === "") {
    if (required) throw new ConfigError(`${describe(key)} is required; set the flag or the variable`);
    return null;
  }
  if (typeof v !== "string")
    throw new ConfigError(`${describe(key)} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** A number option: its default when unset, else a whole number in the row's range. */
function int(raw: Raw, key: KeyOf<"number">): number {
  const { default: fallback, min, max } = OPTIONS[key];
  const v = raw[key];
  if (v === undefined || v === null || v === "") return fallback;
  const n = typeof v === "number" ? v : Number(String(v));
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(
      `${describe(key)} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** A boolean option: false when unset; true, false or their strings (the variable's). */
function bool(raw: Raw, key: KeyOf<"boolean">): boolean {
  const v = raw[key];
  if (v === undefined || v === null || v === "" || v === false || v === "false") return false;
  if (v === true || v === "true") return true;
  throw new ConfigError(`${describe(key)} must be true or false, got ${JSON.stringify(v)}`);
}

const DOMAIN_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ZONE_RE = /^[A-Z0-9]{1,32}$/;
const ASG_RE = /^[\w\-.:/@+=]{1,255}$/;

/**
 * The cluster marker (one TXT string, at most 255 characters) embeds the ASG name: a longer name
 * than MAX_ASG_NAME_LENGTH could not be written when the cluster is claimed or restored.
 */
export function checkAsgNameLength(asgName: string, what = "the Auto Scaling group name"): void {
  if (asgName.length > MAX_ASG_NAME_LENGTH) {
    throw new ConfigError(
      `${what} is ${asgName.length} characters (${JSON.stringify(asgName.slice(0, 40))}...); the cluster marker, a TXT string of at most 255 characters, holds it only up to ${MAX_ASG_NAME_LENGTH}: use a shorter Auto Scaling group name`,
    );
  }
}

const LEVELS = new Set(["debug", "info", "warn", "error"]);

export function parseConfig(raw: Raw): AgentConfig {
  const domain = (str(raw, "domain", true) ?? "").replace(/\.$/, "").toLowerCase();
  if (!DOMAIN_RE.test(domain)) {
    throw new ConfigError(
      `${describe("domain")} must be a DNS name such as etcd.internal, got ${JSON.stringify(domain)}`,
    );
  }
  const zoneRaw = str(raw, "hostedZoneId", true) ?? "";
  const hostedZoneId = zoneRaw.replace(/^\/hostedzone\//, "");
  if (!ZONE_RE.test(hostedZoneId)) {
    throw new ConfigError(
      `${describe("hostedZoneId")} must be a Route53 zone ID such as Z0123456789ABC, got ${JSON.stringify(zoneRaw)}`,
    );
  }
  const asgName = str(raw, "asgName", false);
  if (asgName !== null && !ASG_RE.test(asgName)) {
    throw new ConfigError(
      `${describe("asgName")} is not a valid Auto Scaling group name: ${JSON.stringify(asgName)}`,
    );
  }
  if (asgName !== null) checkAsgNameLength(asgName, describe("asgName"));
  const clientPort = int(raw, "clientPort");
  const peerPort = int(raw, "peerPort");
  if (clientPort === peerPort) {
    throw new ConfigError(
      `${describe("clientPort")} and ${describe("peerPort")} must differ, both are ${clientPort}`,
    );
  }
  const logLevel = str(raw, "logLevel", false) ?? DEFAULTS.logLevel;
  if (!LEVELS.has(logLevel)) {
    throw new ConfigError(
      `${describe("logLevel")} must be one of debug, info, warn, error, got ${JSON.stringify(logLevel)}`,
    );
  }
  const path = (key: KeyOf<"path">, fallback?: string) => {
    const row: OptionRow = OPTIONS[key];
    const p = str(raw, key, false) ?? fallback ?? String(row.default);
    if (!p.startsWith("/"))
      throw new ConfigError(`${describe(key)} must be an absolute path, got ${JSON.stringify(p)}`);
    return p.replace(/\/+$/, "") || "/";
  };
  const endpointsRaw = str(raw, "endpoints", false);
  const endpoints =
    endpointsRaw === null
      ? []
      : endpointsRaw
          .split(",")
          .map((e) => e.trim())
          .filter((e) => e !== "");
  for (const e of endpoints) {
    if (!/^https?:\/\/[^\s/]+:\d+$/.test(e)) {
      throw new ConfigError(
        `${describe("endpoints")} takes etcd client URLs such as http://i-0123456789abcdef0.etcd.internal:2379, got ${JSON.stringify(e)}`,
      );
    }
  }
  const bucket = str(raw, "backupBucket", false);
  if (bucket !== null && !BUCKET_RE.test(bucket)) {
    throw new ConfigError(
      `${describe("backupBucket")} must be an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens), got ${JSON.stringify(bucket)}`,
    );
  }
  const prefix = str(raw, "backupPrefix", false);
  if (prefix !== null && !/^[\w!\-.*'()/]{1,512}\/$/.test(prefix)) {
    throw new ConfigError(
      `${describe("backupPrefix")} must be an S3 key prefix ending in "/", such as backups/etcd/, got ${JSON.stringify(prefix)}`,
    );
  }
  const backup: BackupConfig | null =
    bucket === null
      ? null
      : {
          bucket,
          prefix,
          intervalMinutes: int(raw, "backupIntervalMinutes"),
          hourlyHours: int(raw, "backupHourlyHours"),
          dailyDays: int(raw, "backupDailyDays"),
          pathStyle: bool(raw, "backupS3PathStyle"),
          restoreAfterSeconds: int(raw, "restoreAfterSeconds"),
          restoreTool: str(raw, "restoreTool", false) ?? DEFAULTS.restoreTool,
          restoreBumpRevision: int(raw, "restoreBumpRevision"),
        };
  const plaintext = bool(raw, "plaintext");
  const account = (key: "fileOwner" | "tlsGroup", what: string) => {
    const v = str(raw, key, false);
    if (v !== null && !/^([a-z_][a-z0-9_-]{0,31}|\d{1,10})$/.test(v))
      throw new ConfigError(`${describe(key)} must be ${what} or a number, got ${JSON.stringify(v)}`);
    return v;
  };
  if (raw.tlsKeyOwner !== undefined)
    throw new ConfigError(
      `${`--tls-key-owner (${envName("tls-key-owner")})`} is no longer read (got ${JSON.stringify(raw.tlsKeyOwner)}): the node's key now belongs to ${describe("fileOwner")} and is read by ${describe("tlsGroup")}; on a node set ETCD_AGENT_FILE_OWNER=etcd-agent and ETCD_AGENT_TLS_GROUP=etcd (docs/node.md)`,
    );
  const tlsDir = path("tlsDir");
  const secretName = (key: "tlsCaSecret" | "tlsOperatorSecret") => {
    const v = str(raw, key, false);
    if (v !== null && !/^[\w/+=.@-]{1,512}$/.test(v))
      throw new ConfigError(
        `${describe(key)} must be a Secrets Manager secret name (letters, digits, /_+=.@-), got ${JSON.stringify(v)}`,
      );
    return v;
  };
  const tls: TlsConfig | null = plaintext
    ? null
    : {
        dir: tlsDir,
        etcdDir: path("tlsEtcdDir", tlsDir),
        group: account("tlsGroup", "a group name such as etcd"),
        caFile: path("tlsCaFile", `${tlsDir}/ca.crt`),
        certFile: path("tlsCertFile", `${tlsDir}/node.crt`),
        keyFile: path("tlsKeyFile", `${tlsDir}/node.key`),
        caSecret: secretName("tlsCaSecret"),
        operatorSecret: secretName("tlsOperatorSecret"),
        secretsKmsKey: (() => {
          const v = str(raw, "tlsSecretsKmsKey", false);
          if (v !== null && !KMS_KEY_RE.test(v))
            throw new ConfigError(
              `${describe("tlsSecretsKmsKey")} must be a KMS key ID, key ARN, alias name or alias ARN, got ${JSON.stringify(v)}; the CDK construct sets it to its secrets key`,
            );
          return v;
        })(),
        extraNames: (() => {
          const v = str(raw, "tlsExtraNames", false);
          const names =
            v === null
              ? []
              : v
                  .split(",")
                  .map((n) => n.trim())
                  .filter((n) => n !== "");
          for (const n of names) {
            if (isIP(n) === 0 && !DOMAIN_RE.test(n.toLowerCase()))
              throw new ConfigError(
                `${describe("tlsExtraNames")} takes IP addresses and DNS names, comma-separated; ${JSON.stringify(n)} is neither`,
              );
          }
          return names;
        })(),
        certLifetimeSeconds: int(raw, "tlsCertLifetimeSeconds"),
        caCheckSeconds: int(raw, "tlsCaCheckSeconds"),
        etcdRestartCommand: str(raw, "etcdRestartCommand", false),
      };
  for (const e of endpoints) {
    const want = plaintext ? "http://" : "https://";
    if (!e.startsWith(want))
      throw new ConfigError(
        `${describe("endpoints")}: ${JSON.stringify(e)} does not start with ${want}, but the agent runs ${plaintext ? "in plaintext (--plaintext)" : "with TLS"}; use ${want} URLs${plaintext ? "" : " or --plaintext for a plaintext cluster"}`,
      );
  }
  return checkRestoreBound({
    metrics: parseMetrics(raw),
    etcd: parseEtcdSettings(raw),
    defrag: {
      freePercent: int(raw, "defragFreePercent"),
      quotaPercent: int(raw, "defragQuotaPercent"),
    },
    tls,
    scheme: plaintext ? "http" : "https",
    backup,
    domain,
    hostedZoneId,
    asgName,
    region: str(raw, "region", false),
    endpoints,
    dataDir: path("dataDir"),
    stateDir: path("stateDir"),
    fileOwner: account("fileOwner", "a user name such as etcd-agent"),
    envFile: path("envFile"),
    clientPort,
    peerPort,
    intervalSeconds: int(raw, "intervalSeconds"),
    startupGraceSeconds: int(raw, "startupGraceSeconds"),
    unhealthyDeadlineSeconds: int(raw, "unhealthyDeadlineSeconds"),
    bootTimeoutSeconds: int(raw, "bootTimeoutSeconds"),
    metadataTimeoutSeconds: int(raw, "metadataTimeoutSeconds"),
    logLevel: logLevel as Level,
  });
}

/** CloudWatch namespaces: letters, digits and . - _ / # : (up to 255), never AWS/ (AWS's own). */
const NAMESPACE_RE = /^[A-Za-z0-9.\-_/#:]{1,255}$/;

function parseMetrics(raw: Raw): MetricsConfig {
  const namespace = str(raw, "metricsNamespace", false);
  if (namespace !== null && (!NAMESPACE_RE.test(namespace) || namespace.startsWith("AWS/")))
    throw new ConfigError(
      `${describe("metricsNamespace")} must be a CloudWatch namespace such as EtcdAgent (letters, digits, . - _ / # :, not starting with AWS/), got ${JSON.stringify(namespace)}`,
    );
  const periodSeconds = int(raw, "metricsPeriodSeconds");
  const listenRaw = str(raw, "metricsListen", false) ?? DEFAULTS.metricsListen;
  if (listenRaw === "off") return { namespace, periodSeconds, listen: null };
  const m = /^(.+):(\d{1,5})$/.exec(listenRaw);
  const host = m?.[1] ?? "";
  const port = Number(m?.[2]);
  if (!m || isIP(host) !== 4 || port < 1 || port > 65535)
    throw new ConfigError(
      `${describe("metricsListen")} must be an IPv4 address and port such as 127.0.0.1:9379 (loopback) or the node's own address, or off, got ${JSON.stringify(listenRaw)}`,
    );
  return { namespace, periodSeconds, listen: { host, port } };
}

/** etcd's storage settings and the pass-through, each checked, with the defaults filled in. */
function parseEtcdSettings(raw: Raw): EtcdSettings {
  const mode = str(raw, "etcdAutoCompactionMode", false) ?? "periodic";
  if (mode !== "periodic" && mode !== "revision")
    throw new ConfigError(
      `${describe("etcdAutoCompactionMode")} must be periodic or revision, got ${JSON.stringify(mode)}`,
    );
  const given = raw.etcdAutoCompactionRetention;
  const retention =
    (typeof given === "number" ? String(given) : str(raw, "etcdAutoCompactionRetention", false)) ??
    (mode === "periodic" ? ETCD_DEFAULTS.autoCompactionRetention : "10000");
  return {
    quotaBackendBytes: int(raw, "etcdQuotaBackendBytes"),
    autoCompactionMode: mode,
    autoCompactionRetention: checkRetention(mode, String(retention)),
    snapshotCount: int(raw, "etcdSnapshotCount"),
    extra: parseExtraEnv(str(raw, "etcdExtraEnv", false)),
  };
}

/**
 * The boot unit's retry limits (systemd/etcd-agent-boot.service; a unit test reads the file and
 * checks these): Restart=on-failure after RestartSec, at most StartLimitBurst starts in
 * StartLimitIntervalSec, then the unit stays failed.
 */
export const BOOT_UNIT = { restartSec: 15, startLimitBurst: 20, startLimitIntervalSec: 1800 } as const;

/**
 * How long boots keep retrying before systemd gives up on the unit, in seconds, or null when the
 * start limit cannot trip (consecutive starts are further apart than interval / (burst - 1)).
 * Each boot waits out --boot-timeout-seconds, then systemd waits RestartSec.
 */
export function bootUnitGivesUpAfter(bootTimeoutSeconds: number): number | null {
  const spacing = bootTimeoutSeconds + BOOT_UNIT.restartSec;
  if (spacing * (BOOT_UNIT.startLimitBurst - 1) >= BOOT_UNIT.startLimitIntervalSec) return null;
  return spacing * (BOOT_UNIT.startLimitBurst - 1) + bootTimeoutSeconds;
}

/**
 * Settings that depend on one another, checked together: the restore bound is counted across boots
 * (the unreachable clock is persisted), so it must pass before systemd stops restarting the boot.
 * The last boot needs time to restore, so the bound must pass within all but the last one.
 */
export function checkRestoreBound(config: AgentConfig): AgentConfig {
  if (!config.backup) return config;
  const givesUp = bootUnitGivesUpAfter(config.bootTimeoutSeconds);
  if (givesUp === null) return config;
  const usable = givesUp - config.bootTimeoutSeconds;
  if (config.backup.restoreAfterSeconds <= usable) return config;
  const spacingNeeded = Math.ceil(BOOT_UNIT.startLimitIntervalSec / (BOOT_UNIT.startLimitBurst - 1));
  throw new ConfigError(
    `${describe("restoreAfterSeconds")} is ${config.backup.restoreAfterSeconds}, but with ${describe("bootTimeoutSeconds")} ${config.bootTimeoutSeconds} the boot unit (RestartSec=${BOOT_UNIT.restartSec}, StartLimitBurst=${BOOT_UNIT.startLimitBurst} in StartLimitIntervalSec=${BOOT_UNIT.startLimitIntervalSec}) gives up after about ${givesUp}s, so an automatic restore could never start; lower --restore-after-seconds to at most ${usable} or raise --boot-timeout-seconds to at least ${spacingNeeded - BOOT_UNIT.restartSec}`,
  );
}

/** What the service manager running `run` allows: systemd's watchdog, when it set one. */
export interface UnitLimits {
  /** WatchdogSec in milliseconds (from WATCHDOG_USEC); null: no watchdog (run by hand, or off). */
  watchdogMs: number | null;
}

/**
 * Settings checked against the unit that runs them, at start: with systemd's watchdog on
 * (WATCHDOG_USEC, from WatchdogSec=), the interval between cycles must leave room for a cycle's
 * own work (at most half the watchdog), and one instance-metadata call at most a quarter of it,
 * so a cycle that waits on everything still pings in time. The loop also pings while it waits
 * (every third of the watchdog at most): the interval bound is about seeing the cluster often
 * enough, not about the ping alone.
 */
export function checkUnitSettings(config: AgentConfig, env: NodeJS.ProcessEnv): UnitLimits {
  const raw = env.WATCHDOG_USEC;
  if (raw === undefined || raw === "") return { watchdogMs: null };
  if (!/^\d+$/.test(raw) || Number(raw) === 0) {
    throw new ConfigError(
      `WATCHDOG_USEC (set by systemd from the unit's WatchdogSec=) must be a whole number of microseconds, got ${JSON.stringify(raw)}; check WatchdogSec= in etcd-agent.service`,
    );
  }
  const watchdogMs = Math.floor(Number(raw) / 1000);
  const watchdogS = watchdogMs / 1000;
  const fits = (key: OptionKey, value: number, share: number, why: string) => {
    const most = Math.floor(watchdogS / share);
    if (value > most) {
      throw new ConfigError(
        `${describe(key)} is ${value} but the unit's watchdog (WatchdogSec=, WATCHDOG_USEC=${raw}) is ${watchdogS} s: ${why}; set ${describe(key)} to at most ${most}, or raise WatchdogSec= in etcd-agent.service to at least ${value * share}s`,
      );
    }
  };
  fits(
    "intervalSeconds",
    config.intervalSeconds,
    2,
    "a cycle must run within half the watchdog so a stuck loop is caught and the deadlines are seen",
  );
  fits(
    "metadataTimeoutSeconds",
    config.metadataTimeoutSeconds,
    4,
    "one cycle waits on instance metadata for up to this, beside its other calls",
  );
  return { watchdogMs };
}

// Configuration from flags and ETCD_AGENT_* variables (yargs maps one onto the other), validated
// before anything touches the cluster. A bad value gets a message with the value and the fix.
import { isIP } from "node:net";
import { ConfigError } from "../errors.js";
import type { Level } from "../log.js";
import { MAX_ASG_NAME_LENGTH } from "../planner/marker.js";

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
  /** Lifetime of the certificates the agent issues; renewed when a third of it is left. */
  certLifetimeSeconds: number;
  /** More names for a node's certificate (IPs or DNS names), beside its IP, A record and the domain. */
  extraNames: string[];
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

export const DEFAULTS = {
  dataDir: "/var/lib/etcd",
  stateDir: "/var/lib/etcd-agent",
  envFile: "/etc/etcd-agent/etcd.env",
  clientPort: 2379,
  peerPort: 2380,
  intervalSeconds: 10,
  startupGraceSeconds: 300,
  unhealthyDeadlineSeconds: 600,
  bootTimeoutSeconds: 120,
  metadataTimeoutSeconds: 30,
  logLevel: "info",
  backupIntervalMinutes: 15,
  backupHourlyHours: 48,
  backupDailyDays: 30,
  restoreAfterSeconds: 300,
  restoreTool: "etcdctl",
  restoreBumpRevision: 1_000_000_000,
  tlsDir: "/etc/etcd-agent/tls",
  tlsCertLifetimeSeconds: 90 * 86_400,
} as const;

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

/**
 * The longest interval between cycles: the default startup grace. A longer one would reach the
 * in-memory deadlines (grace, unhealthy) only in steps of the interval.
 */
export const MAX_INTERVAL_SECONDS = 300;

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

type Raw = Record<string, unknown>;

const envName = (flag: string) => `ETCD_AGENT_${flag.replace(/-/g, "_").toUpperCase()}`;

function describe(flag: string): string {
  return `--${flag} (${envName(flag)})`;
}

function str(raw: Raw, key: string, flag: string, required: boolean): string | null {
  const v = raw[key];
  if (v === undefined || v === null || v === "") {
    if (required) throw new ConfigError(`${describe(flag)} is required; set the flag or the variable`);
    return null;
  }
  if (typeof v !== "string")
    throw new ConfigError(`${describe(flag)} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function int(raw: Raw, key: string, flag: string, fallback: number, min: number, max: number): number {
  const v = raw[key];
  if (v === undefined || v === null || v === "") return fallback;
  const n = typeof v === "number" ? v : Number(String(v));
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(
      `${describe(flag)} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  }
  return n;
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
  const domain = (str(raw, "domain", "domain", true) ?? "").replace(/\.$/, "").toLowerCase();
  if (!DOMAIN_RE.test(domain)) {
    throw new ConfigError(
      `${describe("domain")} must be a DNS name such as etcd.internal, got ${JSON.stringify(domain)}`,
    );
  }
  const zoneRaw = str(raw, "hostedZoneId", "hosted-zone-id", true) ?? "";
  const hostedZoneId = zoneRaw.replace(/^\/hostedzone\//, "");
  if (!ZONE_RE.test(hostedZoneId)) {
    throw new ConfigError(
      `${describe("hosted-zone-id")} must be a Route53 zone ID such as Z0123456789ABC, got ${JSON.stringify(zoneRaw)}`,
    );
  }
  const asgName = str(raw, "asgName", "asg-name", false);
  if (asgName !== null && !ASG_RE.test(asgName)) {
    throw new ConfigError(
      `${describe("asg-name")} is not a valid Auto Scaling group name: ${JSON.stringify(asgName)}`,
    );
  }
  if (asgName !== null) checkAsgNameLength(asgName, describe("asg-name"));
  const clientPort = int(raw, "clientPort", "client-port", DEFAULTS.clientPort, 1, 65535);
  const peerPort = int(raw, "peerPort", "peer-port", DEFAULTS.peerPort, 1, 65535);
  if (clientPort === peerPort) {
    throw new ConfigError(
      `${describe("client-port")} and ${describe("peer-port")} must differ, both are ${clientPort}`,
    );
  }
  const logLevel = str(raw, "logLevel", "log-level", false) ?? DEFAULTS.logLevel;
  if (!LEVELS.has(logLevel)) {
    throw new ConfigError(
      `${describe("log-level")} must be one of debug, info, warn, error, got ${JSON.stringify(logLevel)}`,
    );
  }
  const path = (key: string, flag: string, fallback: string) => {
    const p = str(raw, key, flag, false) ?? fallback;
    if (!p.startsWith("/"))
      throw new ConfigError(`${describe(flag)} must be an absolute path, got ${JSON.stringify(p)}`);
    return p.replace(/\/+$/, "") || "/";
  };
  const endpointsRaw = str(raw, "endpoints", "endpoints", false);
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
  const bucket = str(raw, "backupBucket", "backup-bucket", false);
  if (bucket !== null && !BUCKET_RE.test(bucket)) {
    throw new ConfigError(
      `${describe("backup-bucket")} must be an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens), got ${JSON.stringify(bucket)}`,
    );
  }
  const prefix = str(raw, "backupPrefix", "backup-prefix", false);
  if (prefix !== null && !/^[\w!\-.*'()/]{1,512}\/$/.test(prefix)) {
    throw new ConfigError(
      `${describe("backup-prefix")} must be an S3 key prefix ending in "/", such as backups/etcd/, got ${JSON.stringify(prefix)}`,
    );
  }
  const flag = (key: string, name: string) => {
    const v = raw[key];
    if (v === undefined || v === null || v === "" || v === false || v === "false") return false;
    if (v === true || v === "true") return true;
    throw new ConfigError(`${describe(name)} must be true or false, got ${JSON.stringify(v)}`);
  };
  const backup: BackupConfig | null =
    bucket === null
      ? null
      : {
          bucket,
          prefix,
          intervalMinutes: int(
            raw,
            "backupIntervalMinutes",
            "backup-interval-minutes",
            DEFAULTS.backupIntervalMinutes,
            1,
            1440,
          ),
          hourlyHours: int(
            raw,
            "backupHourlyHours",
            "backup-hourly-hours",
            DEFAULTS.backupHourlyHours,
            0,
            8760,
          ),
          dailyDays: int(raw, "backupDailyDays", "backup-daily-days", DEFAULTS.backupDailyDays, 0, 3650),
          pathStyle: flag("backupS3PathStyle", "backup-s3-path-style"),
          restoreAfterSeconds: int(
            raw,
            "restoreAfterSeconds",
            "restore-after-seconds",
            DEFAULTS.restoreAfterSeconds,
            10,
            86400,
          ),
          restoreTool: str(raw, "restoreTool", "restore-tool", false) ?? DEFAULTS.restoreTool,
          restoreBumpRevision: int(
            raw,
            "restoreBumpRevision",
            "restore-bump-revision",
            DEFAULTS.restoreBumpRevision,
            0,
            1_000_000_000_000,
          ),
        };
  const plaintext = flag("plaintext", "plaintext");
  const account = (key: string, name: string, what: string) => {
    const v = str(raw, key, name, false);
    if (v !== null && !/^([a-z_][a-z0-9_-]{0,31}|\d{1,10})$/.test(v))
      throw new ConfigError(`${describe(name)} must be ${what} or a number, got ${JSON.stringify(v)}`);
    return v;
  };
  if (raw.tlsKeyOwner !== undefined)
    throw new ConfigError(
      `${describe("tls-key-owner")} is no longer read (got ${JSON.stringify(raw.tlsKeyOwner)}): the node's key now belongs to ${describe("file-owner")} and is read by ${describe("tls-group")}; on a node set ETCD_AGENT_FILE_OWNER=etcd-agent and ETCD_AGENT_TLS_GROUP=etcd (docs/node.md)`,
    );
  const tlsDir = path("tlsDir", "tls-dir", DEFAULTS.tlsDir);
  const secretName = (key: string, name: string) => {
    const v = str(raw, key, name, false);
    if (v !== null && !/^[\w/+=.@-]{1,512}$/.test(v))
      throw new ConfigError(
        `${describe(name)} must be a Secrets Manager secret name (letters, digits, /_+=.@-), got ${JSON.stringify(v)}`,
      );
    return v;
  };
  const tls: TlsConfig | null = plaintext
    ? null
    : {
        dir: tlsDir,
        etcdDir: path("tlsEtcdDir", "tls-etcd-dir", tlsDir),
        group: account("tlsGroup", "tls-group", "a group name such as etcd"),
        caFile: path("tlsCaFile", "tls-ca-file", `${tlsDir}/ca.crt`),
        certFile: path("tlsCertFile", "tls-cert-file", `${tlsDir}/node.crt`),
        keyFile: path("tlsKeyFile", "tls-key-file", `${tlsDir}/node.key`),
        caSecret: secretName("tlsCaSecret", "tls-ca-secret"),
        operatorSecret: secretName("tlsOperatorSecret", "tls-operator-secret"),
        extraNames: (() => {
          const v = str(raw, "tlsExtraNames", "tls-extra-names", false);
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
                `${describe("tls-extra-names")} takes IP addresses and DNS names, comma-separated; ${JSON.stringify(n)} is neither`,
              );
          }
          return names;
        })(),
        certLifetimeSeconds: int(
          raw,
          "tlsCertLifetimeSeconds",
          "tls-cert-lifetime-seconds",
          DEFAULTS.tlsCertLifetimeSeconds,
          60,
          5 * 365 * 86_400,
        ),
      };
  for (const e of endpoints) {
    const want = plaintext ? "http://" : "https://";
    if (!e.startsWith(want))
      throw new ConfigError(
        `${describe("endpoints")}: ${JSON.stringify(e)} does not start with ${want}, but the agent runs ${plaintext ? "in plaintext (--plaintext)" : "with TLS"}; use ${want} URLs${plaintext ? "" : " or --plaintext for a plaintext cluster"}`,
      );
  }
  return checkRestoreBound({
    tls,
    scheme: plaintext ? "http" : "https",
    backup,
    domain,
    hostedZoneId,
    asgName,
    region: str(raw, "region", "region", false),
    endpoints,
    dataDir: path("dataDir", "data-dir", DEFAULTS.dataDir),
    stateDir: path("stateDir", "state-dir", DEFAULTS.stateDir),
    fileOwner: account("fileOwner", "file-owner", "a user name such as etcd-agent"),
    envFile: path("envFile", "env-file", DEFAULTS.envFile),
    clientPort,
    peerPort,
    intervalSeconds: int(
      raw,
      "intervalSeconds",
      "interval-seconds",
      DEFAULTS.intervalSeconds,
      1,
      MAX_INTERVAL_SECONDS,
    ),
    startupGraceSeconds: int(
      raw,
      "startupGraceSeconds",
      "startup-grace-seconds",
      DEFAULTS.startupGraceSeconds,
      10,
      86400,
    ),
    unhealthyDeadlineSeconds: int(
      raw,
      "unhealthyDeadlineSeconds",
      "unhealthy-deadline-seconds",
      DEFAULTS.unhealthyDeadlineSeconds,
      30,
      86400,
    ),
    bootTimeoutSeconds: int(
      raw,
      "bootTimeoutSeconds",
      "boot-timeout-seconds",
      DEFAULTS.bootTimeoutSeconds,
      1,
      3600,
    ),
    metadataTimeoutSeconds: int(
      raw,
      "metadataTimeoutSeconds",
      "metadata-timeout-seconds",
      DEFAULTS.metadataTimeoutSeconds,
      1,
      600,
    ),
    logLevel: logLevel as Level,
  });
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
    `${describe("restore-after-seconds")} is ${config.backup.restoreAfterSeconds}, but with ${describe("boot-timeout-seconds")} ${config.bootTimeoutSeconds} the boot unit (RestartSec=${BOOT_UNIT.restartSec}, StartLimitBurst=${BOOT_UNIT.startLimitBurst} in StartLimitIntervalSec=${BOOT_UNIT.startLimitIntervalSec}) gives up after about ${givesUp}s, so an automatic restore could never start; lower --restore-after-seconds to at most ${usable} or raise --boot-timeout-seconds to at least ${spacingNeeded - BOOT_UNIT.restartSec}`,
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
  const fits = (flag: string, value: number, share: number, why: string) => {
    const most = Math.floor(watchdogS / share);
    if (value > most) {
      throw new ConfigError(
        `${describe(flag)} is ${value} but the unit's watchdog (WatchdogSec=, WATCHDOG_USEC=${raw}) is ${watchdogS} s: ${why}; set ${describe(flag)} to at most ${most}, or raise WatchdogSec= in etcd-agent.service to at least ${value * share}s`,
      );
    }
  };
  fits(
    "interval-seconds",
    config.intervalSeconds,
    2,
    "a cycle must run within half the watchdog so a stuck loop is caught and the deadlines are seen",
  );
  fits(
    "metadata-timeout-seconds",
    config.metadataTimeoutSeconds,
    4,
    "one cycle waits on instance metadata for up to this, beside its other calls",
  );
  return { watchdogMs };
}

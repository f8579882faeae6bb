// Snapshots to S3: the leader's scheduled backup and retention (from `run`), one before a graceful
// leave, and the operator's `snapshot save | list | restore`. A snapshot is etcd's own (the db file
// with etcd's sha256 at its end); the agent adds its own sha256 as object metadata and checks it
// before any restore, so a corrupt or truncated object is reported and skipped, never restored.
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { AgentConfig, BackupConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  backupDue,
  type MemberRegistryEntry,
  memberRegistryKey,
  memberRegistryPrefix,
  newestFirst,
  parseRegistryEntry,
  parseSnapshotKey,
  planRetention,
  registeredInstances,
  type SnapshotRef,
  snapshotKey,
} from "../planner/backup-plan.js";
import { BACKUP_TRANSFER_TIMEOUT_MS, type BackupStore } from "../ports/backups.js";
import type { Ports } from "../ports/index.js";
import { whileBounded } from "./keep-alive.js";

/** Deadline of one snapshot stream from etcd (etcd's database is at most 8 GiB). */
export const SNAPSHOT_TIMEOUT_MS = 300_000;

export class BackupsOffError extends ConfigError {
  override name = "ConfigError";
  constructor() {
    super("backups are off: set --backup-bucket (ETCD_AGENT_BACKUP_BUCKET) to the cluster's backup bucket");
  }
}

export class NoGoodSnapshotError extends Error {
  override name = "NoGoodSnapshotError";
}

export function backupPrefix(backup: BackupConfig, asgName: string): string {
  return backup.prefix ?? `backups/${asgName}/`;
}

function store(ports: Ports, config: AgentConfig): { backups: BackupStore; backup: BackupConfig } {
  if (!config.backup || !ports.backups) throw new BackupsOffError();
  return { backups: ports.backups, backup: config.backup };
}

export const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

export interface SavedSnapshot extends SnapshotRef {
  bytes: number;
  sha256: string;
}

/** Takes a snapshot from `endpoint` and stores it under the cluster's prefix. */
export async function saveSnapshot(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  endpoint: string,
  clusterToken: string,
  log: Logger,
  members: string[] = [],
): Promise<SavedSnapshot> {
  const { backups, backup } = store(ports, config);
  // Both steps have deadlines (the stream's, the S3 client's), so the watchdog may be kept alive
  // for their sum while they run.
  return whileBounded(ports.serviceManager, SNAPSHOT_TIMEOUT_MS + BACKUP_TRANSFER_TIMEOUT_MS, async () => {
    const { data, revision } = await ports.etcd.snapshot(endpoint, SNAPSHOT_TIMEOUT_MS);
    if (data.length === 0) throw new Error(`etcd at ${endpoint} sent an empty snapshot`);
    const takenAt = ports.clock.now();
    const key = snapshotKey(backupPrefix(backup, asgName), takenAt, revision, clusterToken);
    const sum = sha256(data);
    await backups.put(key, data, { sha256: sum, members: members.join(",") });
    log.info("saved a snapshot", { action: "backup", key, revision, bytes: data.length, sha256: sum });
    return { key, takenAt: takenAt.toISOString(), revision, clusterToken, bytes: data.length, sha256: sum };
  });
}

/** Our snapshots under the prefix, newest first (other objects are ignored). */
export async function listSnapshots(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
): Promise<SnapshotRef[]> {
  const { backups, backup } = store(ports, config);
  const keys = await backups.list(backupPrefix(backup, asgName));
  return newestFirst(keys.map(parseSnapshotKey).filter((r): r is SnapshotRef => r !== null));
}

/** Deletes what the retention policy does not keep; returns the deleted keys. */
export async function enforceRetention(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  log: Logger,
): Promise<string[]> {
  const { backups, backup } = store(ports, config);
  const refs = await listSnapshots(ports, config, asgName);
  const { remove } = planRetention(refs, ports.clock.now(), backup);
  for (const r of remove) {
    await backups.delete(r.key);
    log.info("expired a snapshot", {
      action: "backup-retention",
      key: r.key,
      reason: "outside the retention policy",
    });
  }
  return remove.map((r) => r.key);
}

/** Where restore records go: beside the snapshots, under the backup prefix the nodes may write. */
export function eventsPrefix(backup: BackupConfig, asgName: string): string {
  return `${backupPrefix(backup, asgName)}events/`;
}

/**
 * Records a restore as an object `events/restore-<cluster token>.json` (without a token:
 * `restore-<time>-<instance>.json`) under the backup prefix. The bucket sends its object-created events to EventBridge and the infrastructure's
 * rule on this key prefix alarms (infra/lib/etcd-cluster.ts), so the alarm needs no permission the
 * node does not already have. Returns the key.
 */
export async function recordRestoreEvent(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  event: Record<string, unknown> & { instanceId: string },
): Promise<string> {
  const { backups, backup } = store(ports, config);
  const at = ports.clock.now().toISOString();
  // An automatic restore records one event per restored cluster (its token names it), so a restore
  // interrupted and done again overwrites its own record instead of adding a second.
  const name =
    typeof event.clusterToken === "string"
      ? event.clusterToken
      : `${at.replace(/[:.]/g, "-")}-${event.instanceId}`;
  const key = `${eventsPrefix(backup, asgName)}restore-${name}.json`;
  const body = Buffer.from(`${JSON.stringify({ event: "restore", at, ...event }, null, 2)}\n`);
  await backups.put(key, body, { sha256: sha256(body) });
  return key;
}

/** What `run` keeps between cycles about backups. */
export interface BackupState {
  /** When the newest snapshot was taken, as far as this agent knows; undefined: not read yet. */
  lastTakenAt: string | null | undefined;
}

/** On the leader, once a cycle: a snapshot when one is due, then retention. Errors are logged, not thrown. */
export async function backupIfDue(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  endpoint: string,
  clusterToken: string | null,
  state: BackupState,
  log: Logger,
  members: string[] = [],
): Promise<boolean> {
  if (!config.backup || !ports.backups || clusterToken === null) return false;
  try {
    if (state.lastTakenAt === undefined) {
      state.lastTakenAt = (await listSnapshots(ports, config, asgName))[0]?.takenAt ?? null;
    }
    if (!backupDue(state.lastTakenAt, ports.clock.now(), config.backup.intervalMinutes)) return false;
    const saved = await saveSnapshot(ports, config, asgName, endpoint, clusterToken, log, members);
    state.lastTakenAt = saved.takenAt;
    await enforceRetention(ports, config, asgName, log);
    return true;
  } catch (error) {
    log.error("backup failed", { action: "backup", error: (error as Error).message });
    return false;
  }
}

export interface RestoreResult {
  key: string;
  revision: string;
  dataDir: string;
  /** Newer snapshots skipped because their content did not match their checksum. */
  corrupt: string[];
  /** What was added to the revision (marked compacted); null when the tool cannot (etcd 3.4) or it is off. */
  bumpRevision: number | null;
}

/**
 * Whether the restore tool takes --bump-revision and --mark-compacted (etcdutl 3.5.10+, 3.6),
 * asked of the tool itself (its help), not guessed from its name: a wrapper may run either.
 */
export function toolBumpsRevision(tool: string): boolean {
  const r = spawnSync(tool, ["snapshot", "restore", "--help"], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, ETCDCTL_API: "3" },
  });
  const help = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return /--bump-revision/.test(help) && /--mark-compacted/.test(help);
}

/**
 * The restore tool's arguments. With a bump, the restored revision moves past every revision the
 * lost cluster can have handed out since the snapshot, and everything up to it is marked compacted:
 * a watcher resuming from a revision it saw before the loss gets "compacted" and lists again,
 * instead of waiting on revisions that now mean other writes.
 */
export function restoreArgs(o: {
  file: string;
  dataDir: string;
  name: string;
  peerUrl: string;
  token: string;
  bumpRevision: number | null;
}): string[] {
  return [
    "snapshot",
    "restore",
    o.file,
    "--data-dir",
    o.dataDir,
    "--name",
    o.name,
    "--initial-cluster",
    `${o.name}=${o.peerUrl}`,
    "--initial-advertise-peer-urls",
    o.peerUrl,
    "--initial-cluster-token",
    o.token,
    ...(o.bumpRevision ? ["--bump-revision", String(o.bumpRevision), "--mark-compacted"] : []),
  ];
}

/** A snapshot downloaded and checked against its recorded sha256. */
export interface VerifiedSnapshot {
  ref: SnapshotRef;
  body: Buffer;
  /** Newer candidates skipped because their content did not match their checksum. */
  corrupt: string[];
}

/**
 * Downloads the candidates newest first and returns the first whose content matches its recorded
 * sha256 (with `key`, only that one). Throws NoGoodSnapshotError when none verifies.
 */
export async function downloadVerified(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  log: Logger,
  o: { key?: string; refs?: SnapshotRef[] },
): Promise<VerifiedSnapshot> {
  const { backups } = store(ports, config);
  const refs = o.key
    ? [parseSnapshotKey(o.key) ?? { key: o.key, takenAt: "", revision: "?", clusterToken: "?" }]
    : (o.refs ?? (await listSnapshots(ports, config, asgName)));
  if (refs.length === 0)
    throw new NoGoodSnapshotError(`no snapshot under the backup prefix in ${config.backup?.bucket}`);
  const corrupt: string[] = [];
  for (const ref of refs) {
    const { body, meta } = await backups.get(ref.key);
    const recorded = meta.sha256 ?? null;
    const actual = sha256(body);
    if (recorded === null || recorded !== actual) {
      corrupt.push(ref.key);
      log.error("snapshot is corrupt: its content does not match its checksum; trying the previous one", {
        action: "restore",
        key: ref.key,
        reason:
          recorded === null
            ? "no sha256 recorded"
            : `sha256 ${actual.slice(0, 16)}… != recorded ${recorded.slice(0, 16)}…`,
      });
      if (o.key) break;
      continue;
    }
    return { ref, body, corrupt };
  }
  throw new NoGoodSnapshotError(
    `no snapshot verified: ${corrupt.length} checked, every one corrupt (${corrupt.join(", ")}); nothing was restored`,
  );
}

/** The revision bump the restore tool is given (null when off or the tool cannot). */
export function plannedBump(config: AgentConfig, tool: string, log: Logger): number | null {
  const wanted = config.backup?.restoreBumpRevision ?? 0;
  if (wanted <= 0) return null;
  if (toolBumpsRevision(tool)) return wanted;
  log.warn(
    "the restore tool cannot bump the revision (etcd 3.4's etcdctl; etcdutl 3.5.10+ can): revisions restart at the snapshot's, so a watcher resuming from a later revision misses events until it lists again; restart the cluster's clients after this restore",
    { action: "restore", tool },
  );
  return null;
}

/** Runs etcd's restore tool on a verified snapshot into `dataDir` (which must not exist). */
export function restoreVerified(
  verified: VerifiedSnapshot,
  log: Logger,
  o: { dataDir: string; name: string; peerUrl: string; tool: string; clusterToken?: string },
  bumpRevision: number | null,
): RestoreResult {
  const { ref, body, corrupt } = verified;
  mkdirSync(dirname(o.dataDir), { recursive: true });
  // Beside the target, not in /tmp: on a node the restore tool runs in etcd's container, which
  // sees the data dir's file system (and the boot unit has a private /tmp).
  const work = mkdtempSync(join(dirname(o.dataDir), ".etcd-agent-restore-"));
  try {
    const file = join(work, "snapshot.db");
    writeFileSync(file, body, { mode: 0o600 });
    const token = o.clusterToken ?? `restored-${randomBytes(6).toString("hex")}`;
    const args = restoreArgs({
      file,
      dataDir: o.dataDir,
      name: o.name,
      peerUrl: o.peerUrl,
      token,
      bumpRevision,
    });
    const r = spawnSync(o.tool, args, { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" } });
    if (r.error)
      throw new ConfigError(
        `cannot run ${o.tool} (${r.error.message}); give --restore-tool the path of etcdctl (3.4) or etcdutl (3.5+)`,
      );
    if (r.status !== 0) {
      throw new Error(
        `${o.tool} snapshot restore of ${ref.key} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`,
      );
    }
    log.warn("restored a snapshot into a new one-member cluster", {
      action: "restore",
      key: ref.key,
      revision: ref.revision,
      path: o.dataDir,
      ...(bumpRevision ? { bump_revision: bumpRevision } : {}),
    });
    return { key: ref.key, revision: ref.revision, dataDir: o.dataDir, corrupt, bumpRevision };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Restores the newest snapshot that verifies (or `key`) into `dataDir` as a new one-member cluster
 * with `name` and `peerUrl`, using etcd's own restore tool (etcdctl on 3.4, etcdutl on 3.5+).
 * Refuses a data dir that already holds a member.
 */
export async function restoreSnapshot(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  log: Logger,
  o: { key?: string; dataDir: string; name: string; peerUrl: string; tool: string; clusterToken?: string },
): Promise<RestoreResult> {
  store(ports, config);
  if (o.dataDir === config.dataDir && (await ports.local.hasData())) {
    throw new ConfigError(
      `${o.dataDir} already holds an etcd member; restore into an empty --data-dir (or move member/ aside first)`,
    );
  }
  const bump = plannedBump(config, o.tool, log);
  const verified = await downloadVerified(ports, config, asgName, log, o.key ? { key: o.key } : {});
  return restoreVerified(verified, log, o, bump);
}

/**
 * Writes this instance's entry in the member registry of `clusterToken`
 * (`<prefix>members/<token>/<instance-id>`), before a member of that cluster can exist here.
 */
export async function registerMember(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  entry: Omit<MemberRegistryEntry, "time">,
): Promise<string> {
  const { backups, backup } = store(ports, config);
  const key = memberRegistryKey(backupPrefix(backup, asgName), entry.token, entry.instance);
  const body = Buffer.from(
    `${JSON.stringify({ ...entry, time: ports.clock.now().toISOString() }, null, 2)}\n`,
  );
  await backups.put(key, body, { sha256: sha256(body) });
  return key;
}

/** The instances in the member registry of `clusterToken`. */
export async function registeredMembers(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  clusterToken: string,
): Promise<string[]> {
  const { backups, backup } = store(ports, config);
  const prefix = memberRegistryPrefix(backupPrefix(backup, asgName), clusterToken);
  return registeredInstances(await backups.list(prefix), prefix);
}

/** The registry entry of one instance in `clusterToken`, or null when there is none (or it is not one). */
export async function readRegistryEntry(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  clusterToken: string,
  instanceId: string,
): Promise<MemberRegistryEntry | null> {
  const { backups, backup } = store(ports, config);
  const key = memberRegistryKey(backupPrefix(backup, asgName), clusterToken, instanceId);
  const listed = await backups.list(key);
  if (!listed.includes(key)) return null;
  const { body } = await backups.get(key);
  return parseRegistryEntry(body.toString("utf8"));
}

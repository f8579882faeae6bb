import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type AfterStep, Steps } from "../apply/steps.js";
import type { AgentConfig, BackupConfig } from "../config/config.js";
import { BackupsOffError } from "../errors.js";

import type { Logger } from "../log.js";
import {
  backupDue,
  FUTURE_SKEW_MS,
  type MemberRegistryEntry,
  memberRegistryKey,
  memberRegistryPrefix,
  parseRegistryEntry,
  planRetention,
  type RefusedSnapshot,
  registeredInstances,
  type SnapshotRef,
  snapshotKey,
  vetSnapshots,
} from "../planner/backup-plan.js";
import { BACKUP_TRANSFER_TIMEOUT_MS, type BackupStore } from "../ports/backups.js";
import type { Ports } from "../ports/index.js";

/** Deadline of one snapshot stream from etcd (etcd's database is at most 8 GiB). */
export const SNAPSHOT_TIMEOUT_MS = 300_000;

export function backupPrefix(backup: BackupConfig, asgName: string): string {
  return backup.prefix ?? `backups/${asgName}/`;
}

export function store(ports: Ports, config: AgentConfig): { backups: BackupStore; backup: BackupConfig } {
  if (!config.backup || !ports.backups) throw new BackupsOffError();
  return { backups: ports.backups, backup: config.backup };
}

export const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** Stores a small JSON record (an event, a registry entry) with its checksum, as snapshots are. */
export async function putRecord(backups: BackupStore, key: string, record: object): Promise<void> {
  const body = Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
  await backups.put(key, body, { sha256: sha256(body) });
}

export interface SavedSnapshot extends SnapshotRef {
  bytes: number;
  sha256: string;
}

/** The steps of a snapshot upload, in order; a crash after any of them leaves no partial snapshot. */
export const SNAPSHOT_STEPS = [
  // etcd's snapshot streamed to a file in the state dir, its sha256 computed on the way.
  "snapshot:to-file",
  // The file to S3 (multipart past a part's size); the object appears whole or not at all.
  "snapshot:upload",
  "snapshot:remove-file",
] as const;
/** After a scheduled snapshot: the retention policy. */
export const BACKUP_STEPS = [...SNAPSHOT_STEPS, "snapshot:retention"] as const;

/** Files of snapshots being taken, in the state dir; one left by a crash is removed by the next save. */
const PARTIAL_PREFIX = "snapshot-";
const PARTIAL_SUFFIX = ".db.partial";

/** Where a snapshot is streamed to: the state dir (the unit's private /tmp is small), else the temp dir. */
async function snapshotDir(config: AgentConfig): Promise<string> {
  const dir = join(config.stateDir, "snapshots");
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  } catch {
    // An operator's `snapshot save` away from a node: no state dir there.
    return tmpdir();
  }
}

/** Removes snapshot files a crash left behind (each may be as large as etcd's database). */
async function removeLeftovers(dir: string, log: Logger): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(PARTIAL_PREFIX) || !name.endsWith(PARTIAL_SUFFIX)) continue;
    await rm(join(dir, name), { force: true });
    log.info("removed a snapshot file left by an interrupted save", {
      action: "backup",
      path: join(dir, name),
    });
  }
}

/** etcd's snapshot into `file`, its sha256 and size computed on the way: nothing held in memory. */
async function snapshotToFile(
  ports: Ports,
  endpoint: string,
  file: string,
  signal: AbortSignal | undefined,
): Promise<{ revision: string; bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const written = pipeline(tap, createWriteStream(file, { mode: 0o600 }), signal ? { signal } : {});
  const [{ revision }] = await Promise.all([
    ports.etcd.snapshot(endpoint, SNAPSHOT_TIMEOUT_MS, tap).catch((error: Error) => {
      tap.destroy(error);
      throw error;
    }),
    written,
  ]);
  return { revision, bytes, sha256: hash.digest("hex") };
}

/**
 * Takes a snapshot from `endpoint` and stores it under the cluster's prefix: streamed from etcd
 * to a file in the state dir (sha256 on the way), then uploaded from the file (multipart), then
 * the file removed. Memory stays at a few upload parts whatever the database's size.
 */
export async function saveSnapshot(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  endpoint: string,
  clusterToken: string,
  log: Logger,
  members: string[] = [],
  options: { afterStep?: AfterStep; signal?: AbortSignal } = {},
): Promise<SavedSnapshot> {
  const { backups, backup } = store(ports, config);
  const steps = new Steps(log, options.afterStep);
  const dir = await snapshotDir(config);
  await removeLeftovers(dir, log);
  const file = join(
    dir,
    `${PARTIAL_PREFIX}${process.pid}-${randomBytes(4).toString("hex")}${PARTIAL_SUFFIX}`,
  );
  try {
    const taken = await steps.run("snapshot:to-file", () =>
      snapshotToFile(ports, endpoint, file, options.signal),
    );
    if (taken.bytes === 0) throw new Error(`etcd at ${endpoint} sent an empty snapshot`);
    const takenAt = ports.clock.now();
    const key = snapshotKey(backupPrefix(backup, asgName), takenAt, taken.revision, clusterToken);
    await steps.run(
      "snapshot:upload",
      () =>
        backups.put(
          key,
          { file, bytes: taken.bytes },
          { sha256: taken.sha256, members: members.join(",") },
          options.signal,
        ),
      { key },
    );
    await steps.run("snapshot:remove-file", () => rm(file, { force: true }));
    log.info("saved a snapshot", {
      action: "backup",
      key,
      revision: taken.revision,
      bytes: taken.bytes,
      sha256: taken.sha256,
    });
    return {
      key,
      takenAt: takenAt.toISOString(),
      revision: taken.revision,
      clusterToken,
      bytes: taken.bytes,
      sha256: taken.sha256,
    };
  } catch (error) {
    await rm(file, { force: true }).catch(() => {});
    throw error;
  }
}

/**
 * Our snapshots under the prefix, newest first by when S3 stored them; other objects, and objects
 * in sub-folders, are not snapshots. A snapshot the listing refuses (overwritten, or dated in the
 * future: planted) is never returned: it is logged and alarmed (`recordRefusedSnapshot`), every
 * time it is listed, until someone removes it.
 */
export async function listSnapshots(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  log?: Logger,
  o: { recordRefused?: boolean } = {},
): Promise<SnapshotRef[]> {
  const { backups, backup } = store(ports, config);
  const prefix = backupPrefix(backup, asgName);
  const { snapshots, refused } = vetSnapshots(await backups.listStored(prefix), prefix, ports.clock.now());
  for (const r of refused) {
    log?.error(
      "refused a snapshot: planted or overwritten; it is not restored and does not count as the newest",
      {
        action: "backup",
        key: r.key,
        reason: r.reason,
      },
    );
    if (o.recordRefused === false) continue;
    await recordRefusedSnapshot(ports, config, asgName, r).catch((error: Error) =>
      log?.warn("could not record the refused snapshot's alarm", {
        action: "backup",
        key: r.key,
        error: error.message,
      }),
    );
  }
  return snapshots;
}

/** The prefix (under events/) of refused-snapshot records; the infrastructure's rule alarms on it. */
export const REFUSED_SNAPSHOT_EVENT = "refused-";

/**
 * Writes `events/refused-<snapshot name>.json` (one per refused key: listing it again rewrites the
 * same record, and alarms again). Returns the key.
 */
export async function recordRefusedSnapshot(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  refused: RefusedSnapshot,
): Promise<string> {
  const { backups, backup } = store(ports, config);
  const name = (refused.key.split("/").pop() ?? "").replace(/[^\w.-]/g, "_").replace(/\.db$/, "");
  const key = `${eventsPrefix(backup, asgName)}${REFUSED_SNAPSHOT_EVENT}${name}.json`;
  const at = ports.clock.now().toISOString();
  await putRecord(backups, key, { event: "refused-snapshot", at, ...refused });
  return key;
}

/** Deletes what the retention policy does not keep; returns the deleted keys. */
export async function enforceRetention(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  log: Logger,
): Promise<string[]> {
  const { backups, backup } = store(ports, config);
  const refs = await listSnapshots(ports, config, asgName, log);
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
 * rule on this key prefix alarms (infra/lib/cluster/alarms.ts), so the alarm needs no permission the
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
  await putRecord(backups, key, { event: "restore", at, ...event });
  return key;
}

/** A snapshot running beside the run loop (one at a time), and how it ended. */
export interface BackgroundSnapshot {
  kind: "scheduled" | "last-word";
  /** Milliseconds since the epoch, by the agent's clock. */
  startedAt: number;
  outcome: "running" | "saved" | "failed" | "abandoned" | "skipped";
  /** Settles (never rejects) when the task ends or is abandoned at its deadline. */
  done: Promise<void>;
}

/** What `run` keeps between cycles about backups. */
export interface BackupState {
  /** When the newest snapshot was taken, as far as this agent knows; undefined: not read yet. */
  lastTakenAt: string | null | undefined;
  /** The snapshot running beside the loop, or the last one to run; null: none yet. */
  current?: BackgroundSnapshot | null;
  /** This leave's last-word snapshot (started at most once per leave); null: not started. */
  lastWord?: BackgroundSnapshot | null;
}

export function initialBackupState(): BackupState {
  return { lastTakenAt: undefined, current: null, lastWord: null };
}

/** A background snapshot outliving this is abandoned (aborted and logged): etcd's stream, then the upload. */
export const BACKGROUND_DEADLINE_MS = SNAPSHOT_TIMEOUT_MS + BACKUP_TRANSFER_TIMEOUT_MS;

/**
 * Starts `task` beside the loop unless one already runs; the task gets a signal that aborts at
 * `deadlineMs`, when it is abandoned and logged. Returns the task, or null when one was running.
 */
export function startBeside(
  state: BackupState,
  kind: BackgroundSnapshot["kind"],
  log: Logger,
  now: number,
  task: (signal: AbortSignal) => Promise<"saved" | "skipped">,
  deadlineMs: number = BACKGROUND_DEADLINE_MS,
): BackgroundSnapshot | null {
  if (state.current?.outcome === "running") return null;
  const abort = new AbortController();
  const bg: BackgroundSnapshot = { kind, startedAt: now, outcome: "running", done: Promise.resolve() };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"abandoned">((resolve) => {
    timer = setTimeout(() => resolve("abandoned"), deadlineMs);
    timer.unref();
  });
  const work = task(abort.signal).catch((error: Error) => {
    log.error(kind === "last-word" ? "backup before leaving failed; leaving anyway" : "backup failed", {
      action: "backup",
      error: error.message,
    });
    return "failed" as const;
  });
  bg.done = Promise.race([work, deadline]).then((outcome) => {
    clearTimeout(timer);
    if (outcome === "abandoned") {
      abort.abort(new Error(`abandoned after ${deadlineMs} ms`));
      log.error("snapshot abandoned: it outlived its deadline; the next one starts when due", {
        action: "backup",
        kind,
        deadline_ms: deadlineMs,
      });
    }
    bg.outcome = outcome;
  });
  state.current = bg;
  return bg;
}

/** On the leader, a snapshot when one is due, then retention. Errors are thrown to the caller. */
export async function backupIfDue(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  endpoint: string,
  clusterToken: string | null,
  state: BackupState,
  log: Logger,
  members: string[] = [],
  options: { afterStep?: AfterStep; signal?: AbortSignal } = {},
): Promise<boolean> {
  if (!config.backup || !ports.backups || clusterToken === null) return false;
  if (state.lastTakenAt === undefined) {
    // This cluster's own newest (an earlier cluster's snapshots do not make this one's less due);
    // refused ones (a planted 2099 key) never count: listSnapshots alarms on them instead.
    const ours = (await listSnapshots(ports, config, asgName, log)).filter(
      (r) => r.clusterToken === clusterToken,
    );
    state.lastTakenAt = ours[0]?.takenAt ?? null;
  }
  const now = ports.clock.now();
  if (state.lastTakenAt !== null && Date.parse(state.lastTakenAt) > now.getTime() + FUTURE_SKEW_MS)
    log.error("the last snapshot is dated in the future; taking one now instead of waiting for it", {
      action: "backup",
      last_taken_at: state.lastTakenAt,
    });
  if (!backupDue(state.lastTakenAt, now, config.backup.intervalMinutes)) return false;
  const saved = await saveSnapshot(ports, config, asgName, endpoint, clusterToken, log, members, options);
  state.lastTakenAt = saved.takenAt;
  await new Steps(log, options.afterStep).run("snapshot:retention", () =>
    enforceRetention(ports, config, asgName, log),
  );
  return true;
}

/**
 * Once a cycle on the leader that is not leaving: starts a scheduled snapshot beside the loop when
 * one is due and none runs. Never waits for it; failures are logged by the task.
 */
export function backupBesideIfDue(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  endpoint: string,
  clusterToken: string | null,
  state: BackupState,
  log: Logger,
  members: string[] = [],
): void {
  if (!config.backup || !ports.backups || clusterToken === null) return;
  if (state.lastTakenAt !== undefined && state.lastTakenAt !== null) {
    if (!backupDue(state.lastTakenAt, ports.clock.now(), config.backup.intervalMinutes)) return;
  }
  startBeside(state, "scheduled", log, ports.clock.now().getTime(), async (signal) =>
    (await backupIfDue(ports, config, asgName, endpoint, clusterToken, state, log, members, { signal }))
      ? "saved"
      : "skipped",
  );
}

/** How long a leaving leader holds its hand-over for its last-word snapshot: half the 10-minute hook. */
export const LAST_WORD_WAIT_MS = 300_000;

/**
 * A leaving leader's last word: one snapshot per leave, beside the loop (a scheduled one already
 * running serves). Returns "wait" while it runs and the wait is within `LAST_WORD_WAIT_MS`,
 * else "go": saved, failed, abandoned, backups off, or waited long enough. Never blocks.
 */
export function lastWordSnapshot(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  endpoint: string,
  clusterToken: string | null,
  state: BackupState,
  log: Logger,
  members: string[] = [],
): "wait" | "go" {
  if (!config.backup || !ports.backups || clusterToken === null) return "go";
  const now = ports.clock.now().getTime();
  if (!state.lastWord) {
    state.lastWord =
      state.current?.outcome === "running"
        ? state.current
        : startBeside(state, "last-word", log, now, async (signal) => {
            const saved = await saveSnapshot(ports, config, asgName, endpoint, clusterToken, log, members, {
              signal,
            });
            state.lastTakenAt = saved.takenAt;
            return "saved";
          });
  }
  const lw = state.lastWord;
  if (lw === null || lw.outcome !== "running") return "go";
  if (now - lw.startedAt >= LAST_WORD_WAIT_MS) {
    log.warn("handing over before the last-word snapshot ended: waited long enough", {
      action: "backup",
      waited_ms: now - lw.startedAt,
    });
    return "go";
  }
  return "wait";
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
  await putRecord(backups, key, { ...entry, time: ports.clock.now().toISOString() });
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

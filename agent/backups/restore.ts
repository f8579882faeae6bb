// Restore: download the newest snapshot that verifies (or the one named), and run etcd's own
// restore tool (behind the RestoreTool port) on it into a new one-member cluster's data dir.
import { randomBytes } from "node:crypto";
import { ProcessRestoreTool } from "../adapters/restore-tool.js";
import type { AgentConfig } from "../config/config.js";
import { ConfigError, NoGoodSnapshotError, RestoreFailedError } from "../errors.js";
import type { Logger } from "../log.js";
import { parseSnapshotKey, type SnapshotRef } from "../planner/backup-plan.js";
import type { Ports } from "../ports/index.js";
import type { RestoreTool } from "../ports/restore-tool.js";
import { listSnapshots, sha256, store } from "./index.js";

/** The restore tool as a child process; every function here takes another (a fake) as its last argument. */
const processRestoreTool: RestoreTool = new ProcessRestoreTool();

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
export function toolBumpsRevision(tool: string, restoreTool: RestoreTool = processRestoreTool): boolean {
  const r = restoreTool.run(tool, ["snapshot", "restore", "--help"], { timeoutMs: 120_000 });
  const help = `${r.stdout}${r.stderr}`;
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
export function plannedBump(
  config: AgentConfig,
  tool: string,
  log: Logger,
  restoreTool: RestoreTool = processRestoreTool,
): number | null {
  const wanted = config.backup?.restoreBumpRevision ?? 0;
  if (wanted <= 0) return null;
  if (toolBumpsRevision(tool, restoreTool)) return wanted;
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
  restoreTool: RestoreTool = processRestoreTool,
): RestoreResult {
  const { ref, body, corrupt } = verified;
  return restoreTool.withSnapshotFile(o.dataDir, body, (file) => {
    const token = o.clusterToken ?? `restored-${randomBytes(6).toString("hex")}`;
    const args = restoreArgs({
      file,
      dataDir: o.dataDir,
      name: o.name,
      peerUrl: o.peerUrl,
      token,
      bumpRevision,
    });
    const r = restoreTool.run(o.tool, args);
    if (r.error)
      throw new ConfigError(
        `cannot run ${o.tool} (${r.error.message}); give --restore-tool the path of etcdctl (3.4) or etcdutl (3.5+)`,
      );
    if (r.status !== 0) {
      throw new RestoreFailedError(
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
  });
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
  restoreTool: RestoreTool = processRestoreTool,
): Promise<RestoreResult> {
  store(ports, config);
  if (o.dataDir === config.dataDir && (await ports.local.hasData())) {
    throw new ConfigError(
      `${o.dataDir} already holds an etcd member; restore into an empty --data-dir (or move member/ aside first)`,
    );
  }
  const bump = plannedBump(config, o.tool, log, restoreTool);
  const verified = await downloadVerified(ports, config, asgName, log, o.key ? { key: o.key } : {});
  return restoreVerified(verified, log, o, bump, restoreTool);
}

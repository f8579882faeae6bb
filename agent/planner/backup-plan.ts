// Backups as data: the object key of a snapshot (time, revision, cluster token in the name, so a
// listing is enough to plan), when the next one is due, and which ones the retention policy keeps.

export interface SnapshotRef {
  key: string;
  /** When it was taken (ISO), as its name says. */
  takenAt: string;
  revision: string;
  clusterToken: string;
  /** When S3 stored it (LastModified, S3's clock), from a listing; what "newest" means when known. */
  storedAt?: string;
}

/** One object of a listing as S3 records it. */
export interface StoredObject {
  key: string;
  /** S3's LastModified (ISO): set by S3, not by the writer. */
  lastModified: string;
  /** Versions of this key that are not delete markers (the agent writes a snapshot's key once). */
  versions: number;
}

const KEY_RE = /(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:-\d{3})?Z)_r(\d+)_([A-Za-z0-9-]+)\.db$/;

/** backups/<asg>/2026-11-22T05-31-00-123Z_r1042_<token>.db: sorts by time within a prefix. */
export function snapshotKey(prefix: string, takenAt: Date, revision: string, clusterToken: string): string {
  if (!/^\d+$/.test(revision))
    throw new Error(`a snapshot revision must be a number, got ${JSON.stringify(revision)}`);
  if (!/^[A-Za-z0-9-]+$/.test(clusterToken))
    throw new Error(
      `a cluster token must be letters, digits and hyphens, got ${JSON.stringify(clusterToken)}`,
    );
  const stamp = takenAt.toISOString().replace(/:/g, "-").replace(".", "-");
  return `${prefix}${stamp}_r${revision}_${clusterToken}.db`;
}

/**
 * The snapshot a key names, or null for an object that is not one of ours. With `prefix`, only a
 * key directly under it counts: an object in a sub-folder (`<prefix>x/<name>.db`) is not a snapshot.
 */
export function parseSnapshotKey(key: string, prefix?: string): SnapshotRef | null {
  if (prefix !== undefined && (!key.startsWith(prefix) || key.slice(prefix.length).includes("/")))
    return null;
  const m = KEY_RE.exec(key);
  if (!m) return null;
  if (prefix !== undefined && m.index !== prefix.length) return null;
  const [date, time] = (m[1] as string).split("T") as [string, string];
  const [hh, mm, ss, ms] = time.replace(/Z$/, "").split("-");
  const takenAt = `${date}T${hh}:${mm}:${ss}.${ms ?? "000"}Z`;
  if (Number.isNaN(Date.parse(takenAt))) return null;
  return {
    key,
    takenAt: new Date(takenAt).toISOString(),
    revision: m[2] as string,
    clusterToken: m[3] as string,
  };
}

/** Newest first: by when S3 stored each (when known), then by the time in its name. */
export function newestFirst(refs: SnapshotRef[]): SnapshotRef[] {
  const stored = (r: SnapshotRef) => Date.parse(r.storedAt ?? r.takenAt);
  return [...refs].sort(
    (a, b) =>
      stored(b) - stored(a) || Date.parse(b.takenAt) - Date.parse(a.takenAt) || (a.key < b.key ? 1 : -1),
  );
}

/**
 * How far a snapshot's name may run ahead of S3's LastModified, or of the agent's clock: the name
 * is stamped before the upload starts, so an honest one is never later than either beyond clock skew.
 */
export const FUTURE_SKEW_MS = 5 * 60_000;

/** A snapshot the listing refused, and why (the agent alarms on each, never restores or counts it). */
export interface RefusedSnapshot {
  key: string;
  reason: string;
}

/**
 * Invariant: a snapshot is trusted only if its key is written once (one version), its name's time
 * is not after S3 stored it nor after now (beyond FUTURE_SKEW_MS). Everything else under the
 * prefix that looks like a snapshot is refused with a reason; objects not directly under the prefix
 * or not named as snapshots are not snapshots. Trusted ones come newest first by S3's LastModified.
 */
export function vetSnapshots(
  objects: StoredObject[],
  prefix: string,
  now: Date,
  skewMs: number = FUTURE_SKEW_MS,
): { snapshots: SnapshotRef[]; refused: RefusedSnapshot[] } {
  const snapshots: SnapshotRef[] = [];
  const refused: RefusedSnapshot[] = [];
  for (const o of objects) {
    const ref = parseSnapshotKey(o.key, prefix);
    if (!ref) continue;
    const taken = Date.parse(ref.takenAt);
    const stored = Date.parse(o.lastModified);
    if (o.versions > 1) {
      refused.push({
        key: o.key,
        reason: `written ${o.versions} times: the agent writes a snapshot's key once, so it was overwritten`,
      });
    } else if (taken > now.getTime() + skewMs) {
      refused.push({
        key: o.key,
        reason: `its name is dated ${ref.takenAt}, in the future (now ${now.toISOString()})`,
      });
    } else if (Number.isNaN(stored) || taken > stored + skewMs) {
      refused.push({
        key: o.key,
        reason: `its name is dated ${ref.takenAt}, after S3 stored it (${o.lastModified})`,
      });
    } else snapshots.push({ ...ref, storedAt: new Date(stored).toISOString() });
  }
  return { snapshots: newestFirst(snapshots), refused };
}

/**
 * Whether a snapshot is due. A last snapshot dated in the future (beyond FUTURE_SKEW_MS) never
 * holds a backup back: one is due.
 */
export function backupDue(lastTakenAt: string | null, now: Date, intervalMinutes: number): boolean {
  if (lastTakenAt === null) return true;
  const age = now.getTime() - Date.parse(lastTakenAt);
  return age < -FUTURE_SKEW_MS || age >= intervalMinutes * 60_000;
}

export interface RetentionPolicy {
  hourlyHours: number;
  dailyDays: number;
}

/**
 * Which snapshots to keep: the newest of each hour for `hourlyHours`, the newest of each UTC day
 * for `dailyDays`, and always the newest overall (so a cluster never has none after a long pause).
 */
export function planRetention(
  refs: SnapshotRef[],
  now: Date,
  policy: RetentionPolicy,
): { keep: SnapshotRef[]; remove: SnapshotRef[] } {
  const sorted = newestFirst(refs);
  const keep = new Set<string>();
  if (sorted[0]) keep.add(sorted[0].key);
  const hours = new Set<string>();
  const days = new Set<string>();
  for (const r of sorted) {
    const t = Date.parse(r.takenAt);
    const age = now.getTime() - t;
    const hour = r.takenAt.slice(0, 13);
    const day = r.takenAt.slice(0, 10);
    if (age <= policy.hourlyHours * 3_600_000 && !hours.has(hour)) {
      hours.add(hour);
      keep.add(r.key);
    }
    if (age <= policy.dailyDays * 86_400_000 && !days.has(day)) {
      days.add(day);
      keep.add(r.key);
    }
  }
  return {
    keep: sorted.filter((r) => keep.has(r.key)),
    remove: sorted.filter((r) => !keep.has(r.key)),
  };
}

/**
 * The member registry: `<prefix>members/<token>/<instance-id>`, written before a member of that
 * cluster can exist (before MemberAdd, before a bootstrapper's or restorer's environment file), so
 * restore eligibility sees every instance that may hold the cluster's data, not only the members
 * of a snapshot up to an interval old.
 */
export function memberRegistryPrefix(prefix: string, clusterToken: string): string {
  return `${prefix}members/${clusterToken}/`;
}

export function memberRegistryKey(prefix: string, clusterToken: string, instanceId: string): string {
  return `${memberRegistryPrefix(prefix, clusterToken)}${instanceId}`;
}

/** What a registry entry holds; `restoredFrom` on a restorer's entry names the lost cluster. */
export interface MemberRegistryEntry {
  instance: string;
  time: string;
  peerUrl: string;
  token: string;
  restoredFrom?: string;
  snapshot?: string;
}

/** The instance IDs in a listing of one token's registry. */
export function registeredInstances(keys: string[], registryPrefix: string): string[] {
  return [
    ...new Set(
      keys
        .filter((k) => k.startsWith(registryPrefix))
        .map((k) => k.slice(registryPrefix.length))
        .filter((id) => /^[\w-]+$/.test(id)),
    ),
  ].sort();
}

/** A registry entry's body, or null when it is not one. */
export function parseRegistryEntry(body: string): MemberRegistryEntry | null {
  try {
    const v = JSON.parse(body) as Partial<MemberRegistryEntry>;
    if (typeof v.instance !== "string" || typeof v.token !== "string") return null;
    return {
      instance: v.instance,
      time: typeof v.time === "string" ? v.time : "",
      peerUrl: typeof v.peerUrl === "string" ? v.peerUrl : "",
      token: v.token,
      ...(typeof v.restoredFrom === "string" ? { restoredFrom: v.restoredFrom } : {}),
      ...(typeof v.snapshot === "string" ? { snapshot: v.snapshot } : {}),
    };
  } catch {
    return null;
  }
}

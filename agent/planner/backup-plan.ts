// Backups as data: the object key of a snapshot (time, revision, cluster token in the name, so a
// listing is enough to plan), when the next one is due, and which ones the retention policy keeps.

export interface SnapshotRef {
  key: string;
  /** When it was taken (ISO). */
  takenAt: string;
  revision: string;
  clusterToken: string;
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

/** The snapshot a key names, or null for an object that is not one of ours. */
export function parseSnapshotKey(key: string): SnapshotRef | null {
  const m = KEY_RE.exec(key);
  if (!m) return null;
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

/** Newest first. */
export function newestFirst(refs: SnapshotRef[]): SnapshotRef[] {
  return [...refs].sort((a, b) => Date.parse(b.takenAt) - Date.parse(a.takenAt) || (a.key < b.key ? 1 : -1));
}

export function backupDue(lastTakenAt: string | null, now: Date, intervalMinutes: number): boolean {
  return lastTakenAt === null || now.getTime() - Date.parse(lastTakenAt) >= intervalMinutes * 60_000;
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

// Snapshot keys, when a backup is due, and what the retention policy keeps.
import { describe, expect, it } from "vitest";
import {
  backupDue,
  parseSnapshotKey,
  planRetention,
  type SnapshotRef,
  snapshotKey,
  vetSnapshots,
} from "../../../agent/planner/backup-plan.js";

const PREFIX = "backups/etcd-asg/";
const NOW = new Date("2026-11-22T12:00:00.000Z");
const at = (hoursAgo: number) => new Date(NOW.getTime() - hoursAgo * 3_600_000);
const ref = (hoursAgo: number, rev = "7"): SnapshotRef =>
  parseSnapshotKey(snapshotKey(PREFIX, at(hoursAgo), rev, "tok-1")) as SnapshotRef;

describe("snapshot keys", () => {
  it("round-trip time, revision and cluster token, and sort by time", () => {
    const key = snapshotKey(PREFIX, new Date("2026-11-22T05:31:07.123Z"), "1042", "abc-123");
    expect(key).toBe("backups/etcd-asg/2026-11-22T05-31-07-123Z_r1042_abc-123.db");
    expect(parseSnapshotKey(key)).toEqual({
      key,
      takenAt: "2026-11-22T05:31:07.123Z",
      revision: "1042",
      clusterToken: "abc-123",
    });
    const older = snapshotKey(PREFIX, new Date("2026-11-21T23:59:59.999Z"), "9", "abc-123");
    expect(older < key).toBe(true);
  });

  it("ignore objects that are not snapshots of ours", () => {
    expect(parseSnapshotKey("backups/etcd-asg/notes.txt")).toBeNull();
    expect(parseSnapshotKey("backups/etcd-asg/2026-11-22T05-31-07Z_rX_tok.db")).toBeNull();
  });

  it("refuse a token or revision that would make an unparseable key", () => {
    expect(() => snapshotKey(PREFIX, NOW, "12a", "tok")).toThrow(/revision must be a number, got "12a"/);
    expect(() => snapshotKey(PREFIX, NOW, "12", "tok/../x")).toThrow(/cluster token must be/);
  });
});

describe("backupDue", () => {
  it("is due with none taken, or once the interval has passed", () => {
    expect(backupDue(null, NOW, 15)).toBe(true);
    expect(backupDue(new Date(NOW.getTime() - 14 * 60_000).toISOString(), NOW, 15)).toBe(false);
    expect(backupDue(new Date(NOW.getTime() - 15 * 60_000).toISOString(), NOW, 15)).toBe(true);
  });
});

describe("planRetention: hourly for 48 h, daily for 30 days, always the newest", () => {
  const policy = { hourlyHours: 48, dailyDays: 30 };

  it("keeps one per hour in the hourly window (the newest of each hour)", () => {
    // Every 15 minutes for the last 3 hours: 12 snapshots, 3 or 4 distinct hours.
    const refs = Array.from({ length: 12 }, (_, i) => ref(i * 0.25));
    const { keep, remove } = planRetention(refs, NOW, policy);
    const hours = new Set(refs.map((r) => r.takenAt.slice(0, 13)));
    expect(keep).toHaveLength(hours.size);
    expect(keep.length + remove.length).toBe(12);
    for (const h of hours) {
      const newest = refs
        .filter((r) => r.takenAt.startsWith(h))
        .sort((a, b) => (a.takenAt < b.takenAt ? 1 : -1))[0];
      expect(keep.map((k) => k.key)).toContain(newest?.key);
    }
  });

  it("keeps one per day between 48 hours and 30 days, none older", () => {
    const refs = [ref(0), ref(24 * 3), ref(24 * 3 + 1), ref(24 * 10), ref(24 * 31)];
    const { keep, remove } = planRetention(refs, NOW, policy);
    expect(keep.map((k) => k.takenAt)).toEqual([ref(0).takenAt, ref(24 * 3).takenAt, ref(24 * 10).takenAt]);
    expect(remove.map((k) => k.takenAt)).toEqual([ref(24 * 3 + 1).takenAt, ref(24 * 31).takenAt]);
  });

  it("never deletes the newest, however old", () => {
    const { keep, remove } = planRetention([ref(24 * 400), ref(24 * 401)], NOW, policy);
    expect(keep.map((k) => k.takenAt)).toEqual([ref(24 * 400).takenAt]);
    expect(remove).toHaveLength(1);
  });
});

describe("what the listing trusts (#16)", () => {
  const name = (iso: string, rev = "7", tok = "tok-1") =>
    `${PREFIX}${iso.replace(/:/g, "-").replace(".", "-")}_r${rev}_${tok}.db`;

  it("a last snapshot dated in the future never holds a backup back", () => {
    expect(backupDue("2099-01-01T00:00:00.000Z", NOW, 60)).toBe(true);
    expect(backupDue(new Date(NOW.getTime() + 60_000).toISOString(), NOW, 60)).toBe(false);
  });

  it.each([
    [
      "dated beyond the skew",
      { iso: "2099-01-01T00:00:00.000Z", stored: NOW.toISOString(), versions: 1 },
      /in the future/,
    ],
    [
      "named after S3 stored it",
      { iso: "2026-11-22T11:00:00.000Z", stored: "2026-11-22T10:00:00.000Z", versions: 1 },
      /after S3 stored it/,
    ],
    [
      "written twice",
      { iso: "2026-11-22T11:00:00.000Z", stored: "2026-11-22T11:00:01.000Z", versions: 2 },
      /overwritten/,
    ],
  ])("refuses a snapshot %s, with the reason", (_what, o, reason) => {
    const key = name(o.iso);
    const out = vetSnapshots([{ key, lastModified: o.stored, versions: o.versions }], PREFIX, NOW);
    expect(out.snapshots).toEqual([]);
    expect(out.refused).toEqual([{ key, reason: expect.stringMatching(reason) }]);
  });

  it("trusts an honest one (named before S3 stored it) and records when S3 stored it", () => {
    const key = name("2026-11-22T11:00:00.000Z");
    const out = vetSnapshots([{ key, lastModified: "2026-11-22T11:03:00.000Z", versions: 1 }], PREFIX, NOW);
    expect(out.refused).toEqual([]);
    expect(out.snapshots.map((r) => [r.key, r.storedAt])).toEqual([[key, "2026-11-22T11:03:00.000Z"]]);
  });

  it("ignores what is not a snapshot directly under the prefix", () => {
    const keys = [
      `${PREFIX}sub/${name("2026-11-22T11:00:00.000Z").slice(PREFIX.length)}`,
      `${PREFIX}events/x.json`,
      "other/2026-11-22T11-00-00-000Z_r7_tok-1.db",
    ];
    const out = vetSnapshots(
      keys.map((key) => ({ key, lastModified: NOW.toISOString(), versions: 1 })),
      PREFIX,
      NOW,
    );
    expect(out).toEqual({ snapshots: [], refused: [] });
  });
});

// The leader's storage plan, one behaviour per case: when a defragmentation is worth it, in which
// order, what holds it, and the NOSPACE recovery (compact, defragment every voter, disarm).
import { describe, expect, it } from "vitest";
import type { ClusterView, MemberView } from "../../../agent/planner/observation.js";
import {
  defragWorth,
  NOSPACE_REPEAT_GAP_SECONDS,
  NOSPACE_REPEATS,
  planStorage,
  type StorageObservation,
} from "../../../agent/planner/storage-plan.js";

const MIB = 1024 * 1024;
const NOW = "2026-11-22T12:00:00.000Z";
const QUOTA = 100 * MIB;

function member(
  id: string,
  db: number,
  inUse: number,
  o: { up?: boolean; learner?: boolean; alarms?: string[] } = {},
): MemberView {
  return {
    id,
    name: `i-0000000${id}`,
    peerUrls: [`http://127.0.1.${id}:2380`],
    clientUrls: [`http://127.0.1.${id}:2379`],
    isLearner: o.learner ?? false,
    instanceId: `i-0000000${id}`,
    status:
      o.up === false
        ? null
        : {
            memberId: id,
            leaderId: "1",
            raftIndex: "10",
            raftTerm: "2",
            dbSize: db * MIB,
            dbSizeInUse: inUse * MIB,
            isLearner: o.learner ?? false,
            version: "3.4.23",
            errors: (o.alarms ?? []).map((a) => `memberID:${id} alarm:${a}`),
          },
  };
}

function cluster(...members: MemberView[]): ClusterView {
  return { answeredBy: "1", clusterId: "42", leaderId: "1", members };
}

function storage(o: Partial<StorageObservation> = {}): StorageObservation {
  return {
    quotaBytes: QUOTA,
    defrag: { freePercent: 50, quotaPercent: 80 },
    running: null,
    compactedAt: null,
    defraggedAt: {},
    ...o,
  };
}

const calm = { corrupt: false, busy: false };
const plan = (c: ClusterView, s = storage(), view = calm) => planStorage(c, s, NOW, view);

describe("when a defragmentation is worth it (etcd-defrag's dbSizeFree and dbQuotaUsage)", () => {
  it.each([
    ["half the db free", 40, 20, true],
    ["little free in a small db", 10, 8, false],
    ["free space under 5% of the quota, however large a share", 6, 2, false],
    ["a db at 80% of the quota with 10 MiB free", 85, 75, true],
    ["a db at 80% of the quota, nothing to free", 85, 84, false],
  ])("%s", (_, db, inUse, worth) => {
    const m = member("2", db, inUse);
    expect(defragWorth(m.status as NonNullable<MemberView["status"]>, QUOTA, storage().defrag) !== null).toBe(
      worth,
    );
  });

  it("an etcd that does not report its in-use size is never defragmented for the rule", () => {
    const m = member("2", 90, 10);
    const { dbSizeInUse: _, ...status } = m.status as NonNullable<MemberView["status"]>;
    expect(defragWorth(status, QUOTA, storage().defrag)).toBeNull();
  });
});

describe("the order and the holds", () => {
  it("a follower before the leader, one a cycle", () => {
    const p = plan(cluster(member("1", 40, 10), member("2", 40, 10), member("3", 40, 10)));
    expect(p.actions).toMatchObject([{ type: "defragment", memberId: "2", role: "follower" }]);
  });

  it("the leader once no follower needs it", () => {
    const p = plan(cluster(member("1", 40, 10), member("2", 10, 10), member("3", 10, 10)));
    expect(p.actions).toMatchObject([{ type: "defragment", memberId: "1", role: "leader" }]);
  });

  it.each([
    [
      "a member does not answer",
      cluster(member("1", 40, 10), member("2", 40, 10), member("3", 0, 0, { up: false })),
      calm,
      "defrag-member-unhealthy",
    ],
    ["one runs already", cluster(member("1", 40, 10), member("2", 40, 10)), calm, "defrag-in-progress"],
    [
      "quorum would not survive (two voters)",
      cluster(member("1", 40, 10), member("2", 40, 10)),
      calm,
      "defrag-quorum",
    ],
    [
      "a membership change is planned",
      cluster(member("1", 40, 10), member("2", 40, 10), member("3", 40, 10)),
      { corrupt: false, busy: true },
      "one-change-per-cycle",
    ],
    [
      "CORRUPT is raised",
      cluster(member("1", 40, 10), member("2", 40, 10), member("3", 40, 10)),
      { corrupt: true, busy: false },
      "etcd-alarm-corrupt",
    ],
  ])("held when %s", (what, c, view, rule) => {
    const s = what === "one runs already" ? storage({ running: { memberId: "2", since: NOW } }) : storage();
    const p = plan(c, s, view);
    expect(p.actions).toEqual([]);
    expect(p.holds.map((h) => h.rule)).toEqual([rule]);
  });

  it("a member defragmented minutes ago waits (defrag-recent)", () => {
    const p = plan(
      cluster(member("1", 40, 10), member("2", 40, 10), member("3", 40, 10)),
      storage({ defraggedAt: { "2": "2026-11-22T11:58:00.000Z" } }),
    );
    expect(p.holds.map((h) => h.rule)).toEqual(["defrag-recent"]);
  });

  it("a learner is never defragmented (etcd serves it no Defragment)", () => {
    const p = plan(
      cluster(
        member("1", 10, 10),
        member("2", 10, 10),
        member("3", 10, 10),
        member("4", 40, 10, { learner: true }),
      ),
    );
    expect(p.actions).toEqual([]);
  });
});

describe("NOSPACE: compact, defragment every voter, then disarm", () => {
  const full = (db: number, inUse: number, id: string) => member(id, db, inUse, { alarms: ["NOSPACE"] });

  it("first compacts to the current revision", () => {
    const p = plan(cluster(full(100, 90, "1"), full(100, 90, "2"), full(100, 90, "3")));
    expect(p.actions).toMatchObject([{ type: "compact" }]);
  });

  it("then defragments the followers, then the leader, whatever the free space", () => {
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "2": "2026-11-22T11:59:30.000Z" },
    });
    expect(plan(cluster(full(100, 90, "1"), full(50, 40, "2"), full(100, 90, "3")), s).actions).toMatchObject(
      [{ type: "defragment", memberId: "3" }],
    );
  });

  it("a single voter is defragmented too: the cluster already refuses writes", () => {
    const s = storage({ compactedAt: "2026-11-22T11:59:00.000Z" });
    expect(plan(cluster(full(100, 90, "1")), s).actions).toMatchObject([
      { type: "defragment", memberId: "1" },
    ]);
  });

  it("disarms once every voter is defragmented and below 90% of the quota", () => {
    const after = "2026-11-22T11:59:30.000Z";
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "1": after, "2": after, "3": after },
    });
    expect(plan(cluster(full(30, 30, "1"), full(30, 30, "2"), full(30, 30, "3")), s).actions).toMatchObject([
      { type: "disarm-nospace" },
    ]);
  });

  it("stays armed, naming the member, when the data itself fills the quota (its repeats spent)", () => {
    const after = "2026-11-22T11:59:30.000Z";
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "1": after, "2": after, "3": after },
      passDefrags: { "1": 1, "2": 1 + NOSPACE_REPEATS, "3": 1 },
    });
    const p = plan(cluster(full(30, 30, "1"), full(95, 95, "2"), full(30, 30, "3")), s);
    expect(p.actions).toEqual([]);
    expect(p.holds).toMatchObject([
      { rule: "nospace-still-full", detail: expect.stringMatching(/^after .* 2 \(95\.0 MiB\) is still/) },
    ]);
  });

  it("defragments again a member whose compaction freed its pages only after its defragmentation", () => {
    // etcd compacts each member's backend in the background: under load a member's defragmentation
    // can run before its compaction is done, and leave the db at the quota with the pages free
    // only afterwards. Seen in integration/storage.test.ts run beside another file: held by
    // nospace-still-full until the 10-minute new pass.
    const after = "2026-11-22T11:59:30.000Z";
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "1": after, "2": after, "3": after },
    });
    const p = plan(cluster(full(30, 30, "1"), full(95, 3, "2"), full(30, 30, "3")), s);
    expect(p.holds).toEqual([]);
    expect(p.actions).toMatchObject([{ type: "defragment", memberId: "2" }]);
  });

  it("defragments again a member still full after its defragmentation, its compaction's pages still pending", () => {
    // Seen in CI (integration/storage.test.ts and e2e/nospace.test.ts, 2026-11-24): each follower
    // defragmented 1 s after the compaction, before its background compaction ran; afterwards the
    // freed pages stay pending in bbolt (no write commits while NOSPACE refuses writes), so
    // dbSizeInUse does not fall and only a defragmentation returns them. Held by nospace-still-full
    // for the 10-minute new pass before.
    const after = "2026-11-22T11:59:30.000Z";
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "1": after, "2": after, "3": after },
      passDefrags: { "1": 1, "2": 1, "3": 1 },
    });
    const p = plan(cluster(full(30, 30, "1"), full(95, 95, "2"), full(30, 30, "3")), s);
    expect(p.holds).toEqual([]);
    expect(p.actions).toMatchObject([{ type: "defragment", memberId: "2" }]);
  });

  it("defragments the leader still full after the compaction though its in-use size shows no free pages", () => {
    // Seen in integration/storage.test.ts (2026-11-24 03:41): both followers defragmented, the
    // leader (whose compaction the compact call waited for) at 2.2 MiB of a 2 MiB quota with its
    // freed pages pending, so dbSizeInUse equal to dbSize: never a candidate, nospace-still-full.
    const after = "2026-11-22T11:59:30.000Z";
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "2": after, "3": after },
      passDefrags: { "2": 1, "3": 1 },
    });
    const p = plan(cluster(full(110, 110, "1"), full(30, 30, "2"), full(30, 30, "3")), s);
    expect(p.holds).toEqual([]);
    expect(p.actions).toMatchObject([{ type: "defragment", memberId: "1", role: "leader" }]);
  });

  it("a repeat waits NOSPACE_REPEAT_GAP_SECONDS after the member's last defragmentation", () => {
    const justNow = new Date(Date.parse(NOW) - (NOSPACE_REPEAT_GAP_SECONDS - 1) * 1000).toISOString();
    const s = storage({
      compactedAt: "2026-11-22T11:59:00.000Z",
      defraggedAt: { "1": justNow, "2": justNow, "3": justNow },
      passDefrags: { "1": 1, "2": 1, "3": 1 },
    });
    const p = plan(cluster(full(30, 30, "1"), full(95, 95, "2"), full(30, 30, "3")), s);
    expect(p.actions).toEqual([]);
    expect(p.holds.map((h) => h.rule)).toEqual(["nospace-still-full"]);
  });

  it("starts a new pass (compaction, then every voter) when still full a gap after the last one", () => {
    const after = "2026-11-22T11:45:30.000Z";
    const s = storage({
      compactedAt: "2026-11-22T11:45:00.000Z",
      defraggedAt: { "1": after, "2": after, "3": after },
      passDefrags: { "1": 1, "2": 1 + NOSPACE_REPEATS, "3": 1 },
    });
    const p = plan(cluster(full(30, 30, "1"), full(95, 95, "2"), full(30, 30, "3")), s);
    expect(p.actions).toMatchObject([{ type: "compact", reason: expect.stringMatching(/again/) }]);
  });

  it("CORRUPT beside NOSPACE: nothing is compacted, defragmented or disarmed", () => {
    const both = (id: string) => member(id, 100, 90, { alarms: ["NOSPACE", "CORRUPT"] });
    const p = plan(cluster(both("1"), both("2"), both("3")), storage(), { corrupt: true, busy: false });
    expect(p.actions).toEqual([]);
    expect(p.holds.map((h) => h.rule)).toEqual(["etcd-alarm-corrupt"]);
  });
});

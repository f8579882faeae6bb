// Invariants of the leader's storage care (planStorage through planReconcile) over generated
// clusters: db sizes and free space per member, NOSPACE and CORRUPT, a defragmentation running,
// the compaction done or not, members defragmented recently. A counterexample is printed shrunk.

import { test } from "@fast-check/vitest";
import fc from "fast-check";
import { describe, expect } from "vitest";
import { alarmsOf, isHealthy } from "../../../../agent/planner/membership.js";
import type { MemberStatus, MemberView } from "../../../../agent/planner/observation.js";
import { quorumSize } from "../../../../agent/planner/quorum.js";
import {
  type Action,
  DESTRUCTIVE_ACTIONS,
  MEMBERSHIP_ACTIONS,
  planReconcile,
  type ReconcileObservation,
} from "../../../../agent/planner/reconcile-plan.js";
import { RULES } from "../../../../agent/planner/rules.js";
import {
  DEFRAG_MIN_FREE_PERCENT_OF_QUOTA,
  DISARM_QUOTA_PERCENT,
  defragWorth,
  NOSPACE_REPEAT_GAP_SECONDS,
  NOSPACE_REPEATS,
  type StorageObservation,
} from "../../../../agent/planner/storage-plan.js";
import { buildReconcile, reconcileSpec, runs } from "./arbitraries.js";

const NUM_RUNS = runs(1000);
const MIB = 1024 * 1024;
const NOW = "2026-11-22T12:00:00.000Z";

const sizes = fc.array(
  fc.record({ db: fc.integer({ min: 1, max: 8 }), freeShare: fc.constantFrom(0, 10, 50, 90) }),
  { minLength: 7, maxLength: 7 },
);

const storageSpec = fc.record({
  // Most worlds are healthy voters (defragmentation's ground); the rest are as generated.
  base: fc.tuple(reconcileSpec, fc.boolean()).map(([s, healthy]) => ({
    ...s,
    selfIsLeader: true,
    target: null,
    world: healthy
      ? {
          ...s.world,
          members: s.world.members.map((m, i) => ({
            ...m,
            health: "ok" as const,
            started: true,
            learner: i === 1 && m.learner,
            instance: { lifecycleState: "InService", healthStatus: "Healthy" as const },
          })),
        }
      : s.world,
  })),
  sizes,
  nospace: fc.boolean(),
  corrupt: fc.oneof(
    { weight: 4, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  running: fc.oneof(
    { weight: 4, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) },
  ),
  compacted: fc.boolean(),
  defragged: fc.array(fc.option(fc.constantFrom(-5, 30, 58, 700), { nil: null }), {
    minLength: 7,
    maxLength: 7,
  }),
  passDefrags: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 7, maxLength: 7 }),
  freePercent: fc.constantFrom(0, 50),
  quotaPercent: fc.constantFrom(0, 80),
});

function at(secondsAgo: number): string {
  return new Date(Date.parse(NOW) - secondsAgo * 1000).toISOString();
}

/** The generated world, with db sizes (in MiB, of an 8 MiB quota), alarms and the storage memory. */
const observation = storageSpec.map((g): ReconcileObservation => {
  const obs = buildReconcile(g.base);
  const alarms = [...(g.nospace ? ["NOSPACE"] : []), ...(g.corrupt ? ["CORRUPT"] : [])];
  const members = (obs.cluster?.members ?? []).map((m, i): MemberView => {
    if (m.status === null) return m;
    const size = g.sizes[i] ?? { db: 1, freeShare: 0 };
    const dbSize = size.db * MIB;
    return {
      ...m,
      status: {
        ...m.status,
        dbSize,
        dbSizeInUse: dbSize - Math.floor((dbSize * size.freeShare) / 100),
        errors: [...m.status.errors, ...alarms.map((a) => `memberID:${m.id} alarm:${a}`)],
      },
    };
  });
  const compactedAt = g.compacted ? at(60) : null;
  const defraggedAt: Record<string, string> = {};
  g.defragged.forEach((d, i) => {
    if (d !== null) defraggedAt[String(i + 1)] = at(d);
  });
  const storage: StorageObservation = {
    quotaBytes: 8 * MIB,
    defrag: { freePercent: g.freePercent, quotaPercent: g.quotaPercent },
    running: g.running === null ? null : { memberId: String(g.running), since: at(10) },
    compactedAt,
    defraggedAt,
    passDefrags: Object.fromEntries(g.passDefrags.map((n, i) => [String(i + 1), n])),
  };
  return {
    ...obs,
    now: NOW,
    cluster: obs.cluster === null ? null : { ...obs.cluster, members },
    storage,
  };
});

const STORAGE = new Set<Action["type"]>(["compact", "defragment", "disarm-nospace"]);

function defragmented(actions: Action[]): string[] {
  return actions.flatMap((a) => (a.type === "defragment" ? [a.memberId] : []));
}

describe("storage invariants (property-based)", () => {
  test.prop([observation], { numRuns: NUM_RUNS })(
    "never two defragmentations at once: at most one a plan, none while one runs",
    (obs) => {
      const d = defragmented(planReconcile(obs).actions);
      expect(d.length).toBeLessThanOrEqual(1);
      if (obs.storage?.running) expect(d).toEqual([]);
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "never while a member is unhealthy, never a learner, never with CORRUPT raised",
    (obs) => {
      const d = defragmented(planReconcile(obs).actions);
      if (d.length === 0) return;
      const members = obs.cluster?.members ?? [];
      expect(members.filter((m) => !isHealthy(m)).map((m) => m.id)).toEqual([]);
      expect(members.filter((m) => d.includes(m.id) && m.isLearner)).toEqual([]);
      expect(alarmsOf(members)).not.toContain("CORRUPT");
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "never the leader before the followers that need it",
    (obs) => {
      const d = defragmented(planReconcile(obs).actions);
      const cluster = obs.cluster;
      if (cluster === null || d[0] !== cluster.leaderId) return;
      const s = obs.storage as StorageObservation;
      const nospace = alarmsOf(cluster.members).includes("NOSPACE");
      const waiting = cluster.members.filter((m) => {
        if (m.id === cluster.leaderId || m.isLearner || m.name === "" || m.status === null) return false;
        if (!nospace) return defragWorth(m.status, s.quotaBytes, s.defrag) !== null;
        const last = s.defraggedAt[m.id];
        return (
          returnsPages(m.status, s.quotaBytes) &&
          (last === undefined || (s.compactedAt !== null && last < s.compactedAt))
        );
      });
      expect(waiting.map((m) => m.id)).toEqual([]);
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "under NOSPACE, a defragmentation that shows no pages to return is only a bounded repeat of a member still full, a gap after its last (no endless passes over live data near the quota)",
    (obs) => {
      const d = defragmented(planReconcile(obs).actions);
      const members = obs.cluster?.members ?? [];
      const s = obs.storage as StorageObservation;
      if (d.length === 0 || !alarmsOf(members).includes("NOSPACE")) return;
      const target = members.find((m) => m.id === d[0]);
      if (target && returnsPages(target.status, s.quotaBytes)) {
        const done = s.passDefrags?.[target.id] ?? 0;
        const last = s.defraggedAt[target.id];
        if (s.compactedAt !== null && last !== undefined && last >= s.compactedAt)
          expect(done).toBeLessThanOrEqual(NOSPACE_REPEATS);
        return;
      }
      const last = s.defraggedAt[target?.id ?? ""];
      expect(target?.status?.dbSize ?? 0).toBeGreaterThanOrEqual((s.quotaBytes * DISARM_QUOTA_PERCENT) / 100);
      if (last === undefined || s.compactedAt === null || last < s.compactedAt) return;
      expect((Date.parse(obs.now) - Date.parse(last)) / 1000).toBeGreaterThanOrEqual(
        NOSPACE_REPEAT_GAP_SECONDS,
      );
      expect(s.passDefrags?.[target?.id ?? ""] ?? 1).toBeLessThanOrEqual(NOSPACE_REPEATS);
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "quorum survives the member being defragmented, unless NOSPACE already stops writes",
    (obs) => {
      const d = defragmented(planReconcile(obs).actions);
      const members = obs.cluster?.members ?? [];
      if (d.length === 0 || alarmsOf(members).includes("NOSPACE")) return;
      const voters = members.filter((m) => !m.isLearner && m.name !== "");
      const left = voters.filter((m) => !d.includes(m.id) && isHealthy(m)).length;
      expect(left).toBeGreaterThanOrEqual(quorumSize(voters.length));
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "at most one storage action a plan, and none beside a membership change or a destructive action",
    (obs) => {
      const actions = planReconcile(obs).actions;
      const storage = actions.filter((a) => STORAGE.has(a.type));
      expect(storage.length).toBeLessThanOrEqual(1);
      if (storage.some((a) => a.type === "defragment"))
        expect(
          actions.filter((a) => MEMBERSHIP_ACTIONS.has(a.type) || DESTRUCTIVE_ACTIONS.has(a.type)),
        ).toEqual([]);
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "NOSPACE is disarmed only after the compaction, never with CORRUPT, and only below the threshold",
    (obs) => {
      const disarm = planReconcile(obs).actions.some((a) => a.type === "disarm-nospace");
      if (!disarm) return;
      const members = obs.cluster?.members ?? [];
      const s = obs.storage as StorageObservation;
      expect(alarmsOf(members)).toEqual(["NOSPACE"]);
      expect(s.compactedAt).not.toBeNull();
      for (const m of members.filter((x) => !x.isLearner && x.name !== ""))
        expect((m.status?.dbSize ?? Number.POSITIVE_INFINITY) * 100).toBeLessThan(
          s.quotaBytes * DISARM_QUOTA_PERCENT,
        );
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })("every hold names a rule in RULES", (obs) => {
    for (const h of planReconcile(obs).holds) expect(Object.keys(RULES)).toContain(h.rule);
  });
});

/** A defragmentation can return pages: at least the floor's share of the quota free, or in-use unknown. */
function returnsPages(status: MemberStatus | null, quotaBytes: number): boolean {
  if (status === null || status.dbSizeInUse === undefined) return true;
  return (status.dbSize - status.dbSizeInUse) * 100 >= quotaBytes * DEFRAG_MIN_FREE_PERCENT_OF_QUOTA;
}

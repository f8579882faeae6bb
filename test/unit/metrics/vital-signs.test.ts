// The cluster's vital signs (issue #18, "Metrics and views"): the figures the metrics publish,
// from one cycle's observation and plan. Pure.
import { describe, expect, it } from "vitest";
import type { Plan } from "../../../agent/planner/reconcile-plan.js";
import { ETCD_DEFAULT_QUOTA_BYTES, vitalSigns } from "../../../agent/planner/vital-signs.js";
import { ago, cluster, member, reconcileObs } from "../../support/fixtures.js";

const leaderPlan: Plan = { role: "leader", actions: [], holds: [] };

function signs(over: Partial<Parameters<typeof vitalSigns>[0]> = {}) {
  return vitalSigns({
    obs: reconcileObs(1),
    plan: leaderPlan,
    applied: [],
    previousLeaderId: "1",
    lastBackupAt: null,
    quotaBytes: ETCD_DEFAULT_QUOTA_BYTES,
    ...over,
  });
}

describe("vital signs", () => {
  it("count members, voters, healthy voters, learners waiting and unhealthy members", () => {
    const obs = reconcileObs(1, {
      cluster: cluster([member(1), member(2), member(3, { healthy: false }), member(4, { learner: true })]),
    });
    expect(signs({ obs }).cluster).toEqual({
      members: 4,
      voters: 3,
      healthyVoters: 2,
      learners: 1,
      unhealthyMembers: 1,
      hasLeader: true,
    });
  });

  it("give each member's db size and in-use size, and the fullest member against the quota", () => {
    const m2 = member(2);
    if (m2.status) Object.assign(m2.status, { dbSize: 1024 ** 3, dbSizeInUse: 512 * 1024 ** 2 });
    const obs = reconcileObs(1, { cluster: cluster([member(1), m2, member(3, { healthy: false })]) });
    const s = signs({ obs });
    expect(s.members).toEqual([
      { member: "i-00000001", healthy: true, learner: false, dbSizeBytes: 20480, dbSizeInUseBytes: null },
      {
        member: "i-00000002",
        healthy: true,
        learner: false,
        dbSizeBytes: 1024 ** 3,
        dbSizeInUseBytes: 512 * 1024 ** 2,
      },
      { member: "i-00000003", healthy: false, learner: false, dbSizeBytes: null, dbSizeInUseBytes: null },
    ]);
    expect(s.quotaUsedRatio).toBe(0.5);
  });

  it("name a member that has not started by its ID", () => {
    const obs = reconcileObs(1, { cluster: cluster([member(1), member(7, { started: false })]) });
    expect(signs({ obs }).members.map((m) => m.member)).toEqual(["i-00000001", "7"]);
  });

  it("list etcd's alarms", () => {
    const m1 = member(1);
    if (m1.status) m1.status.errors = ["memberID:1 alarm:NOSPACE "];
    expect(signs({ obs: reconcileObs(1, { cluster: cluster([m1, member(2)]) }) }).alarms).toEqual([
      "NOSPACE",
    ]);
  });

  it.each([
    ["unknown", undefined, null],
    ["none taken", null, null],
    ["taken 20 minutes ago", ago(1200), 1200],
  ])("give the last backup's age: %s", (_name, lastBackupAt, age) => {
    expect(signs({ lastBackupAt }).backupAgeSeconds).toBe(age);
  });

  it.each([
    ["the first cycle", undefined, "1", false],
    ["the same leader", "1", "1", false],
    ["another leader", "2", "1", true],
    ["a leader after none", null, "1", true],
    ["no leader after one", "1", null, true],
  ] as const)("count a leader change: %s", (_name, previous, now, changed) => {
    const obs = reconcileObs(1, { cluster: cluster([member(1), member(2), member(3)], now) });
    expect(signs({ obs, previousLeaderId: previous }).leaderChanged).toBe(changed);
  });

  it("say who leads, the actions applied and the rules that held (leader-only is routine: left out)", () => {
    const plan: Plan = {
      role: "follower",
      actions: [],
      holds: [
        { rule: "leader-only", detail: "" },
        { rule: "startup-grace", detail: "a" },
        { rule: "startup-grace", detail: "b" },
        { rule: "dns-settle", detail: "" },
      ],
    };
    const s = signs({ plan, applied: ["promote-self"] });
    expect(s.leader).toBe(false);
    expect(s.actions).toEqual(["promote-self"]);
    expect(s.holds).toEqual(["dns-settle", "startup-grace"]);
    expect(signs().leader).toBe(true);
  });

  it("have no cluster figures when no member answered", () => {
    const s = signs({ obs: reconcileObs(1, { cluster: null }) });
    expect(s.cluster).toBeNull();
    expect(s.leaderChanged).toBe(false);
    expect(s.quotaUsedRatio).toBeNull();
  });
});

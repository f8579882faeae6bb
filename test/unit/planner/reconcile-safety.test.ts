// The leader's destructive actions (removals, health reports) and DNS writes, held back when the
// view is not to be trusted: etcd alarms, its own reachability, one stale read, a flapping member.
import { describe, expect, it } from "vitest";
import { desiredRecords } from "../../../agent/planner/dns-plan.js";
import { emptyMemory, type Memory, parseMemory, rememberMembers } from "../../../agent/planner/memory.js";
import type { DnsRecord, MemberView } from "../../../agent/planner/observation.js";
import {
  DESTRUCTIVE_ACTIONS,
  type Plan,
  planReconcile,
  type ReconcileObservation,
} from "../../../agent/planner/reconcile-plan.js";
import { statusLine } from "../../../agent/planner/status-line.js";
import { buildStatusReport } from "../../../agent/planner/status-report.js";
import { ago, asg, cluster, iid, instance, ip, member, NOW, reconcileObs } from "../../support/fixtures.js";

const types = (p: Plan) => p.actions.map((a) => a.type);
const rules = (p: Plan) => p.holds.map((h) => h.rule);
const destructive = (p: Plan) => p.actions.filter((a) => DESTRUCTIVE_ACTIONS.has(a.type));
const dnsFor = (ns: number[]) =>
  desiredRecords(
    ns.map((n) => ({ name: iid(n), ip: ip(n) })),
    { domain: "etcd.internal", peerPort: 2380, clientPort: 2379, tls: false },
  );
const dnsChangesOf = (p: Plan) =>
  p.actions.flatMap((a) =>
    a.type === "update-dns" ? a.changes.map((c) => `${c.action} ${c.record.type} ${c.record.name}`) : [],
  );

/** etcd 3.4 puts each alarm into every member's Status as `memberID:<id> alarm:<kind> `. */
function withAlarm(m: MemberView, kind: string): MemberView {
  if (m.status === null) return m;
  return { ...m, status: { ...m.status, errors: [`memberID:1 alarm:${kind} `] } };
}

/** A zone as Route53 keeps it, changed by the plan's update-dns actions. */
function applyDns(zone: DnsRecord[], p: Plan): DnsRecord[] {
  let next = [...zone];
  for (const a of p.actions) {
    if (a.type !== "update-dns") continue;
    for (const c of a.changes) {
      next = next.filter((r) => !(r.name === c.record.name && r.type === c.record.type));
      if (c.action === "UPSERT") next.push(c.record);
    }
  }
  return next;
}

const at = (seconds: number) => new Date(Date.parse(NOW) + seconds * 1000).toISOString();

describe("defect 2: etcd alarms are cluster-wide, not a member being unhealthy", () => {
  it("reports no follower unhealthy when every member carries a NOSPACE alarm past the deadline", () => {
    const c = cluster([1, 2, 3].map((n) => withAlarm(member(n), "NOSPACE")));
    const since = { "1": ago(900), "2": ago(900), "3": ago(900) };
    const plan = planReconcile(reconcileObs(1, { cluster: c, unhealthySince: since }));
    expect(types(plan)).not.toContain("set-instance-unhealthy");
    expect(rules(plan)).toContain("etcd-alarm");
  });

  it("holds every destructive action while a CORRUPT alarm is raised", () => {
    const c = cluster([
      withAlarm(member(1), "CORRUPT"),
      withAlarm(member(2), "CORRUPT"),
      member(3, { healthy: false }),
      withAlarm(member(4), "CORRUPT"),
      withAlarm(member(5), "CORRUPT"),
    ]);
    const group = asg([instance(1), instance(2), instance(3), instance(5)]);
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: c,
        asg: group,
        unhealthySince: { "3": ago(900) },
        missingSince: { "4": ago(900) },
      }),
    );
    expect(destructive(plan)).toEqual([]);
    expect(rules(plan)).toContain("etcd-alarm-corrupt");
  });
});

describe("at most one destructive action per cycle, each leaving a healthy quorum", () => {
  it("plans a removal or a health report, not both", () => {
    // Learner 4 never started and its instance is gone; voter 5 has been down past the deadline.
    const c = cluster([
      member(1),
      member(2),
      member(3),
      member(4, { started: false, learner: true }),
      member(5, { healthy: false }),
    ]);
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: c,
        asg: asg([instance(1), instance(2), instance(3), instance(5)]),
        firstSeenUnstarted: { "4": ago(900) },
        missingSince: { "4": ago(900) },
        unhealthySince: { "5": ago(900) },
      }),
    );
    expect(destructive(plan)).toHaveLength(1);
    expect(rules(plan)).toContain("one-change-per-cycle");
  });

  it("exports the destructive action types in one place", () => {
    expect([...DESTRUCTIVE_ACTIONS].sort()).toEqual(["remove-member", "set-instance-unhealthy"]);
  });
});

describe("defect 13: a leader that cannot reach the others does not act on its view", () => {
  it("reports nobody and keeps DNS when it sees every other member down", () => {
    const c = cluster([member(1), member(2, { healthy: false }), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: c,
        dns: dnsFor([1, 2, 3]),
        unhealthySince: { "2": ago(900), "3": ago(900) },
      }),
    );
    expect(destructive(plan)).toEqual([]);
    expect(dnsChangesOf(plan)).toEqual([]);
    expect(rules(plan)).toContain("observer-suspect");
  });

  it("holds when more than one voter looks unhealthy at once, quorum or not", () => {
    const c = cluster([
      member(1),
      member(2),
      member(3),
      member(4, { healthy: false }),
      member(5, { healthy: false }),
    ]);
    const group = asg([1, 2, 3, 4, 5].map((n) => instance(n)));
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: c,
        asg: group,
        dns: dnsFor([1, 2, 3, 4, 5]),
        unhealthySince: { "4": ago(900), "5": ago(900) },
      }),
    );
    expect(destructive(plan)).toEqual([]);
    expect(dnsChangesOf(plan)).toEqual([]);
    expect(rules(plan)).toContain("observer-suspect");
  });
});

describe("a suspect view still follows the ASG", () => {
  it("removes members whose instances have been gone past the settle time (a scale-in without hooks)", () => {
    const c = cluster([
      member(1),
      member(2),
      member(3),
      member(4, { healthy: false }),
      member(5, { healthy: false }),
    ]);
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: c,
        asg: asg([instance(1), instance(2), instance(3)]),
        missingSince: { "4": ago(31), "5": ago(31) },
      }),
    );
    expect(rules(plan)).toContain("observer-suspect");
    expect(destructive(plan)).toEqual([expect.objectContaining({ type: "remove-member", memberId: "4" })]);
  });
});

describe("defect 9: DNS and health reports act on a settled view", () => {
  it("keeps a member that answers again in DNS past the settle time", () => {
    // Missed one Status call 40 s ago, answering since: flagged until it has recovered, still published.
    const plan = planReconcile(reconcileObs(1, { dns: dnsFor([1, 2, 3]), unhealthySince: { "3": ago(40) } }));
    expect(types(plan)).not.toContain("update-dns");
  });

  it("keeps a member that missed one Status call in DNS", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, dns: dnsFor([1, 2, 3]), unhealthySince: { "3": ago(0) } }),
    );
    expect(types(plan)).not.toContain("update-dns");
    expect(rules(plan)).toContain("dns-settle");
  });

  it("adds a new healthy voter at once", () => {
    const c = cluster([member(1), member(2), member(3), member(4)]);
    const group = asg([1, 2, 3, 4].map((n) => instance(n)));
    const plan = planReconcile(reconcileObs(1, { cluster: c, asg: group, dns: dnsFor([1, 2, 3]) }));
    expect(dnsChangesOf(plan)).toContain("UPSERT A i-00000004.etcd.internal");
  });

  it("reports a member that answers every other cycle at the deadline, and writes DNS at most once", () => {
    let memory: Memory = emptyMemory();
    let zone = dnsFor([1, 2, 3]);
    let writes = 0;
    const reports: number[] = [];
    for (let cycle = 0; cycle < 70; cycle++) {
      const now = at(cycle * 10);
      const c = cluster([member(1), member(2), member(3, { healthy: cycle % 2 === 0 })]);
      memory = rememberMembers(memory, c.members, now);
      const plan = planReconcile(
        reconcileObs(1, { cluster: c, dns: zone, now, unhealthySince: memory.unhealthySince }),
      );
      if (types(plan).includes("update-dns")) writes++;
      if (types(plan).includes("set-instance-unhealthy")) reports.push(cycle);
      zone = applyDns(zone, plan);
    }
    expect(reports.length).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(1);
  });

  it("holds DNS writes past the budget with a rule", () => {
    const plan = planReconcile(reconcileObs(1, { dns: [], dnsWrites: [ago(50), ago(40), ago(30), ago(20)] }));
    expect(types(plan)).not.toContain("update-dns");
    expect(rules(plan)).toContain("dns-write-budget");
  });

  it("writes again once the budget's minute has passed", () => {
    const plan = planReconcile(reconcileObs(1, { dns: [], dnsWrites: [ago(90), ago(80), ago(70), ago(61)] }));
    expect(types(plan)).toContain("update-dns");
  });
});

describe("defect 8: a voter not named after an instance", () => {
  it("costs at most one DNS write in 20 cycles", () => {
    const c = cluster([member(1), member(2), member(3, { name: "manual-node" })]);
    let zone: DnsRecord[] = [];
    let writes = 0;
    for (let cycle = 0; cycle < 20; cycle++) {
      const plan = planReconcile(reconcileObs(1, { cluster: c, dns: zone, now: at(cycle * 10) }));
      if (types(plan).includes("update-dns")) writes++;
      zone = applyDns(zone, plan);
    }
    expect(writes).toBeLessThanOrEqual(1);
  });
});

describe("defect 7: an instance missing from one ASG listing", () => {
  it("does not remove a started, healthy member whose instance is missing", () => {
    const plan = planReconcile(
      reconcileObs(1, { asg: asg([instance(1), instance(2)]), missingSince: { "3": ago(900) } }),
    );
    expect(types(plan)).not.toContain("remove-member");
    expect(rules(plan)).toContain("instance-missing");
  });

  it("waits before removing an unhealthy member whose instance went missing just now", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, asg: asg([instance(1), instance(2)]), missingSince: { "3": ago(10) } }),
    );
    expect(types(plan)).not.toContain("remove-member");
    expect(rules(plan)).toContain("instance-missing");
  });

  it("removes an unhealthy member whose instance has been missing past the settle time", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, asg: asg([instance(1), instance(2)]), missingSince: { "3": ago(61) } }),
    );
    expect(plan.actions).toContainEqual(expect.objectContaining({ type: "remove-member", memberId: "3" }));
  });
});

describe("drain: a leaving member leaves DNS before it leaves etcd", () => {
  it("the leader drops a terminating member from DNS first and removes it a cycle later", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const group = asg([instance(1), instance(2), instance(3, { lifecycleState: "Terminating" })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, asg: group, dns: dnsFor([1, 2, 3]), unhealthySince: { "3": ago(5) } }),
    );
    expect(dnsChangesOf(plan)).toContain("DELETE A i-00000003.etcd.internal");
    expect(types(plan)).not.toContain("remove-member");
    expect(rules(plan)).toContain("dns-drain");
  });

  it("the leader drops a healthy member in Terminating:Wait from DNS", () => {
    const group = asg([instance(1), instance(2), instance(3, { lifecycleState: "Terminating:Wait" })]);
    const plan = planReconcile(reconcileObs(1, { asg: group, dns: dnsFor([1, 2, 3]) }));
    expect(dnsChangesOf(plan)).toContain("DELETE A i-00000003.etcd.internal");
  });

  const leaving = (over: Partial<ReconcileObservation>) =>
    planReconcile(
      reconcileObs(2, {
        self: { instanceId: iid(2), privateIp: ip(2), targetLifecycleState: "Terminated" },
        ...over,
      }),
    );

  it("a leaving node waits while its records are published, and heartbeats", () => {
    const plan = leaving({ dns: dnsFor([1, 2, 3]), leavingSince: ago(10) });
    expect(types(plan)).toEqual(["heartbeat-lifecycle"]);
    expect(rules(plan)).toContain("dns-drain");
  });

  it("a leaving node waits one TTL after its records are gone", () => {
    const plan = leaving({ dns: dnsFor([1, 3]), leavingSince: ago(20), drainedSince: ago(10) });
    expect(types(plan)).toEqual(["heartbeat-lifecycle"]);
    expect(rules(plan)).toContain("dns-drain");
  });

  it("a leaving node removes itself once its records have been gone a TTL", () => {
    const plan = leaving({ dns: dnsFor([1, 3]), leavingSince: ago(40), drainedSince: ago(31) });
    expect(types(plan)).toEqual(["remove-member", "heartbeat-lifecycle"]);
  });

  it("a leaving node stops waiting for the drain past its bound", () => {
    const plan = leaving({ dns: dnsFor([1, 2, 3]), leavingSince: ago(181) });
    expect(types(plan)).toEqual(["remove-member", "heartbeat-lifecycle"]);
  });
});

describe("alarms are shown, not judged", () => {
  it("status lists a NOSPACE alarm, keeps every member healthy and the cluster not", () => {
    const c = cluster([1, 2, 3].map((n) => withAlarm(member(n), "NOSPACE")));
    const report = buildStatusReport({
      cluster: c,
      asg: asg([instance(1), instance(2), instance(3)]),
      dns: dnsFor([1, 2, 3]),
      marker: { kind: "absent" },
      domain: "etcd.internal",
      peerPort: 2380,
      clientPort: 2379,
      tls: false,
    });
    expect(report.alarms).toEqual(["NOSPACE"]);
    expect(report.members.every((m) => m.healthy)).toBe(true);
    expect(report.healthy).toBe(false);
    expect(report.summary).toContain("etcd alarm NOSPACE");
  });

  it("the status line names the alarm", () => {
    const obs = reconcileObs(1, { cluster: cluster([1, 2, 3].map((n) => withAlarm(member(n), "NOSPACE"))) });
    expect(statusLine(obs, planReconcile(obs), [])).toContain("ALARM NOSPACE");
  });
});

describe("a started learner that died", () => {
  it("is removed past the startup grace when its instance is unhealthy, freeing etcd's learner slot", () => {
    const c = cluster([member(1), member(2), member(3), member(4, { learner: true, healthy: false })]);
    const group = asg([instance(1), instance(2), instance(3), instance(4, { healthStatus: "Unhealthy" })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, asg: group, unhealthySince: { "4": ago(301) } }),
    );
    expect(plan.actions).toContainEqual(expect.objectContaining({ type: "remove-member", memberId: "4" }));
  });

  it("waits within the startup grace", () => {
    const c = cluster([member(1), member(2), member(3), member(4, { learner: true, healthy: false })]);
    const group = asg([instance(1), instance(2), instance(3), instance(4, { healthStatus: "Unhealthy" })]);
    const plan = planReconcile(reconcileObs(1, { cluster: c, asg: group, unhealthySince: { "4": ago(60) } }));
    expect(types(plan)).not.toContain("remove-member");
    expect(rules(plan)).toContain("startup-grace");
  });
});

describe("memory: clocks that one sample does not reset", () => {
  it("keeps unhealthy-since through a healthy sample and forgets it after the recovery time", () => {
    const down = [member(1), member(2), member(3, { healthy: false })];
    const up = [member(1), member(2), member(3)];
    let m = rememberMembers(emptyMemory(), down, at(0));
    m = rememberMembers(m, up, at(10));
    expect(m.unhealthySince).toEqual({ "3": at(0) });
    m = rememberMembers(m, up, at(40));
    expect(m.unhealthySince).toEqual({});
  });

  it("starts missing-since when the listing leaves an instance out, and keeps it when the ASG was not read", () => {
    let m = rememberMembers(emptyMemory(), [member(1), member(3)], at(0), asg([instance(1)]));
    m = rememberMembers(m, [member(1), member(3)], at(10), null);
    expect(m.missingSince).toEqual({ "3": at(0) });
    m = rememberMembers(m, [member(1), member(3)], at(20), asg([instance(1), instance(3)]));
    expect(m.missingSince).toEqual({});
  });

  it("reads back every clock it wrote, and an empty memory from garbage", () => {
    let m = rememberMembers(emptyMemory(), [member(3, { healthy: false })], at(0), asg([]));
    m = { ...m, dnsWrites: [at(0)], alarms: ["NOSPACE"], leavingSince: at(0), drainedSince: at(5) };
    expect(parseMemory(JSON.parse(JSON.stringify(m)))).toEqual(m);
    expect(parseMemory({ unhealthySince: { "3": "not a time" }, dnsWrites: "x" })).toEqual(emptyMemory());
  });
});

describe("joins are not slowed by the hysteresis", () => {
  it("publishes a member that was a slow-starting learner as soon as it is a healthy voter", () => {
    const learner = [member(1), member(2), member(3), member(4, { learner: true, healthy: false })];
    const promoted = [member(1), member(2), member(3), member(4)];
    let m = rememberMembers(emptyMemory(), learner, at(0));
    m = rememberMembers(m, promoted, at(5));
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: cluster(promoted),
        asg: asg([1, 2, 3, 4].map((n) => instance(n))),
        dns: dnsFor([1, 2, 3]),
        now: at(5),
        unhealthySince: m.unhealthySince,
      }),
    );
    expect(dnsChangesOf(plan)).toContain("UPSERT A i-00000004.etcd.internal");
  });
});

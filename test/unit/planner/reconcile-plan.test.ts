import { describe, expect, it } from "vitest";
import { desiredRecords } from "../../../agent/planner/dns-plan.js";
import { type Plan, planReconcile } from "../../../agent/planner/reconcile-plan.js";
import {
  ABSENT,
  ago,
  asg,
  cluster,
  iid,
  instance,
  ip,
  marker,
  member,
  reconcileObs,
} from "../../support/fixtures.js";

const types = (p: Plan) => p.actions.map((a) => a.type);
const rules = (p: Plan) => p.holds.map((h) => h.rule);
const dnsFor = (ns: number[]) =>
  desiredRecords(
    ns.map((n) => ({ name: iid(n), ip: ip(n) })),
    { domain: "etcd.internal", peerPort: 2380, clientPort: 2379, tls: false },
  );

describe("planReconcile: stale members (leader only)", () => {
  it("removes an unhealthy member whose instance has left the ASG for a minute", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, asg: asg([instance(1), instance(2)]), missingSince: { "3": ago(61) } }),
    );
    expect(plan.actions).toEqual([expect.objectContaining({ type: "remove-member", memberId: "3" })]);
  });

  it("removes a crashed instance's member even when its replacement got the same address", () => {
    const group = asg([instance(1), instance(2), instance(4, { privateIp: "127.0.1.3" })]);
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(reconcileObs(1, { asg: group, cluster: c, missingSince: { "3": ago(61) } }));
    expect(plan.actions).toContainEqual(expect.objectContaining({ type: "remove-member", memberId: "3" }));
  });

  it("changes nothing on a follower and says leader-only", () => {
    const plan = planReconcile(reconcileObs(2, { asg: asg([instance(1), instance(2)]) }));
    expect(types(plan)).toEqual([]);
    expect(rules(plan)).toContain("leader-only");
  });

  it("removes one member per cycle and holds the rest", () => {
    const c = cluster([
      member(1),
      member(2),
      member(3),
      member(4, { healthy: false }),
      member(5, { healthy: false }),
    ]);
    const leaving = { lifecycleState: "Terminating" };
    const group = asg([instance(1), instance(2), instance(3), instance(4, leaving), instance(5, leaving)]);
    const plan = planReconcile(reconcileObs(1, { cluster: c, asg: group }));
    expect(types(plan).filter((t) => t === "remove-member")).toHaveLength(1);
    expect(rules(plan)).toContain("one-change-per-cycle");
  });

  it("refuses a removal that would leave the healthy voters below quorum", () => {
    // 3 voters, member 2 down and gone from the ASG, member 3 healthy but gone too: removing 3
    // first would leave 1 healthy of 2 voters.
    const c = cluster([member(1), member(2, { healthy: false }), member(3)]);
    const missing = { "2": ago(61), "3": ago(61) };
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, asg: asg([instance(1)]), missingSince: missing }),
    );
    expect(plan.actions).toEqual([expect.objectContaining({ type: "remove-member", memberId: "2" })]);
    const after = planReconcile(
      reconcileObs(1, {
        cluster: cluster([member(1), member(3, { healthy: false }), member(4, { healthy: true })]),
        asg: asg([instance(1), instance(4)]),
        missingSince: missing,
      }),
    );
    expect(after.actions).toEqual([expect.objectContaining({ type: "remove-member", memberId: "3" })]);
  });

  it("holds a removal that breaks quorum with the rule's name", () => {
    // 5 voters, 3 healthy: 2 and 3 are down (instances still in the ASG), 4 is healthy but its
    // instance is terminating. Removing 4 would leave 2 healthy of 4 voters, where 3 are needed.
    const c = cluster([
      member(1),
      member(2, { healthy: false }),
      member(3, { healthy: false }),
      member(4),
      member(5),
    ]);
    const group = asg([
      instance(1),
      instance(2),
      instance(3),
      instance(4, { lifecycleState: "Terminating" }),
      instance(5),
    ]);
    const plan = planReconcile(reconcileObs(1, { cluster: c, asg: group }));
    expect(types(plan)).not.toContain("remove-member");
    expect(plan.holds).toContainEqual({
      rule: "quorum-after-removal",
      detail: "removing 4 leaves 2 healthy of 4 voters, 3 needed",
    });
  });

  it("removes nothing when the ASG could not be read", () => {
    const plan = planReconcile(reconcileObs(1, { asg: null }));
    expect(types(plan)).toEqual([]);
    expect(rules(plan)).toContain("partial-information");
  });

  it("removes nothing when the ASG listing leaves this instance out", () => {
    const plan = planReconcile(reconcileObs(1, { asg: asg([]) }));
    expect(types(plan)).toEqual([]);
    expect(rules(plan)).toContain("self-not-in-asg");
  });

  it("leaves a terminating instance's healthy member to its own agent", () => {
    const group = asg([instance(1), instance(2), instance(3, { lifecycleState: "Terminating:Wait" })]);
    const plan = planReconcile(reconcileObs(1, { asg: group }));
    expect(types(plan)).not.toContain("remove-member");
    expect(rules(plan)).toContain("instance-still-in-asg");
  });

  it.each([
    [
      "within the startup grace it waits",
      ago(60),
      [instance(1), instance(2), instance(3)],
      "startup-grace",
      false,
    ],
    ["after the grace it removes", ago(301), [instance(1), instance(2), instance(3)], null, true],
    ["an instance gone for a minute it removes", ago(1), [instance(1), instance(2)], null, true],
    [
      "an instance that is terminating it removes at once",
      ago(1),
      [instance(1), instance(2), instance(3, { lifecycleState: "Terminating" })],
      null,
      true,
    ],
  ] as const)("never-started member: %s", (_name, seen, instances, rule, removes) => {
    const c = cluster([member(1), member(2), member(3, { started: false, learner: true })]);
    const plan = planReconcile(
      reconcileObs(1, {
        cluster: c,
        asg: asg([...instances]),
        firstSeenUnstarted: { "3": seen },
        missingSince: { "3": ago(61) },
      }),
    );
    expect(types(plan).includes("remove-member")).toBe(removes);
    if (rule) expect(rules(plan)).toContain(rule);
  });

  it("never removes a member that is not named after an instance and matches none", () => {
    const c = cluster([
      member(1),
      member(2),
      { ...member(3, { name: "manual-node" }), peerUrls: ["http://127.0.9.9:2380"] },
    ]);
    const plan = planReconcile(reconcileObs(1, { cluster: c }));
    expect(types(plan)).not.toContain("remove-member");
    expect(rules(plan)).toContain("foreign-member");
  });
});

describe("planReconcile: learners", () => {
  it("promotes its own learner once in sync", () => {
    const c = cluster([
      member(1, { raftIndex: "100" }),
      member(2),
      member(3, { learner: true, raftIndex: "95" }),
    ]);
    expect(planReconcile(reconcileObs(3, { cluster: c })).actions).toEqual([
      expect.objectContaining({ type: "promote-self", memberId: "3" }),
    ]);
  });

  it("waits while its learner is behind", () => {
    const c = cluster([
      member(1, { raftIndex: "1000" }),
      member(2),
      member(3, { learner: true, raftIndex: "10" }),
    ]);
    const plan = planReconcile(reconcileObs(3, { cluster: c }));
    expect(types(plan)).toEqual([]);
    expect(rules(plan)).toContain("learner-not-in-sync");
  });
});

describe("planReconcile: lifecycle hooks", () => {
  it("completes the launch hook when its member is a healthy voter", () => {
    const group = asg([instance(1), instance(2), instance(3, { lifecycleState: "Pending:Wait" })]);
    expect(planReconcile(reconcileObs(3, { asg: group })).actions).toEqual([
      expect.objectContaining({ type: "complete-lifecycle", transition: "launch", hook: "launch-hook" }),
    ]);
  });

  it("does not complete the launch hook while it is a learner", () => {
    const group = asg([instance(1), instance(2), instance(3, { lifecycleState: "Pending:Wait" })]);
    const c = cluster([
      member(1, { raftIndex: "1000" }),
      member(2),
      member(3, { learner: true, raftIndex: "1" }),
    ]);
    expect(types(planReconcile(reconcileObs(3, { asg: group, cluster: c })))).not.toContain(
      "complete-lifecycle",
    );
  });

  it("hands leadership away first when the leader is terminating", () => {
    const self = { instanceId: iid(1), privateIp: ip(1), targetLifecycleState: "Terminated" };
    const c = cluster([member(1), member(2, { raftIndex: "90" }), member(3, { raftIndex: "99" })]);
    expect(types(planReconcile(reconcileObs(1, { self, cluster: c })))).toEqual([
      "move-leader",
      "heartbeat-lifecycle",
    ]);
    expect(planReconcile(reconcileObs(1, { self, cluster: c })).actions[0]).toMatchObject({
      toMemberId: "3",
    });
  });

  it("removes its own member when terminating as a follower, and heartbeats", () => {
    const self = { instanceId: iid(2), privateIp: ip(2), targetLifecycleState: "Terminated" };
    const drained = { dns: dnsFor([1, 3]), drainedSince: ago(31) };
    expect(types(planReconcile(reconcileObs(2, { self, ...drained })))).toEqual([
      "remove-member",
      "heartbeat-lifecycle",
    ]);
  });

  it("completes the terminate hook once etcd has let the member go", () => {
    const self = { instanceId: iid(3), privateIp: ip(3), targetLifecycleState: "Terminated" };
    const plan = planReconcile(reconcileObs(3, { self, cluster: cluster([member(1), member(2)]) }));
    expect(plan.actions).toEqual([
      expect.objectContaining({ type: "complete-lifecycle", transition: "terminate" }),
    ]);
  });

  it("keeps heartbeating instead of leaving when leaving would break quorum", () => {
    const self = { instanceId: iid(2), privateIp: ip(2), targetLifecycleState: "Terminated" };
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(2, { self, cluster: c, dns: dnsFor([1, 3]), drainedSince: ago(31) }),
    );
    expect(types(plan)).toEqual(["heartbeat-lifecycle"]);
    expect(rules(plan)).toContain("quorum-after-removal");
  });
});

describe("planReconcile: DNS and health (leader only)", () => {
  it("writes the SRV and A records of the healthy voters", () => {
    const plan = planReconcile(reconcileObs(1, { dns: [] }));
    const update = plan.actions.find((a) => a.type === "update-dns");
    expect(
      update?.type === "update-dns" &&
        update.changes.map((c) => `${c.action} ${c.record.type} ${c.record.name}`),
    ).toEqual([
      "UPSERT SRV _etcd-server._tcp.etcd.internal",
      "UPSERT SRV _etcd-client._tcp.etcd.internal",
      "UPSERT A i-00000001.etcd.internal",
      "UPSERT A i-00000002.etcd.internal",
      "UPSERT A i-00000003.etcd.internal",
    ]);
  });

  it("writes nothing when the records already match", () => {
    expect(types(planReconcile(reconcileObs(1, { dns: dnsFor([1, 2, 3]) })))).toEqual([]);
  });

  it("drops a member that is down from the records and deletes its A record", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, dns: dnsFor([1, 2, 3]), unhealthySince: { "3": ago(31) } }),
    );
    const update = plan.actions.find((a) => a.type === "update-dns");
    expect(
      update?.type === "update-dns" && update.changes.map((c) => `${c.action} ${c.record.name}`),
    ).toEqual([
      "UPSERT _etcd-server._tcp.etcd.internal",
      "UPSERT _etcd-client._tcp.etcd.internal",
      "DELETE i-00000003.etcd.internal",
    ]);
  });

  it("leaves records it does not own alone", () => {
    const other = { name: "db.etcd.internal", type: "A" as const, ttl: 300, values: ["127.0.0.9"] };
    expect(types(planReconcile(reconcileObs(1, { dns: [...dnsFor([1, 2, 3]), other] })))).toEqual([]);
  });

  it("does not touch DNS when the zone could not be read", () => {
    const plan = planReconcile(reconcileObs(1, { dns: null }));
    expect(types(plan)).not.toContain("update-dns");
    expect(rules(plan)).toContain("partial-information");
  });

  it("reports a member unhealthy past the deadline to the ASG", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(reconcileObs(1, { cluster: c, unhealthySince: { "3": ago(601) } }));
    expect(plan.actions).toContainEqual(
      expect.objectContaining({ type: "set-instance-unhealthy", instanceId: iid(3) }),
    );
  });

  it("does not report a member unhealthy before the deadline", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(reconcileObs(1, { cluster: c, unhealthySince: { "3": ago(30) } }));
    expect(types(plan)).not.toContain("set-instance-unhealthy");
    expect(rules(plan)).toContain("unhealthy-deadline");
  });

  it("does not report the same instance twice", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const plan = planReconcile(
      reconcileObs(1, { cluster: c, unhealthySince: { "3": ago(900) }, reportedUnhealthy: [iid(3)] }),
    );
    expect(types(plan)).not.toContain("set-instance-unhealthy");
  });
});

describe("planReconcile: the cluster marker", () => {
  it.each([
    ["absent: it writes an active marker", ABSENT, ["write-marker"]],
    ["claimed: it marks it active", marker("claimed"), ["write-marker"]],
    ["active with this cluster's ID: nothing", marker("active", iid(1), "etcd-i-00000001", "42"), []],
    ["active without an ID: it adds the cluster's ID", marker("active"), ["write-marker"]],
  ] as const)("%s", (_name, m, expected) => {
    expect(types(planReconcile(reconcileObs(1, { marker: m, dns: dnsFor([1, 2, 3]) })))).toEqual(expected);
  });

  it("holds when no etcd member answered at all", () => {
    const plan = planReconcile(reconcileObs(1, { cluster: null }));
    expect(plan.role).toBe("unknown");
    expect(rules(plan)).toEqual(["partial-information"]);
  });
});

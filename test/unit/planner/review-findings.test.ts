// Findings of the hostile review of the #13 fixes, each a test that failed before its fix.
import { describe, expect, it } from "vitest";
import { decideBoot, type MarkerRead, type Recovery } from "../../../agent/planner/boot-plan.js";
import { emptyMemory, NOT_FOUND_SETTLE_SECONDS, observeNotFound } from "../../../agent/planner/memory.js";
import { planReconcile } from "../../../agent/planner/reconcile-plan.js";
import {
  asg,
  bootObs,
  cluster,
  iid,
  instance,
  member,
  marker as mk,
  reconcileObs,
} from "../../support/fixtures.js";

const T = (s: number) => new Date(Date.parse("2026-11-22T12:00:00.000Z") + s * 1000).toISOString();
const ruleOrKind = (d: ReturnType<typeof decideBoot>) =>
  d.kind === "refuse" || d.kind === "wait" ? d.hold.rule : d.kind;

describe("review of the #13 fixes", () => {
  it("a restorer whose restored member ran and whose data is gone refuses (as under claimed)", () => {
    const token = `etcd-${iid(1)}`;
    const restoring: MarkerRead = {
      kind: "present",
      marker: {
        state: "restoring",
        token,
        claimant: iid(1),
        raw: `"etcd-agent-marker v1 state=restoring token=${token} claimant=${iid(1)}"`,
      },
    };
    const recovery: Recovery = {
      formerToken: "etcd-old",
      newest: {
        key: "backups/etcd/2026-11-22T11-00-00-000Z_r9_etcd-old.db",
        takenAt: "2026-11-22T11:00:00.000Z",
      },
      formerMembers: [iid(7)],
      unreachableSince: T(-400),
      restoreAfterSeconds: 300,
    };
    const d = decideBoot(
      bootObs(1, {
        asg: asg([instance(1), instance(2), instance(3)]),
        marker: restoring,
        recovery,
        now: T(0),
        local: {
          hasData: false,
          state: { clusterToken: token, memberId: "42", name: iid(1), updatedAt: T(-60) },
        },
      }),
    );
    expect(ruleOrKind(d)).toBe("cluster-existed");
  });

  it("a claimant EC2 does not show yet (not found for less than the settle time) is not taken over", () => {
    const seen = observeNotFound(emptyMemory(), { [iid(1)]: "not-found" }, T(0));
    const d = decideBoot(
      bootObs(2, {
        asg: asg([instance(2), instance(3)]),
        marker: mk("claimed", iid(1)),
        ec2States: seen.states,
      }),
    );
    expect(ruleOrKind(d)).toBe("claimant-not-gone");
    // Not found for the whole settle time, unbroken: gone.
    const later = observeNotFound(seen.memory, { [iid(1)]: "not-found" }, T(NOT_FOUND_SETTLE_SECONDS));
    expect(later.states[iid(1)]).toBe("not-found");
    // Seen again in between: the clock starts over.
    const back = observeNotFound(seen.memory, { [iid(1)]: "running" }, T(60));
    expect(
      observeNotFound(back.memory, { [iid(1)]: "not-found" }, T(NOT_FOUND_SETTLE_SECONDS)).states[iid(1)],
    ).toBe("not-found-recently");
  });

  it("a leader with state token adopted-<its cluster id> adopts a legacy active marker without cluster=", () => {
    const plan = planReconcile(
      reconcileObs(1, { marker: mk("active", iid(2), "etcd-i-00000002"), localClusterToken: "adopted-42" }),
    );
    expect(plan.holds.map((h) => h.rule)).not.toContain("foreign-cluster");
  });

  it("a health report does not count a leaving voter toward quorum", () => {
    const plan = planReconcile(
      reconcileObs(1, {
        asg: asg([instance(1), instance(2, { lifecycleState: "Terminating:Wait" }), instance(3)]),
        cluster: cluster([member(1), member(2), member(3, { healthy: false })]),
        unhealthySince: { "3": T(-3600) },
      }),
    );
    expect(plan.actions.map((a) => a.type)).not.toContain("set-instance-unhealthy");
  });
});

// Invariants of planReconcile over generated observations (members, voters and learners, health
// and etcd alarms, ASG lifecycle states, markers, clocks). A counterexample is printed shrunk.
import { test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { instanceOfMember } from "../../../../agent/planner/membership.js";
import type { ClusterView, MemberView } from "../../../../agent/planner/observation.js";
import { quorumSize } from "../../../../agent/planner/quorum.js";
import {
  type Action,
  planReconcile,
  type ReconcileObservation,
} from "../../../../agent/planner/reconcile-plan.js";
import { RULES } from "../../../../agent/planner/rules.js";
import { answers, buildReconcile, reconcileSpec, runs } from "./arbitraries.js";

const NUM_RUNS = runs(1000);
const observation = reconcileSpec.map(buildReconcile);

/** The members the plan takes away: removed, or reported (a reported instance is terminated). */
function takenAway(obs: ReconcileObservation, actions: Action[]): Set<string> {
  const cluster = obs.cluster as ClusterView;
  const gone = new Set<string>();
  for (const a of actions) {
    if (a.type === "remove-member") gone.add(a.memberId);
    if (a.type === "set-instance-unhealthy") {
      gone.add(a.memberId);
      for (const m of cluster.members) {
        const i = obs.asg === null ? null : instanceOfMember(m, obs.asg);
        if (i?.instanceId === a.instanceId) gone.add(m.id);
      }
    }
  }
  return gone;
}

/** Voters and the voters that answer with a leader (an alarm does not stop a member answering). */
function counts(members: MemberView[]): { voters: number; up: number } {
  const voters = members.filter((m) => !m.isLearner);
  return { voters: voters.length, up: voters.filter(answers).length };
}

describe("planReconcile invariants (property-based)", () => {
  test.prop([observation], { numRuns: NUM_RUNS })(
    "no plan leaves fewer healthy voters than quorum (removals and health reports alike)",
    (obs) => {
      const plan = planReconcile(obs);
      const gone = takenAway(obs, plan.actions);
      if (obs.cluster === null) return;
      // Taking a learner away changes no vote: only plans that take a voter away are judged.
      if (!obs.cluster.members.some((m) => gone.has(m.id) && !m.isLearner)) return;
      const after = counts(obs.cluster.members.filter((m) => !gone.has(m.id)));
      expect(after.voters, "voters left").toBeGreaterThan(0);
      expect(after.up, `healthy voters left of ${after.voters}`).toBeGreaterThanOrEqual(
        quorumSize(after.voters),
      );
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "at most one destructive action (remove-member, set-instance-unhealthy) per plan",
    (obs) => {
      const destructive = planReconcile(obs).actions.flatMap((a) =>
        a.type === "remove-member"
          ? [`remove-member ${a.memberId}`]
          : a.type === "set-instance-unhealthy"
            ? [`set-instance-unhealthy ${a.instanceId}`]
            : [],
      );
      expect(destructive.length, destructive.join(", ")).toBeLessThanOrEqual(1);
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })("every hold names a rule in RULES", (obs) => {
    for (const h of planReconcile(obs).holds) expect(Object.keys(RULES)).toContain(h.rule);
  });

  test.prop([observation], { numRuns: NUM_RUNS })(
    "a node that is not the leader plans no membership, DNS, marker or health action (but its own leave)",
    (obs) => {
      const plan = planReconcile(obs);
      if (plan.role === "leader") return;
      const leaving = obs.self.targetLifecycleState === "Terminated";
      const others = plan.actions.filter(
        (a) =>
          a.type === "update-dns" ||
          a.type === "write-marker" ||
          a.type === "set-instance-unhealthy" ||
          a.type === "move-leader" ||
          (a.type === "remove-member" && !(leaving && a.instanceId === obs.self.instanceId)),
      );
      expect(others).toEqual([]);
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "the leader never removes a healthy started member whose instance is InService",
    (obs) => {
      const plan = planReconcile(obs);
      const cluster = obs.cluster as ClusterView;
      for (const a of plan.actions) {
        if (a.type !== "remove-member" || a.instanceId === obs.self.instanceId) continue;
        const m = cluster.members.find((x) => x.id === a.memberId) as MemberView;
        const instance = obs.asg === null ? null : instanceOfMember(m, obs.asg);
        const protectedMember = m.name !== "" && answers(m) && instance?.lifecycleState === "InService";
        expect(protectedMember, `removed ${m.id} (${m.name}) on ${instance?.instanceId}`).toBe(false);
      }
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "the leader never removes a healthy started member on one ASG listing that misses its instance (defect 7)",
    (obs) => {
      const plan = planReconcile(obs);
      const cluster = obs.cluster as ClusterView;
      for (const a of plan.actions) {
        if (a.type !== "remove-member" || a.instanceId === obs.self.instanceId) continue;
        const m = cluster.members.find((x) => x.id === a.memberId) as MemberView;
        const instance = obs.asg === null ? null : instanceOfMember(m, obs.asg);
        const unseenButUp = m.name !== "" && answers(m) && instance === null;
        expect(unseenButUp, `removed ${m.id} (${m.name}), which answers, on a listing without it`).toBe(
          false,
        );
      }
    },
  );

  test.prop([observation], { numRuns: NUM_RUNS })(
    "an etcd alarm in the statuses never produces a health report (defect 2)",
    (obs) => {
      const cluster = obs.cluster as ClusterView;
      const reported = planReconcile(obs).actions.flatMap((a) =>
        a.type === "set-instance-unhealthy" ? [cluster.members.find((m) => m.id === a.memberId)] : [],
      );
      for (const m of reported) {
        expect(m && answers(m), `member ${m?.id} answers with errors ${m?.status?.errors}`).toBe(false);
      }
    },
  );

  test.prop([observation], { numRuns: Math.min(NUM_RUNS, 100) })(
    "the plan is a function of the observation (same observation, same plan)",
    (obs) => {
      expect(planReconcile(structuredClone(obs))).toEqual(planReconcile(obs));
    },
  );
});

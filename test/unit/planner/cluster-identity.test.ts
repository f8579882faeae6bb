// Exactly one cluster per marker: a takeover only when the claimant is surely gone (issue #13,
// defect 4), a joiner joins only the marker's cluster, a leader of another cluster holds.
import { describe, expect, it } from "vitest";
import {
  type BootDecision,
  type BootObservation,
  decideBoot,
  type MarkerRead,
} from "../../../agent/planner/boot-plan.js";
import { planReconcile } from "../../../agent/planner/reconcile-plan.js";
import {
  asg,
  bootObs,
  cluster,
  iid,
  instance,
  marker,
  member,
  reconcileObs,
} from "../../support/fixtures.js";

function kind(d: BootDecision): string {
  return d.kind === "wait" || d.kind === "refuse" ? `${d.kind}:${d.hold.rule}` : d.kind;
}

/** An active marker of etcd-i-00000001 that names a cluster ID. */
const activeOf = (clusterId: string) => marker("active", iid(1), "etcd-i-00000001", clusterId);
const restoring = (claimant: string) => marker("restoring", claimant);

describe("decideBoot: taking over a claim only when the claimant is surely gone (defect 4)", () => {
  const claimed1 = marker("claimed", iid(1));
  it.each<[string, Partial<BootObservation>, string]>([
    [
      "a claimant in Terminating:Wait may still start its etcd",
      { asg: asg([instance(1, { lifecycleState: "Terminating:Wait" }), instance(2), instance(3)]) },
      "wait:bootstrap-claimed",
    ],
    [
      "a claimant in Terminating may still start its etcd",
      { asg: asg([instance(1, { lifecycleState: "Terminating" }), instance(2), instance(3)]) },
      "wait:bootstrap-claimed",
    ],
    [
      "a claimant missing from one ASG listing while EC2 says it runs",
      { asg: asg([instance(2), instance(3)]), ec2States: { [iid(1)]: "running" } },
      "wait:claimant-not-gone",
    ],
    [
      "a claimant missing from the ASG listing whose EC2 state is unknown",
      { asg: asg([instance(2), instance(3)]) },
      "wait:claimant-not-gone",
    ],
    [
      "a claimant shutting down (its etcd may still be running)",
      { asg: asg([instance(2), instance(3)]), ec2States: { [iid(1)]: "shutting-down" } },
      "wait:claimant-not-gone",
    ],
    [
      "a claimant gone from the ASG and terminated in EC2",
      { asg: asg([instance(2), instance(3)]), ec2States: { [iid(1)]: "terminated" } },
      "bootstrap",
    ],
    [
      "a claimant gone from the ASG and unknown to EC2",
      { asg: asg([instance(2), instance(3)]), ec2States: { [iid(1)]: "not-found" } },
      "bootstrap",
    ],
  ])("%s", (_name, over, expected) => {
    expect(kind(decideBoot(bootObs(2, { marker: claimed1, ...over })))).toBe(expected);
  });
});

describe("decideBoot: a joiner joins only the marker's cluster", () => {
  const healthy = cluster([member(1), member(2), member(3)]);
  it.each<[string, MarkerRead, string]>([
    ["an active marker of the answering cluster", activeOf("42"), "join"],
    ["an active marker of another cluster", activeOf("77"), "wait:foreign-cluster"],
    ["a claim whose claimant is a member of the answering cluster", marker("claimed", iid(1)), "join"],
    [
      "a claim whose claimant is no member of the answering cluster",
      marker("claimed", iid(9)),
      "wait:foreign-cluster",
    ],
    ["a restoring marker whose claimant serves", restoring(iid(1)), "join"],
    ["a restoring marker whose claimant is no member", restoring(iid(9)), "wait:foreign-cluster"],
    ["an active marker without a cluster ID (written before IDs were recorded)", marker("active"), "join"],
  ])("%s", (_name, m, expected) => {
    const obs = bootObs(4, {
      asg: asg([instance(1), instance(2), instance(3), instance(4)]),
      cluster: healthy,
      marker: m,
    });
    expect(kind(decideBoot(obs))).toBe(expected);
  });

  it("swaps a restoring marker to active with the cluster's ID before the first add", () => {
    const obs = bootObs(4, {
      asg: asg([instance(1), instance(2), instance(3), instance(4)]),
      cluster: healthy,
      marker: restoring(iid(1)),
    });
    expect(decideBoot(obs)).toMatchObject({ kind: "join", activateMarker: true, clusterId: "42" });
  });

  it("never plans a join into another cluster, even to resume a member added there", () => {
    const resumed = cluster([member(1), member(2), member(3), member(4, { started: false })]);
    const obs = bootObs(4, {
      asg: asg([instance(1), instance(2), instance(3), instance(4)]),
      cluster: resumed,
      marker: activeOf("77"),
    });
    expect(kind(decideBoot(obs))).toBe("wait:foreign-cluster");
  });
});

describe("planReconcile: a leader of a cluster that is not the marker's holds", () => {
  it("writes the cluster ID into an active marker that lacks it", () => {
    const plan = planReconcile(reconcileObs(1, { marker: marker("active") }));
    expect(plan.actions).toContainEqual(
      expect.objectContaining({ type: "write-marker", state: "active", clusterId: "42" }),
    );
  });

  it("marks a claim active with the cluster ID", () => {
    const plan = planReconcile(reconcileObs(1, { marker: marker("claimed", iid(1)) }));
    expect(plan.actions).toContainEqual(
      expect.objectContaining({ type: "write-marker", state: "active", clusterId: "42" }),
    );
  });

  it.each<[string, MarkerRead, string | null]>([
    ["the marker names another cluster ID", activeOf("77"), "etcd-i-00000001"],
    ["the claim is another instance's, with another token", marker("claimed", iid(9)), "etcd-i-00000001"],
  ])("holds with foreign-cluster and raises the alarm when %s", (_name, m, token) => {
    const plan = planReconcile(
      reconcileObs(1, {
        marker: m,
        localClusterToken: token,
        dns: [],
        asg: asg([instance(1), instance(2), instance(3)]),
      }),
    );
    expect(plan.holds.map((h) => h.rule)).toContain("foreign-cluster");
    expect(plan.actions.map((a) => a.type)).toEqual(["raise-foreign-cluster-alarm"]);
  });

  it("does nothing more once the marker carries its own cluster ID", () => {
    const plan = planReconcile(reconcileObs(1, { marker: activeOf("42"), dns: null }));
    expect(plan.actions.filter((a) => a.type === "write-marker")).toEqual([]);
    expect(plan.holds.map((h) => h.rule)).not.toContain("foreign-cluster");
  });
});

// Invariants of decideBoot over generated observations (members and health, ASG lifecycle states,
// markers claimed/restoring/active, local state and data, backups, clocks). A counterexample is
// printed shrunk.
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { decideBoot } from "../../../../agent/planner/boot-plan.js";
import type { MemberView } from "../../../../agent/planner/observation.js";
import { quorumSize } from "../../../../agent/planner/quorum.js";
import { RULES } from "../../../../agent/planner/rules.js";
import { answers, bootSpec, buildBoot, lostClusterBootSpec, runs } from "./arbitraries.js";

const NUM_RUNS = runs(1000);
const observation = bootSpec.map(buildBoot);
/** Half of the runs after a lost cluster, where the recovery rules decide. */
const withLostClusters = fc.oneof(observation, lostClusterBootSpec.map(buildBoot));

/** Listed in the ASG, in any state: its machine, its disk and its etcd may still be there. */
function listed(obs: ReturnType<typeof buildBoot>, instanceId: string): boolean {
  return obs.asg?.instances.some((i) => i.instanceId === instanceId) ?? true;
}

describe("decideBoot invariants (property-based)", () => {
  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "never bootstraps when the marker is active or restoring (defect 1)",
    (obs) => {
      const d = decideBoot(obs);
      if (d.kind !== "bootstrap" || obs.marker.kind !== "present") return;
      expect(obs.marker.marker.state, `bootstrap (${d.claim}) over ${obs.marker.marker.raw}`).toBe("claimed");
    },
  );

  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "never bootstraps when this node's state or data shows a former cluster of the marker's token",
    (obs) => {
      const d = decideBoot(obs);
      if (d.kind !== "bootstrap" || obs.marker.kind !== "present" || obs.local.state === null) return;
      const former =
        obs.local.state.clusterToken === obs.marker.marker.token &&
        (obs.local.hasData || obs.local.state.memberId !== null);
      expect(
        former,
        `bootstrap (${d.claim}) with data=${obs.local.hasData} and state ${JSON.stringify(obs.local.state)}`,
      ).toBe(false);
    },
  );

  test.prop([withLostClusters], { numRuns: NUM_RUNS })("never bootstraps while a member answers", (obs) => {
    const d = decideBoot(obs);
    if (d.kind !== "bootstrap") return;
    expect(obs.cluster, `bootstrap (${d.claim}) while ${obs.cluster?.answeredBy} answers`).toBeNull();
  });

  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "restores only when no member answers, the marker is active or restoring, and every former member's instance has left the ASG",
    (obs) => {
      const d = decideBoot(obs);
      if (d.kind !== "restore") return;
      expect(obs.cluster, "a member answers").toBeNull();
      expect(obs.marker.kind === "present" && obs.marker.marker.state, "the marker").toMatch(
        /^(active|restoring)$/,
      );
      const present = (obs.recovery?.formerMembers ?? []).filter((id) => listed(obs, id));
      expect(present, "former members still listed in the ASG").toEqual([]);
    },
  );

  test.prop([withLostClusters], { numRuns: NUM_RUNS })("a join's removal never breaks quorum", (obs) => {
    const d = decideBoot(obs);
    if (d.kind !== "join" || d.removeFirst === null || obs.cluster === null) return;
    const removed = d.removeFirst.memberId;
    const left = obs.cluster.members.filter((m: MemberView) => m.id !== removed && !m.isLearner);
    const wasVoter = obs.cluster.members.some((m) => m.id === removed && !m.isLearner);
    if (!wasVoter) return;
    expect(left.length, "voters left").toBeGreaterThan(0);
    expect(
      left.filter(answers).length,
      `healthy voters of ${left.length} after removing ${removed}`,
    ).toBeGreaterThanOrEqual(quorumSize(left.length));
  });

  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "takes over a claim only when the claimant is no longer in the ASG in any state (defect 4)",
    (obs) => {
      const d = decideBoot(obs);
      if (d.kind !== "bootstrap" || d.claim !== "takeover" || obs.marker.kind !== "present") return;
      const id = obs.marker.marker.claimant;
      const claimant = obs.asg?.instances.find((i) => i.instanceId === id);
      expect(claimant, `took over from ${id}, which the ASG lists`).toBeUndefined();
    },
  );

  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "every wait and refusal names a rule in RULES",
    (obs) => {
      const d = decideBoot(obs);
      if (d.kind === "wait" || d.kind === "refuse") expect(Object.keys(RULES)).toContain(d.hold.rule);
    },
  );
});

describe("decideBoot for etcd-agent join (property-based, #17)", () => {
  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "join never bootstraps or restores: where boot would, it refuses (cluster-existed); otherwise it decides as boot",
    (obs) => {
      const asBoot = decideBoot(obs);
      const asJoin = decideBoot(obs, { join: true, remote: false });
      if (asBoot.kind === "bootstrap" || asBoot.kind === "restore") {
        expect(asJoin).toMatchObject({ kind: "refuse", hold: { rule: "cluster-existed" } });
      } else {
        expect(asJoin).toEqual(asBoot);
      }
    },
  );

  test.prop([withLostClusters], { numRuns: NUM_RUNS })(
    "join from the bastion never removes a member first: it refuses (remote-member-started)",
    (obs) => {
      const asJoin = decideBoot(obs, { join: true, remote: false });
      const remote = decideBoot(obs, { join: true, remote: true });
      if (asJoin.kind === "join" && asJoin.removeFirst !== null) {
        expect(remote).toMatchObject({ kind: "refuse", hold: { rule: "remote-member-started" } });
      } else {
        expect(remote).toEqual(asJoin);
      }
    },
  );
});

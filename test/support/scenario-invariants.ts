// The invariants a sandbox scenario must leave true, judged on a picture of the cluster taken at
// its end (pure, so the judgement itself is unit-tested: test/unit/support/scenario-invariants.test.ts).
import type { ClusterMarker } from "../../agent/planner/observation.js";

export interface ClusterPicture {
  /** The running instances whose etcd answered MemberList, each with what it answered. */
  answering: { instanceId: string; clusterId: string; unstarted: string[]; learners: string[] }[];
  /** Every cluster marker in the zone (decoded). */
  markers: ClusterMarker[];
  /** The cluster token in each answering node's state file (null: none). */
  tokens: Record<string, string | null>;
}

/** Nothing under way: no unstarted member, no learner, one marker and it is active. */
export function settled(p: ClusterPicture): boolean {
  return (
    p.answering.every((a) => a.unstarted.length === 0 && a.learners.length === 0) &&
    p.markers.length === 1 &&
    p.markers[0]?.state === "active"
  );
}

/**
 * What is wrong with the picture, one sentence each; empty when it holds: some member answers,
 * all with one cluster ID, equal to the marker's cluster when the marker names one; exactly one
 * marker, active, whose token every answering node holds; no member added but never started; no
 * learner left unpromoted.
 */
export function clusterViolations(p: ClusterPicture): string[] {
  const out: string[] = [];
  if (p.answering.length === 0) out.push("no member answered");
  const ids = [...new Set(p.answering.map((a) => a.clusterId))];
  if (ids.length > 1) {
    out.push(
      `${ids.length} cluster IDs among the answering members: ${p.answering.map((a) => `${a.instanceId} in ${a.clusterId}`).join(", ")}`,
    );
  }
  for (const a of p.answering) {
    for (const m of a.unstarted) out.push(`${a.instanceId} lists member ${m}, added but never started`);
    for (const m of a.learners) out.push(`${a.instanceId} lists learner ${m}, never promoted`);
  }
  if (p.markers.length !== 1) {
    out.push(`${p.markers.length} cluster markers: ${p.markers.map((m) => m.raw).join(" ") || "none"}`);
    return out;
  }
  const marker = p.markers[0] as ClusterMarker;
  if (marker.state !== "active") out.push(`the marker is ${marker.state}, not active: ${marker.raw}`);
  if (marker.cluster !== undefined && ids.some((id) => id !== marker.cluster)) {
    out.push(`the marker names cluster ${marker.cluster}; the members answer for ${ids.join(", ")}`);
  }
  for (const a of p.answering) {
    const token = p.tokens[a.instanceId] ?? null;
    if (token !== marker.token) out.push(`${a.instanceId} holds token ${token}, the marker ${marker.token}`);
  }
  return out;
}

import { describe, expect, it } from "vitest";
import { decodeMarker, encodeMarker, type MarkerFields } from "../../../agent/planner/marker.js";
import type { ClusterMarker } from "../../../agent/planner/observation.js";
import { type ClusterPicture, clusterViolations, settled } from "../../support/scenario-invariants.js";

const marker = (f: MarkerFields) => decodeMarker(encodeMarker(f)) as ClusterMarker;
const ACTIVE = marker({ state: "active", token: "etcd-i-1", claimant: "i-1" });
const member = (instanceId: string, clusterId = "42") => ({
  instanceId,
  clusterId,
  unstarted: [],
  learners: [],
});
const healthy: ClusterPicture = {
  answering: [member("i-1"), member("i-2"), member("i-3")],
  markers: [ACTIVE],
  tokens: { "i-1": "etcd-i-1", "i-2": "etcd-i-1", "i-3": "etcd-i-1" },
};

describe("the end-of-scenario invariants", () => {
  it("hold on a settled cluster of one ID whose nodes hold the marker's token", () => {
    expect(clusterViolations(healthy)).toEqual([]);
    expect(settled(healthy)).toBe(true);
  });

  it.each([
    ["two cluster IDs", { answering: [member("i-1"), member("i-2", "43")] }, "2 cluster IDs"],
    ["no member answers", { answering: [] }, "no member answered"],
    [
      "a member added but never started",
      { answering: [{ ...member("i-1"), unstarted: ["7"] }] },
      "added but never started",
    ],
    ["a learner left", { answering: [{ ...member("i-1"), learners: ["i-4"] }] }, "never promoted"],
    ["no marker", { markers: [] }, "0 cluster markers"],
    [
      "a marker still claimed",
      { markers: [marker({ state: "claimed", token: "etcd-i-1", claimant: "i-1" })] },
      "not active",
    ],
    [
      "a marker naming another cluster",
      { markers: [marker({ state: "active", token: "etcd-i-1", claimant: "i-1", cluster: "43" })] },
      "names cluster 43",
    ],
    [
      "a node holding another token",
      { tokens: { ...healthy.tokens, "i-2": "etcd-i-9" } },
      "i-2 holds token etcd-i-9",
    ],
    ["a node with no state file", { tokens: { ...healthy.tokens, "i-3": null } }, "i-3 holds token null"],
  ] as const)("fail on %s", (_name, over, expected) => {
    const violations = clusterViolations({ ...healthy, ...over } as ClusterPicture);
    expect(violations.join("\n")).toContain(expected);
  });
});

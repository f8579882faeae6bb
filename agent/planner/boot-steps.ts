// The boot decision as a list of typed steps, in the order the applier (agent/apply/boot.ts)
// carries them out. Pure. A step that ends a round (activating the marker, making room) is the last
// of its list: the boot observes again after it. `etcd-agent boot --dry-run` prints this list.
import type { BootDecision, MemberRemoval } from "./boot-plan.js";

/** The steps of a bootstrap, in order (a crash after any of them resumes as "own"). */
export const BOOTSTRAP_STEPS = [
  "bootstrap:claim-marker",
  "bootstrap:move-aside",
  "bootstrap:register",
  "bootstrap:write-state",
  "bootstrap:write-env",
] as const;

/**
 * The steps of a join, in order; each boot round runs some of them (activating the marker and
 * making room end a round: the boot observes again). A resumed join (its member added by an
 * earlier boot) runs move-aside, write-state and write-env.
 */
export const JOIN_STEPS = [
  "join:activate-marker",
  "join:make-room",
  "join:move-aside",
  "join:register",
  "join:member-add",
  "join:write-state",
  "join:write-env",
] as const;

/** The steps of a resumed join (the member was added by an earlier boot that stopped before etcd started). */
export const RESUME_STEPS = ["join:move-aside", "join:write-state", "join:write-env"] as const;

/** The steps of a restore, in order; a crash after any of them is resumed by the next boot. */
export const RESTORE_STEPS = [
  "restore:register",
  "restore:swap-marker",
  "restore:move-data-aside",
  "restore:download-verify",
  "restore:restore-to-staging",
  "restore:record-event",
  "restore:adopt",
  "restore:write-state",
  "restore:write-env",
] as const;

/** A rejoin writes etcd's environment and the state file for the member this node's data holds. */
export const REJOIN_STEPS = ["rejoin:write-env", "rejoin:write-state"] as const;

export type BootStep =
  | { name: "bootstrap:claim-marker"; claim: "create" | "own" | "takeover" }
  | { name: "bootstrap:move-aside" | "join:move-aside" | "restore:move-data-aside" }
  | { name: "bootstrap:register" | "join:register" | "restore:register" }
  | { name: "bootstrap:write-state" | "restore:write-state"; memberId: null }
  | { name: "bootstrap:write-env" | "restore:write-env"; state: "new" | "existing" }
  | { name: "join:activate-marker"; clusterId: string }
  | { name: "join:make-room"; removal: MemberRemoval }
  | { name: "join:member-add" }
  /** memberId null: the one member-add returned. */
  | { name: "join:write-state"; memberId: string | null }
  | { name: "join:write-env" }
  | { name: "rejoin:write-env" }
  | { name: "rejoin:write-state"; memberId: string | null }
  | { name: "restore:swap-marker"; claim: "swap" | "own" }
  | { name: "restore:download-verify"; snapshotKey: string; olderKeys: string[] }
  | { name: "restore:restore-to-staging" | "restore:record-event" | "restore:adopt" };

export type BootStepName = BootStep["name"];

/** What a boot decision that acts does, step by step; empty for wait and refuse. */
export function bootSteps(decision: BootDecision): BootStep[] {
  switch (decision.kind) {
    case "wait":
    case "refuse":
      return [];
    case "rejoin":
      return [{ name: "rejoin:write-env" }, { name: "rejoin:write-state", memberId: decision.memberId }];
    case "bootstrap":
      return [
        { name: "bootstrap:claim-marker", claim: decision.claim },
        ...(decision.moveDataAside ? [{ name: "bootstrap:move-aside" } as const] : []),
        // In the member registry before a member can exist (restore eligibility reads it).
        { name: "bootstrap:register" },
        // Written before etcd first starts, so a crash between here and etcd's start resumes as "own".
        { name: "bootstrap:write-state", memberId: null },
        { name: "bootstrap:write-env", state: "new" },
      ];
    case "join": {
      // Claimed (or restoring) becomes active, naming the cluster, before anyone joins it.
      if (decision.activateMarker) return [{ name: "join:activate-marker", clusterId: decision.clusterId }];
      if (decision.removeFirst !== null) return [{ name: "join:make-room", removal: decision.removeFirst }];
      return [
        ...(decision.moveDataAside ? [{ name: "join:move-aside" } as const] : []),
        // Member registry (restore eligibility) before the member exists.
        ...(decision.resumeMemberId === null
          ? [{ name: "join:register" } as const, { name: "join:member-add" } as const]
          : []),
        { name: "join:write-state", memberId: decision.resumeMemberId },
        { name: "join:write-env" },
      ];
    }
    case "restore":
      return [
        // Before the marker names this instance: a takeover reads which cluster is being restored here.
        { name: "restore:register" },
        { name: "restore:swap-marker", claim: decision.claim },
        // Whatever is in the data dir (stale data, or a partial restore) goes aside.
        { name: "restore:move-data-aside" },
        // Exactly the snapshot the plan named (its older ones only for a checksum failure).
        { name: "restore:download-verify", snapshotKey: decision.snapshotKey, olderKeys: decision.olderKeys },
        { name: "restore:restore-to-staging" },
        { name: "restore:record-event" },
        { name: "restore:adopt" },
        // etcd restarts from the restored WAL: `existing`, so missing data fails instead of seeding a cluster.
        { name: "restore:write-state", memberId: null },
        { name: "restore:write-env", state: "existing" },
      ];
  }
}

/** One line per step, as `boot --dry-run` prints them. */
export function describeStep(step: BootStep): string {
  switch (step.name) {
    case "bootstrap:claim-marker":
      return `${step.name} (${step.claim})`;
    case "join:activate-marker":
      return `${step.name} (cluster ${step.clusterId}); then observe again`;
    case "join:make-room":
      return `${step.name}: remove member ${step.removal.memberId} (${step.removal.label}): ${step.removal.reason}; then observe again`;
    case "join:write-state":
    case "rejoin:write-state":
      return step.memberId === null ? step.name : `${step.name} (member ${step.memberId})`;
    case "restore:swap-marker":
      return `${step.name} (${step.claim})`;
    case "restore:download-verify":
      return `${step.name} ${step.snapshotKey}${step.olderKeys.length > 0 ? ` (if it fails its checksum: ${step.olderKeys.join(", ")})` : ""}`;
    case "bootstrap:write-env":
    case "restore:write-env":
      return `${step.name} (ETCD_INITIAL_CLUSTER_STATE=${step.state})`;
    default:
      return step.name;
  }
}

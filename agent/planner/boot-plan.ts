// The boot decision: rejoin, join, bootstrap, wait or refuse. Pure.
import {
  designatedBootstrapper,
  findSelfMember,
  instanceOfMember,
  isEligibleForBootstrap,
  isHealthy,
  isLeaving,
  isStarted,
  voterCounts,
} from "./membership.js";
import type {
  AsgView,
  ClusterMarker,
  ClusterView,
  LocalView,
  MarkerRead,
  MemberView,
  SelfView,
} from "./observation.js";
import { hasQuorum, quorumAfterRemoval, quorumSize } from "./quorum.js";
import { type Hold, hold } from "./rules.js";

/** Where it lived before: kept for the imports that name it here. */
export type { MarkerRead } from "./observation.js";

export interface BootObservation {
  self: SelfView;
  /** null: the ASG could not be read. */
  asg: AsgView | null;
  /** null: no member answered (or there were no peers to ask). */
  cluster: ClusterView | null;
  marker: MarkerRead;
  local: LocalView;
  /** ISO-8601. */
  now: string;
  /** Seconds a member may stay added-but-not-started before it counts as dead. */
  startupGraceSeconds: number;
  /** When each unstarted member was first seen, by member ID (ISO-8601); from the agent's memory. */
  firstSeen: Record<string, string>;
  /**
   * EC2's state (`running`, `shutting-down`, `terminated`, ...; `not-found` when EC2 does not know
   * it) of the marker's claimant when the ASG does not list it. Missing: not read, unknown.
   */
  ec2States?: Record<string, string>;
  /**
   * What the backups say, read only when no member answers and the marker is active or restoring:
   * null when backups are off or could not be read.
   */
  recovery?: Recovery | null;
}

export interface Recovery {
  /**
   * The lost cluster's token, whose snapshots are the candidates: the marker's own under an active
   * marker; under a restoring marker, the one its restorer recorded in the member registry (null
   * when that record could not be found).
   */
  formerToken?: string | null;
  /** The newest snapshot of formerToken, or null when there is none. */
  newest: { key: string; takenAt: string } | null;
  /** formerToken's older snapshots, newest first, from the same listing as `newest`. */
  older?: string[];
  /** The newest snapshot of any other token, when formerToken has none (named in the hold). */
  otherNewest?: { key: string; clusterToken: string } | null;
  /**
   * The instances that were or may have been members: the newest snapshot's members and every
   * entry of the formerToken's member registry (written before a member can exist).
   */
  formerMembers: string[];
  /** When no member was first seen to answer (ISO-8601), persisted across boots. */
  unreachableSince: string;
  restoreAfterSeconds: number;
}

export interface MemberRemoval {
  memberId: string;
  /** The member's name or peer URL, for the log. */
  label: string;
  reason: string;
}

export type BootDecision =
  | {
      kind: "rejoin";
      reason: string;
      /** The member ID this node's data belongs to, when known. */
      memberId: string | null;
      clusterToken: string;
    }
  | {
      kind: "join";
      reason: string;
      /** Move the data dir aside first: it belongs to a membership that no longer exists. */
      moveDataAside: boolean;
      /** Set the marker from claimed (or restoring) to active before adding anyone (see docs/architecture.md). */
      activateMarker: boolean;
      /** etcd's ID of the cluster joined: written into the marker when it is activated. */
      clusterId: string;
      /** A member to remove before the add; the boot re-observes after removing it. */
      removeFirst: MemberRemoval | null;
      /** The member was added before (by an earlier run) but never started: reuse it, add nothing. */
      resumeMemberId: string | null;
      clusterToken: string;
    }
  | {
      kind: "bootstrap";
      reason: string;
      moveDataAside: boolean;
      /** create: the marker is absent; own: this instance claimed it before; takeover: replace a dead claim. */
      claim: "create" | "own" | "takeover";
      clusterToken: string;
    }
  | {
      /** Disaster recovery: a new one-member cluster from the snapshot this plan names. */
      kind: "restore";
      reason: string;
      /** The snapshot restored: the newest of the lost cluster when the plan was made (never listed again). */
      snapshotKey: string;
      /**
       * The lost cluster's older snapshots, newest first, from the same listing: tried in this order
       * only when the one before fails its checksum. Nothing else is ever restored.
       */
      olderKeys: string[];
      moveDataAside: boolean;
      /** The lost cluster's token (its snapshots are the only candidates). */
      formerToken: string;
      /**
       * swap: the marker goes from the lost cluster's `active` (or a dead restorer's `restoring`) to
       * `restoring` by this instance; own: it already is (an interrupted restore is done again).
       */
      claim: "swap" | "own";
      clusterToken: string;
    }
  | { kind: "wait"; hold: Hold }
  | { kind: "refuse"; hold: Hold };

const LEAVING_TARGETS = new Set(["Terminated", "Terminating", "Terminating:Wait", "Detached"]);

export function tokenFor(asgName: string, claimant: string): string {
  return `${asgName}-${claimant}`;
}

/** What the command asks of the boot decision. */
export interface BootIntent {
  /** etcd-agent join: only ever joins (or rejoins) a cluster that answers; never a bootstrap or restore. */
  join: boolean;
  /** Run from the bastion for another instance: that node's data cannot be seen from here. */
  remote: boolean;
}

const BOOT: BootIntent = { join: false, remote: false };

export function decideBoot(obs: BootObservation, intent: BootIntent = BOOT): BootDecision {
  const decision = decideBootAlone(obs);
  if (intent.join && decision.kind === "bootstrap") {
    return {
      kind: "refuse",
      hold: hold(
        "cluster-existed",
        "join never bootstraps: no member answers. Use etcd-agent boot on a node, or restore from a backup",
      ),
    };
  }
  if (intent.join && decision.kind === "restore") {
    return { kind: "refuse", hold: hold("cluster-existed", "join never restores: no member answers") };
  }
  // From the bastion "no data" only means the bastion cannot see the node's disk: removing a
  // started member on that would take a healthy voter out of the cluster.
  if (intent.remote && decision.kind === "join" && decision.removeFirst !== null) {
    return {
      kind: "refuse",
      hold: hold(
        "remote-member-started",
        `member ${decision.removeFirst.memberId} (${decision.removeFirst.label}) is started in the cluster; nothing was changed`,
      ),
    };
  }
  return decision;
}

function decideBootAlone(obs: BootObservation): BootDecision {
  if (obs.self.targetLifecycleState !== null && LEAVING_TARGETS.has(obs.self.targetLifecycleState)) {
    return {
      kind: "wait",
      hold: hold("self-terminating", `target lifecycle state is ${obs.self.targetLifecycleState}`),
    };
  }
  if (obs.cluster !== null) return decideWithCluster(obs, obs.cluster);
  return decideWithoutCluster(obs);
}

/** EC2 states in which an instance runs nothing any more. */
/**
 * EC2 states that say an instance is gone. `not-found` comes from the agent only once EC2 has not
 * known the instance for NOT_FOUND_SETTLE_SECONDS (boot persists when it first saw it missing): a
 * just-launched instance can be missing from EC2's answers for a while, a terminated one is shown
 * as `terminated` for about an hour.
 */
const EC2_GONE = new Set(["terminated", "not-found"]);

/**
 * The claimant of a marker (claimed or restoring) is surely gone: the ASG does not list it AND
 * EC2 says it is terminated or does not know it. An instance in Terminating:Wait, missing from one
 * listing, or shutting down may still start (or run) the etcd of its claim: never gone.
 */
export function claimantGone(obs: BootObservation, instanceId: string): boolean {
  if (obs.asg === null) return false;
  if (obs.asg.instances.some((i) => i.instanceId === instanceId)) return false;
  const state = obs.ec2States?.[instanceId];
  return state !== undefined && EC2_GONE.has(state);
}

function markerToken(marker: MarkerRead): string | null {
  return marker.kind === "present" ? marker.marker.token : null;
}

/**
 * Why the answering cluster is not the marker's, or null when it is (or the marker cannot tell).
 * An active marker names its cluster's ID once the cluster ran; a claim (or a restore) names the
 * instance that started it, which must be a member of the cluster that answers.
 */
export function foreignClusterHold(marker: MarkerRead, cluster: ClusterView): Hold | null {
  if (marker.kind !== "present") return null;
  const m = marker.marker;
  if (m.cluster !== undefined) {
    if (m.cluster === cluster.clusterId) return null;
    return hold(
      "foreign-cluster",
      `the marker names cluster ${m.cluster} (token ${m.token}); cluster ${cluster.clusterId} answered`,
    );
  }
  if (m.state === "active") return null;
  const claimantIsMember = cluster.members.some(
    (member) => member.name === m.claimant || member.instanceId === m.claimant,
  );
  if (claimantIsMember) return null;
  return hold(
    "foreign-cluster",
    `the marker is ${m.state} by ${m.claimant}, which is no member of cluster ${cluster.clusterId} that answered`,
  );
}

function decideWithCluster(obs: BootObservation, cluster: ClusterView): BootDecision {
  const { self, local } = obs;
  const token = markerToken(obs.marker) ?? local.state?.clusterToken ?? `adopted-${cluster.clusterId}`;
  const activateMarker =
    obs.marker.kind === "present" &&
    (obs.marker.marker.state === "claimed" || obs.marker.marker.state === "restoring");
  const clusterId = cluster.clusterId;
  const me = findSelfMember(cluster.members, self.instanceId, self.privateIp);
  // A started member with its data restarts whatever the marker says (starting on its own data
  // destroys nothing); every join first checks that the cluster answering is the marker's.
  const foreign = foreignClusterHold(obs.marker, cluster);

  if (me !== null && isStarted(me)) {
    // A null member ID is a bootstrapper's state written before etcd first started: the data is its own.
    const dataIsMine =
      local.hasData &&
      (local.state === null || local.state.memberId === null || local.state.memberId === me.id);
    if (dataIsMine) {
      return {
        kind: "rejoin",
        reason: `member ${me.id} (${me.name}) is in the cluster and this node holds its data`,
        memberId: me.id,
        clusterToken: local.state?.clusterToken ?? token,
      };
    }
    // The member was started once but its data is gone or belongs to another membership: it must
    // be removed and added again; a member cannot restart on empty data.
    if (foreign !== null) return { kind: "wait", hold: foreign };
    const gate = removalGate(cluster.members, me);
    if (gate !== null) return { kind: "wait", hold: gate };
    return {
      kind: "join",
      reason: `member ${me.id} is this instance but its data is ${local.hasData ? "from another membership" : "missing"}; removing it to join again`,
      moveDataAside: local.hasData,
      activateMarker,
      clusterId,
      removeFirst: {
        memberId: me.id,
        label: me.name,
        reason: "this instance's member has no data to restart on",
      },
      resumeMemberId: null,
      clusterToken: token,
    };
  }

  if (foreign !== null) return { kind: "wait", hold: foreign };

  if (me !== null) {
    // Added by an earlier boot that stopped before etcd started: reuse the member.
    return {
      kind: "join",
      reason: `member ${me.id} was added for this instance and never started; resuming the join`,
      moveDataAside: local.hasData,
      activateMarker,
      clusterId,
      removeFirst: null,
      resumeMemberId: me.id,
      clusterToken: token,
    };
  }

  const counts = voterCounts(cluster.members);
  if (!hasQuorum(counts)) {
    return {
      kind: "wait",
      hold: hold(
        "cluster-has-no-quorum",
        `${counts.healthyVoters} of ${counts.voters} voters healthy, ${quorumSize(counts.voters)} needed`,
      ),
    };
  }

  // Right after a leader dies the others still name it for about an election timeout; etcd holds
  // a membership change sent then until the caller's deadline. Wait a round for the new leader.
  const leader = cluster.members.find((m) => m.id === cluster.leaderId);
  if (!leader || !isHealthy(leader)) {
    return {
      kind: "wait",
      hold: hold(
        "no-leader",
        cluster.leaderId === null
          ? "no answering member names a leader"
          : `the members name ${cluster.leaderId} as leader, which does not answer`,
      ),
    };
  }

  const blocker = findBlocker(obs, cluster);
  if (blocker.kind === "hold") return { kind: "wait", hold: blocker.hold };
  return {
    kind: "join",
    reason:
      blocker.kind === "remove"
        ? `making room: ${blocker.removal.reason}`
        : `the cluster answers with ${counts.healthyVoters}/${counts.voters} healthy voters; adding this instance as a learner`,
    moveDataAside: local.hasData,
    activateMarker,
    clusterId,
    removeFirst: blocker.kind === "remove" ? blocker.removal : null,
    resumeMemberId: null,
    clusterToken: token,
  };
}

/** Whether removing `member` is quorum-safe; a Hold when it is not. */
function removalGate(members: MemberView[], member: MemberView): Hold | null {
  const counts = voterCounts(members);
  const check = quorumAfterRemoval(counts, { isVoter: !member.isLearner, isHealthy: isHealthy(member) });
  if (!check.ok) {
    return hold(
      "quorum-after-removal",
      `removing ${member.id} leaves ${check.after.healthyVoters} healthy of ${check.after.voters} voters, ${check.needed} needed`,
    );
  }
  return null;
}

type Blocker = { kind: "none" } | { kind: "remove"; removal: MemberRemoval } | { kind: "hold"; hold: Hold };

function removeIfSafe(cluster: ClusterView, m: MemberView, label: string, reason: string): Blocker {
  const gate = removalGate(cluster.members, m);
  if (gate !== null) return { kind: "hold", hold: gate };
  return { kind: "remove", removal: { memberId: m.id, label, reason } };
}

/**
 * What stands between this node and a MemberAdd. etcd refuses the add while a voter is down
 * (strict reconfig check) and allows one learner at a time, so a dead voter or a stuck learner
 * must go first, but only when its instance has left the ASG (or, for a never-started member,
 * after the startup grace) and the removal keeps quorum.
 */
function findBlocker(obs: BootObservation, cluster: ClusterView): Blocker {
  const asg = obs.asg;
  for (const m of cluster.members) {
    const started = isStarted(m);
    const healthy = isHealthy(m);
    if (started && healthy && !m.isLearner) continue;
    if (asg === null) {
      return {
        kind: "hold",
        hold: hold("partial-information", `the ASG could not be read; cannot judge member ${m.id}`),
      };
    }
    const instance = instanceOfMember(m, asg);
    const gone = instance === null || isLeaving(instance);
    const label = m.name || m.peerUrls.join(",");
    if (!started) {
      const seen = obs.firstSeen[m.id];
      const age = seen === undefined ? 0 : (Date.parse(obs.now) - Date.parse(seen)) / 1000;
      if (!gone && age < obs.startupGraceSeconds) {
        return {
          kind: "hold",
          hold: hold(
            "learner-in-progress",
            `member ${m.id} (${label}) was added ${Math.round(age)}s ago and has not started; grace is ${obs.startupGraceSeconds}s`,
          ),
        };
      }
      return removeIfSafe(
        cluster,
        m,
        label,
        gone
          ? `member ${m.id} (${label}) never started and its instance is gone`
          : `member ${m.id} (${label}) never started within ${obs.startupGraceSeconds}s`,
      );
    }
    if (m.isLearner && healthy) {
      return {
        kind: "hold",
        hold: hold(
          "learner-in-progress",
          `learner ${m.id} (${label}) is catching up; etcd allows one learner`,
        ),
      };
    }
    // Started but not healthy (down), voter or learner. An instance the group marked Unhealthy is
    // being replaced: with launch-before-terminate it stays InService until this joiner is in
    // service, so waiting for it would hold the join until the launch hook gives up (#15).
    const replaced = instance !== null && instance.healthStatus === "Unhealthy";
    if (replaced && !gone) {
      return removeIfSafe(
        cluster,
        m,
        label,
        `member ${m.id} (${label}) is down and the group is replacing instance ${instance.instanceId} (Unhealthy)`,
      );
    }
    if (!gone) {
      return {
        kind: "hold",
        hold: hold(
          "dead-member-blocks-join",
          `member ${m.id} (${label}) is down and instance ${instance?.instanceId} is ${instance?.lifecycleState}`,
        ),
      };
    }
    return removeIfSafe(
      cluster,
      m,
      label,
      `member ${m.id} (${label}) is down and its instance has left the ASG`,
    );
  }
  return { kind: "none" };
}

/** The snapshot to restore from, or the hold that says why there is none. */
function snapshotOf(r: Recovery, formerToken: string): { key: string; takenAt: string } | Hold {
  if (r.newest !== null) return r.newest;
  const other = r.otherNewest;
  return hold(
    "no-snapshot",
    other
      ? `cluster ${formerToken} has no snapshot; the newest found, ${other.key}, is of cluster ${other.clusterToken} and is never restored in its place`
      : `cluster ${formerToken} has no snapshot`,
  );
}

/**
 * The cluster existed and no member answers. Only when every instance that was or may have been a
 * member (the newest snapshot's members and the member registry of the marker's token) has left
 * the ASG (so no data can come back), no member has answered for the bound (counted across boots),
 * and this is the earliest-launched eligible instance, restore a snapshot of that cluster; anything
 * else waits or refuses, naming the rule.
 */
function decideRecovery(obs: BootObservation, formerToken: string, staleData: boolean): BootDecision {
  const r = obs.recovery;
  const asg = obs.asg;
  if (r === null || r === undefined || asg === null) {
    return {
      kind: "refuse",
      hold: hold(
        "cluster-existed",
        `cluster ${formerToken} is marked active; restore it from a backup (etcd-agent snapshot restore) or bring its members back`,
      ),
    };
  }
  const snapshot = snapshotOf(r, formerToken);
  if ("rule" in snapshot) return { kind: "refuse", hold: snapshot };
  // A former member counts as gone only when it surely is (claimantGone: not listed, and EC2 says
  // terminated): one in Terminating:Wait may still start its etcd on its data, and one missing from
  // a stale listing was never asked whether it answers.
  const present = r.formerMembers.filter((id) => !claimantGone(obs, id));
  if (present.length > 0 || r.formerMembers.length === 0) {
    return {
      kind: r.formerMembers.length === 0 ? "refuse" : "wait",
      hold: hold(
        "former-member-present",
        r.formerMembers.length === 0
          ? `snapshot ${snapshot.key} names no members and the member registry has none, so none can be ruled out`
          : `${present.join(", ")} of ${r.formerMembers.join(", ")} still in ${asg.name} (in any state) or not confirmed terminated by EC2`,
      ),
    };
  }
  const waited = (Date.parse(obs.now) - Date.parse(r.unreachableSince)) / 1000;
  if (waited < r.restoreAfterSeconds) {
    return {
      kind: "wait",
      hold: hold("restore-wait", `no member for ${Math.round(waited)}s of ${r.restoreAfterSeconds}s`),
    };
  }
  const designated = designatedBootstrapper(asg);
  if (designated === null) return { kind: "wait", hold: hold("no-eligible-instances", `in ${asg.name}`) };
  if (designated.instanceId !== obs.self.instanceId) {
    return {
      kind: "wait",
      hold: hold("not-bootstrapper", `${designated.instanceId} restores the cluster; waiting to join it`),
    };
  }
  return {
    kind: "restore",
    reason: `cluster ${formerToken} lost every member (${r.formerMembers.join(", ")} gone) and none answered for ${Math.round(waited)}s; restoring ${snapshot.key} (taken ${snapshot.takenAt})`,
    snapshotKey: snapshot.key,
    olderKeys: r.older ?? [],
    moveDataAside: staleData,
    formerToken,
    claim: "swap",
    clusterToken: tokenFor(asg.name, obs.self.instanceId),
  };
}

/**
 * A restore is in progress (marker `restoring`) and no member answers. Never a bootstrap: the
 * restorer does its restore again, another instance waits for it, and when the restorer is gone
 * the next designated instance takes the restore over and restores again.
 */
function decideRestoring(obs: BootObservation, marker: ClusterMarker, staleData: boolean): BootDecision {
  const asg = obs.asg as AsgView;
  const mine = marker.claimant === obs.self.instanceId;
  const local = obs.local;
  if (
    mine &&
    !local.hasData &&
    local.state !== null &&
    local.state.clusterToken === marker.token &&
    local.state.memberId !== null
  ) {
    // The restored member ran (its ID is recorded) and its data is gone: writes acknowledged since
    // the restore would be lost by restoring the old snapshot again.
    return {
      kind: "refuse",
      hold: hold(
        "cluster-existed",
        `this node ran member ${local.state.memberId} of the restored cluster ${marker.token} and its data is gone; restore it from its newest snapshot (etcd-agent snapshot restore) or bring the data back`,
      ),
    };
  }
  if (!mine && !claimantGone(obs, marker.claimant)) {
    return {
      kind: "wait",
      hold: hold("restore-in-progress", `${marker.claimant} is restoring cluster ${marker.token}`),
    };
  }
  if (!mine) {
    const next = designatedBootstrapper(asg, new Set([marker.claimant]));
    if (next === null) return { kind: "wait", hold: hold("no-eligible-instances", `in ${asg.name}`) };
    if (next.instanceId !== obs.self.instanceId) {
      return {
        kind: "wait",
        hold: hold("not-bootstrapper", `${next.instanceId} takes the restore over from ${marker.claimant}`),
      };
    }
  }
  const r = obs.recovery;
  if (r === null || r === undefined) {
    return {
      kind: "wait",
      hold: hold(
        "partial-information",
        `cluster ${marker.token} is being restored and the backups could not be read`,
      ),
    };
  }
  if (r.formerToken === null || r.formerToken === undefined) {
    return {
      kind: "wait",
      hold: hold(
        "partial-information",
        `the member registry of ${marker.token} does not say which cluster ${marker.claimant} restores`,
      ),
    };
  }
  const snapshot = snapshotOf(r, r.formerToken);
  if ("rule" in snapshot) return { kind: "refuse", hold: snapshot };
  return {
    kind: "restore",
    reason: mine
      ? `this instance's restore of ${r.formerToken} into ${marker.token} was interrupted; restoring ${snapshot.key} again`
      : `restorer ${marker.claimant} is gone before its restore served; taking it over and restoring ${snapshot.key} again`,
    snapshotKey: snapshot.key,
    olderKeys: r.older ?? [],
    moveDataAside: staleData,
    formerToken: r.formerToken,
    claim: mine ? "own" : "swap",
    clusterToken: mine ? marker.token : tokenFor(asg.name, obs.self.instanceId),
  };
}

function decideWithoutCluster(obs: BootObservation): BootDecision {
  const { self, local, marker } = obs;
  if (marker.kind === "unknown") {
    return { kind: "wait", hold: hold("marker-unknown", marker.error) };
  }
  const token = markerToken(marker);

  // Our own data for this cluster: start on it. Bringing members back with their data is how a
  // cluster that lost quorum recovers, and starting etcd on its own data is never destructive.
  if (local.hasData && local.state !== null && (token === null || local.state.clusterToken === token)) {
    return {
      kind: "rejoin",
      reason: "no member answers; this node holds data for the cluster and starts on it",
      memberId: local.state.memberId,
      clusterToken: local.state.clusterToken,
    };
  }
  const staleData = local.hasData;

  // Without the ASG there were no peers to ask: "no member answers" would be a guess.
  if (obs.asg === null) {
    return {
      kind: "wait",
      hold: hold("partial-information", "the ASG could not be read, so no peer was asked"),
    };
  }

  if (marker.kind === "present" && marker.marker.state === "active") {
    return decideRecovery(obs, marker.marker.token, staleData);
  }
  if (marker.kind === "present" && marker.marker.state === "restoring") {
    return decideRestoring(obs, marker.marker, staleData);
  }

  const asg = obs.asg;
  const selfInstance = asg.instances.find((i) => i.instanceId === self.instanceId);
  if (selfInstance === undefined || !isEligibleForBootstrap(selfInstance)) {
    return {
      kind: "wait",
      hold: hold(
        "self-not-eligible",
        selfInstance === undefined
          ? `${self.instanceId} is not in ${asg.name}'s listing`
          : `${self.instanceId} is ${selfInstance.lifecycleState}/${selfInstance.healthStatus}`,
      ),
    };
  }

  if (marker.kind === "present") {
    const claim = marker.marker;
    if (claim.claimant === self.instanceId) {
      // This node's own claim, but its state says its etcd ran as a member of that cluster and the
      // data is gone: the cluster held data once. A new empty one would replace it.
      if (
        !local.hasData &&
        local.state !== null &&
        local.state.clusterToken === claim.token &&
        local.state.memberId !== null
      ) {
        return {
          kind: "refuse",
          hold: hold(
            "cluster-existed",
            `this node ran member ${local.state.memberId} of cluster ${claim.token} and its data is gone; restore it from a backup (etcd-agent snapshot restore) or bring the data back`,
          ),
        };
      }
      return {
        kind: "bootstrap",
        reason: "this instance claimed the bootstrap before and has not finished it",
        moveDataAside: staleData,
        claim: "own",
        clusterToken: claim.token,
      };
    }
    const claimant = asg.instances.find((i) => i.instanceId === claim.claimant);
    if (claimant !== undefined) {
      // Terminating:Wait included: its boot may have written the env file, and its etcd starts.
      return {
        kind: "wait",
        hold: hold("bootstrap-claimed", `${claim.claimant} claimed it and is ${claimant.lifecycleState}`),
      };
    }
    if (!claimantGone(obs, claim.claimant)) {
      return {
        kind: "wait",
        hold: hold(
          "claimant-not-gone",
          `${claim.claimant} is not in ${asg.name}'s listing and EC2 says it is ${obs.ec2States?.[claim.claimant] ?? "unknown"}`,
        ),
      };
    }
    // The claimant left before anyone joined (joins flip the marker to active first), so the
    // only copy of its cluster left with it.
    const next = designatedBootstrapper(asg, new Set([claim.claimant]));
    if (next === null) return { kind: "wait", hold: hold("no-eligible-instances", `in ${asg.name}`) };
    if (next.instanceId !== self.instanceId) {
      return {
        kind: "wait",
        hold: hold("not-bootstrapper", `${next.instanceId} takes over from ${claim.claimant}`),
      };
    }
    return {
      kind: "bootstrap",
      reason: `claimant ${claim.claimant} left before anyone joined; this instance is the earliest launched eligible one`,
      moveDataAside: staleData,
      claim: "takeover",
      clusterToken: tokenFor(asg.name, self.instanceId),
    };
  }

  const designated = designatedBootstrapper(asg);
  if (designated === null) return { kind: "wait", hold: hold("no-eligible-instances", `in ${asg.name}`) };
  if (designated.instanceId !== self.instanceId) {
    return {
      kind: "wait",
      hold: hold(
        "not-bootstrapper",
        `${designated.instanceId} (launched ${designated.launchTime}) bootstraps; waiting to join it`,
      ),
    };
  }
  return {
    kind: "bootstrap",
    reason: "no cluster exists and this instance is the earliest launched eligible one",
    moveDataAside: staleData,
    claim: "create",
    clusterToken: tokenFor(asg.name, self.instanceId),
  };
}

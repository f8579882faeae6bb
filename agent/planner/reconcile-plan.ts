// What `etcd-agent run` does next, and why. Pure: observation in, plan out.
import { foreignClusterHold } from "./boot-plan.js";
import {
  DNS_SETTLE_SECONDS,
  DNS_TTL_SECONDS,
  DNS_WRITES_PER_MINUTE,
  type DnsChange,
  type DnsMember,
  desiredRecords,
  dnsChanges,
  isPublished,
} from "./dns-plan.js";
import {
  alarmsOf,
  findSelfMember,
  instanceOfMember,
  isHealthy,
  isLeaving,
  isStarted,
  looksLikeInstanceId,
  urlHost,
  voterCounts,
} from "./membership.js";
import { DNS_WRITE_WINDOW_SECONDS } from "./memory.js";
import type { AsgView, ClusterView, DnsRecord, MarkerRead, MemberView, SelfView } from "./observation.js";
import { hasQuorum, quorumAfterRemoval, quorumSize } from "./quorum.js";
import { type Hold, hold } from "./rules.js";
import { planStorage, type StorageAction, type StorageObservation } from "./storage-plan.js";

export interface ReconcileObservation {
  self: SelfView;
  asg: AsgView | null;
  cluster: ClusterView | null;
  marker: MarkerRead;
  /** The zone's records under the domain; null when they could not be read. */
  dns: DnsRecord[] | null;
  /** Lifecycle hook names by transition; null when they could not be read. */
  hooks: { launch: string | null; terminate: string | null } | null;
  now: string;
  /** First time each member was seen not started, by member ID (ISO-8601). */
  firstSeenUnstarted: Record<string, string>;
  /** First time each member was seen unhealthy in this unbroken run, by member ID (ISO-8601). */
  unhealthySince: Record<string, string>;
  /** Instances already reported unhealthy by this agent. */
  reportedUnhealthy: string[];
  /** When each was reported (ISO-8601); a report without a time is not repeated. */
  reportedUnhealthyAt?: Record<string, string>;
  /** Since when each started member's instance has been missing from the ASG listing; absent: now. */
  missingSince?: Record<string, string>;
  /** When this agent wrote DNS records within the last minute (the write budget). */
  dnsWrites?: string[];
  /** This node's leave: first seen terminating; its DNS records first seen gone. Absent: now. */
  leavingSince?: string | null;
  drainedSince?: string | null;
  /** Storage (quota, defragmentation, NOSPACE); absent: the leader plans nothing for storage. */
  storage?: StorageObservation;
  /** The token in this node's local state; used to write a missing marker. */
  localClusterToken: string | null;
  config: {
    domain: string;
    peerPort: number;
    clientPort: number;
    /** TLS on: the SRV records are the -ssl ones. */
    tls: boolean;
    startupGraceSeconds: number;
    unhealthyDeadlineSeconds: number;
  };
}

export type Action =
  | { type: "promote-self"; memberId: string; reason: string }
  | { type: "move-leader"; toMemberId: string; reason: string }
  | { type: "remove-member"; memberId: string; label: string; instanceId: string | null; reason: string }
  | {
      type: "complete-lifecycle";
      hook: string;
      result: "CONTINUE";
      transition: "launch" | "terminate";
      reason: string;
    }
  | { type: "heartbeat-lifecycle"; hook: string; reason: string }
  | { type: "set-instance-unhealthy"; instanceId: string; memberId: string; reason: string }
  | { type: "update-dns"; changes: DnsChange[]; reason: string }
  | {
      type: "write-marker";
      state: "active";
      token: string;
      /** etcd's ID of this leader's cluster: the marker names the cluster it stands for. */
      clusterId: string;
      previous: MarkerRead;
      reason: string;
    }
  | {
      /** Two clusters serve the same records: an event object for the alarm, once. */
      type: "raise-foreign-cluster-alarm";
      clusterId: string;
      markerToken: string;
      markerCluster: string | null;
      reason: string;
    }
  | StorageAction;

export const MEMBERSHIP_ACTIONS: ReadonlySet<Action["type"]> = new Set(["promote-self", "remove-member"]);

/**
 * Actions that take a member away (a removal; a health report, after which the ASG terminates the
 * instance). At most one a cycle, each leaving the healthy voters a quorum of the voters.
 */
export const DESTRUCTIVE_ACTIONS: ReadonlySet<Action["type"]> = new Set([
  "remove-member",
  "set-instance-unhealthy",
]);

/**
 * A started member whose instance is missing from the ASG listing is removed only once it has been
 * missing this long (three cycles at the default interval, seen so at least twice) and does not
 * answer: DescribeAutoScalingGroups is eventually consistent for seconds, and a detached instance
 * still serves. Short, because a member whose instance the ASG terminated (a scale-in without hooks)
 * waits this long before it is removed.
 */
export const MISSING_SETTLE_SECONDS = 30;

/**
 * A leaving member waits at most this long, from when it was first seen terminating, for its DNS
 * records to be dropped and their TTL to pass: the leader's next cycle, a write budget's minute and
 * the TTL, with room to spare; it heartbeats the hook meanwhile, so the hook never times out on it.
 */
export const DRAIN_BOUND_SECONDS = 120;

export interface Plan {
  /** Role this node plays in the cluster, for the log and status. */
  role: "leader" | "follower" | "learner" | "not-a-member" | "unknown";
  actions: Action[];
  holds: Hold[];
}

/** A learner is ready when it has this share, in percent, of the leader's log (etcd uses 90%). */
const LEARNER_READY_PERCENT = 90n;

/** Raft indexes are uint64: compared as BigInt, never as floating point. */
function learnerReady(learnerIndex: string, leaderIndex: string): boolean {
  return BigInt(learnerIndex) * 100n >= BigInt(leaderIndex) * LEARNER_READY_PERCENT;
}

function byRaftIndexDescending(a: MemberView, b: MemberView): number {
  const ia = BigInt(a.status?.raftIndex ?? "0");
  const ib = BigInt(b.status?.raftIndex ?? "0");
  return ia === ib ? 0 : ia > ib ? -1 : 1;
}

function ageSeconds(since: string | null | undefined, now: string): number {
  return since === undefined || since === null ? 0 : (Date.parse(now) - Date.parse(since)) / 1000;
}

/** What the leader makes of its own view before it acts on it. */
interface LeaderView {
  /** etcd reports a CORRUPT alarm: nothing destructive. */
  corrupt: boolean;
  /** Too many members look down at once: the leader's own reachability may be the problem. */
  suspect: boolean;
}

/**
 * A leader has a quorum of raft heartbeats, so when its Status calls reach fewer voters than a
 * quorum, or miss more than one voter at once, the fault is as likely its own (a security group, its
 * certificate) as theirs: the view is suspect, and nothing is taken away for health on it (no
 * report, no DNS drop); removals the ASG's listing evidences go on under the quorum checks.
 */
function leaderView(cluster: ClusterView, holds: Hold[]): LeaderView {
  const alarms = alarmsOf(cluster.members);
  const corrupt = alarms.includes("CORRUPT");
  if (alarms.length > 0) holds.push(hold("etcd-alarm", `raised: ${alarms.join(", ")}`));
  if (corrupt) holds.push(hold("etcd-alarm-corrupt", "no removal or health report while it is raised"));
  const counts = voterCounts(cluster.members);
  const down = counts.voters - counts.healthyVoters;
  const suspect = counts.healthyVoters < quorumSize(counts.voters) || down > 1;
  if (suspect) {
    holds.push(
      hold(
        "observer-suspect",
        `this leader's Status calls reach ${counts.healthyVoters} of ${counts.voters} voters (${down} down, quorum ${quorumSize(counts.voters)})`,
      ),
    );
  }
  return { corrupt, suspect };
}

export function planReconcile(obs: ReconcileObservation): Plan {
  const actions: Action[] = [];
  const holds: Hold[] = [];
  const cluster = obs.cluster;
  if (cluster === null) {
    holds.push(hold("partial-information", "no etcd member answered"));
    return { role: "unknown", actions, holds };
  }
  const me = findSelfMember(cluster.members, obs.self.instanceId, obs.self.privateIp);
  const terminating = obs.self.targetLifecycleState === "Terminated";

  if (terminating) {
    planLeave(obs, cluster, me, actions, holds);
    return { role: roleOf(cluster, me), actions, holds };
  }
  if (me === null) {
    holds.push(hold("partial-information", `no member is ${obs.self.instanceId}; run etcd-agent boot`));
    return { role: "not-a-member", actions, holds };
  }

  if (me.isLearner) {
    const leader = cluster.members.find((m) => m.id === cluster.leaderId);
    const mine = me.status?.raftIndex;
    const theirs = leader?.status?.raftIndex;
    if (mine !== undefined && theirs !== undefined && learnerReady(mine, theirs)) {
      actions.push({
        type: "promote-self",
        memberId: me.id,
        reason: `learner at raft index ${mine} of the leader's ${theirs}`,
      });
    } else {
      holds.push(
        hold("learner-not-in-sync", `raft index ${mine ?? "unknown"} of the leader's ${theirs ?? "unknown"}`),
      );
    }
  }

  if (obs.hooks?.launch && !me.isLearner && isHealthy(me)) {
    const selfInstance = obs.asg?.instances.find((i) => i.instanceId === obs.self.instanceId);
    if (selfInstance?.lifecycleState === "Pending:Wait") {
      actions.push({
        type: "complete-lifecycle",
        hook: obs.hooks.launch,
        result: "CONTINUE",
        transition: "launch",
        reason: `member ${me.id} is a healthy voter`,
      });
    }
  }

  if (cluster.leaderId !== me.id) {
    holds.push(hold("leader-only", `leader is ${cluster.leaderId ?? "unknown"}`));
    return { role: me.isLearner ? "learner" : "follower", actions, holds };
  }

  // A leader of a cluster the marker does not name holds everything a leader writes (DNS, the
  // marker, removals, reports): another cluster may be the real one. It raises the alarm instead.
  const foreign = foreignLeaderHold(obs, cluster);
  if (foreign !== null) {
    holds.push(foreign);
    if (obs.marker.kind === "present") {
      actions.push({
        type: "raise-foreign-cluster-alarm",
        clusterId: cluster.clusterId,
        markerToken: obs.marker.marker.token,
        markerCluster: obs.marker.marker.cluster ?? null,
        reason: foreign.detail,
      });
    }
    return { role: "leader", actions, holds };
  }
  planMarker(obs, cluster, actions, holds);
  const view = leaderView(cluster, holds);
  if (!actions.some((a) => MEMBERSHIP_ACTIONS.has(a.type)))
    planRemoval(obs, cluster, me, view, actions, holds);
  planHealthReports(obs, cluster, me, view, actions, holds);
  planDns(obs, cluster, view, actions, holds);
  if (obs.storage) {
    const busy = actions.some((a) => MEMBERSHIP_ACTIONS.has(a.type) || DESTRUCTIVE_ACTIONS.has(a.type));
    const storage = planStorage(cluster, obs.storage, obs.now, { corrupt: view.corrupt, busy });
    actions.push(...storage.actions);
    holds.push(...storage.holds);
  }
  return { role: "leader", actions, holds };
}

function roleOf(cluster: ClusterView, me: MemberView | null): Plan["role"] {
  if (me === null) return "not-a-member";
  if (me.isLearner) return "learner";
  return cluster.leaderId === me.id ? "leader" : "follower";
}

/** Graceful leave: hand leadership away, get removed when safe, heartbeat meanwhile, then complete. */
function planLeave(
  obs: ReconcileObservation,
  cluster: ClusterView,
  me: MemberView | null,
  actions: Action[],
  holds: Hold[],
): void {
  const hook = obs.hooks?.terminate ?? null;
  if (me === null) {
    if (hook !== null) {
      actions.push({
        type: "complete-lifecycle",
        hook,
        result: "CONTINUE",
        transition: "terminate",
        reason: `no member is ${obs.self.instanceId} any more`,
      });
    }
    return;
  }
  if (cluster.leaderId === me.id) {
    const successor = cluster.members
      .filter((m) => m.id !== me.id && !m.isLearner && isHealthy(m))
      .sort(byRaftIndexDescending)[0];
    if (successor !== undefined) {
      actions.push({
        type: "move-leader",
        toMemberId: successor.id,
        reason: "this instance is terminating; handing leadership to the most up-to-date healthy voter",
      });
      if (hook !== null)
        actions.push({ type: "heartbeat-lifecycle", hook, reason: "leadership handover in progress" });
      return;
    }
  }
  const draining = drainWait(obs, me);
  if (draining !== null) {
    holds.push(hold("dns-drain", draining));
    if (hook !== null)
      actions.push({ type: "heartbeat-lifecycle", hook, reason: "waiting for DNS to let this member go" });
    return;
  }
  const check = quorumAfterRemoval(voterCounts(cluster.members), {
    isVoter: !me.isLearner,
    isHealthy: isHealthy(me),
  });
  if (check.ok || me.isLearner) {
    actions.push({
      type: "remove-member",
      memberId: me.id,
      label: me.name,
      instanceId: obs.self.instanceId,
      reason: "this instance is terminating",
    });
  } else {
    holds.push(
      hold(
        "quorum-after-removal",
        `leaving would leave ${check.after.healthyVoters} healthy of ${check.after.voters} voters, ${check.needed} needed`,
      ),
    );
  }
  if (hook !== null)
    actions.push({ type: "heartbeat-lifecycle", hook, reason: "waiting for etcd to let this member go" });
}

/**
 * Why this leaving member still waits for DNS before it leaves etcd, or null: its records must be
 * gone and their TTL passed (learners and members not named after an instance were never published),
 * for at most DRAIN_BOUND_SECONDS.
 */
function drainWait(obs: ReconcileObservation, me: MemberView): string | null {
  if (me.isLearner || !isStarted(me) || !looksLikeInstanceId(me.name)) return null;
  const leaving = Math.round(ageSeconds(obs.leavingSince, obs.now));
  if (leaving >= DRAIN_BOUND_SECONDS) return null;
  const bound = `(leaving for ${leaving}s, bound ${DRAIN_BOUND_SECONDS}s)`;
  if (obs.dns === null) return `the zone could not be read ${bound}`;
  if (isPublished(me.name, obs.dns, obs.config.domain))
    return `${me.name} is still in the DNS records; the leader drops it first ${bound}`;
  const gone = Math.round(ageSeconds(obs.drainedSince, obs.now));
  if (gone < DNS_TTL_SECONDS)
    return `${me.name}'s records were dropped ${gone}s ago, TTL ${DNS_TTL_SECONDS}s ${bound}`;
  return null;
}

/**
 * This leader's cluster is not the one the marker stands for: the marker names another cluster ID,
 * or (without an ID) another token than this node's state, or a claimant that is no member here.
 */
export function foreignLeaderHold(obs: ReconcileObservation, cluster: ClusterView): Hold | null {
  const m = obs.marker;
  if (m.kind !== "present") return null;
  const byMarker = foreignClusterHold(m, cluster);
  if (byMarker !== null) return byMarker;
  if (
    m.marker.cluster === undefined &&
    obs.localClusterToken !== null &&
    m.marker.token !== obs.localClusterToken &&
    // A node that joined before any marker named its cluster after etcd's ID; a legacy active
    // marker whose claimant is one of this cluster's members is this cluster's too.
    obs.localClusterToken !== `adopted-${cluster.clusterId}` &&
    !(
      m.marker.state === "active" &&
      cluster.members.some((x) => x.name === m.marker.claimant || x.instanceId === m.marker.claimant)
    )
  ) {
    return hold(
      "foreign-cluster",
      `the marker (${m.marker.state}) has token ${m.marker.token}; this node's cluster ${cluster.clusterId} has token ${obs.localClusterToken}`,
    );
  }
  return null;
}

function planMarker(obs: ReconcileObservation, cluster: ClusterView, actions: Action[], holds: Hold[]): void {
  const m = obs.marker;
  if (m.kind === "unknown") {
    holds.push(hold("marker-unknown", m.error));
    return;
  }
  if (m.kind === "present" && m.marker.state === "active") {
    if (m.marker.cluster !== undefined) return;
    actions.push({
      type: "write-marker",
      state: "active",
      token: m.marker.token,
      clusterId: cluster.clusterId,
      previous: m,
      reason: `the active marker gains the cluster's ID ${cluster.clusterId}`,
    });
    return;
  }
  const token = m.kind === "present" ? m.marker.token : obs.localClusterToken;
  if (token === null) {
    holds.push(hold("partial-information", "no cluster token is known to write the marker with"));
    return;
  }
  actions.push({
    type: "write-marker",
    state: "active",
    token,
    clusterId: cluster.clusterId,
    previous: m,
    reason:
      m.kind === "absent"
        ? "the cluster has no marker"
        : `the ${m.marker.state} marker becomes an active cluster (${cluster.clusterId})`,
  });
}

function planRemoval(
  obs: ReconcileObservation,
  cluster: ClusterView,
  me: MemberView,
  view: LeaderView,
  actions: Action[],
  holds: Hold[],
): void {
  const asg = obs.asg;
  if (asg === null) {
    holds.push(hold("partial-information", "the ASG could not be read; no member is removed"));
    return;
  }
  if (!asg.instances.some((i) => i.instanceId === obs.self.instanceId)) {
    holds.push(
      hold(
        "self-not-in-asg",
        `${asg.name} lists ${asg.instances.length} instances, not ${obs.self.instanceId}`,
      ),
    );
    return;
  }
  const counts = voterCounts(cluster.members);
  let planned = false;
  for (const m of cluster.members) {
    if (m.id === me.id) continue;
    const instance = instanceOfMember(m, asg);
    const label = m.name || m.peerUrls.join(",");
    const missing = Math.round(ageSeconds(obs.missingSince?.[m.id], obs.now));
    let reason: string | null = null;
    if (!isStarted(m)) {
      const age = ageSeconds(obs.firstSeenUnstarted[m.id], obs.now);
      if (instance !== null && isLeaving(instance)) {
        reason = `member ${m.id} (${label}) never started and its instance is ${instance.lifecycleState}`;
      } else if (instance === null && missing >= MISSING_SETTLE_SECONDS) {
        reason = `member ${m.id} (${label}) never started and its instance has been gone for ${missing}s`;
      } else if (age >= obs.config.startupGraceSeconds) {
        reason = `member ${m.id} (${label}) has not started in ${Math.round(age)}s (grace ${obs.config.startupGraceSeconds}s)`;
      } else {
        holds.push(hold("startup-grace", `member ${m.id} (${label}) added ${Math.round(age)}s ago`));
        continue;
      }
    } else if (instance === null) {
      if (!looksLikeInstanceId(m.name)) {
        holds.push(hold("foreign-member", `member ${m.id} (${label})`));
        continue;
      }
      if (isHealthy(m)) {
        holds.push(
          hold("instance-missing", `member ${m.id} (${m.name}) answers; ${asg.name} does not list it`),
        );
        continue;
      }
      if (missing < MISSING_SETTLE_SECONDS) {
        holds.push(
          hold(
            "instance-missing",
            `member ${m.id} (${m.name}) missing for ${missing}s of ${MISSING_SETTLE_SECONDS}s`,
          ),
        );
        continue;
      }
      // The ASG's listing (twice, a settle time apart), not this leader's reachability, is the
      // evidence here: a suspect view does not hold it (the quorum checks below still do).
      reason = `member ${m.id} (${m.name}): its instance has been missing from ${asg.name} for ${missing}s`;
    } else if (isLeaving(instance)) {
      if (instance.lifecycleState === "Terminating:Wait" && isHealthy(m)) {
        holds.push(
          hold("instance-still-in-asg", `${instance.instanceId} is leaving and removes its own member`),
        );
        continue;
      }
      if (obs.dns !== null && isPublished(m.name, obs.dns, obs.config.domain)) {
        holds.push(hold("dns-drain", `member ${m.id} (${m.name}) is removed once DNS has dropped it`));
        continue;
      }
      reason = `member ${m.id} (${m.name}): instance ${instance.instanceId} is ${instance.lifecycleState}`;
    } else if (m.isLearner && !isHealthy(m) && instance.healthStatus !== "Healthy") {
      // A started learner that died holds etcd's one learner slot; learners do not vote.
      const age = ageSeconds(obs.unhealthySince[m.id], obs.now);
      if (age < obs.config.startupGraceSeconds) {
        holds.push(hold("startup-grace", `learner ${m.id} (${label}) unhealthy for ${Math.round(age)}s`));
        continue;
      }
      reason = `learner ${m.id} (${label}) has been unhealthy for ${Math.round(age)}s and its instance is ${instance.healthStatus}`;
    } else if (!isHealthy(m) && instance.healthStatus === "Unhealthy") {
      // The group is replacing the instance; with launch-before-terminate it stays InService until
      // the replacement is in service, and the replacement's join waits for this member (#15).
      if (obs.dns !== null && isPublished(m.name, obs.dns, obs.config.domain)) {
        holds.push(hold("dns-drain", `member ${m.id} (${m.name}) is removed once DNS has dropped it`));
        continue;
      }
      reason = `member ${m.id} (${label}): the group is replacing instance ${instance.instanceId} (Unhealthy)`;
    } else {
      continue;
    }
    if (view.corrupt) {
      holds.push(hold("etcd-alarm-corrupt", `member ${m.id} (${label}) waits: ${reason}`));
      continue;
    }
    if (planned) {
      holds.push(hold("one-change-per-cycle", `member ${m.id} (${label}) waits: ${reason}`));
      continue;
    }
    if (!hasQuorum(counts)) {
      holds.push(
        hold(
          "cluster-has-no-quorum",
          `${counts.healthyVoters} of ${counts.voters} voters healthy, ${quorumSize(counts.voters)} needed; not removing ${m.id}`,
        ),
      );
      continue;
    }
    const check = quorumAfterRemoval(counts, { isVoter: !m.isLearner, isHealthy: isHealthy(m) });
    if (!check.ok) {
      holds.push(
        hold(
          "quorum-after-removal",
          `removing ${m.id} leaves ${check.after.healthyVoters} healthy of ${check.after.voters} voters, ${check.needed} needed`,
        ),
      );
      continue;
    }
    actions.push({
      type: "remove-member",
      memberId: m.id,
      label,
      // The instance the member belonged to, even when it has left the ASG (its name says which).
      instanceId: instance?.instanceId ?? (looksLikeInstanceId(m.name) ? m.name : null),
      reason,
    });
    planned = true;
  }
}

/** Answers this cycle and has not missed a Status call within the recovery time. */
function settledHealthy(obs: ReconcileObservation, m: MemberView): boolean {
  return isHealthy(m) && obs.unhealthySince[m.id] === undefined;
}

/**
 * Reports to the ASG (which then replaces the instance) a member that does not answer this cycle
 * and has been unhealthy, with no recovery, past the deadline; one destructive action a cycle, and
 * only while the other healthy voters are a quorum of the voters (on a view that is not suspect
 * they always are: the check stands guard should the suspect rule change).
 */
function planHealthReports(
  obs: ReconcileObservation,
  cluster: ClusterView,
  me: MemberView,
  view: LeaderView,
  actions: Action[],
  holds: Hold[],
): void {
  const asg = obs.asg;
  if (asg === null) return;
  const removing = new Set(actions.flatMap((a) => (a.type === "remove-member" ? [a.memberId] : [])));
  const voters = cluster.members.filter((m) => !m.isLearner);
  for (const m of cluster.members) {
    if (m.id === me.id || removing.has(m.id) || isHealthy(m)) continue;
    const instance = instanceOfMember(m, asg);
    if (instance === null || instance.lifecycleState !== "InService" || instance.healthStatus !== "Healthy")
      continue;
    if (obs.reportedUnhealthy.includes(instance.instanceId)) {
      // Still InService and Healthy after a report: AWS dropped it (SetInstanceHealth inside the
      // group's grace period is ignored). Sent again once the report is a deadline old.
      const at = obs.reportedUnhealthyAt?.[instance.instanceId];
      const since = at === undefined ? null : ageSeconds(at, obs.now);
      if (since === null || since < obs.config.unhealthyDeadlineSeconds) {
        holds.push(
          hold(
            "health-report-sent",
            `${instance.instanceId} reported${since === null ? "" : ` ${Math.round(since)}s ago`}; sent again if it is still Healthy ${obs.config.unhealthyDeadlineSeconds}s after`,
          ),
        );
        continue;
      }
    }
    const age = Math.round(ageSeconds(obs.unhealthySince[m.id], obs.now));
    if (age < obs.config.unhealthyDeadlineSeconds) {
      holds.push(hold("unhealthy-deadline", `member ${m.id} unhealthy for ${age}s`));
      continue;
    }
    const what = `member ${m.id} unhealthy for ${age}s (deadline ${obs.config.unhealthyDeadlineSeconds}s)`;
    if (view.corrupt) {
      holds.push(hold("etcd-alarm-corrupt", `${what} is not reported`));
      continue;
    }
    if (view.suspect) {
      holds.push(hold("observer-suspect", `${what} is not reported`));
      continue;
    }
    if (actions.some((a) => DESTRUCTIVE_ACTIONS.has(a.type))) {
      holds.push(hold("one-change-per-cycle", `${what} waits`));
      continue;
    }
    if (!m.isLearner) {
      // Voters that are leaving (their instance is going) or already reported (the ASG terminates
      // them) will not be there to make quorum: they do not count.
      const staying = (v: MemberView) => {
        const i = instanceOfMember(v, asg);
        return i !== null && !isLeaving(i) && !obs.reportedUnhealthy.includes(i.instanceId);
      };
      const others = voters.filter((v) => v.id !== m.id && isHealthy(v) && staying(v)).length;
      const needed = quorumSize(voters.length);
      if (others < needed) {
        holds.push(
          hold(
            "quorum-after-report",
            `${what}: ${others} other healthy voters of ${voters.length}, ${needed} needed`,
          ),
        );
        continue;
      }
    }
    actions.push({
      type: "set-instance-unhealthy",
      instanceId: instance.instanceId,
      memberId: m.id,
      reason: `member ${m.id} has been unhealthy for ${age}s (deadline ${obs.config.unhealthyDeadlineSeconds}s)`,
    });
  }
}

/** The IP a member is reached at: its instance's address, else its peer URL's host. */
function memberIp(m: MemberView, asg: AsgView | null): string | null {
  const instance = asg === null ? null : instanceOfMember(m, asg);
  return instance?.privateIp ?? m.peerUrls.map(urlHost).find((h) => h !== null) ?? null;
}

/**
 * The records follow the settled voters: a healthy voter is added at once; an unhealthy one is
 * dropped after DNS_SETTLE_SECONDS and taken back once it has recovered; a leaving one is dropped
 * at once (the drain); nothing is dropped for health on a suspect view; at most
 * DNS_WRITES_PER_MINUTE writes a minute.
 */
function planDns(
  obs: ReconcileObservation,
  cluster: ClusterView,
  view: LeaderView,
  actions: Action[],
  holds: Hold[],
): void {
  const dns = obs.dns;
  if (dns === null) {
    holds.push(hold("partial-information", "the DNS records could not be read; they are left as they are"));
    return;
  }
  const domain = obs.config.domain;
  const voters: DnsMember[] = [];
  for (const m of cluster.members) {
    if (m.isLearner || !isStarted(m)) continue;
    if (!looksLikeInstanceId(m.name)) {
      holds.push(hold("dns-not-instance-name", `member ${m.id} (${m.name})`));
      continue;
    }
    const instance = obs.asg === null ? null : instanceOfMember(m, obs.asg);
    if (instance !== null && isLeaving(instance)) continue;
    const ip = memberIp(m, obs.asg);
    if (ip === null) continue;
    if (settledHealthy(obs, m)) {
      voters.push({ name: m.name, ip });
      continue;
    }
    const published = isPublished(m.name, dns, domain);
    const age = Math.round(ageSeconds(obs.unhealthySince[m.id], obs.now));
    if (published) {
      // Dropped only while it does not answer, past the settle time, on a view that is not suspect.
      if (isHealthy(m) || view.suspect || age < DNS_SETTLE_SECONDS) voters.push({ name: m.name, ip });
      if (!isHealthy(m) && !view.suspect && age < DNS_SETTLE_SECONDS)
        holds.push(
          hold("dns-settle", `member ${m.id} kept: unhealthy for ${age}s of ${DNS_SETTLE_SECONDS}s`),
        );
    } else if (isHealthy(m)) {
      holds.push(hold("dns-settle", `member ${m.id} answers again; added once it has recovered`));
    }
  }
  if (voters.length === 0) {
    holds.push(hold("partial-information", "no healthy voter to publish; DNS left as it is"));
    return;
  }
  const changes = dnsChanges(dns, desiredRecords(voters, obs.config), domain);
  if (changes.length === 0) return;
  const summary = changes.map((c) => `${c.action} ${c.record.type} ${c.record.name}`).join(", ");
  const recent = (obs.dnsWrites ?? []).filter(
    (t) => ageSeconds(t, obs.now) < DNS_WRITE_WINDOW_SECONDS,
  ).length;
  if (recent >= DNS_WRITES_PER_MINUTE) {
    holds.push(
      hold(
        "dns-write-budget",
        `${recent} writes in the last ${DNS_WRITE_WINDOW_SECONDS}s (budget ${DNS_WRITES_PER_MINUTE}); waiting: ${summary}`,
      ),
    );
    return;
  }
  actions.push({
    type: "update-dns",
    changes,
    reason: `records differ from the ${voters.length} settled voters: ${summary}`,
  });
}

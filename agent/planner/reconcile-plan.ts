// What `etcd-agent run` does next, and why. Pure: observation in, plan out.
import type { MarkerRead } from "./boot-plan.js";
import { type DnsChange, type DnsMember, desiredRecords, dnsChanges } from "./dns-plan.js";
import {
  findSelfMember,
  instanceOfMember,
  isHealthy,
  isLeaving,
  isStarted,
  looksLikeInstanceId,
  urlHost,
  voterCounts,
} from "./membership.js";
import type { AsgView, ClusterView, DnsRecord, MemberView } from "./observation.js";
import { hasQuorum, quorumAfterRemoval, quorumSize } from "./quorum.js";
import { type Hold, hold } from "./rules.js";

export interface ReconcileObservation {
  self: {
    instanceId: string;
    privateIp: string;
    /** IMDS autoscaling/target-lifecycle-state; null when unknown. */
    targetLifecycleState: string | null;
  };
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
  | { type: "write-marker"; state: "active"; token: string; previous: MarkerRead; reason: string };

export const MEMBERSHIP_ACTIONS: ReadonlySet<Action["type"]> = new Set(["promote-self", "remove-member"]);

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

function ageSeconds(since: string | undefined, now: string): number {
  return since === undefined ? 0 : (Date.parse(now) - Date.parse(since)) / 1000;
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

  planMarker(obs, actions, holds);
  if (!actions.some((a) => MEMBERSHIP_ACTIONS.has(a.type))) planRemoval(obs, cluster, me, actions, holds);
  planHealthReports(obs, cluster, me, actions, holds);
  planDns(obs, cluster, actions, holds);
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

function planMarker(obs: ReconcileObservation, actions: Action[], holds: Hold[]): void {
  const m = obs.marker;
  if (m.kind === "unknown") {
    holds.push(hold("marker-unknown", m.error));
    return;
  }
  if (m.kind === "present" && m.marker.state === "active") return;
  const token = m.kind === "present" ? m.marker.token : obs.localClusterToken;
  if (token === null) {
    holds.push(hold("partial-information", "no cluster token is known to write the marker with"));
    return;
  }
  actions.push({
    type: "write-marker",
    state: "active",
    token,
    previous: m,
    reason:
      m.kind === "absent" ? "the cluster has no marker" : "the bootstrap claim becomes an active cluster",
  });
}

function planRemoval(
  obs: ReconcileObservation,
  cluster: ClusterView,
  me: MemberView,
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
    let reason: string | null = null;
    if (!isStarted(m)) {
      const age = ageSeconds(obs.firstSeenUnstarted[m.id], obs.now);
      if (instance === null || isLeaving(instance)) {
        reason = `member ${m.id} (${label}) never started and its instance is gone`;
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
      reason = `member ${m.id} (${m.name}): its instance is no longer in ${asg.name}`;
    } else if (isLeaving(instance)) {
      if (instance.lifecycleState === "Terminating:Wait" && isHealthy(m)) {
        holds.push(
          hold("instance-still-in-asg", `${instance.instanceId} is leaving and removes its own member`),
        );
        continue;
      }
      reason = `member ${m.id} (${m.name}): instance ${instance.instanceId} is ${instance.lifecycleState}`;
    } else {
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

function planHealthReports(
  obs: ReconcileObservation,
  cluster: ClusterView,
  me: MemberView,
  actions: Action[],
  holds: Hold[],
): void {
  const asg = obs.asg;
  if (asg === null) return;
  const removing = new Set(actions.flatMap((a) => (a.type === "remove-member" ? [a.memberId] : [])));
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
    const age = ageSeconds(obs.unhealthySince[m.id], obs.now);
    if (age >= obs.config.unhealthyDeadlineSeconds) {
      actions.push({
        type: "set-instance-unhealthy",
        instanceId: instance.instanceId,
        memberId: m.id,
        reason: `member ${m.id} has been unhealthy for ${Math.round(age)}s (deadline ${obs.config.unhealthyDeadlineSeconds}s)`,
      });
    } else {
      holds.push(hold("unhealthy-deadline", `member ${m.id} unhealthy for ${Math.round(age)}s`));
    }
  }
}

/** The IP a member is reached at: its instance's address, else its peer URL's host. */
function memberIp(m: MemberView, asg: AsgView | null): string | null {
  const instance = asg === null ? null : instanceOfMember(m, asg);
  return instance?.privateIp ?? m.peerUrls.map(urlHost).find((h) => h !== null) ?? null;
}

function planDns(obs: ReconcileObservation, cluster: ClusterView, actions: Action[], holds: Hold[]): void {
  if (obs.dns === null) {
    holds.push(hold("partial-information", "the DNS records could not be read; they are left as they are"));
    return;
  }
  const voters: DnsMember[] = [];
  for (const m of cluster.members) {
    if (m.isLearner || !isStarted(m) || !isHealthy(m)) continue;
    const ip = memberIp(m, obs.asg);
    if (ip !== null) voters.push({ name: m.name, ip });
  }
  if (voters.length === 0) {
    holds.push(hold("partial-information", "no healthy voter to publish; DNS left as it is"));
    return;
  }
  const changes = dnsChanges(obs.dns, desiredRecords(voters, obs.config), obs.config.domain);
  if (changes.length > 0) {
    actions.push({
      type: "update-dns",
      changes,
      reason: `records differ from the ${voters.length} healthy voters: ${changes.map((c) => `${c.action} ${c.record.type} ${c.record.name}`).join(", ")}`,
    });
  }
}

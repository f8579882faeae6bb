// The cluster's vital signs after one cycle, as plain figures: what the metrics (CloudWatch from
// the leader, Prometheus on every node) publish. Pure: the observation, the plan and what was
// applied in, numbers out. The metric adapters only name and ship them.
import { alarmsOf, isHealthy, voterCounts } from "./membership.js";
import type { Plan, ReconcileObservation } from "./reconcile-plan.js";
import type { RuleId } from "./rules.js";

/** etcd's default --quota-backend-bytes (2 GiB): what a member may hold before NOSPACE. */
export const ETCD_DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

export interface MemberSigns {
  /** The member's name (its instance ID), or its ID while it has not started. */
  member: string;
  healthy: boolean;
  learner: boolean;
  /** null: the member did not answer Status this cycle. */
  dbSizeBytes: number | null;
  dbSizeInUseBytes: number | null;
}

export interface VitalSigns {
  at: string;
  /** This node leads: the cluster-level figures are its to publish (CloudWatch). */
  leader: boolean;
  /** null: no member answered this cycle. */
  cluster: {
    members: number;
    voters: number;
    healthyVoters: number;
    /** Learners waiting for promotion. */
    learners: number;
    unhealthyMembers: number;
    hasLeader: boolean;
  } | null;
  /** The leader this node saw differs from the one it saw last cycle (not counted on the first). */
  leaderChanged: boolean;
  members: MemberSigns[];
  quotaBytes: number;
  /** The fullest member's db size against the quota, 0 to 1 (more past it); null: no size known. */
  quotaUsedRatio: number | null;
  /** etcd's alarms raised (NOSPACE, CORRUPT), cluster-wide. */
  alarms: string[];
  /** Seconds since the newest snapshot this agent knows of; null: unknown or backups off. */
  backupAgeSeconds: number | null;
  /** The actions applied this cycle, by type. */
  actions: string[];
  /** The rules that held something back this cycle, once each (`leader-only` is routine: left out). */
  holds: RuleId[];
}

export function vitalSigns(input: {
  obs: ReconcileObservation;
  plan: Plan;
  applied: string[];
  /** The leader's member ID seen last cycle; undefined on the first cycle. */
  previousLeaderId: string | null | undefined;
  /** When the newest snapshot was taken (ISO-8601); null or undefined: unknown. */
  lastBackupAt: string | null | undefined;
  quotaBytes: number;
}): VitalSigns {
  const { obs, plan } = input;
  const members = obs.cluster?.members ?? [];
  const counts = voterCounts(members);
  const leaderId = obs.cluster?.leaderId ?? null;
  const sizes = members.flatMap((m) => (m.status ? [m.status.dbSize] : []));
  const now = Date.parse(obs.now);
  const backupAt = input.lastBackupAt ? Date.parse(input.lastBackupAt) : Number.NaN;
  return {
    at: obs.now,
    leader: plan.role === "leader",
    cluster:
      obs.cluster === null
        ? null
        : {
            members: members.length,
            voters: counts.voters,
            healthyVoters: counts.healthyVoters,
            learners: members.filter((m) => m.isLearner).length,
            unhealthyMembers: members.filter((m) => !isHealthy(m)).length,
            hasLeader: leaderId !== null,
          },
    leaderChanged:
      input.previousLeaderId !== undefined && obs.cluster !== null && input.previousLeaderId !== leaderId,
    members: members.map((m) => ({
      member: m.name || m.id,
      healthy: isHealthy(m),
      learner: m.isLearner,
      dbSizeBytes: m.status?.dbSize ?? null,
      dbSizeInUseBytes: m.status?.dbSizeInUse ?? null,
    })),
    quotaBytes: input.quotaBytes,
    quotaUsedRatio: sizes.length === 0 ? null : Math.max(...sizes) / input.quotaBytes,
    alarms: alarmsOf(members),
    backupAgeSeconds: Number.isNaN(backupAt) ? null : Math.max(0, Math.round((now - backupAt) / 1000)),
    actions: input.applied,
    holds: [...new Set(plan.holds.map((h) => h.rule).filter((r) => r !== "leader-only"))].sort(),
  };
}

// The leader's care of etcd's storage: defragment a member when it is worth it, one at a time,
// followers first and the leader last, only while every member is healthy and quorum survives the
// pause; and a NOSPACE alarm: compact to the current revision, defragment every voter, disarm.
// Pure. The rules and their order follow ahrtr/etcd-defrag (docs/operations.md, "Storage").
import type { DefragSettings } from "../config/etcd-settings.js";
import { alarmsOf, isHealthy, isStarted } from "./membership.js";
import type { ClusterView, MemberStatus, MemberView } from "./observation.js";
import { quorumSize } from "./quorum.js";
import { type Hold, hold } from "./rules.js";

/** What the leader knows about storage besides the members' Status answers. */
export interface StorageObservation {
  /** The quota etcd runs with (ETCD_QUOTA_BACKEND_BYTES, as this agent writes it). */
  quotaBytes: number;
  defrag: DefragSettings;
  /** The defragmentation this agent runs beside its loop now; null: none. */
  running: { memberId: string; since: string } | null;
  /** When this leader compacted for the NOSPACE alarm raised now; null: not yet (or no alarm). */
  compactedAt: string | null;
  /** When this agent last finished defragmenting each member (ISO-8601), by member ID. */
  defraggedAt: Record<string, string>;
  /** How often this agent defragmented each member since the NOSPACE compaction (absent: 0). */
  passDefrags?: Record<string, number>;
}

export type StorageAction =
  | { type: "compact"; reason: string }
  | {
      type: "defragment";
      memberId: string;
      label: string;
      clientUrls: string[];
      role: "follower" | "leader";
      reason: string;
    }
  | { type: "disarm-nospace"; reason: string };

/** Under this much free space (a share of the quota, in percent) a defragmentation is not worth its pause. */
export const DEFRAG_MIN_FREE_PERCENT_OF_QUOTA = 5;
/** A member is not defragmented again for the rule within this time (a NOSPACE alarm does not wait). */
export const DEFRAG_MIN_GAP_SECONDS = 600;
/** NOSPACE is disarmed only when every voter's db is below this share of the quota (etcd-defrag's 0.9). */
export const DISARM_QUOTA_PERCENT = 90;
/** Under NOSPACE, a member is defragmented again at most this often in one pass (after its first). */
export const NOSPACE_REPEATS = 2;
/** ...and each repeat at least this long after its last defragmentation (its compaction's time to run). */
export const NOSPACE_REPEAT_GAP_SECONDS = 5;

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * Why defragmenting this member is worth it, or null: enough free space (db size - in use) to be
 * worth the pause, and either that free space is a large share of the db, or the db is near the
 * quota (etcd-defrag's `dbSizeFree` and `dbQuotaUsage`).
 */
export function defragWorth(
  status: MemberStatus,
  quotaBytes: number,
  settings: DefragSettings,
): string | null {
  if (status.dbSizeInUse === undefined) return null;
  const free = status.dbSize - status.dbSizeInUse;
  if (free * 100 < quotaBytes * DEFRAG_MIN_FREE_PERCENT_OF_QUOTA) return null;
  if (settings.freePercent > 0 && free * 100 >= status.dbSize * settings.freePercent)
    return `${mib(free)} of its ${mib(status.dbSize)} db is free (at least ${settings.freePercent}%)`;
  if (settings.quotaPercent > 0 && status.dbSize * 100 >= quotaBytes * settings.quotaPercent)
    return `its ${mib(status.dbSize)} db is at least ${settings.quotaPercent}% of the ${mib(quotaBytes)} quota, ${mib(free)} free`;
  return null;
}

function ageSeconds(since: string, now: string): number {
  return (Date.parse(now) - Date.parse(since)) / 1000;
}

/** Voters only: etcd serves a learner Status and serializable reads, never Defragment. */
function voters(cluster: ClusterView): MemberView[] {
  return cluster.members.filter((m) => !m.isLearner && isStarted(m));
}

/**
 * The members that need a defragmentation now, followers first (by member ID) and the leader last,
 * each with why. Under NOSPACE (after the compaction): every voter not defragmented since that has
 * at least DEFRAG_MIN_FREE_PERCENT_OF_QUOTA of the quota free (or reports no in-use size).
 */
const AGAIN = "NOSPACE is raised and its db is still full or has pages free after its defragmentation";

export function defragCandidates(
  cluster: ClusterView,
  s: StorageObservation,
  now: string,
): Array<{ member: MemberView; why: string }> {
  const nospace = alarmsOf(cluster.members).includes("NOSPACE");
  const out: Array<{ member: MemberView; why: string }> = [];
  for (const m of voters(cluster)) {
    if (nospace) {
      if (s.compactedAt === null) continue;
      const at = s.defraggedAt[m.id];
      // Only where the compaction left pages to return: with live data near the quota, a pass
      // that frees nothing would rewrite every db again every DEFRAG_MIN_GAP_SECONDS, for ever.
      const free = m.status?.dbSizeInUse === undefined ? null : m.status.dbSize - m.status.dbSizeInUse;
      const worth = free === null || free * 100 >= s.quotaBytes * DEFRAG_MIN_FREE_PERCENT_OF_QUOTA;
      // Still full counts too: the pages a compaction frees stay pending in bbolt until the next
      // write commits, and NOSPACE refuses writes, so dbSizeInUse need not fall (seen on the leader,
      // whose compaction the compact call waits for). Bounded below: a few a pass, a pass per gap.
      const stillFull = m.status !== null && m.status.dbSize * 100 >= s.quotaBytes * DISARM_QUOTA_PERCENT;
      if ((worth || stillFull) && (at === undefined || Date.parse(at) < Date.parse(s.compactedAt)))
        out.push({ member: m, why: "NOSPACE is raised and the cluster has been compacted" });
      // Defragmented since the compaction, yet still full or with pages free again: etcd compacts
      // each member's backend in the background, and a defragmentation that ran first returned
      // nothing; the pages the compaction frees afterwards stay pending in bbolt (no write commits
      // while NOSPACE refuses writes), so dbSizeInUse need not show them: only a defragmentation
      // returns them. Again, a gap after the last one, at most NOSPACE_REPEATS times a pass.
      else if (at !== undefined && m.status !== null) {
        const repeats = Math.max(0, (s.passDefrags?.[m.id] ?? 1) - 1);
        if (
          (stillFull || (free !== null && worth)) &&
          repeats < NOSPACE_REPEATS &&
          ageSeconds(at, now) >= NOSPACE_REPEAT_GAP_SECONDS
        )
          out.push({ member: m, why: AGAIN });
      }
      continue;
    }
    const why = m.status === null ? null : defragWorth(m.status, s.quotaBytes, s.defrag);
    if (why !== null) out.push({ member: m, why });
  }
  const leaderLast = (m: MemberView) => (m.id === cluster.leaderId ? 1 : 0);
  // Every member's first defragmentation of the pass before any repeat.
  const repeat = (c: { why: string }) => (c.why === AGAIN ? 1 : 0);
  return out.sort(
    (a, b) =>
      repeat(a) - repeat(b) ||
      leaderLast(a.member) - leaderLast(b.member) ||
      (a.member.id < b.member.id ? -1 : 1),
  );
}

/**
 * The leader's storage actions this cycle: at most one of compact, defragment (one member) or
 * disarm, and the holds that name why not. `corrupt`: CORRUPT is raised (nothing is touched);
 * `busy`: another membership or destructive action is planned this cycle.
 */
export function planStorage(
  cluster: ClusterView,
  s: StorageObservation,
  now: string,
  view: { corrupt: boolean; busy: boolean },
): { actions: StorageAction[]; holds: Hold[] } {
  const holds: Hold[] = [];
  const nospace = alarmsOf(cluster.members).includes("NOSPACE");
  const candidates = defragCandidates(cluster, s, now);
  const wanted = nospace || candidates.length > 0;
  if (!wanted) return { actions: [], holds };
  if (view.corrupt) {
    holds.push(
      hold("etcd-alarm-corrupt", "no compaction, defragmentation or disarm while CORRUPT is raised"),
    );
    return { actions: [], holds };
  }
  if (s.running !== null) {
    holds.push(
      hold(
        "defrag-in-progress",
        `member ${s.running.memberId} is being defragmented (since ${s.running.since})`,
      ),
    );
    return { actions: [], holds };
  }
  if (nospace && s.compactedAt === null) {
    return {
      actions: [
        { type: "compact", reason: "NOSPACE is raised: compact to the current revision, then defragment" },
      ],
      holds,
    };
  }
  const first = candidates[0];
  if (first === undefined) {
    // NOSPACE, every voter defragmented since the compaction: disarm when there is room again.
    const full = voters(cluster).filter(
      (m) => m.status === null || m.status.dbSize * 100 >= s.quotaBytes * DISARM_QUOTA_PERCENT,
    );
    const passAge = s.compactedAt === null ? 0 : ageSeconds(s.compactedAt, now);
    if (full.length > 0 && passAge >= DEFRAG_MIN_GAP_SECONDS) {
      // A defragmentation may have failed, or writes refused still hold space: a new pass.
      return {
        actions: [
          {
            type: "compact",
            reason: `NOSPACE is still raised ${Math.round(passAge)}s after the last pass's compaction: compact and defragment again`,
          },
        ],
        holds,
      };
    }
    if (full.length > 0) {
      holds.push(
        hold(
          "nospace-still-full",
          `after compaction and defragmentation ${full.map((m) => `${m.id} (${m.status ? mib(m.status.dbSize) : "unknown"})`).join(", ")} ${full.length === 1 ? "is" : "are"} still at or above ${DISARM_QUOTA_PERCENT}% of the ${mib(s.quotaBytes)} quota`,
        ),
      );
      return { actions: [], holds };
    }
    return {
      actions: [
        {
          type: "disarm-nospace",
          reason: `every voter was compacted and defragmented and is below ${DISARM_QUOTA_PERCENT}% of the ${mib(s.quotaBytes)} quota`,
        },
      ],
      holds,
    };
  }
  const m = first.member;
  const label = m.name || m.id;
  if (view.busy) {
    holds.push(hold("one-change-per-cycle", `defragmenting ${m.id} (${label}) waits for the next cycle`));
    return { actions: [], holds };
  }
  const unhealthy = cluster.members.filter((x) => !isHealthy(x));
  if (unhealthy.length > 0) {
    holds.push(
      hold(
        "defrag-member-unhealthy",
        `defragmenting ${m.id} (${label}) waits: ${unhealthy.map((x) => x.name || x.id).join(", ")} not healthy`,
      ),
    );
    return { actions: [], holds };
  }
  const vs = voters(cluster);
  const left = vs.filter((x) => x.id !== m.id && isHealthy(x)).length;
  if (left < quorumSize(vs.length) && !nospace) {
    holds.push(
      hold(
        "defrag-quorum",
        `defragmenting ${m.id} (${label}) would leave ${left} of ${vs.length} voters answering, ${quorumSize(vs.length)} needed`,
      ),
    );
    return { actions: [], holds };
  }
  const last = s.defraggedAt[m.id];
  if (!nospace && last !== undefined && ageSeconds(last, now) < DEFRAG_MIN_GAP_SECONDS) {
    holds.push(
      hold(
        "defrag-recent",
        `${m.id} (${label}) was defragmented ${Math.round(ageSeconds(last, now))}s ago (gap ${DEFRAG_MIN_GAP_SECONDS}s): ${first.why}`,
      ),
    );
    return { actions: [], holds };
  }
  const role = m.id === cluster.leaderId ? "leader" : "follower";
  const pause =
    left < quorumSize(vs.length)
      ? "; quorum pauses with it, but the cluster already refuses writes (NOSPACE)"
      : "";
  return {
    actions: [
      {
        type: "defragment",
        memberId: m.id,
        label,
        clientUrls: [...m.clientUrls],
        role,
        reason: `${role} ${m.id} (${label}): ${first.why}${pause}`,
      },
    ],
    holds,
  };
}

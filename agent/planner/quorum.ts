// Quorum arithmetic lives here and nowhere else.

/** Votes needed for a raft cluster of `voters` voting members to make progress. */
export function quorumSize(voters: number): number {
  if (!Number.isInteger(voters) || voters < 0) {
    throw new RangeError(`voters must be a non-negative integer, got ${voters}`);
  }
  return Math.floor(voters / 2) + 1;
}

export interface VoterCounts {
  voters: number;
  healthyVoters: number;
}

/** True when the healthy voters are enough for the voters to make progress. */
export function hasQuorum(counts: VoterCounts): boolean {
  return counts.voters > 0 && counts.healthyVoters >= quorumSize(counts.voters);
}

/**
 * Whether removing one member keeps the cluster able to make progress: after the removal the
 * remaining healthy voters must still be a quorum of the remaining voters, and at least one voter
 * must remain. Learners do not vote, so removing one never changes the counts.
 */
export function quorumAfterRemoval(
  counts: VoterCounts,
  removed: { isVoter: boolean; isHealthy: boolean },
): { ok: boolean; after: VoterCounts; needed: number } {
  const after: VoterCounts = {
    voters: counts.voters - (removed.isVoter ? 1 : 0),
    healthyVoters: counts.healthyVoters - (removed.isVoter && removed.isHealthy ? 1 : 0),
  };
  const needed = after.voters > 0 ? quorumSize(after.voters) : 1;
  return { ok: after.voters > 0 && after.healthyVoters >= needed, after, needed };
}

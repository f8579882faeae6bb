// What the agent remembers between cycles: when it first saw a member not started or unhealthy.
// Pure: the loop keeps the value and passes it back in.
import { isHealthy, isStarted } from "./membership.js";
import type { MemberView } from "./observation.js";

export interface Memory {
  firstSeenUnstarted: Record<string, string>;
  unhealthySince: Record<string, string>;
  reportedUnhealthy: string[];
}

export function emptyMemory(): Memory {
  return { firstSeenUnstarted: {}, unhealthySince: {}, reportedUnhealthy: [] };
}

/** Remembers first sightings; forgets members that started, recovered or left. */
export function rememberMembers(memory: Memory, members: MemberView[], now: string): Memory {
  const firstSeenUnstarted: Record<string, string> = {};
  const unhealthySince: Record<string, string> = {};
  for (const m of members) {
    if (!isStarted(m)) firstSeenUnstarted[m.id] = memory.firstSeenUnstarted[m.id] ?? now;
    if (!isHealthy(m)) unhealthySince[m.id] = memory.unhealthySince[m.id] ?? now;
  }
  return { firstSeenUnstarted, unhealthySince, reportedUnhealthy: memory.reportedUnhealthy };
}

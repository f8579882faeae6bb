// What the agent remembers between cycles: when it first saw a member not started or unhealthy.
// Pure: the loop keeps the value and passes it back in.
import { isHealthy, isStarted } from "./membership.js";
import type { MemberView } from "./observation.js";

export interface Memory {
  firstSeenUnstarted: Record<string, string>;
  unhealthySince: Record<string, string>;
  reportedUnhealthy: string[];
  /** When each instance was reported (ISO-8601), so that a report AWS dropped is sent again. */
  reportedUnhealthyAt: Record<string, string>;
  /** Boot: when no member of the marked cluster first answered (ISO-8601); null while one answers. */
  unreachableSince: string | null;
}

export function emptyMemory(): Memory {
  return {
    firstSeenUnstarted: {},
    unhealthySince: {},
    reportedUnhealthy: [],
    reportedUnhealthyAt: {},
    unreachableSince: null,
  };
}

const isRecordOfStrings = (v: unknown): v is Record<string, string> =>
  typeof v === "object" &&
  v !== null &&
  !Array.isArray(v) &&
  Object.values(v).every((x) => typeof x === "string" && !Number.isNaN(Date.parse(x)));

/**
 * Reads memory persisted by `LocalNode.writeMemory`. Anything missing or malformed falls back to
 * empty: a clock that starts again only makes the agent wait longer, never act sooner.
 */
export function parseMemory(raw: unknown): Memory {
  const m = emptyMemory();
  if (typeof raw !== "object" || raw === null) return m;
  const r = raw as Record<string, unknown>;
  if (isRecordOfStrings(r.firstSeenUnstarted)) m.firstSeenUnstarted = r.firstSeenUnstarted;
  if (isRecordOfStrings(r.unhealthySince)) m.unhealthySince = r.unhealthySince;
  if (Array.isArray(r.reportedUnhealthy) && r.reportedUnhealthy.every((x) => typeof x === "string"))
    m.reportedUnhealthy = r.reportedUnhealthy;
  if (isRecordOfStrings(r.reportedUnhealthyAt)) m.reportedUnhealthyAt = r.reportedUnhealthyAt;
  if (typeof r.unreachableSince === "string" && !Number.isNaN(Date.parse(r.unreachableSince)))
    m.unreachableSince = r.unreachableSince;
  return m;
}

/** Remembers first sightings; forgets members that started, recovered or left. */
export function rememberMembers(memory: Memory, members: MemberView[], now: string): Memory {
  const firstSeenUnstarted: Record<string, string> = {};
  const unhealthySince: Record<string, string> = {};
  for (const m of members) {
    if (!isStarted(m)) firstSeenUnstarted[m.id] = memory.firstSeenUnstarted[m.id] ?? now;
    if (!isHealthy(m)) unhealthySince[m.id] = memory.unhealthySince[m.id] ?? now;
  }
  return { ...memory, firstSeenUnstarted, unhealthySince };
}

// What the agent remembers between cycles: when it first saw a member not started or unhealthy.
// Pure: the loop keeps the value and passes it back in.
import { isHealthy, isStarted } from "./membership.js";
import type { MemberView } from "./observation.js";

export interface Memory {
  firstSeenUnstarted: Record<string, string>;
  unhealthySince: Record<string, string>;
  reportedUnhealthy: string[];
  /** Boot: when no member of the marked cluster first answered (ISO-8601); null while one answers. */
  unreachableSince: string | null;
  /** Boot: the last observation that confirmed no member answers (ISO-8601); null while one answers. */
  unreachableConfirmedAt: string | null;
}

export function emptyMemory(): Memory {
  return {
    firstSeenUnstarted: {},
    unhealthySince: {},
    reportedUnhealthy: [],
    unreachableSince: null,
    unreachableConfirmedAt: null,
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
  if (typeof r.unreachableSince === "string" && !Number.isNaN(Date.parse(r.unreachableSince)))
    m.unreachableSince = r.unreachableSince;
  if (typeof r.unreachableConfirmedAt === "string" && !Number.isNaN(Date.parse(r.unreachableConfirmedAt)))
    m.unreachableConfirmedAt = r.unreachableConfirmedAt;
  // Half a clock is no clock: without both, it starts again.
  if (m.unreachableSince === null || m.unreachableConfirmedAt === null) {
    m.unreachableSince = null;
    m.unreachableConfirmedAt = null;
  }
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

/**
 * The longest gap between two observations that still continues the unreachable clock. Between
 * rounds of one boot there are at most 3 s of waiting plus one observation (AWS and etcd calls,
 * each with its own deadline of seconds); between boots, systemd's RestartSec (15 s) and the
 * process's start. 120 s covers both with room to spare. A longer gap (the node was off, or the
 * boot unit gave up and was started by hand a day later) means nobody watched: a member may have
 * answered meanwhile, so the clock starts again (later, never sooner: the safe direction).
 */
export const UNREACHABLE_GAP_SECONDS = 120;

/**
 * Boot: carries `unreachableSince` across rounds and boots. `answered`: some member of a cluster
 * answered this round (the clock stops). A gap over UNREACHABLE_GAP_SECONDS since the last
 * confirmation, or a clock that reads in the future, restarts it at `now`.
 */
export function observeUnreachable(memory: Memory, answered: boolean, now: string): Memory {
  if (answered) return { ...memory, unreachableSince: null, unreachableConfirmedAt: null };
  const t = Date.parse(now);
  const last =
    memory.unreachableConfirmedAt === null ? Number.NaN : Date.parse(memory.unreachableConfirmedAt);
  const since = memory.unreachableSince === null ? Number.NaN : Date.parse(memory.unreachableSince);
  const continues =
    !Number.isNaN(last) &&
    !Number.isNaN(since) &&
    since <= t &&
    last <= t &&
    t - last <= UNREACHABLE_GAP_SECONDS * 1000;
  return {
    ...memory,
    unreachableSince: continues ? memory.unreachableSince : now,
    unreachableConfirmedAt: now,
  };
}

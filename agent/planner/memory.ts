// What the agent remembers between cycles (and, persisted in the state dir, across restarts): when
// it first saw a member not started, unhealthy, healthy again or without its instance, its recent
// DNS writes, the alarms it has logged, and this node's own leave. Pure: the loop keeps the value
// and passes it back in.
import { alarmsOf, instanceOfMember, isHealthy, isStarted } from "./membership.js";
import type { AsgView, MemberView } from "./observation.js";

export interface Memory {
  firstSeenUnstarted: Record<string, string>;
  /**
   * When each member was first seen unhealthy, kept until it has been healthy for RECOVERY_SECONDS:
   * one healthy sample does not reset it (a member that answers every other cycle stays unhealthy).
   */
  unhealthySince: Record<string, string>;
  /** Members with an unhealthySince that answer again: since when, unbroken (ISO-8601). */
  healthySince: Record<string, string>;
  /** The members that were learners when last seen (a promotion clears an unhealthy-since at once). */
  learners: string[];
  /** Started members whose instance the ASG listing does not hold: since when (ISO-8601). */
  missingSince: Record<string, string>;
  reportedUnhealthy: string[];
  /** When this agent changed DNS records, within the last DNS_WRITE_WINDOW_SECONDS (ISO-8601). */
  dnsWrites: string[];
  /** The etcd alarms logged as raised and not yet as cleared. */
  alarms: string[];
  /** This node's leave: when it was first seen terminating, and when its records were first seen gone. */
  leavingSince: string | null;
  drainedSince: string | null;
  /** Boot: when no member of the marked cluster first answered (ISO-8601); null while one answers. */
  unreachableSince: string | null;
  /** The run loop last looked at the members (kept to the minute): how old the member clocks are. */
  observedAt: string | null;
  /** Boot: the last observation that confirmed no member answers (ISO-8601); null while one answers. */
  unreachableConfirmedAt: string | null;
  /** Boot: instances EC2 did not know (filtered DescribeInstances), since when, unbroken (ISO-8601). */
  notFoundSince: Record<string, string>;
}

/** A member counts as recovered after answering, without a miss, for this long (three 10 s cycles). */
export const RECOVERY_SECONDS = 30;

/** DNS writes are counted over this window for the write budget. */
export const DNS_WRITE_WINDOW_SECONDS = 60;

/** observedAt is refreshed this often, so an idle loop writes its memory once a minute at most. */
const OBSERVED_EVERY_SECONDS = 60;

/**
 * Member clocks older than this (the agent was stopped, the node rebooted) start again: nobody
 * watched the members in between, so the gap is not time they were unhealthy or missing.
 */
export const STALE_CLOCKS_SECONDS = 300;

export function emptyMemory(): Memory {
  return {
    firstSeenUnstarted: {},
    unhealthySince: {},
    healthySince: {},
    missingSince: {},
    learners: [],
    reportedUnhealthy: [],
    dnsWrites: [],
    alarms: [],
    leavingSince: null,
    drainedSince: null,
    unreachableSince: null,
    observedAt: null,
    unreachableConfirmedAt: null,
    notFoundSince: {},
  };
}

const isTime = (x: unknown): x is string => typeof x === "string" && !Number.isNaN(Date.parse(x));

const isRecordOfStrings = (v: unknown): v is Record<string, string> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every(isTime);

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

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
  if (isRecordOfStrings(r.healthySince)) m.healthySince = r.healthySince;
  if (isRecordOfStrings(r.missingSince)) m.missingSince = r.missingSince;
  if (isStringList(r.reportedUnhealthy)) m.reportedUnhealthy = r.reportedUnhealthy;
  if (isStringList(r.learners)) m.learners = r.learners;
  if (isStringList(r.dnsWrites) && r.dnsWrites.every(isTime)) m.dnsWrites = r.dnsWrites;
  if (isStringList(r.alarms)) m.alarms = r.alarms;
  if (isTime(r.leavingSince)) m.leavingSince = r.leavingSince;
  if (isTime(r.drainedSince)) m.drainedSince = r.drainedSince;
  if (isTime(r.unreachableSince)) m.unreachableSince = r.unreachableSince;
  if (isTime(r.observedAt)) m.observedAt = r.observedAt;
  if (isTime(r.unreachableConfirmedAt)) m.unreachableConfirmedAt = r.unreachableConfirmedAt;
  if (isRecordOfStrings(r.notFoundSince)) m.notFoundSince = r.notFoundSince;
  // Half a clock is no clock: without both, it starts again.
  if (m.unreachableSince === null || m.unreachableConfirmedAt === null) {
    m.unreachableSince = null;
    m.unreachableConfirmedAt = null;
  }
  return m;
}

/**
 * The memory read back at start, with the member clocks started again when they were last kept
 * more than STALE_CLOCKS_SECONDS ago (or never): a restart keeps every deadline, a long stop
 * waits longer, never acts sooner.
 */
export function resumeMemory(memory: Memory, now: string): Memory {
  const fresh =
    memory.observedAt !== null &&
    ageSeconds(memory.observedAt, now) <= STALE_CLOCKS_SECONDS + OBSERVED_EVERY_SECONDS;
  if (fresh) return memory;
  return { ...memory, unhealthySince: {}, healthySince: {}, missingSince: {} };
}

const ageSeconds = (since: string, now: string) => (Date.parse(now) - Date.parse(since)) / 1000;

/**
 * Remembers first sightings; forgets members that started, recovered (healthy for RECOVERY_SECONDS)
 * or left. With the ASG listing (null or absent: not read), also when a started member's instance
 * went missing from it; without, those clocks are kept as they are.
 */
export function rememberMembers(
  memory: Memory,
  members: MemberView[],
  now: string,
  asg?: AsgView | null,
): Memory {
  const firstSeenUnstarted: Record<string, string> = {};
  const unhealthySince: Record<string, string> = {};
  const healthySince: Record<string, string> = {};
  const missingSince: Record<string, string> = {};
  for (const m of members) {
    if (!isStarted(m)) firstSeenUnstarted[m.id] = memory.firstSeenUnstarted[m.id] ?? now;
    const was = memory.unhealthySince[m.id];
    if (!isHealthy(m)) unhealthySince[m.id] = was ?? now;
    else if (was !== undefined && !m.isLearner && !memory.learners.includes(m.id)) {
      // A voter must answer for RECOVERY_SECONDS; a learner (not in DNS, not a vote), or one just
      // promoted, recovers at once, so a joiner that started slowly is published when promoted.
      const back = memory.healthySince[m.id] ?? now;
      if (ageSeconds(back, now) < RECOVERY_SECONDS) {
        unhealthySince[m.id] = was;
        healthySince[m.id] = back;
      }
    }
    const known = memory.missingSince[m.id];
    if (asg === undefined || asg === null) {
      if (known !== undefined) missingSince[m.id] = known;
    } else if (instanceOfMember(m, asg) === null) missingSince[m.id] = known ?? now;
  }
  const learners = members.filter((m) => m.isLearner).map((m) => m.id);
  const observedAt =
    memory.observedAt !== null && ageSeconds(memory.observedAt, now) < OBSERVED_EVERY_SECONDS
      ? memory.observedAt
      : now;
  return {
    ...memory,
    firstSeenUnstarted,
    unhealthySince,
    healthySince,
    missingSince,
    learners,
    observedAt,
  };
}

/** Keeps the DNS writes inside the budget's window, plus `wrote` when given. */
export function rememberDnsWrites(memory: Memory, now: string, wrote = false): Memory {
  const recent = memory.dnsWrites.filter((t) => ageSeconds(t, now) < DNS_WRITE_WINDOW_SECONDS);
  return { ...memory, dnsWrites: wrote ? [...recent, now] : recent };
}

/** The alarms raised and cleared since the memory was taken; the memory updated to the current ones. */
export function rememberAlarms(
  memory: Memory,
  members: MemberView[],
): { memory: Memory; raised: string[]; cleared: string[] } {
  const now = alarmsOf(members);
  return {
    memory: { ...memory, alarms: now },
    raised: now.filter((a) => !memory.alarms.includes(a)),
    cleared: memory.alarms.filter((a) => !now.includes(a)),
  };
}

/**
 * This node's leave: since when it has been terminating, and since when its DNS records have been
 * seen gone (`published` null: the zone could not be read, the clock is kept as it is).
 */
export function rememberLeave(
  memory: Memory,
  terminating: boolean,
  published: boolean | null,
  now: string,
): Memory {
  if (!terminating) return { ...memory, leavingSince: null, drainedSince: null };
  const drainedSince =
    published === null ? memory.drainedSince : published ? null : (memory.drainedSince ?? now);
  return { ...memory, leavingSince: memory.leavingSince ?? now, drainedSince };
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

/**
 * EC2 may not show an instance for a while after it launched, and shows a terminated one as
 * `terminated` for about an hour: "not found" says it is gone only once it has lasted this long.
 */
export const NOT_FOUND_SETTLE_SECONDS = 600;

/**
 * Boot: folds EC2's answer for the instances the ASG did not list into the not-found clocks, and
 * returns the states the planner sees: `not-found` only once it has lasted NOT_FOUND_SETTLE_SECONDS
 * (before that `not-found-recently`, which is not gone); other states as EC2 gave them.
 */
export function observeNotFound(
  memory: Memory,
  states: Record<string, string>,
  now: string,
): { memory: Memory; states: Record<string, string> } {
  const notFoundSince: Record<string, string> = {};
  const seen: Record<string, string> = {};
  for (const [id, state] of Object.entries(states)) {
    if (state !== "not-found") {
      seen[id] = state;
      continue;
    }
    const since = memory.notFoundSince[id];
    const from = since !== undefined && Date.parse(since) <= Date.parse(now) ? since : now;
    notFoundSince[id] = from;
    seen[id] = ageSeconds(from, now) >= NOT_FOUND_SETTLE_SECONDS ? "not-found" : "not-found-recently";
  }
  return { memory: { ...memory, notFoundSince }, states: seen };
}

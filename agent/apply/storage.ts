// The leader's storage actions (planned by agent/planner/storage-plan.ts): compact for NOSPACE,
// defragment one member beside the loop (the loop keeps cycling, pinging and holding
// `defrag-in-progress` until it ends), disarm NOSPACE; and the alarm record for etcd's alarms.

import { eventsPrefix, putRecord } from "../backups/index.js";
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import { RULES } from "../planner/rules.js";
import type { StorageAction, StorageObservation } from "../planner/storage-plan.js";
import type { Ports } from "../ports/index.js";

/** One defragmentation is given this long (etcd rewrites the whole db file: minutes for 8 GiB). */
export const DEFRAG_TIMEOUT_MS = 600_000;

/** A member that answers no count-only read within this is taken as busy (maybe defragmenting). */
export const READ_PROBE_TIMEOUT_MS = 2000;

/** What the loop carries between cycles about storage. Not persisted: a restart starts over (harmless). */
export interface StorageState {
  running: { memberId: string; since: string; done: Promise<void> } | null;
  compactedAt: string | null;
  defraggedAt: Record<string, string>;
  /** Defragmentations of each member since the NOSPACE compaction (the planner bounds repeats). */
  passDefrags: Record<string, number>;
}

export function initialStorageState(): StorageState {
  return { running: null, compactedAt: null, defraggedAt: {}, passDefrags: {} };
}

/** What the planner sees of storage: the settings and this loop's state. */
export function storageObservation(config: AgentConfig, state?: StorageState): StorageObservation {
  const s = state ?? initialStorageState();
  return {
    quotaBytes: config.etcd.quotaBackendBytes,
    defrag: config.defrag,
    running: s.running === null ? null : { memberId: s.running.memberId, since: s.running.since },
    compactedAt: s.compactedAt,
    defraggedAt: { ...s.defraggedAt },
    passDefrags: { ...s.passDefrags },
  };
}

/** After an observation: a NOSPACE episode ends when the alarm is no longer raised. */
export function forgetCompaction(state: StorageState, nospace: boolean): void {
  if (!nospace) {
    state.compactedAt = null;
    state.passDefrags = {};
  }
}

/** Applies one storage action; false when it did not happen this cycle (logged). */
export async function applyStorage(
  ports: Ports,
  state: StorageState,
  action: StorageAction,
  endpoints: string[],
  log: Logger,
): Promise<boolean> {
  const fields = { action: action.type, reason: action.reason };
  try {
    switch (action.type) {
      case "compact": {
        const revision = await ports.etcd.compact(endpoints);
        state.compactedAt = ports.clock.now().toISOString();
        state.passDefrags = {};
        log.warn("compacted the key space for NOSPACE", { ...fields, revision });
        return true;
      }
      case "disarm-nospace": {
        const disarmed = await ports.etcd.alarmDisarm(endpoints, "NOSPACE");
        log.warn("disarmed NOSPACE: etcd accepts writes again", { ...fields, disarmed });
        return true;
      }
      case "defragment": {
        if (state.running !== null) return false;
        const endpoint = action.clientUrls[0];
        if (endpoint === undefined) return false;
        // This loop's memory is not the cluster's: an earlier leader's defragmentation, or one
        // whose call timed out while etcd went on, still pauses its member. Every member must
        // answer a read first, so that two are never paused at once.
        const busy: string[] = [];
        for (const url of endpoints)
          if (!(await ports.etcd.answersRead(url, READ_PROBE_TIMEOUT_MS))) busy.push(url);
        if (busy.length > 0) {
          log.info(`held back: ${RULES["defrag-in-progress"]}`, {
            ...fields,
            rule: "defrag-in-progress",
            detail: `${busy.join(", ")} answered no read within ${READ_PROBE_TIMEOUT_MS / 1000} s (perhaps defragmenting)`,
          });
          return false;
        }
        const started = ports.clock.now();
        log.info("defragmenting a member", { ...fields, member_id: action.memberId, role: action.role });
        const done = ports.etcd
          .defragment(endpoint, DEFRAG_TIMEOUT_MS)
          .then(
            () =>
              log.info("defragmented a member", {
                ...fields,
                member_id: action.memberId,
                pause_ms: ports.clock.now().getTime() - started.getTime(),
              }),
            (error: Error) =>
              log.error("defragmentation failed; the member is left as it is", {
                ...fields,
                member_id: action.memberId,
                error: error.message,
              }),
          )
          .finally(() => {
            // Failed too: a retry waits the gap (a NOSPACE alarm does not), and the health check
            // holds the next one should the member still be busy with it.
            state.defraggedAt[action.memberId] = ports.clock.now().toISOString();
            if (state.compactedAt !== null)
              state.passDefrags[action.memberId] = (state.passDefrags[action.memberId] ?? 0) + 1;
            state.running = null;
          });
        state.running = { memberId: action.memberId, since: started.toISOString(), done };
        return true;
      }
    }
  } catch (error) {
    log.error("storage action failed", { ...fields, error: (error as Error).message });
    return false;
  }
}

/** The key prefix (under the events/ prefix) of etcd alarm records. */
export const ETCD_ALARM_EVENT = "etcd-alarm-";

/**
 * An etcd alarm raised (NOSPACE, CORRUPT), as an object `events/etcd-alarm-<kind>-<cluster>-<time>.json`
 * that the construct's EtcdAlarmRaised rule sends to the alarm topic. Returns the key, or null when
 * backups are off (the log is all there is).
 */
export async function recordEtcdAlarm(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  event: { kind: string; clusterId: string; instanceId: string; reason: string },
): Promise<string | null> {
  if (!config.backup || !ports.backups) return null;
  const at = ports.clock.now().toISOString();
  const key = `${eventsPrefix(config.backup, asgName)}${ETCD_ALARM_EVENT}${event.kind.toLowerCase()}-${event.clusterId}-${at.replace(/[:.]/g, "")}.json`;
  await putRecord(ports.backups, key, { event: "etcd-alarm", at, ...event });
  return key;
}

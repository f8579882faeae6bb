// The alarm for two clusters behind one marker: a leader whose cluster is not the marker's writes
// an event object beside the restore records; the infrastructure's ForeignClusterFound rule on its
// key prefix alarms (infra/lib/cluster/alarms.ts), with no permission the node does not already have.

import type { AgentConfig } from "../config/config.js";
import type { Ports } from "../ports/index.js";
import { eventsPrefix, putRecord } from "./index.js";

/** The key prefix (under the events/ prefix) of foreign-cluster records. */
export const FOREIGN_CLUSTER_EVENT = "foreign-cluster-";

/**
 * Writes `events/foreign-cluster-<cluster>-<instance>.json`; the same leader, cluster and marker
 * write the same key, so a restarted agent does not alarm twice. Returns the key, or null when
 * backups are off (there is no bucket to alarm from: the error log is all there is).
 */
export async function recordForeignClusterEvent(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  event: {
    instanceId: string;
    clusterId: string;
    markerToken: string;
    markerCluster: string | null;
    reason: string;
  },
): Promise<string | null> {
  if (!config.backup || !ports.backups) return null;
  const marker = event.markerCluster ?? event.markerToken;
  const key = `${eventsPrefix(config.backup, asgName)}${FOREIGN_CLUSTER_EVENT}${event.clusterId}-${marker}-${event.instanceId}.json`;
  const at = ports.clock.now().toISOString();
  await putRecord(ports.backups, key, { event: "foreign-cluster", at, ...event });
  return key;
}

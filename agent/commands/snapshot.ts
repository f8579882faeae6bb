// `etcd-agent snapshot save | list | restore`: backups by hand, from a node or from the bastion.

import { listSnapshots, type SavedSnapshot, saveSnapshot } from "../backups/index.js";
import { type RestoreResult, restoreSnapshot } from "../backups/restore.js";
import type { AgentConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { observeDns } from "../observe/observe.js";
import type { SnapshotRef } from "../planner/backup-plan.js";
import { clientUrlFor } from "../planner/membership.js";
import type { Ports } from "../ports/index.js";

/** The group whose prefix to use: --asg-name, else this instance's own. */
async function groupName(ports: Ports, config: AgentConfig): Promise<string> {
  if (config.asgName) return config.asgName;
  const identity = await ports.metadata.identity();
  const asg = await ports.autoscaling.groupOf(identity.instanceId);
  if (asg === null)
    throw new ConfigError(
      `${identity.instanceId} belongs to no Auto Scaling group; give --asg-name (ETCD_AGENT_ASG_NAME)`,
    );
  return asg;
}

export async function runSnapshotSave(
  ports: Ports,
  config: AgentConfig,
  log: Logger,
): Promise<SavedSnapshot> {
  const asg = await groupName(ports, config);
  const endpoint =
    config.endpoints[0] ??
    clientUrlFor((await ports.metadata.identity()).privateIp, config.clientPort, config.scheme);
  const { marker } = await observeDns(ports.dns, config.domain, log);
  if (marker.kind !== "present") {
    throw new ConfigError(
      `the cluster marker _etcd-cluster.${config.domain} could not be read (${marker.kind}); a snapshot is named after the cluster's token`,
    );
  }
  // The members go with the snapshot: recovery restores only once every one of them has left the ASG.
  const members = (await ports.etcd.memberList([endpoint])).members
    .map((m) => m.name)
    .filter((n) => n !== "");
  return saveSnapshot(ports, config, asg, endpoint, marker.marker.token, log, members);
}

export async function runSnapshotList(ports: Ports, config: AgentConfig): Promise<SnapshotRef[]> {
  return listSnapshots(ports, config, await groupName(ports, config));
}

export async function runSnapshotRestore(
  ports: Ports,
  config: AgentConfig,
  log: Logger,
  o: { key?: string; dataDir: string; name: string; peerUrl: string; tool: string },
): Promise<RestoreResult> {
  if (!o.dataDir.startsWith("/"))
    throw new ConfigError(`--restore-data-dir must be an absolute path, got ${JSON.stringify(o.dataDir)}`);
  if (!/^https?:\/\/[^\s/]+:\d+$/.test(o.peerUrl))
    throw new ConfigError(
      `--peer-url must be a peer URL such as http://i-0123456789abcdef0.etcd.internal:2380, got ${JSON.stringify(o.peerUrl)}`,
    );
  if (!/^[\w.-]{1,128}$/.test(o.name))
    throw new ConfigError(
      `--name must be a member name such as i-0123456789abcdef0, got ${JSON.stringify(o.name)}`,
    );
  return restoreSnapshot(ports, config, await groupName(ports, config), log, o);
}

export function formatSnapshots(refs: SnapshotRef[]): string {
  if (refs.length === 0) return "no snapshots\n";
  const lines = refs.map((r) => `${r.takenAt}  rev ${r.revision.padStart(8)}  ${r.clusterToken}  ${r.key}`);
  return `${lines.join("\n")}\n`;
}

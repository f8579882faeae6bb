// What a boot decides on: read through the ports, turned into the plain BootObservation the boot
// planner takes. A read that fails becomes unknown (null), never "none".

import { listSnapshots, readRegistryEntry, registeredMembers } from "../backups/index.js";
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import type { BootObservation, Recovery } from "../planner/boot-plan.js";
import { clientUrlFor } from "../planner/membership.js";
import {
  emptyMemory,
  type Memory,
  observeNotFound,
  observeUnreachable,
  parseMemory,
  rememberMembers,
} from "../planner/memory.js";
import type { ClusterMarker, Identity } from "../planner/observation.js";
import type { Ports } from "../ports/index.js";
import { candidateEndpoints, observeCluster, observeDns, tryObserveAsg } from "./observe.js";

/**
 * Everything a boot decision takes, read once per round: the ASG, this instance's target state, the
 * zone and its marker, the local disk, the members that answer, what the backups say (only when no
 * member answers under an active or restoring marker), EC2's word on unlisted instances, and the
 * clocks kept across rounds (`memory`: when each unstarted member was first seen) and across boots
 * (memory.json: since when no member answered, which the restore bound counts from).
 */
export async function observeBoot(
  ports: Ports,
  config: AgentConfig,
  ctx: { identity: Identity; asgName: string },
  memory: Memory,
  log: Logger,
  /** persist false (boot --dry-run): the clocks in memory.json and the refused-snapshot records are not written. */
  o: { persist?: boolean } = {},
): Promise<{ observation: BootObservation; memory: Memory }> {
  const persist = o.persist !== false;
  const { identity } = ctx;
  const [asg, target, dns, hasData, state] = await Promise.all([
    tryObserveAsg(ports.autoscaling, ports.ec2, ctx.asgName, log),
    ports.metadata.targetLifecycleState().catch(() => null),
    observeDns(ports.dns, config.domain, log),
    ports.local.hasData(),
    ports.local.readState(),
  ]);
  const selfUrl = clientUrlFor(identity.privateIp, config.clientPort, config.scheme);
  const peers = candidateEndpoints(asg, config.clientPort, [], config.scheme).filter((u) => u !== selfUrl);
  const cluster =
    peers.length > 0 ? await observeCluster(ports.etcd, peers, asg, config.clientPort, config.scheme) : null;
  const recovery =
    cluster === null &&
    dns.marker.kind === "present" &&
    (dns.marker.marker.state === "active" || dns.marker.marker.state === "restoring")
      ? await observeRecovery(ports, config, ctx.asgName, dns.marker.marker, log, persist)
      : null;
  // EC2's word on the instances whose going would let this node take a claim over or restore: the
  // marker's claimant and the lost cluster's former members, when the ASG does not list them.
  const unlisted =
    cluster === null && dns.marker.kind === "present"
      ? [
          ...(dns.marker.marker.state !== "active" ? [dns.marker.marker.claimant] : []),
          ...(recovery?.formerMembers ?? []),
        ]
      : [];
  const ec2States = await observeUnlisted(ports, asg, unlisted, log, persist);
  const now = ports.clock.now().toISOString();
  const remembered = cluster ? rememberMembers(memory, cluster.members, now) : memory;
  // Since when no member answered, kept in the state dir across boots (systemd restarts a boot
  // that waited out its timeout): the restore bound counts from there, not from this process.
  const unreachableSince = (await trackUnreachable(ports, cluster !== null, now, log, persist)) ?? now;
  return {
    observation: {
      recovery: recovery && { ...recovery, unreachableSince },
      ec2States,
      self: { instanceId: identity.instanceId, privateIp: identity.privateIp, targetLifecycleState: target },
      asg,
      cluster,
      marker: dns.marker,
      local: { hasData, state },
      now,
      startupGraceSeconds: config.startupGraceSeconds,
      firstSeen: remembered.firstSeenUnstarted,
    },
    memory: remembered,
  };
}

/**
 * EC2's state of each of `ids` that the ASG does not list (`not-found` when EC2 does not know it):
 * a takeover or a restore needs EC2 to confirm such an instance terminated. Empty for the listed
 * ones, and all of it when EC2 could not be read (unknown: never gone).
 */
async function observeUnlisted(
  ports: Ports,
  asg: BootObservation["asg"],
  ids: string[],
  log: Logger,
  persist: boolean,
): Promise<Record<string, string>> {
  if (asg === null) return {};
  const unlisted = [...new Set(ids)].filter((id) => !asg.instances.some((i) => i.instanceId === id));
  if (unlisted.length === 0) return {};
  try {
    const facts = await ports.ec2.describeInstances(unlisted);
    const states = Object.fromEntries(
      unlisted.map((id) => [id, facts.find((f) => f.instanceId === id)?.state ?? "not-found"]),
    );
    // "Not found" may be an instance EC2 does not show yet: gone only once it has lasted.
    const stored = parseMemory(await ports.local.readMemory().catch(() => null));
    const seen = observeNotFound(stored, states, ports.clock.now().toISOString());
    if (persist && JSON.stringify(seen.memory.notFoundSince) !== JSON.stringify(stored.notFoundSince))
      await ports.local
        .writeMemory(seen.memory)
        .catch((error: Error) =>
          log.warn("could not persist the not-found clocks", { reason: error.message }),
        );
    return seen.states;
  } catch (error) {
    log.warn("could not read the EC2 state of instances the ASG does not list", {
      target_instance_id: unlisted.join(","),
      reason: (error as Error).message,
    });
    return {};
  }
}

/**
 * Advances the persisted unreachable clock (memory.json in the state dir) and returns since when
 * no member has answered (null when one answers). Only these fields of the file are touched.
 */
async function trackUnreachable(
  ports: Ports,
  answered: boolean,
  now: string,
  log: Logger,
  persist: boolean,
): Promise<string | null> {
  let stored: Memory;
  try {
    stored = parseMemory(await ports.local.readMemory());
  } catch (error) {
    log.warn("could not read the agent's memory; the unreachable clock starts again", {
      reason: (error as Error).message,
    });
    stored = emptyMemory();
  }
  const next = observeUnreachable(stored, answered, now);
  if (
    persist &&
    (next.unreachableSince !== stored.unreachableSince ||
      next.unreachableConfirmedAt !== stored.unreachableConfirmedAt)
  ) {
    try {
      await ports.local.writeMemory(next);
    } catch (error) {
      // Not persisted: the next boot starts the clock again (later, never sooner).
      log.warn("could not persist the unreachable clock", { reason: (error as Error).message });
    }
  }
  return next.unreachableSince;
}

/**
 * What the backups say about the lost cluster: its newest snapshot (only of its own token), and
 * every instance that was or may have been a member (the snapshot's members and the member
 * registry). Under a restoring marker the lost cluster is the one the restorer's registry entry
 * names. Null when backups are off or could not be read.
 */
async function observeRecovery(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  marker: ClusterMarker,
  log: Logger,
  persist: boolean,
): Promise<Omit<Recovery, "unreachableSince"> | null> {
  if (!config.backup || !ports.backups) return null;
  try {
    const formerToken =
      marker.state === "restoring"
        ? ((await readRegistryEntry(ports, config, asgName, marker.token, marker.claimant))?.restoredFrom ??
          null)
        : marker.token;
    const refs = await listSnapshots(ports, config, asgName, log, { recordRefused: persist });
    const own = formerToken === null ? [] : refs.filter((r) => r.clusterToken === formerToken);
    const newest = own[0] ?? null;
    const other = newest === null ? (refs[0] ?? null) : null;
    const meta = newest ? await ports.backups.head(newest.key) : {};
    const registered =
      formerToken === null ? [] : await registeredMembers(ports, config, asgName, formerToken);
    const fromSnapshot = (meta.members ?? "").split(",").filter((m) => m !== "");
    return {
      formerToken,
      newest: newest ? { key: newest.key, takenAt: newest.takenAt } : null,
      older: own.slice(1).map((r) => r.key),
      otherNewest: other ? { key: other.key, clusterToken: other.clusterToken } : null,
      formerMembers: [...new Set([...fromSnapshot, ...registered])].sort(),
      restoreAfterSeconds: config.backup.restoreAfterSeconds,
    };
  } catch (error) {
    log.warn("could not read the backups", { reason: (error as Error).message });
    return null;
  }
}

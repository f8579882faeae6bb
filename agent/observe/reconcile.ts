// What the reconcile loop (and `etcd-agent plan`) decides on: read through the ports and folded
// with the loop's clocks into the one ReconcileObservation the planner takes, built once.
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import { isPublished } from "../planner/dns-plan.js";
import { clientUrlFor, findSelfMember, instanceOfMember, isHealthy, urlHost } from "../planner/membership.js";
import { type Memory, rememberDnsWrites, rememberLeave, rememberMembers } from "../planner/memory.js";
import type { AsgView, ClusterView, DnsRecord, Identity, SelfView } from "../planner/observation.js";
import type { ReconcileObservation } from "../planner/reconcile-plan.js";
import type { StorageObservation } from "../planner/storage-plan.js";
import type { LifecycleHooks } from "../ports/autoscaling.js";
import type { Ports } from "../ports/index.js";
import { candidateEndpoints, observeCluster, observeDns, tryObserveAsg } from "./observe.js";
import type { ClusterSnapshot } from "./snapshot.js";

/** The part of the agent's configuration the reconcile planner reads. */
export function plannerSettings(config: AgentConfig): ReconcileObservation["config"] {
  return {
    domain: config.domain,
    peerPort: config.peerPort,
    clientPort: config.clientPort,
    tls: config.tls !== null,
    startupGraceSeconds: config.startupGraceSeconds,
    unhealthyDeadlineSeconds: config.unhealthyDeadlineSeconds,
  };
}

/** What an observation reads from the loop's state and folds what it saw into. */
export interface ObservedState {
  memory: Memory;
  /** Client URLs of the members seen last, to find the cluster when the local etcd is down. */
  knownEndpoints: string[];
  /** The lifecycle hooks, read once. */
  hooks: LifecycleHooks | null;
  /** This instance has been seen InService: no more ASG reads as a follower. */
  launchSettled: boolean;
}

/**
 * One cycle's observation. Reads etcd (this node first, then the members seen last, then the ASG's
 * instances), the ASG when it matters (leader, leaving, launching), the hooks once, the zone on the
 * leader and on a leaving node, and the local state; folds what it saw into `state` (the clocks,
 * the known endpoints, the launch settled) and returns the observation with those clocks.
 */
export async function observeReconcile(
  ports: Ports,
  config: AgentConfig,
  ctx: { identity: Identity; asgName: string },
  state: ObservedState,
  storage: () => StorageObservation,
  log: Logger,
  options: { readEverything?: boolean } = {},
): Promise<ReconcileObservation> {
  const { identity } = ctx;
  const selfUrl = clientUrlFor(identity.privateIp, config.clientPort, config.scheme);
  const target = await ports.metadata.targetLifecycleState().catch(() => null);

  let asg: AsgView | null = null;
  let asgRead = false;
  const readAsg = async () => {
    if (!asgRead) {
      asg = await tryObserveAsg(ports.autoscaling, ports.ec2, ctx.asgName, log);
      asgRead = true;
    }
    return asg;
  };

  let cluster: ClusterView | null = await observeCluster(
    ports.etcd,
    [selfUrl, ...state.knownEndpoints.filter((u) => u !== selfUrl)],
    null,
    config.clientPort,
    config.scheme,
  );
  if (cluster === null) {
    const peers = candidateEndpoints(await readAsg(), config.clientPort, [selfUrl], config.scheme);
    cluster = await observeCluster(ports.etcd, peers, asg, config.clientPort, config.scheme);
  }
  const me = cluster ? findSelfMember(cluster.members, identity.instanceId, identity.privateIp) : null;
  const leader = cluster !== null && me !== null && cluster.leaderId === me.id;
  const terminating = target === "Terminated";

  if (options.readEverything || leader || terminating || !state.launchSettled) await readAsg();
  if ((options.readEverything || terminating || !state.launchSettled) && state.hooks === null) {
    state.hooks = await ports.autoscaling.lifecycleHooks(ctx.asgName).catch((error: Error) => {
      log.warn("could not read the lifecycle hooks", { reason: error.message });
      return null;
    });
  }
  // The ASG's own state is the second source the issue names for a termination; IMDS is the first.
  const selfState = (asg as AsgView | null)?.instances.find(
    (i) => i.instanceId === identity.instanceId,
  )?.lifecycleState;
  const effectiveTarget =
    selfState === "Terminating" || selfState === "Terminating:Wait" ? "Terminated" : target;
  // A leaving member reads the records too: it leaves etcd only once DNS has let it go (the drain).
  const dns =
    options.readEverything || leader || effectiveTarget === "Terminated"
      ? await observeDns(ports.dns, config.domain, log)
      : { records: null, marker: { kind: "absent" as const } };
  const local = await ports.local.readState();
  const storageSeen = storage();
  const now = ports.clock.now().toISOString();
  const self: SelfView = {
    instanceId: identity.instanceId,
    privateIp: identity.privateIp,
    targetLifecycleState: effectiveTarget,
  };
  const memory = remember(state, { self, asg, cluster, dns: dns.records, now, domain: config.domain });

  return {
    self,
    asg,
    cluster,
    marker: dns.marker,
    dns: dns.records,
    hooks: state.hooks,
    now,
    firstSeenUnstarted: memory.firstSeenUnstarted,
    unhealthySince: memory.unhealthySince,
    reportedUnhealthy: memory.reportedUnhealthy,
    reportedUnhealthyAt: memory.reportedUnhealthyAt,
    missingSince: memory.missingSince,
    dnsWrites: memory.dnsWrites,
    leavingSince: memory.leavingSince,
    drainedSince: memory.drainedSince,
    localClusterToken: local?.clusterToken ?? null,
    config: plannerSettings(config),
    storage: storageSeen,
  };
}

/** Folds what was seen into the loop's state (its memory, known endpoints, launch settled); returns the memory. */
function remember(
  state: ObservedState,
  seen: {
    self: SelfView;
    asg: AsgView | null;
    cluster: ClusterView | null;
    dns: DnsRecord[] | null;
    now: string;
    domain: string;
  },
): Memory {
  let memory = rememberDnsWrites(state.memory, seen.now);
  if (seen.cluster !== null) {
    memory = rememberMembers(memory, seen.cluster.members, seen.now, seen.asg);
    const urls = seen.cluster.members.flatMap((m) => m.clientUrls);
    if (urls.length > 0) state.knownEndpoints = urls;
  }
  // A reported instance is forgotten once it has left the group (the list is persisted).
  const asg = seen.asg;
  if (asg !== null) {
    const reportedUnhealthy = memory.reportedUnhealthy.filter((id) =>
      asg.instances.some((i) => i.instanceId === id),
    );
    const reportedUnhealthyAt = Object.fromEntries(
      Object.entries(memory.reportedUnhealthyAt).filter(([id]) => reportedUnhealthy.includes(id)),
    );
    memory = { ...memory, reportedUnhealthy, reportedUnhealthyAt };
  }
  const me = seen.cluster && findSelfMember(seen.cluster.members, seen.self.instanceId, seen.self.privateIp);
  const published = me && seen.dns !== null ? isPublished(me.name, seen.dns, seen.domain) : null;
  memory = rememberLeave(memory, seen.self.targetLifecycleState === "Terminated", published, seen.now);
  state.memory = memory;
  const selfInstance = seen.asg?.instances.find((i) => i.instanceId === seen.self.instanceId);
  if (selfInstance?.lifecycleState === "InService") state.launchSettled = true;
  return memory;
}

/**
 * The observation the leader would have, from a snapshot taken anywhere (`etcd-agent plan`): the
 * clocks start now (grace periods and unhealthy deadlines start now; only the members that do not
 * answer now are unhealthy since now). Null when no member answers or there is no leader.
 */
export function leaderObservation(
  snap: ClusterSnapshot,
  config: AgentConfig,
  now: string,
  storage: StorageObservation,
): { asOf: { instanceId: string; memberId: string }; observation: ReconcileObservation } | null {
  const leader = snap.cluster?.members.find((m) => m.id === snap.cluster?.leaderId) ?? null;
  if (snap.cluster === null || leader === null) return null;
  const instance = snap.asg ? instanceOfMember(leader, snap.asg) : null;
  const since = Object.fromEntries(snap.cluster.members.map((m) => [m.id, now]));
  const unhealthySince = Object.fromEntries(
    snap.cluster.members.filter((m) => !isHealthy(m)).map((m) => [m.id, now]),
  );
  return {
    asOf: { instanceId: instance?.instanceId ?? leader.name, memberId: leader.id },
    observation: {
      self: {
        instanceId: instance?.instanceId ?? leader.name,
        privateIp: instance?.privateIp ?? urlHost(leader.peerUrls[0] ?? "") ?? "",
        targetLifecycleState: null,
      },
      asg: snap.asg,
      cluster: snap.cluster,
      marker: snap.marker,
      dns: snap.dns,
      hooks: null,
      now,
      firstSeenUnstarted: since,
      unhealthySince,
      reportedUnhealthy: [],
      localClusterToken: null,
      config: plannerSettings(config),
      storage,
    },
  };
}

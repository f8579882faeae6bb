// `etcd-agent boot`: decide how this node's etcd starts, act on it, write etcd's environment file.

import { type AfterStep, Steps } from "../apply/steps.js";
import { type AgentConfig, nodeTlsFiles } from "../config/config.js";
import {
  EtcdRequestError,
  EtcdUnavailableError,
  MarkerConflictError,
  RefusedError,
  WaitingError,
} from "../errors.js";
import type { Logger } from "../log.js";
import { candidateEndpoints, observeCluster, observeDns, tryObserveAsg } from "../observe/observe.js";
import { type BootDecision, type BootObservation, decideBoot } from "../planner/boot-plan.js";
import { markerName } from "../planner/dns-plan.js";
import { initialClusterFor, parseEnvFile, renderEtcdEnv } from "../planner/etcd-env.js";
import { markerRecord } from "../planner/marker.js";
import { clientUrlFor, peerUrlFor } from "../planner/membership.js";
import { emptyMemory, rememberMembers } from "../planner/memory.js";
import type { Identity, Member } from "../planner/observation.js";
import { RULES } from "../planner/rules.js";
import type { Ports } from "../ports/index.js";
import { listSnapshots, recordRestoreEvent, restoreSnapshot } from "./backup.js";

export interface BootContext {
  identity: Identity;
  asgName: string;
}

export interface BootResult {
  decision: BootDecision["kind"];
  reason: string;
  envFile: string;
  memberId: string | null;
}

/** Identity from IMDS and the ASG from config or from this instance's own membership. */
export async function resolveContext(ports: Ports, config: AgentConfig, log: Logger): Promise<BootContext> {
  const identity = await ports.metadata.identity();
  const asgName = config.asgName ?? (await ports.autoscaling.groupOf(identity.instanceId));
  if (asgName === null) {
    throw new WaitingError({
      rule: "self-not-eligible",
      detail: `${identity.instanceId} belongs to no Auto Scaling group yet; set --asg-name (ETCD_AGENT_ASG_NAME) if it should`,
    });
  }
  log.info("identity", {
    instance_id: identity.instanceId,
    ip: identity.privateIp,
    asg: asgName,
    region: identity.region,
  });
  return { identity, asgName };
}

/** The steps of a bootstrap, in order (a crash after any of them resumes as "own"). */
export const BOOTSTRAP_STEPS = [
  "bootstrap:claim-marker",
  "bootstrap:move-aside",
  "bootstrap:write-state",
  "bootstrap:write-env",
] as const;

/**
 * The steps of a join, in order; each boot round runs some of them (activating the marker and
 * making room end a round: the boot observes again). A resumed join (its member added by an
 * earlier boot) runs move-aside, write-state and write-env.
 */
export const JOIN_STEPS = [
  "join:activate-marker",
  "join:make-room",
  "join:move-aside",
  "join:member-add",
  "join:write-state",
  "join:write-env",
] as const;

/** The steps of a resumed join (the member was added by an earlier boot that stopped before etcd started). */
export const RESUME_STEPS = ["join:move-aside", "join:write-state", "join:write-env"] as const;

const MAX_ROUNDS = 500;
/** Between boot rounds that wait: 1 s for the first rounds (a join waits on seconds-long steps), 3 s after. */
const waitMs = (round: number) => (round <= 15 ? 1000 : 3000);

export async function runBoot(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  log: Logger,
  options: { signal?: AbortSignal; mode?: "boot" | "join"; afterStep?: AfterStep } = {},
): Promise<BootResult> {
  const { signal } = options;
  const steps = new Steps(log, options.afterStep);
  const { identity } = ctx;
  const selfPeerUrl = peerUrlFor(identity.privateIp, config.peerPort, config.scheme);
  const deadline = ports.clock.now().getTime() + config.bootTimeoutSeconds * 1000;
  let memory = emptyMemory();
  let lastHold: BootDecision | null = null;
  /** When this boot first saw no member answer; the restore bound counts from here. */
  let unreachableSince: string | null = null;

  for (let round = 1; round <= MAX_ROUNDS; round++) {
    if (signal?.aborted) throw new Error("boot interrupted");
    const obs = await observeBoot(ports, config, ctx, log);
    if (obs.cluster) memory = rememberMembers(memory, obs.cluster.members, obs.now);
    obs.firstSeen = memory.firstSeenUnstarted;
    unreachableSince = obs.cluster === null ? (unreachableSince ?? obs.now) : null;
    if (obs.recovery) obs.recovery.unreachableSince = unreachableSince ?? obs.now;
    const decision = decideBoot(obs);
    logDecision(log, decision, round);

    switch (decision.kind) {
      case "wait":
      case "refuse": {
        lastHold = decision;
        if (decision.kind === "refuse") throw new RefusedError(decision.hold);
        if (ports.clock.now().getTime() + waitMs(round) > deadline) throw new WaitingError(decision.hold);
        await ports.clock.sleep(waitMs(round), signal);
        continue;
      }
      case "rejoin": {
        const members = obs.cluster?.members ?? null;
        const previous = parseEnvFile((await ports.local.readEnvFile()) ?? "");
        const initialCluster =
          members !== null
            ? initialClusterFor(members, { name: identity.instanceId, peerUrl: selfPeerUrl })
            : (previous.ETCD_INITIAL_CLUSTER ?? `${identity.instanceId}=${selfPeerUrl}`);
        await writeEnv(ports, config, identity, {
          initialCluster,
          state: "existing",
          token: decision.clusterToken,
        });
        await ports.local.writeState({
          clusterToken: decision.clusterToken,
          memberId: decision.memberId,
          name: identity.instanceId,
          updatedAt: ports.clock.now().toISOString(),
        });
        return {
          decision: "rejoin",
          reason: decision.reason,
          envFile: config.envFile,
          memberId: decision.memberId,
        };
      }
      case "restore": {
        if (options.mode === "join") {
          throw new RefusedError({
            rule: "cluster-existed",
            detail: "join never restores: no member answers",
          });
        }
        const restored = await applyRestore(ports, config, identity, decision, obs, log);
        if (restored !== null) return restored;
        continue;
      }
      case "bootstrap": {
        if (options.mode === "join") {
          throw new RefusedError({
            rule: "cluster-existed",
            detail:
              "join never bootstraps: no member answers. Use etcd-agent boot on a node, or restore from a backup",
          });
        }
        try {
          await steps.run("bootstrap:claim-marker", () =>
            claimBootstrap(ports, config, identity.instanceId, decision, obs),
          );
        } catch (error) {
          if (error instanceof MarkerConflictError) {
            log.info("lost the bootstrap claim; observing again", { reason: error.message });
            continue;
          }
          throw error;
        }
        if (decision.moveDataAside)
          await steps.run("bootstrap:move-aside", () =>
            moveAside(ports, log, "stale data before a new bootstrap"),
          );
        // Written before etcd first starts, so a crash between here and etcd's start resumes as "own".
        await startAlone(ports, config, identity, decision.clusterToken, steps);
        return { decision: "bootstrap", reason: decision.reason, envFile: config.envFile, memberId: null };
      }
      case "join": {
        // A membership call that timed out may or may not have happened: observe again and let
        // the decision find out (a member added for this node is resumed, never added twice).
        try {
          const joined = await applyJoin(
            ports,
            config,
            identity,
            decision,
            obs,
            deadline,
            log,
            steps,
            signal,
          );
          if (joined !== null) return joined;
        } catch (error) {
          if (!(error instanceof EtcdUnavailableError) || ports.clock.now().getTime() > deadline) throw error;
          log.warn("etcd did not answer a membership change; observing again", {
            action: "join",
            reason: error.message,
          });
          await ports.clock.sleep(1000, signal);
        }
        continue;
      }
    }
  }
  throw new WaitingError(
    lastHold && (lastHold.kind === "wait" || lastHold.kind === "refuse")
      ? lastHold.hold
      : { rule: "partial-information", detail: `no decision after ${MAX_ROUNDS} rounds` },
  );
}

/** One step of a join; the result when the join is done, null when the boot should observe again. */
async function applyJoin(
  ports: Ports,
  config: AgentConfig,
  identity: Identity,
  decision: Extract<BootDecision, { kind: "join" }>,
  obs: BootObservation,
  deadline: number,
  log: Logger,
  steps: Steps,
  signal?: AbortSignal,
): Promise<BootResult | null> {
  const selfPeerUrl = peerUrlFor(identity.privateIp, config.peerPort, config.scheme);
  const endpoints = liveEndpoints(obs);
  if (decision.activateMarker && obs.marker.kind === "present") {
    // Claimed (or restoring) becomes active, naming the cluster, before anyone joins it: from
    // now on no takeover can seed a second cluster, and joiners join only this one.
    const m = obs.marker.marker;
    await steps.run("join:activate-marker", async () => {
      try {
        await ports.dns.swapTxt(
          markerName(config.domain),
          { name: markerName(config.domain), type: "TXT", ttl: 60, values: [m.raw] },
          markerRecord(markerName(config.domain), {
            state: "active",
            token: m.token,
            claimant: m.claimant,
            cluster: decision.clusterId,
          }),
        );
        log.info("marked the cluster active before the first join", {
          action: "write-marker",
          cluster_id: decision.clusterId,
        });
      } catch (error) {
        if (!(error instanceof MarkerConflictError)) throw error;
      }
    });
    return null;
  }
  const removal = decision.removeFirst;
  if (removal !== null) {
    await steps.run("join:make-room", async () => {
      log.warn("removing a member to make room", {
        action: "remove-member",
        member_id: removal.memberId,
        reason: removal.reason,
      });
      if (!(await ports.etcd.memberRemove(endpoints, removal.memberId))) {
        log.info("the member was already removed (by the leader or another joiner); observing again", {
          action: "remove-member",
          member_id: removal.memberId,
        });
      }
    });
    return null;
  }
  if (decision.moveDataAside)
    await steps.run("join:move-aside", () =>
      moveAside(ports, log, "this node's member was removed from the cluster"),
    );
  let memberId: string;
  let members: Member[];
  if (decision.resumeMemberId !== null) {
    memberId = decision.resumeMemberId;
    members = obs.cluster?.members ?? [];
  } else {
    const added = await steps.run("join:member-add", () =>
      addLearner(ports, endpoints, selfPeerUrl, deadline, log, signal),
    );
    if (added === null) return null;
    memberId = added.member.id;
    members = added.members;
  }
  await steps.run("join:write-state", () =>
    ports.local.writeState({
      clusterToken: decision.clusterToken,
      memberId,
      name: identity.instanceId,
      updatedAt: ports.clock.now().toISOString(),
    }),
  );
  // From the member list as it is now: written again before every start of etcd while the member
  // has not started (the boot runs before each start), so a change since the add cannot freeze it.
  await steps.run("join:write-env", () =>
    writeEnv(ports, config, identity, {
      initialCluster: initialClusterFor(members, { name: identity.instanceId, peerUrl: selfPeerUrl }),
      state: "existing",
      token: decision.clusterToken,
    }),
  );
  log.info("joined as a learner; etcd may start", { member_id: memberId, action: "join" });
  return { decision: "join", reason: decision.reason, envFile: config.envFile, memberId };
}

function logDecision(log: Logger, decision: BootDecision, round: number): void {
  if (decision.kind === "wait" || decision.kind === "refuse") {
    log.info(`boot ${decision.kind}s: ${RULES[decision.hold.rule]}`, {
      action: decision.kind,
      rule: decision.hold.rule,
      reason: decision.hold.detail,
      round,
    });
  } else {
    log.info(`boot decision: ${decision.kind}`, { action: decision.kind, reason: decision.reason, round });
  }
}

async function observeBoot(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  log: Logger,
): Promise<BootObservation> {
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
    cluster === null && dns.marker.kind === "present" && dns.marker.marker.state === "active"
      ? await observeRecovery(ports, config, ctx.asgName, dns.marker.marker.token, log)
      : null;
  const ec2States =
    cluster === null && dns.marker.kind === "present" && dns.marker.marker.state !== "active"
      ? await observeClaimant(ports, asg, dns.marker.marker.claimant, log)
      : {};
  return {
    recovery,
    ec2States,
    self: { instanceId: identity.instanceId, privateIp: identity.privateIp, targetLifecycleState: target },
    asg,
    cluster,
    marker: dns.marker,
    local: { hasData, state },
    now: ports.clock.now().toISOString(),
    startupGraceSeconds: config.startupGraceSeconds,
    firstSeen: {},
  };
}

/**
 * EC2's state of a marker's claimant that the ASG does not list (`not-found` when EC2 does not
 * know it): a takeover needs EC2 to confirm it terminated. Empty when it is listed or unknown.
 */
async function observeClaimant(
  ports: Ports,
  asg: BootObservation["asg"],
  claimant: string,
  log: Logger,
): Promise<Record<string, string>> {
  if (asg === null || asg.instances.some((i) => i.instanceId === claimant)) return {};
  try {
    const [facts] = await ports.ec2.describeInstances([claimant]);
    return { [claimant]: facts?.state ?? "not-found" };
  } catch (error) {
    log.warn("could not read the claimant's EC2 state", {
      target_instance_id: claimant,
      reason: (error as Error).message,
    });
    return {};
  }
}

/** The state file and etcd's environment for a one-member cluster of this node (bootstrap, restore). */
async function startAlone(
  ports: Ports,
  config: AgentConfig,
  identity: BootContext["identity"],
  clusterToken: string,
  steps: Steps | null = null,
): Promise<void> {
  const run = <T>(step: string, fn: () => Promise<T>) => (steps ? steps.run(step, fn) : fn());
  await run("bootstrap:write-state", () =>
    ports.local.writeState({
      clusterToken,
      memberId: null,
      name: identity.instanceId,
      updatedAt: ports.clock.now().toISOString(),
    }),
  );
  await run("bootstrap:write-env", () =>
    writeEnv(ports, config, identity, {
      initialCluster: `${identity.instanceId}=${peerUrlFor(identity.privateIp, config.peerPort, config.scheme)}`,
      state: "new",
      token: clusterToken,
    }),
  );
}

/** The newest snapshot (of this cluster's token when it has any) and who the members were; null when unknown. */
async function observeRecovery(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  token: string,
  log: Logger,
): Promise<BootObservation["recovery"]> {
  if (!config.backup || !ports.backups) return null;
  try {
    const refs = await listSnapshots(ports, config, asgName);
    const newest = refs.find((r) => r.clusterToken === token) ?? refs[0] ?? null;
    const meta = newest ? await ports.backups.head(newest.key) : {};
    return {
      newest: newest ? { key: newest.key, takenAt: newest.takenAt } : null,
      formerMembers: (meta.members ?? "").split(",").filter((m) => m !== ""),
      unreachableSince: ports.clock.now().toISOString(),
      restoreAfterSeconds: config.backup.restoreAfterSeconds,
    };
  } catch (error) {
    log.warn("could not read the backups", { reason: (error as Error).message });
    return null;
  }
}

/**
 * Disaster recovery on the designated instance: take the marker from the lost cluster (compare-and-
 * swap, so two instances cannot both restore), restore the newest snapshot that verifies into the
 * data dir, write etcd's environment for a one-member cluster. The others join it as usual.
 */
async function applyRestore(
  ports: Ports,
  config: AgentConfig,
  identity: BootContext["identity"],
  decision: Extract<BootDecision, { kind: "restore" }>,
  obs: BootObservation,
  log: Logger,
): Promise<BootResult | null> {
  const name = markerName(config.domain);
  if (obs.marker.kind !== "present") return null;
  try {
    await ports.dns.swapTxt(
      name,
      { name, type: "TXT", ttl: 60, values: [obs.marker.marker.raw] },
      markerRecord(name, { state: "claimed", token: decision.clusterToken, claimant: identity.instanceId }),
    );
  } catch (error) {
    if (error instanceof MarkerConflictError) {
      log.info("lost the restore claim; observing again", { reason: error.message });
      return null;
    }
    throw error;
  }
  if (decision.moveDataAside) await moveAside(ports, log, "stale data before a restore");
  const selfPeerUrl = peerUrlFor(identity.privateIp, config.peerPort, config.scheme);
  // etcd's tool wants a directory that does not exist; the data dir may be a mount point, so the
  // restore goes beside member/ on the same file system and member/ is moved into place.
  const staging = `${config.dataDir}/restore-${ports.clock.now().getTime()}`;
  const result = await restoreSnapshot(ports, config, obs.asg?.name ?? "", log, {
    dataDir: staging,
    name: identity.instanceId,
    peerUrl: selfPeerUrl,
    tool: config.backup?.restoreTool ?? "etcdctl",
    clusterToken: decision.clusterToken,
  });
  await ports.local.adoptRestored(staging);
  await startAlone(ports, config, identity, decision.clusterToken);
  log.error("restored the cluster from a snapshot: writes after it are lost; the other instances join it", {
    action: "restore",
    key: result.key,
    revision: result.revision,
    reason: decision.reason,
    ...(result.corrupt.length > 0 ? { skipped_corrupt: result.corrupt.join(",") } : {}),
  });
  // The restore is done and etcd may start; the record (which alarms) must not undo that.
  await recordRestoreEvent(ports, config, obs.asg?.name ?? "", {
    instanceId: identity.instanceId,
    key: result.key,
    revision: result.revision,
    clusterToken: decision.clusterToken,
    skippedCorrupt: result.corrupt,
    reason: decision.reason,
    bumpRevision: result.bumpRevision,
  }).then(
    (key) => log.info("recorded the restore for the alarm", { action: "restore", key }),
    (error: Error) =>
      log.error("could not record the restore (no alarm will fire): see this log", {
        action: "restore",
        error: error.message,
      }),
  );
  return { decision: "restore", reason: decision.reason, envFile: config.envFile, memberId: null };
}

/** Client URLs of members that answered Status: where membership calls go. */
function liveEndpoints(obs: BootObservation): string[] {
  const urls = (obs.cluster?.members ?? []).filter((m) => m.status !== null).flatMap((m) => m.clientUrls);
  return urls.length > 0 ? urls : (obs.cluster?.members ?? []).flatMap((m) => m.clientUrls);
}

async function claimBootstrap(
  ports: Ports,
  config: AgentConfig,
  instanceId: string,
  decision: Extract<BootDecision, { kind: "bootstrap" }>,
  obs: BootObservation,
): Promise<void> {
  const name = markerName(config.domain);
  const next = markerRecord(name, { state: "claimed", token: decision.clusterToken, claimant: instanceId });
  if (decision.claim === "own") return;
  if (decision.claim === "create") {
    await ports.dns.swapTxt(name, null, next);
    return;
  }
  if (obs.marker.kind !== "present") throw new MarkerConflictError("the marker to take over is gone");
  await ports.dns.swapTxt(name, { name, type: "TXT", ttl: 60, values: [obs.marker.marker.raw] }, next);
}

/** MemberAdd as a learner. A young or reconfiguring cluster answers "unhealthy cluster": retry until the deadline. */
async function addLearner(
  ports: Ports,
  endpoints: string[],
  peerUrl: string,
  deadline: number,
  log: Logger,
  signal?: AbortSignal,
): Promise<{ member: Member; members: Member[] } | null> {
  // etcd refuses for a few seconds after a member joined; asking every 500 ms, at most 60 s.
  for (let attempt = 1; attempt <= 120; attempt++) {
    try {
      return await ports.etcd.memberAdd(endpoints, [peerUrl], true);
    } catch (error) {
      if (!(error instanceof EtcdRequestError)) throw error;
      if (error.code === "too-many-learners") return null;
      if (error.code !== "unhealthy-cluster" || ports.clock.now().getTime() + 500 > deadline) throw error;
      if (attempt === 1 || attempt % 10 === 0)
        log.info("etcd refused the add for now; retrying", {
          action: "join",
          reason: error.message,
          attempt,
        });
      await ports.clock.sleep(500, signal);
    }
  }
  return null;
}

async function moveAside(ports: Ports, log: Logger, reason: string): Promise<void> {
  const moved = await ports.local.moveDataAside(reason);
  if (moved !== null)
    log.warn("moved stale etcd data aside", { action: "move-data-aside", reason, path: moved });
}

async function writeEnv(
  ports: Ports,
  config: AgentConfig,
  identity: Identity,
  e: { initialCluster: string; state: "new" | "existing"; token: string },
): Promise<void> {
  await ports.local.writeEnvFile(
    renderEtcdEnv({
      name: identity.instanceId,
      dataDir: config.dataDir,
      initialCluster: e.initialCluster,
      initialClusterState: e.state,
      initialClusterToken: e.token,
      advertisePeerUrl: peerUrlFor(identity.privateIp, config.peerPort, config.scheme),
      advertiseClientUrl: clientUrlFor(identity.privateIp, config.clientPort, config.scheme),
      listenPeerUrl: peerUrlFor(identity.privateIp, config.peerPort, config.scheme),
      listenClientUrls: [clientUrlFor(identity.privateIp, config.clientPort, config.scheme)],
      tls: config.tls ? nodeTlsFiles(config.tls, "etcd") : null,
    }),
  );
}

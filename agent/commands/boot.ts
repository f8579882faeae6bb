// `etcd-agent boot`: decide how this node's etcd starts, act on it, write etcd's environment file.
import { rmSync } from "node:fs";
import { type AfterStep, Steps } from "../apply/steps.js";
import {
  listSnapshots,
  readRegistryEntry,
  recordRestoreEvent,
  registeredMembers,
  registerMember,
} from "../backups/index.js";
import { downloadVerified, plannedBump, restoreVerified } from "../backups/restore.js";
import { type AgentConfig, checkAsgNameLength, nodeTlsFiles } from "../config/config.js";
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
import {
  emptyMemory,
  type Memory,
  observeNotFound,
  observeUnreachable,
  parseMemory,
  rememberMembers,
} from "../planner/memory.js";
import type { ClusterMarker, Identity, Member } from "../planner/observation.js";
import { RULES } from "../planner/rules.js";
import type { Ports } from "../ports/index.js";

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
  // A name read from AWS is checked as one given by hand: the marker must be able to hold it.
  checkAsgNameLength(asgName);
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
  "bootstrap:register",
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
  "join:register",
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
  options: {
    signal?: AbortSignal;
    mode?: "boot" | "join";
    /** Run from the bastion for another instance (join --instance-id): that node's data is unknown here. */
    remote?: boolean;
    afterStep?: AfterStep;
  } = {},
): Promise<BootResult> {
  const { signal } = options;
  const steps = new Steps(log, options.afterStep);
  const { identity } = ctx;
  const selfPeerUrl = peerUrlFor(identity.privateIp, config.peerPort, config.scheme);
  const deadline = ports.clock.now().getTime() + config.bootTimeoutSeconds * 1000;
  let memory = emptyMemory();
  let lastHold: BootDecision | null = null;

  for (let round = 1; round <= MAX_ROUNDS; round++) {
    if (signal?.aborted) throw new Error("boot interrupted");
    const obs = await observeBoot(ports, config, ctx, log);
    if (obs.cluster) memory = rememberMembers(memory, obs.cluster.members, obs.now);
    obs.firstSeen = memory.firstSeenUnstarted;
    // Since when no member answered, kept in the state dir across boots (systemd restarts a boot
    // that waited out its timeout): the restore bound counts from there, not from this process.
    const unreachableSince = await trackUnreachable(ports, obs.cluster !== null, obs.now, log);
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
        const restored = await applyRestore(ports, config, identity, decision, obs, log, options.afterStep);
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
        // In the member registry before a member can exist (restore eligibility reads it).
        const registered = await steps.run("bootstrap:register", () =>
          register(ports, config, ctx.asgName, identity, decision.clusterToken, deadline, log, signal),
        );
        if (!registered) continue;
        // Written before etcd first starts, so a crash between here and etcd's start resumes as "own".
        await startAlone(ports, config, identity, decision.clusterToken, "new", {
          steps,
          action: "bootstrap",
        });
        return { decision: "bootstrap", reason: decision.reason, envFile: config.envFile, memberId: null };
      }
      case "join": {
        // From the bastion "no data" only means the bastion cannot see the node's disk: removing a
        // started member on that would take a healthy voter out of the cluster.
        if (options.remote && decision.removeFirst !== null) {
          throw new RefusedError({
            rule: "remote-member-started",
            detail: `member ${decision.removeFirst.memberId} (${decision.removeFirst.label}) is started in the cluster; nothing was changed`,
          });
        }
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
    // Member registry (restore eligibility) before the member exists; a failed write joins next round.
    const registered = await steps.run("join:register", () =>
      register(ports, config, obs.asg?.name ?? "", identity, decision.clusterToken, deadline, log, signal),
    );
    if (!registered) return null;
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
    cluster === null &&
    dns.marker.kind === "present" &&
    (dns.marker.marker.state === "active" || dns.marker.marker.state === "restoring")
      ? await observeRecovery(ports, config, ctx.asgName, dns.marker.marker, log)
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
  const ec2States = await observeUnlisted(ports, asg, unlisted, log);
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
 * EC2's state of each of `ids` that the ASG does not list (`not-found` when EC2 does not know it):
 * a takeover or a restore needs EC2 to confirm such an instance terminated. Empty for the listed
 * ones, and all of it when EC2 could not be read (unknown: never gone).
 */
async function observeUnlisted(
  ports: Ports,
  asg: BootObservation["asg"],
  ids: string[],
  log: Logger,
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
    if (JSON.stringify(seen.memory.notFoundSince) !== JSON.stringify(stored.notFoundSince))
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
 * The state file and etcd's environment for a one-member cluster of this node. A bootstrap starts
 * a new cluster (`new`, on empty data); a restore starts on the restored data dir, so `existing`:
 * etcd restarts from the data's WAL, and were the data ever missing it would fail to start rather
 * than seed an empty cluster.
 */
async function startAlone(
  ports: Ports,
  config: AgentConfig,
  identity: BootContext["identity"],
  clusterToken: string,
  state: "new" | "existing",
  steps?: { steps: Steps; action: "restore" | "bootstrap" },
): Promise<void> {
  const run = <T>(step: string, fn: () => Promise<T>) =>
    steps ? steps.steps.run(`${steps.action}:${step}`, fn) : fn();
  await run("write-state", () =>
    ports.local.writeState({
      clusterToken,
      memberId: null,
      name: identity.instanceId,
      updatedAt: ports.clock.now().toISOString(),
    }),
  );
  await run("write-env", () =>
    writeEnv(ports, config, identity, {
      initialCluster: `${identity.instanceId}=${peerUrlFor(identity.privateIp, config.peerPort, config.scheme)}`,
      state,
      token: clusterToken,
    }),
  );
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
    next.unreachableSince !== stored.unreachableSince ||
    next.unreachableConfirmedAt !== stored.unreachableConfirmedAt
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
 * This instance's entry in the member registry of `clusterToken`, written before a member of that
 * cluster can exist here (when backups are on; without them there is no automatic restore to
 * inform). False when the write failed: the caller does not go ahead and observes again.
 */
async function register(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  identity: Identity,
  clusterToken: string,
  deadline: number,
  log: Logger,
  signal?: AbortSignal,
  extra: { restoredFrom?: string; snapshot?: string } = {},
): Promise<boolean> {
  if (!config.backup || !ports.backups) return true;
  try {
    await registerMember(ports, config, asgName, {
      instance: identity.instanceId,
      peerUrl: peerUrlFor(identity.privateIp, config.peerPort, config.scheme),
      token: clusterToken,
      ...extra,
    });
    return true;
  } catch (error) {
    if (ports.clock.now().getTime() + 2000 > deadline) throw error;
    log.warn("could not write the member registry; not going ahead, observing again", {
      action: "register-member",
      reason: (error as Error).message,
    });
    await ports.clock.sleep(2000, signal);
    return false;
  }
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
): Promise<BootObservation["recovery"]> {
  if (!config.backup || !ports.backups) return null;
  try {
    const formerToken =
      marker.state === "restoring"
        ? ((await readRegistryEntry(ports, config, asgName, marker.token, marker.claimant))?.restoredFrom ??
          null)
        : marker.token;
    const refs = await listSnapshots(ports, config, asgName, log);
    const newest = formerToken === null ? null : (refs.find((r) => r.clusterToken === formerToken) ?? null);
    const other = newest === null ? (refs[0] ?? null) : null;
    const meta = newest ? await ports.backups.head(newest.key) : {};
    const registered =
      formerToken === null ? [] : await registeredMembers(ports, config, asgName, formerToken);
    const fromSnapshot = (meta.members ?? "").split(",").filter((m) => m !== "");
    return {
      formerToken,
      newest: newest ? { key: newest.key, takenAt: newest.takenAt } : null,
      otherNewest: other ? { key: other.key, clusterToken: other.clusterToken } : null,
      formerMembers: [...new Set([...fromSnapshot, ...registered])].sort(),
      unreachableSince: ports.clock.now().toISOString(),
      restoreAfterSeconds: config.backup.restoreAfterSeconds,
    };
  } catch (error) {
    log.warn("could not read the backups", { reason: (error as Error).message });
    return null;
  }
}

/** The steps of a restore, in order; a crash after any of them is resumed by the next boot. */
export const RESTORE_STEPS = [
  "restore:register",
  "restore:swap-marker",
  "restore:move-data-aside",
  "restore:download-verify",
  "restore:restore-to-staging",
  "restore:record-event",
  "restore:adopt",
  "restore:write-state",
  "restore:write-env",
] as const;

/**
 * Disaster recovery on the designated instance. The marker goes from the lost cluster's `active`
 * (or a dead restorer's `restoring`) to `restoring` by this instance, by compare-and-swap, so two
 * instances cannot both restore; it stays `restoring` until the restored member serves (the run
 * loop's leader then writes `active`), so an interrupted restore is done again or taken over,
 * never turned into an empty cluster. Then the newest snapshot of the lost cluster that verifies
 * is restored beside the data dir and moved into place, and etcd's environment is written for a
 * one-member cluster on that data. The others join it as usual.
 */
async function applyRestore(
  ports: Ports,
  config: AgentConfig,
  identity: BootContext["identity"],
  decision: Extract<BootDecision, { kind: "restore" }>,
  obs: BootObservation,
  log: Logger,
  afterStep?: AfterStep,
): Promise<BootResult | null> {
  const name = markerName(config.domain);
  if (obs.marker.kind !== "present" || !config.backup) return null;
  const asgName = obs.asg?.name ?? "";
  const steps = new Steps(log, afterStep);
  const selfPeerUrl = peerUrlFor(identity.privateIp, config.peerPort, config.scheme);
  // Before the marker names this instance: a takeover reads which cluster is being restored here.
  await steps.run("restore:register", () =>
    registerMember(ports, config, asgName, {
      instance: identity.instanceId,
      peerUrl: selfPeerUrl,
      token: decision.clusterToken,
      restoredFrom: decision.formerToken,
      snapshot: decision.snapshotKey,
    }),
  );
  const current = obs.marker.marker;
  try {
    await steps.run("restore:swap-marker", async () => {
      if (decision.claim === "own") return;
      await ports.dns.swapTxt(
        name,
        { name, type: "TXT", ttl: 60, values: [current.raw] },
        markerRecord(name, {
          state: "restoring",
          token: decision.clusterToken,
          claimant: identity.instanceId,
        }),
      );
    });
  } catch (error) {
    if (error instanceof MarkerConflictError) {
      log.info("lost the restore claim; observing again", { reason: error.message });
      return null;
    }
    throw error;
  }
  // Whatever is in the data dir (stale data, or a partial restore of an earlier attempt) goes aside.
  await steps.run("restore:move-data-aside", () => moveAside(ports, log, "stale data before a restore"));
  const tool = config.backup.restoreTool;
  // Only the lost cluster's own snapshots, newest first: never another cluster's in their place.
  const candidates = (await listSnapshots(ports, config, asgName, log)).filter(
    (r) => r.clusterToken === decision.formerToken,
  );
  const verified = await steps.run("restore:download-verify", () =>
    downloadVerified(ports, config, asgName, log, { refs: candidates }),
  );
  // etcd's tool wants a directory that does not exist; the data dir may be a mount point, so the
  // restore goes beside member/ on the same file system and member/ is moved into place. One name,
  // so an interrupted attempt's leftovers are removed by the next.
  const staging = `${config.dataDir}/restore-staging`;
  const result = await steps.run("restore:restore-to-staging", async () => {
    rmSync(staging, { recursive: true, force: true });
    return restoreVerified(
      verified,
      log,
      {
        dataDir: staging,
        name: identity.instanceId,
        peerUrl: selfPeerUrl,
        tool,
        clusterToken: decision.clusterToken,
      },
      plannedBump(config, tool, log),
    );
  });
  // From here the old cluster is given up for this snapshot: say so (the record alarms). One record
  // per restored cluster (its token is in the key): a restore done again overwrites it.
  await steps.run("restore:record-event", () =>
    recordRestoreEvent(ports, config, asgName, {
      instanceId: identity.instanceId,
      key: result.key,
      revision: result.revision,
      clusterToken: decision.clusterToken,
      formerToken: decision.formerToken,
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
    ),
  );
  await steps.run("restore:adopt", () => ports.local.adoptRestored(staging));
  await startAlone(ports, config, identity, decision.clusterToken, "existing", { steps, action: "restore" });
  log.error("restored the cluster from a snapshot: writes after it are lost; the other instances join it", {
    action: "restore",
    key: result.key,
    revision: result.revision,
    reason: decision.reason,
    ...(result.corrupt.length > 0 ? { skipped_corrupt: result.corrupt.join(",") } : {}),
  });
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
      ...(config.tls ? { peerAllowedHostname: config.domain } : {}),
      settings: config.etcd,
    }),
  );
}

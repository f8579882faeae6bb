// `etcd-agent boot`: decide how this node's etcd starts, act on it, write etcd's environment file.
import { rmSync } from "node:fs";
import { type AfterStep, Steps } from "../apply/steps.js";
import { type AgentConfig, checkAsgNameLength, nodeTlsFiles } from "../config/config.js";
import {
  EtcdRequestError,
  EtcdUnavailableError,
  MarkerConflictError,
  RefusedError,
  WaitingError,
} from "../errors.js";
import type { Logger } from "../log.js";
import { observeBoot } from "../observe/boot.js";
import { parseSnapshotKey } from "../planner/backup-plan.js";
import { type BootDecision, type BootObservation, decideBoot } from "../planner/boot-plan.js";
import { markerName } from "../planner/dns-plan.js";
import { initialClusterFor, parseEnvFile, renderEtcdEnv } from "../planner/etcd-env.js";
import { markerRecord } from "../planner/marker.js";
import { clientUrlFor, peerUrlFor } from "../planner/membership.js";
import { emptyMemory } from "../planner/memory.js";
import type { Identity, Member } from "../planner/observation.js";
import { RULES } from "../planner/rules.js";
import type { Ports } from "../ports/index.js";
import {
  downloadVerified,
  NoGoodSnapshotError,
  plannedBump,
  recordRestoreEvent,
  registerMember,
  restoreVerified,
  type VerifiedSnapshot,
} from "./backup.js";

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
    const seen = await observeBoot(ports, config, ctx, memory, log);
    memory = seen.memory;
    const obs = seen.observation;
    const decision = decideBoot(obs, { join: options.mode === "join", remote: options.remote === true });
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
        const restored = await applyRestore(ports, config, identity, decision, obs, log, options.afterStep);
        if (restored !== null) return restored;
        continue;
      }
      case "bootstrap": {
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
  const verified = await steps.run("restore:download-verify", () =>
    downloadPlanned(ports, config, asgName, decision, log),
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

/**
 * Downloads the snapshot the plan named (never a fresh listing's newest: a snapshot uploaded since
 * the plan is not restored), falling back only to the older keys the same plan named when one fails
 * its checksum. Refused, naming the rule, when the planned snapshot is gone or none of them verifies.
 */
async function downloadPlanned(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  decision: Extract<BootDecision, { kind: "restore" }>,
  log: Logger,
): Promise<VerifiedSnapshot> {
  const key = decision.snapshotKey;
  if (ports.backups && !(await ports.backups.list(key)).includes(key)) {
    throw new RefusedError({
      rule: "snapshot-unverified",
      detail: `snapshot ${key}, which the restore planned, is gone from the bucket; nothing was restored`,
    });
  }
  const refs = [key, ...decision.olderKeys].map(
    (k) => parseSnapshotKey(k) ?? { key: k, takenAt: "", revision: "?", clusterToken: decision.formerToken },
  );
  try {
    return await downloadVerified(ports, config, asgName, log, { refs });
  } catch (error) {
    if (!(error instanceof NoGoodSnapshotError)) throw error;
    throw new RefusedError({ rule: "snapshot-unverified", detail: error.message });
  }
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

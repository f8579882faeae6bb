// The one applier of a boot: carries out the typed steps the boot decision planned
// (agent/planner/boot-steps.ts), in order, each a named step (logged, and where the
// crash-after-every-step tests stop it: agent/apply/steps.ts). A step that cannot go ahead (a lost
// claim, a registry write that failed, etcd refusing the add for now) ends the round: the boot
// observes again and decides again; nothing is ever done on a stale decision.
import { rmSync } from "node:fs";
import { recordRestoreEvent, registerMember } from "../backups/index.js";
import {
  downloadVerified,
  plannedBump,
  type RestoreResult,
  restoreVerified,
  type VerifiedSnapshot,
} from "../backups/restore.js";
import { type AgentConfig, nodeTlsFiles } from "../config/config.js";
import {
  EtcdRequestError,
  EtcdUnavailableError,
  MarkerConflictError,
  NoGoodSnapshotError,
  RefusedError,
} from "../errors.js";
import type { Logger } from "../log.js";
import { parseSnapshotKey } from "../planner/backup-plan.js";
import type { BootDecision, BootObservation } from "../planner/boot-plan.js";
import type { BootStep } from "../planner/boot-steps.js";
import { markerName } from "../planner/dns-plan.js";
import { initialClusterFor, parseEnvFile, renderEtcdEnv } from "../planner/etcd-env.js";
import { markerRecord } from "../planner/marker.js";
import { clientUrlFor, peerUrlFor } from "../planner/membership.js";
import type { Identity, Member } from "../planner/observation.js";
import type { Ports } from "../ports/index.js";
import { type AfterStep, Steps } from "./steps.js";

/** A decision that acts. */
export type ActingDecision = Extract<BootDecision, { kind: "rejoin" | "join" | "bootstrap" | "restore" }>;

export interface BootApplyContext {
  ports: Ports;
  config: AgentConfig;
  identity: Identity;
  asgName: string;
  /** The observation the decision was made on. */
  obs: BootObservation;
  /** When the boot gives up (epoch ms). */
  deadline: number;
  log: Logger;
  signal?: AbortSignal;
  afterStep?: AfterStep;
}

/** done: etcd may start (its environment is written); observe-again: the boot observes and decides again. */
export type Applied = { kind: "done"; memberId: string | null } | { kind: "observe-again" };

/** What one step hands the next (the member added, the snapshot downloaded, the restore done). */
interface Carried {
  added?: { member: Member; members: Member[] };
  verified?: VerifiedSnapshot;
  restored?: RestoreResult;
}

/** Carries out `steps` of `decision` in order; stops at the first that ends the round. */
export async function applyBootSteps(
  decision: ActingDecision,
  steps: BootStep[],
  c: BootApplyContext,
): Promise<Applied> {
  if (decision.kind === "restore" && (c.obs.marker.kind !== "present" || !c.config.backup))
    return { kind: "observe-again" };
  const runner = new Steps(c.log, c.afterStep);
  const carried: Carried = {};
  try {
    for (const step of steps) {
      const next = await applyStep(decision, step, c, runner, carried);
      if (next === "observe-again") return { kind: "observe-again" };
    }
  } catch (error) {
    // A membership call that timed out may or may not have happened: observe again and let the
    // decision find out (a member added for this node is resumed, never added twice).
    if (decision.kind !== "join" || !(error instanceof EtcdUnavailableError)) throw error;
    if (c.ports.clock.now().getTime() > c.deadline) throw error;
    c.log.warn("etcd did not answer a membership change; observing again", {
      action: "join",
      reason: error.message,
    });
    await c.ports.clock.sleep(1000, c.signal);
    return { kind: "observe-again" };
  }
  return finish(decision, c, carried);
}

async function applyStep(
  decision: ActingDecision,
  step: BootStep,
  c: BootApplyContext,
  runner: Steps,
  carried: Carried,
): Promise<"next" | "observe-again"> {
  const { ports, config, identity, obs, log } = c;
  const token = decision.clusterToken;
  const selfPeerUrl = peerUrlFor(identity.privateIp, config.peerPort, config.scheme);
  const run = (fn: () => Promise<unknown>) => runner.run(step.name, fn).then(() => "next" as const);
  switch (step.name) {
    case "bootstrap:claim-marker":
      try {
        return await run(() => claimBootstrap(ports, config, identity.instanceId, step.claim, token, obs));
      } catch (error) {
        if (!(error instanceof MarkerConflictError)) throw error;
        log.info("lost the bootstrap claim; observing again", { reason: error.message });
        return "observe-again";
      }
    case "bootstrap:move-aside":
      return run(() => moveAside(ports, log, "stale data before a new bootstrap"));
    case "join:move-aside":
      return run(() => moveAside(ports, log, "this node's member was removed from the cluster"));
    case "restore:move-data-aside":
      return run(() => moveAside(ports, log, "stale data before a restore"));
    case "bootstrap:register":
    case "join:register": {
      const asgName = step.name === "bootstrap:register" ? c.asgName : (obs.asg?.name ?? "");
      const registered = await runner.run(step.name, () =>
        register(ports, config, asgName, identity, token, c.deadline, log, c.signal),
      );
      return registered ? "next" : "observe-again";
    }
    case "restore:register":
      if (decision.kind !== "restore") throw new Error(`${step.name} in a ${decision.kind}`);
      return run(() =>
        registerMember(ports, config, obs.asg?.name ?? "", {
          instance: identity.instanceId,
          peerUrl: selfPeerUrl,
          token,
          restoredFrom: decision.formerToken,
          snapshot: decision.snapshotKey,
        }),
      );
    case "bootstrap:write-state":
    case "restore:write-state":
    case "join:write-state":
    case "rejoin:write-state": {
      const memberId =
        "memberId" in step && step.memberId !== null ? step.memberId : (carried.added?.member.id ?? null);
      return run(() =>
        ports.local.writeState({
          clusterToken: token,
          memberId,
          name: identity.instanceId,
          updatedAt: ports.clock.now().toISOString(),
        }),
      );
    }
    case "bootstrap:write-env":
    case "restore:write-env":
      return run(() =>
        writeEnv(ports, config, identity, {
          initialCluster: `${identity.instanceId}=${selfPeerUrl}`,
          state: step.state,
          token,
        }),
      );
    case "join:write-env": {
      // From the member list as it is now: written again before every start of etcd while the member
      // has not started (the boot runs before each start), so a change since the add cannot freeze it.
      const members = carried.added?.members ?? obs.cluster?.members ?? [];
      return run(() =>
        writeEnv(ports, config, identity, {
          initialCluster: initialClusterFor(members, { name: identity.instanceId, peerUrl: selfPeerUrl }),
          state: "existing",
          token,
        }),
      );
    }
    case "rejoin:write-env":
      return run(async () => {
        const members = obs.cluster?.members ?? null;
        const previous = parseEnvFile((await ports.local.readEnvFile()) ?? "");
        const initialCluster =
          members !== null
            ? initialClusterFor(members, { name: identity.instanceId, peerUrl: selfPeerUrl })
            : (previous.ETCD_INITIAL_CLUSTER ?? `${identity.instanceId}=${selfPeerUrl}`);
        await writeEnv(ports, config, identity, { initialCluster, state: "existing", token });
      });
    case "join:activate-marker": {
      if (obs.marker.kind !== "present") return "observe-again";
      // Claimed (or restoring) becomes active, naming the cluster, before anyone joins it: from
      // now on no takeover can seed a second cluster, and joiners join only this one.
      const m = obs.marker.marker;
      const name = markerName(config.domain);
      await runner.run(step.name, async () => {
        try {
          await ports.dns.swapTxt(
            name,
            { name, type: "TXT", ttl: 60, values: [m.raw] },
            markerRecord(name, {
              state: "active",
              token: m.token,
              claimant: m.claimant,
              cluster: step.clusterId,
            }),
          );
          log.info("marked the cluster active before the first join", {
            action: "write-marker",
            cluster_id: step.clusterId,
          });
        } catch (error) {
          if (!(error instanceof MarkerConflictError)) throw error;
        }
      });
      return "observe-again";
    }
    case "join:make-room": {
      const removal = step.removal;
      await runner.run(step.name, async () => {
        log.warn("removing a member to make room", {
          action: "remove-member",
          member_id: removal.memberId,
          reason: removal.reason,
        });
        if (!(await ports.etcd.memberRemove(liveEndpoints(obs), removal.memberId))) {
          log.info("the member was already removed (by the leader or another joiner); observing again", {
            action: "remove-member",
            member_id: removal.memberId,
          });
        }
      });
      return "observe-again";
    }
    case "join:member-add": {
      const added = await runner.run(step.name, () =>
        addLearner(ports, liveEndpoints(obs), selfPeerUrl, c.deadline, log, c.signal),
      );
      if (added === null) return "observe-again";
      carried.added = added;
      return "next";
    }
    case "restore:swap-marker": {
      if (obs.marker.kind !== "present") return "observe-again";
      const current = obs.marker.marker;
      const name = markerName(config.domain);
      try {
        return await run(async () => {
          if (step.claim === "own") return;
          await ports.dns.swapTxt(
            name,
            { name, type: "TXT", ttl: 60, values: [current.raw] },
            markerRecord(name, { state: "restoring", token, claimant: identity.instanceId }),
          );
        });
      } catch (error) {
        if (!(error instanceof MarkerConflictError)) throw error;
        log.info("lost the restore claim; observing again", { reason: error.message });
        return "observe-again";
      }
    }
    case "restore:download-verify": {
      if (decision.kind !== "restore") throw new Error(`${step.name} in a ${decision.kind}`);
      carried.verified = await runner.run(step.name, () =>
        downloadPlanned(ports, config, obs.asg?.name ?? "", decision, log),
      );
      return "next";
    }
    case "restore:restore-to-staging": {
      const verified = carried.verified;
      const tool = config.backup?.restoreTool;
      if (!verified || !tool) throw new Error(`${step.name} without a verified snapshot`);
      // etcd's tool wants a directory that does not exist; the data dir may be a mount point, so the
      // restore goes beside member/ on the same file system and member/ is moved into place. One name,
      // so an interrupted attempt's leftovers are removed by the next.
      const staging = stagingDir(config);
      carried.restored = await runner.run(step.name, async () => {
        rmSync(staging, { recursive: true, force: true });
        return restoreVerified(
          verified,
          log,
          { dataDir: staging, name: identity.instanceId, peerUrl: selfPeerUrl, tool, clusterToken: token },
          plannedBump(config, tool, log),
        );
      });
      return "next";
    }
    case "restore:record-event": {
      const result = carried.restored;
      if (decision.kind !== "restore" || !result) throw new Error(`${step.name} before the restore`);
      // From here the old cluster is given up for this snapshot: say so (the record alarms). One record
      // per restored cluster (its token is in the key): a restore done again overwrites it.
      return run(() =>
        recordRestoreEvent(ports, config, obs.asg?.name ?? "", {
          instanceId: identity.instanceId,
          key: result.key,
          revision: result.revision,
          clusterToken: token,
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
    }
    case "restore:adopt":
      return run(() => ports.local.adoptRestored(stagingDir(config)));
  }
}

/** The restore goes beside member/ in the data dir, under one name. */
const stagingDir = (config: AgentConfig) => `${config.dataDir}/restore-staging`;

/** Every step done: says so and hands back the member ID etcd starts as. */
function finish(decision: ActingDecision, c: BootApplyContext, carried: Carried): Applied {
  switch (decision.kind) {
    case "rejoin":
      return { kind: "done", memberId: decision.memberId };
    case "bootstrap":
      return { kind: "done", memberId: null };
    case "join": {
      const memberId = decision.resumeMemberId ?? carried.added?.member.id ?? null;
      c.log.info("joined as a learner; etcd may start", {
        ...(memberId !== null ? { member_id: memberId } : {}),
        action: "join",
      });
      return { kind: "done", memberId };
    }
    case "restore": {
      const result = carried.restored;
      c.log.error(
        "restored the cluster from a snapshot: writes after it are lost; the other instances join it",
        {
          action: "restore",
          key: result?.key,
          revision: result?.revision,
          reason: decision.reason,
          ...(result && result.corrupt.length > 0 ? { skipped_corrupt: result.corrupt.join(",") } : {}),
        },
      );
      return { kind: "done", memberId: null };
    }
  }
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
  claim: "create" | "own" | "takeover",
  clusterToken: string,
  obs: BootObservation,
): Promise<void> {
  const name = markerName(config.domain);
  const next = markerRecord(name, { state: "claimed", token: clusterToken, claimant: instanceId });
  if (claim === "own") return;
  if (claim === "create") {
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

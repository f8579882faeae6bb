// `etcd-agent run` and `etcd-agent plan`: observe, plan, apply; at most one membership change a
// cycle, and a short sleep only when something changed.

import { applyAction, backupSubject } from "../apply/reconcile.js";
import type { AfterStep } from "../apply/steps.js";
import {
  forgetCompaction,
  initialStorageState,
  recordEtcdAlarm,
  type StorageState,
  storageObservation,
} from "../apply/storage.js";
import { type BackupState, backupBesideIfDue, initialBackupState } from "../backups/index.js";
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import { type ObservedState, observeReconcile } from "../observe/reconcile.js";
import { pingEveryMs } from "../planner/keep-alive.js";
import { alarmsOf, clientUrlFor, findSelfMember, isHealthy, isStarted } from "../planner/membership.js";
import {
  emptyMemory,
  parseMemory,
  rememberAlarms,
  rememberDnsWrites,
  resumeMemory,
} from "../planner/memory.js";
import {
  type Action,
  MEMBERSHIP_ACTIONS,
  type Plan,
  planReconcile,
  type ReconcileObservation,
} from "../planner/reconcile-plan.js";
import { RULES } from "../planner/rules.js";
import { statusLine } from "../planner/status-line.js";
import { type VitalSigns, vitalSigns } from "../planner/vital-signs.js";
import type { Ports } from "../ports/index.js";
import { ensureNodeCert, ensureOperatorCert, renewalAt } from "../tls/node-certs.js";
import { followCaRotation } from "../tls/rotate-node.js";
import type { BootContext } from "./boot.js";

/** On the leader: the operators' client certificate, looked at when due (an hour after a failure). */
async function operatorCertIfDue(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  state: LoopState,
  log: Logger,
): Promise<void> {
  if (!config.tls) return;
  const now = ports.clock.now().getTime();
  if (state.tls.operatorCheckAt !== null && now < state.tls.operatorCheckAt) return;
  try {
    state.tls.operatorCheckAt = (await ensureOperatorCert(ports, config.tls, ctx.asgName, log)).getTime();
  } catch (error) {
    state.tls.operatorCheckAt = now + 3_600_000;
    log.error("could not keep the operators' client certificate; trying again in an hour", {
      action: "tls-operator-cert",
      error: (error as Error).message,
    });
  }
}

/**
 * This node's certificate, looked at when its renewal falls due (boot issued it, so the first look
 * is at start); after a renewal the etcd connections are closed so the next ones present it.
 */
async function nodeCertIfDue(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  state: LoopState,
  log: Logger,
): Promise<void> {
  if (!config.tls) return;
  const now = ports.clock.now().getTime();
  if (state.tls.nodeCheckAt !== null && now < state.tls.nodeCheckAt) return;
  try {
    const out = await ensureNodeCert(ports, config, ctx, log);
    state.tls.nodeCheckAt = renewalAt(out.facts).getTime();
    if (out.kind !== "kept") await ports.etcd.close();
  } catch (error) {
    log.error("could not renew this node's certificate; trying again next cycle", {
      action: "tls-cert",
      error: (error as Error).message,
    });
  }
}

/**
 * A CA rotation (docs/security.md, "Rotate the CA"): the CA secret read every --tls-ca-check-seconds,
 * every cycle while a rotation is under way; this node follows its phase (files, then etcd restarted
 * under the restart lock). A new phase also sends the leader to the operators' certificate at once.
 */
async function caRotationIfDue(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  state: LoopState,
  log: Logger,
): Promise<void> {
  if (!config.tls || !ports.etcdService || !ports.restartLock) return;
  const now = ports.clock.now().getTime();
  if (state.tls.caCheckAt && now < state.tls.caCheckAt) return;
  try {
    const out = await followCaRotation(ports, config, ctx, log, { knownEndpoints: state.knownEndpoints });
    const settled = out.kind === "steady" && out.decision.action === "none";
    state.tls.caCheckAt = settled ? now + config.tls.caCheckSeconds * 1000 : null;
    if (out.phase !== state.tls.caPhase) {
      state.tls.caPhase = out.phase;
      state.tls.operatorCheckAt = null;
      state.tls.nodeCheckAt = null;
    }
    if (out.kind === "restarted") await ports.etcd.close();
  } catch (error) {
    state.tls.caCheckAt = null;
    log.error("could not follow the CA secret; trying again next cycle", {
      action: "ca-rotation",
      error: (error as Error).message,
    });
  }
}

/**
 * The steps of a graceful leave, one a cycle (the loop observes again between them): hand
 * leadership away, leave etcd (after DNS has let the member go), complete the terminate hook. Each
 * is the action of that type applied for this instance; a crash after any of them restarts the
 * loop on what etcd, AWS and the persisted clocks say (test/unit/commands/leave-crash-steps.test.ts).
 */
export const LEAVE_STEPS = {
  "leave:move-leader": "move-leader",
  "leave:remove-self": "remove-member",
  "leave:complete-hook": "complete-lifecycle",
} as const satisfies Record<string, Action["type"]>;

/** What the loop carries from one cycle to the next (the observation folds its clocks into it). */
export interface LoopState extends ObservedState {
  /** The memory has been read back from the state dir (once, at the first cycle). */
  memoryLoaded: boolean;
  /** The holds logged last cycle: a hold is logged at info when it first appears, then at debug. */
  loggedHolds: Set<string>;
  backup: BackupState;
  /** TLS: when this node's certificate and (on the leader) the operators' one are due a look; null: now. */
  tls: {
    nodeCheckAt: number | null;
    operatorCheckAt: number | null;
    /** When the CA secret is due a look for a rotation; null: now. */
    caCheckAt?: number | null;
    /** The CA secret's phase seen last (a change sends the certificates to a look at once). */
    caPhase?: string;
  };
  /** Foreign-cluster alarms raised by this process (cluster and marker), so each is raised once. */
  alarmsRaised?: Set<string>;
  /** The leader seen last cycle (for the leader-change count); undefined before the first look. */
  lastLeaderId?: string | null;
  /** The leader's storage care: a defragmentation running beside the loop, the NOSPACE compaction. */
  storage?: StorageState;
}

export function initialLoopState(): LoopState {
  return {
    memory: emptyMemory(),
    memoryLoaded: false,
    knownEndpoints: [],
    hooks: null,
    launchSettled: false,
    loggedHolds: new Set(),
    backup: initialBackupState(),
    tls: { nodeCheckAt: null, operatorCheckAt: null, caCheckAt: null },
    storage: initialStorageState(),
  };
}

/**
 * etcd's alarms, logged once when raised and once when cleared (the memory keeps which were
 * logged); returns the ones raised since.
 */
function logAlarms(state: LoopState, obs: ReconcileObservation, log: Logger): string[] {
  const members = obs.cluster?.members ?? [];
  if (!members.some((m) => m.status !== null)) return [];
  const seen = rememberAlarms(state.memory, members);
  state.memory = seen.memory;
  for (const kind of seen.raised)
    log.warn(`etcd alarm raised: ${kind}`, { action: "etcd-alarm", reason: `${kind} is raised` });
  for (const kind of seen.cleared)
    log.info(`etcd alarm cleared: ${kind}`, { action: "etcd-alarm", reason: `${kind} was cleared` });
  return seen.raised;
}

/** On the leader: an alarm record for each etcd alarm raised since it was last logged (the topic's alarm). */
async function alarmEtcdAlarms(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  obs: ReconcileObservation,
  raised: string[],
  log: Logger,
): Promise<void> {
  if (obs.cluster === null) return;
  for (const kind of raised) {
    try {
      const key = await recordEtcdAlarm(ports, config, ctx.asgName, {
        kind,
        clusterId: obs.cluster.clusterId,
        instanceId: ctx.identity.instanceId,
        reason:
          kind === "NOSPACE"
            ? "a member's db reached the quota; etcd refuses writes until the leader has compacted, defragmented and disarmed"
            : `${kind} is raised; the agent never disarms it and takes no member away while it is`,
      });
      if (key !== null)
        log.warn(`recorded the ${kind} alarm for the alarm topic`, {
          action: "etcd-alarm",
          reason: `${kind} is raised`,
          key,
        });
    } catch (error) {
      log.error(`could not record the ${kind} alarm`, {
        action: "etcd-alarm",
        error: (error as Error).message,
      });
    }
  }
}

/** The memory persisted in the state dir, read once; a file that cannot be read is an empty memory. */
async function loadMemory(ports: Ports, state: LoopState, log: Logger): Promise<void> {
  if (state.memoryLoaded) return;
  state.memoryLoaded = true;
  try {
    state.memory = resumeMemory(parseMemory(await ports.local.readMemory()), ports.clock.now().toISOString());
  } catch (error) {
    log.warn("could not read the remembered clocks; they start again", { error: (error as Error).message });
  }
}

async function saveMemory(ports: Ports, state: LoopState, before: string, log: Logger): Promise<void> {
  if (JSON.stringify(state.memory) === before) return;
  try {
    // The unreachable and not-found clocks are boot's (it runs before every start of etcd, beside this loop): keep
    // what is on disk for it, never this process's copy from when it started.
    const disk = parseMemory(await ports.local.readMemory().catch(() => null));
    await ports.local.writeMemory({
      ...state.memory,
      unreachableSince: disk.unreachableSince,
      unreachableConfirmedAt: disk.unreachableConfirmedAt,
      notFoundSince: disk.notFoundSince,
    });
  } catch (error) {
    log.warn("could not persist the remembered clocks", { error: (error as Error).message });
  }
}

/** Logs each hold at info when it is new since the last cycle and at debug while it lasts. */
export function logPlan(log: Logger, plan: Plan, state?: LoopState): void {
  const now = new Set<string>();
  for (const h of plan.holds) {
    const key = `${h.rule} ${h.detail}`;
    now.add(key);
    const fields = { rule: h.rule, reason: h.detail, role: plan.role };
    if (state?.loggedHolds.has(key)) log.debug(`held back: ${RULES[h.rule]}`, fields);
    else log.info(`held back: ${RULES[h.rule]}`, fields);
  }
  if (state) state.loggedHolds = now;
}

export interface CycleResult {
  plan: Plan;
  applied: Action[];
  /** The one line for `systemctl status`. */
  status: string;
  /** The cluster's figures after this cycle, for the metrics. */
  signs: VitalSigns;
}

/** The quota etcd runs with (--etcd-quota-backend-bytes, written into etcd's env file by boot), for the quota-used figure. */
export function quotaBytes(config: AgentConfig): number {
  return config.etcd.quotaBackendBytes;
}

/** Hands the cycle's figures to every sink; a sink that throws anyway is logged, never the loop's end. */
function recordMetrics(ports: Ports, log: Logger, signs: VitalSigns | null): void {
  for (const sink of ports.metrics ?? []) {
    try {
      if (signs === null) sink.cycleFailed();
      else sink.record(signs);
    } catch (error) {
      log.debug("a metrics sink failed", { action: "metrics", error: (error as Error).message });
    }
  }
}

export async function reconcileOnce(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  state: LoopState,
  log: Logger,
  /** A test's hook after each applied action (agent/apply/steps.ts): it crashes the cycle there. */
  afterStep?: AfterStep,
): Promise<CycleResult> {
  await loadMemory(ports, state, log);
  const before = JSON.stringify(state.memory);
  const obs = await observeReconcile(
    ports,
    config,
    ctx,
    state,
    () => storageObservation(config, state.storage),
    log,
  );
  const raised = logAlarms(state, obs, log);
  state.storage ??= initialStorageState();
  if (obs.cluster?.members.some((m) => m.status !== null))
    forgetCompaction(state.storage, alarmsOf(obs.cluster.members).includes("NOSPACE"));
  await recordOwnMemberId(ports, ctx, obs);
  const plan = planReconcile(obs);
  logPlan(log, plan, state);
  if (plan.role === "leader" && !plan.holds.some((h) => h.rule === "foreign-cluster"))
    await alarmEtcdAlarms(ports, config, ctx, obs, raised, log);
  const applied: Action[] = [];
  let membershipChanged = false;
  for (const action of plan.actions) {
    if (MEMBERSHIP_ACTIONS.has(action.type)) {
      if (membershipChanged) continue;
      membershipChanged = true;
    }
    if (action.type === "raise-foreign-cluster-alarm") {
      // Logged at error every cycle it lasts; the event object (the alarm) once.
      log.error(`held back: ${RULES["foreign-cluster"]}`, {
        action: action.type,
        rule: "foreign-cluster",
        reason: action.reason,
        cluster_id: action.clusterId,
      });
      const key = `${action.clusterId} ${action.markerCluster ?? action.markerToken}`;
      state.alarmsRaised ??= new Set();
      if (state.alarmsRaised.has(key)) continue;
      if (
        await applyAction(
          ports,
          config,
          ctx,
          obs,
          action,
          log,
          { backup: state.backup, storage: state.storage },
          afterStep,
        )
      )
        state.alarmsRaised.add(key);
      continue;
    }
    const ok = await applyAction(
      ports,
      config,
      ctx,
      obs,
      action,
      log,
      { backup: state.backup, storage: state.storage },
      afterStep,
    );
    if (ok) {
      applied.push(action);
      if (action.type === "set-instance-unhealthy")
        state.memory = {
          ...state.memory,
          reportedUnhealthy: state.memory.reportedUnhealthy.includes(action.instanceId)
            ? state.memory.reportedUnhealthy
            : [...state.memory.reportedUnhealthy, action.instanceId],
          reportedUnhealthyAt: { ...state.memory.reportedUnhealthyAt, [action.instanceId]: obs.now },
        };
      if (action.type === "update-dns") state.memory = rememberDnsWrites(state.memory, obs.now, true);
    }
  }
  await saveMemory(ports, state, before, log);
  // Backups: the leader's, while it is not leaving (a leaving leader saves one before handing over).
  // Started beside the loop, never waited for: the loop keeps cycling, heartbeating and pinging.
  const self = obs.cluster
    ? findSelfMember(obs.cluster.members, ctx.identity.instanceId, ctx.identity.privateIp)
    : null;
  const leaving = obs.self.targetLifecycleState !== null && obs.self.targetLifecycleState !== "InService";
  // A leader of a cluster the marker does not name saves nothing under the marker's token.
  const foreign = plan.holds.some((h) => h.rule === "foreign-cluster");
  if (self && obs.cluster?.leaderId === self.id && !leaving && !foreign) {
    const b = backupSubject(obs, ctx, config);
    backupBesideIfDue(ports, config, ctx.asgName, b.endpoint, b.token, state.backup, log, b.members);
    await operatorCertIfDue(ports, config, ctx, state, log);
  }
  const signs = vitalSigns({
    obs,
    plan,
    applied: applied.map((a) => a.type),
    previousLeaderId: state.lastLeaderId,
    lastBackupAt: config.backup ? state.backup.lastTakenAt : null,
    quotaBytes: quotaBytes(config),
  });
  if (obs.cluster !== null) state.lastLeaderId = obs.cluster.leaderId;
  return {
    plan,
    applied,
    signs,
    status: statusLine(
      obs,
      plan,
      applied.map((a) => a.type),
    ),
  };
}

/** Once this node's etcd runs as its member, remember the member ID beside the data. */
async function recordOwnMemberId(ports: Ports, ctx: BootContext, obs: ReconcileObservation): Promise<void> {
  if (obs.cluster === null) return;
  const me = findSelfMember(obs.cluster.members, ctx.identity.instanceId, ctx.identity.privateIp);
  if (me === null || !isStarted(me) || !isHealthy(me)) return;
  const local = await ports.local.readState();
  if (local === null || local.memberId === me.id) return;
  await ports.local.writeState({ ...local, memberId: me.id, updatedAt: obs.now });
}

/**
 * What the local etcd says about the cluster's shape: members, their roles, the leader, and the
 * alarms raised (etcd lists the cluster's alarms in every member's Status), so that a NOSPACE or
 * CORRUPT alarm is acted on within a second, not after the rest of the interval.
 */
export async function clusterShape(ports: Ports, localUrl: string): Promise<string | null> {
  try {
    const [list, status] = await Promise.all([
      ports.etcd.memberList([localUrl]),
      ports.etcd.status(localUrl),
    ]);
    const members = list.members
      .map((m) => `${m.id}:${m.name}:${m.isLearner ? "L" : "V"}:${m.clientUrls.join(",")}`)
      .sort()
      .join(";");
    const alarms = [...new Set(status?.errors ?? [])].sort().join(";");
    return `${members}|leader=${status?.leaderId ?? "?"}|alarms=${alarms}`;
  } catch {
    return null;
  }
}

/**
 * Waits for the next cycle: at most `ms`, but a cycle runs as soon as the local etcd shows the
 * cluster's shape differ from `before` (taken when the last cycle started: a member added,
 * started, promoted or removed, a new leader, an alarm raised or disarmed), so DNS and hooks follow
 * a join within about a second, or as soon as `ended()` says what the loop waited on is over (the
 * defragmentation beside it). Only the local etcd is asked, once a second; the AWS calls stay once
 * per cycle. With `pingEveryMs`, systemd's watchdog is pinged that often while waiting: a long
 * interval never outlasts WatchdogSec.
 */
export async function waitForChange(
  ports: Ports,
  localUrl: string,
  before: string | null,
  ms: number,
  options: { signal?: AbortSignal; pingEveryMs?: number; ended?: () => boolean } = {},
): Promise<void> {
  const { signal, pingEveryMs, ended } = options;
  const steps = Math.max(1, Math.ceil(ms / 1000));
  let pingedAt = ports.clock.now().getTime();
  for (let i = 0; i < steps && !signal?.aborted; i++) {
    await ports.clock.sleep(Math.min(1000, ms - i * 1000), signal);
    if (pingEveryMs !== undefined && ports.clock.now().getTime() - pingedAt >= pingEveryMs) {
      await ports.serviceManager.watchdog();
      pingedAt = ports.clock.now().getTime();
    }
    if (ended?.() === true) return;
    if (before === null) continue;
    const now = await clusterShape(ports, localUrl);
    if (now !== null && now !== before) return;
  }
}

export async function runLoop(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  log: Logger,
  options: { signal?: AbortSignal; maxCycles?: number; watchdogMs?: number | null } = {},
): Promise<number> {
  const state = initialLoopState();
  const sm = ports.serviceManager;
  const localUrl = clientUrlFor(ctx.identity.privateIp, config.clientPort, config.scheme);
  let cycles = 0;
  let ready = false;
  for (const sink of ports.metrics ?? [])
    await sink
      .start({ clusterName: ctx.asgName })
      .catch((error: Error) =>
        log.warn("could not start a metrics sink; the agent runs on without it", { error: error.message }),
      );
  while (!options.signal?.aborted && (options.maxCycles === undefined || cycles < options.maxCycles)) {
    cycles++;
    // The shape this cycle starts from: a change during or after the cycle ends the next wait.
    const shape = await clusterShape(ports, localUrl);
    let changed = false;
    let status: string;
    await nodeCertIfDue(ports, config, ctx, state, log);
    await caRotationIfDue(ports, config, ctx, state, log);
    try {
      const result = await reconcileOnce(ports, config, ctx, state, log);
      changed = result.applied.some((a) => a.type !== "heartbeat-lifecycle");
      status = result.status;
      recordMetrics(ports, log, result.signs);
    } catch (error) {
      recordMetrics(ports, log, null);
      status = `cycle failed: ${(error as Error).message}`;
      log.error("cycle failed", { error: (error as Error).message, name: (error as Error).name });
    }
    // Ready after the first cycle, whatever it found: the status line says what that was.
    if (!ready) {
      await sm.ready(status);
      ready = true;
    } else await sm.status(status);
    await sm.watchdog();
    // A defragmentation running beside the loop now: its end starts the next cycle (the next
    // member, or the NOSPACE disarm, waits for no interval).
    const defrag = state.storage?.running ?? null;
    if (changed) await ports.clock.sleep(1000, options.signal);
    else
      await waitForChange(ports, localUrl, shape, config.intervalSeconds * 1000, {
        signal: options.signal,
        pingEveryMs: pingEveryMs(options.watchdogMs),
        ended: () => defrag !== null && state.storage?.running !== defrag,
      });
  }
  await sm.stopping();
  for (const sink of ports.metrics ?? []) await sink.close().catch(() => undefined);
  log.info("stopped", { cycles });
  return cycles;
}

// The one applier of the run loop: carries out the typed actions the reconcile plan decided
// (agent/planner/reconcile-plan.ts), each as a named step (agent/apply/steps.ts): logged when done,
// and where a crash-after-the-step test stops it. A refusal by etcd or AWS ends the action for this
// cycle; the next cycle observes again and plans again: nothing is done on a stale plan.

import { recordForeignClusterEvent } from "../backups/cluster-alarm.js";
import { type BackupState, initialBackupState, lastWordSnapshot } from "../backups/index.js";
import type { BootContext } from "../commands/boot.js";
import type { AgentConfig } from "../config/config.js";
import { EtcdRequestError, MarkerConflictError } from "../errors.js";
import type { Logger } from "../log.js";
import { markerName } from "../planner/dns-plan.js";
import { markerRecord } from "../planner/marker.js";
import { clientUrlFor } from "../planner/membership.js";
import type { Action, ReconcileObservation } from "../planner/reconcile-plan.js";
import { RULES } from "../planner/rules.js";
import type { Ports } from "../ports/index.js";
import { type AfterStep, SimulatedCrashError, Steps } from "./steps.js";
import { applyStorage, initialStorageState, type StorageState } from "./storage.js";

/** The named step of each action type: what the run loop's crash-after-every-step test enumerates. */
export const RECONCILE_STEPS = [
  "reconcile:compact",
  "reconcile:defragment",
  "reconcile:disarm-nospace",
  "reconcile:promote-self",
  "reconcile:move-leader",
  "reconcile:remove-member",
  "reconcile:complete-lifecycle",
  "reconcile:heartbeat-lifecycle",
  "reconcile:set-instance-unhealthy",
  "reconcile:update-dns",
  "reconcile:write-marker",
  "reconcile:raise-foreign-cluster-alarm",
] as const satisfies readonly `reconcile:${Action["type"]}`[];

/** What the loop carries between cycles that an action needs: the backups' and storage's state. */
export interface ApplyState {
  backup: BackupState;
  storage: StorageState;
}

/** Compiles only while RECONCILE_STEPS names every action type the reconcile plan can decide. */
export const RECONCILE_STEPS_COVER_EVERY_ACTION: [
  Exclude<`reconcile:${Action["type"]}`, (typeof RECONCILE_STEPS)[number]>,
] extends [never]
  ? true
  : never = true;

const STORAGE_ACTIONS = new Set<Action["type"]>(["compact", "defragment", "disarm-nospace"]);

export const reconcileStep = (action: Action): (typeof RECONCILE_STEPS)[number] => `reconcile:${action.type}`;

/**
 * Applies one action of the plan as the named step `reconcile:<type>` (logged when done; a test's
 * afterStep crashes the loop there); false when etcd or AWS refused it in a way the next cycle will
 * revisit.
 */
export async function applyAction(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  obs: ReconcileObservation,
  action: Action,
  log: Logger,
  state: ApplyState = { backup: initialBackupState(), storage: initialStorageState() },
  afterStep?: AfterStep,
): Promise<boolean> {
  try {
    return await new Steps(log, afterStep).run(reconcileStep(action), () =>
      carryOut(ports, config, ctx, obs, action, log, state),
    );
  } catch (error) {
    // A crash a test made, and a storage action's own failure, end the cycle as before.
    if (error instanceof SimulatedCrashError || STORAGE_ACTIONS.has(action.type)) throw error;
    if (error instanceof EtcdRequestError || error instanceof MarkerConflictError) {
      log.info("action not taken this cycle", {
        action: action.type,
        reason: action.reason,
        rule: error.name,
        error: error.message,
      });
      return false;
    }
    log.error("action failed", {
      action: action.type,
      reason: action.reason,
      error: (error as Error).message,
    });
    return false;
  }
}

async function carryOut(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  obs: ReconcileObservation,
  action: Action,
  log: Logger,
  { backup, storage }: ApplyState,
): Promise<boolean> {
  const endpoints = (obs.cluster?.members ?? [])
    .filter((m) => m.status !== null)
    .flatMap((m) => m.clientUrls);
  const fields = { action: action.type, reason: action.reason };
  switch (action.type) {
    case "compact":
    case "defragment":
    case "disarm-nospace":
      return applyStorage(ports, storage, action, endpoints, log);
    case "promote-self":
      await ports.etcd.memberPromote(endpoints, action.memberId);
      log.info("promoted this learner to a voting member", { ...fields, member_id: action.memberId });
      break;
    case "move-leader": {
      // The last word of a leaving leader: one snapshot per leave (when backups are on), beside
      // the loop. The hand-over waits for it across cycles (bounded), never within one: the
      // plan's heartbeat that follows goes out this cycle whatever the snapshot does.
      const b = backupSubject(obs, ctx, config);
      const word = lastWordSnapshot(ports, config, ctx.asgName, b.endpoint, b.token, backup, log, b.members);
      if (word === "wait") {
        log.info(`held back: ${RULES["last-word-snapshot"]}`, { ...fields, rule: "last-word-snapshot" });
        return false;
      }
      await ports.etcd.moveLeader(
        clientUrlFor(ctx.identity.privateIp, config.clientPort, config.scheme),
        action.toMemberId,
      );
      log.info("handed leadership away", { ...fields, member_id: action.toMemberId });
      break;
    }
    case "remove-member":
      if (!(await ports.etcd.memberRemove(endpoints, action.memberId))) {
        log.info("member already removed (a joiner made room first)", {
          ...fields,
          member_id: action.memberId,
        });
        break;
      }
      log.warn("removed member", {
        ...fields,
        member_id: action.memberId,
        target_instance_id: action.instanceId ?? undefined,
      });
      break;
    case "complete-lifecycle":
      await ports.autoscaling.completeLifecycleAction({
        groupName: ctx.asgName,
        hookName: action.hook,
        instanceId: ctx.identity.instanceId,
        result: action.result,
      });
      log.info(`completed the ${action.transition} lifecycle action`, fields);
      break;
    case "heartbeat-lifecycle":
      await ports.autoscaling.recordLifecycleActionHeartbeat({
        groupName: ctx.asgName,
        hookName: action.hook,
        instanceId: ctx.identity.instanceId,
      });
      log.debug("lifecycle heartbeat", fields);
      break;
    case "set-instance-unhealthy":
      await ports.autoscaling.setInstanceUnhealthy(action.instanceId);
      log.warn("reported instance unhealthy", {
        ...fields,
        target_instance_id: action.instanceId,
        member_id: action.memberId,
      });
      break;
    case "update-dns":
      await ports.dns.change(action.changes);
      log.info("updated DNS records", fields);
      break;
    case "write-marker": {
      const name = markerName(config.domain);
      const previous =
        action.previous.kind === "present"
          ? { name, type: "TXT" as const, ttl: 60, values: [action.previous.marker.raw] }
          : null;
      const claimant =
        action.previous.kind === "present" ? action.previous.marker.claimant : ctx.identity.instanceId;
      await ports.dns.swapTxt(
        name,
        previous,
        markerRecord(name, { state: "active", token: action.token, claimant, cluster: action.clusterId }),
      );
      log.info("marked the cluster active", { ...fields, cluster_id: action.clusterId });
      break;
    }
    case "raise-foreign-cluster-alarm": {
      const key = await recordForeignClusterEvent(ports, config, ctx.asgName, {
        instanceId: ctx.identity.instanceId,
        clusterId: action.clusterId,
        markerToken: action.markerToken,
        markerCluster: action.markerCluster,
        reason: action.reason,
      });
      if (key === null) log.error("backups are off: no alarm event could be written; see this log", fields);
      else log.error("recorded the foreign cluster for the alarm", { ...fields, key });
      break;
    }
  }
  return true;
}

/** What a snapshot from this node is of: its local endpoint, the cluster's token, the members' names. */
export function backupSubject(obs: ReconcileObservation, ctx: BootContext, config: AgentConfig) {
  return {
    endpoint: clientUrlFor(ctx.identity.privateIp, config.clientPort, config.scheme),
    token: obs.marker.kind === "present" ? obs.marker.marker.token : obs.localClusterToken,
    members: (obs.cluster?.members ?? []).map((m) => m.name).filter((n) => n !== ""),
  };
}

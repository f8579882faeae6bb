import { applyBootSteps } from "../apply/boot.js";
import type { AfterStep } from "../apply/steps.js";
import { type AgentConfig, checkAsgNameLength } from "../config/config.js";
import { InterruptedError, RefusedError, WaitingError } from "../errors.js";
import type { Logger } from "../log.js";
import { observeBoot } from "../observe/boot.js";
import { type BootDecision, decideBoot } from "../planner/boot-plan.js";
import { bootSteps, describeStep } from "../planner/boot-steps.js";
import { emptyMemory } from "../planner/memory.js";
import type { Identity } from "../planner/observation.js";
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

export { BOOTSTRAP_STEPS, JOIN_STEPS, RESTORE_STEPS, RESUME_STEPS } from "../planner/boot-steps.js";

const MAX_ROUNDS = 500;
/** Between boot rounds that wait: 1 s for the first rounds (a join waits on seconds-long steps), 3 s after. */
const waitMs = (round: number) => (round <= 15 ? 1000 : 3000);

export interface BootOptions {
  signal?: AbortSignal;
  mode?: "boot" | "join";
  /** Run from the bastion for another instance (join --instance-id): that node's data is unknown here. */
  remote?: boolean;
  afterStep?: AfterStep;
}

/**
 * Observe, decide, carry out the steps the decision planned; again until etcd may start (its
 * environment file is written), a safety rule refuses, or the wait outlasts --boot-timeout-seconds.
 */
export async function runBoot(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  log: Logger,
  options: BootOptions = {},
): Promise<BootResult> {
  const { signal } = options;
  const deadline = ports.clock.now().getTime() + config.bootTimeoutSeconds * 1000;
  let memory = emptyMemory();
  let lastHold: BootDecision | null = null;

  for (let round = 1; round <= MAX_ROUNDS; round++) {
    if (signal?.aborted)
      throw new InterruptedError(
        `boot interrupted before round ${round}: every step it took is one a later boot resumes or redoes`,
      );
    const seen = await observeBoot(ports, config, ctx, memory, log);
    memory = seen.memory;
    const obs = seen.observation;
    const decision = decideBoot(obs, intentOf(options));
    logDecision(log, decision, round);

    if (decision.kind === "wait" || decision.kind === "refuse") {
      lastHold = decision;
      if (decision.kind === "refuse") throw new RefusedError(decision.hold);
      if (ports.clock.now().getTime() + waitMs(round) > deadline) throw new WaitingError(decision.hold);
      await ports.clock.sleep(waitMs(round), signal);
      continue;
    }
    const applied = await applyBootSteps(decision, bootSteps(decision), {
      ports,
      config,
      identity: ctx.identity,
      asgName: ctx.asgName,
      obs,
      deadline,
      log,
      ...(signal ? { signal } : {}),
      ...(options.afterStep ? { afterStep: options.afterStep } : {}),
    });
    if (applied.kind === "observe-again") continue;
    return {
      decision: decision.kind,
      reason: decision.reason,
      envFile: config.envFile,
      memberId: applied.memberId,
    };
  }
  throw new WaitingError(
    lastHold && (lastHold.kind === "wait" || lastHold.kind === "refuse")
      ? lastHold.hold
      : { rule: "partial-information", detail: `no decision after ${MAX_ROUNDS} rounds` },
  );
}

/** What `boot --dry-run` prints: the decision and the steps it would take. */
export interface BootDryRun {
  decision: BootDecision["kind"];
  /** The reason, or for wait and refuse the rule and what it held back. */
  reason: string;
  rule: string | null;
  steps: string[];
}

/**
 * One round of the boot without acting: observe (no clock persisted, no record written), decide,
 * and list the steps the applier would take. Nothing is written to etcd, the disk, DNS or S3.
 */
export async function dryRunBoot(
  ports: Ports,
  config: AgentConfig,
  ctx: BootContext,
  log: Logger,
  options: Pick<BootOptions, "mode" | "remote"> = {},
): Promise<BootDryRun> {
  const seen = await observeBoot(ports, config, ctx, emptyMemory(), log, { persist: false });
  const decision = decideBoot(seen.observation, intentOf(options));
  logDecision(log, decision, 1);
  if (decision.kind === "wait" || decision.kind === "refuse") {
    return {
      decision: decision.kind,
      reason: `${RULES[decision.hold.rule]}: ${decision.hold.detail}`,
      rule: decision.hold.rule,
      steps: [],
    };
  }
  return {
    decision: decision.kind,
    reason: decision.reason,
    rule: null,
    steps: bootSteps(decision).map(describeStep),
  };
}

export function formatDryRun(r: BootDryRun): string {
  const lines = [
    r.rule === null
      ? `boot would ${r.decision}: ${r.reason}`
      : `boot would ${r.decision} [rule: ${r.rule}]: ${r.reason}`,
    ...r.steps.map((s, i) => `  ${i + 1}. ${s}`),
    "dry run: nothing was changed",
  ];
  return `${lines.join("\n")}\n`;
}

const intentOf = (o: Pick<BootOptions, "mode" | "remote">) => ({
  join: o.mode === "join",
  remote: o.remote === true,
});

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

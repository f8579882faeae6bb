// `etcd-agent plan`: what the leader's `run` would do next, and why. Changes nothing.
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import { instanceOfMember, isHealthy, urlHost } from "../planner/membership.js";
import { type Plan, planReconcile } from "../planner/reconcile-plan.js";
import { RULES } from "../planner/rules.js";
import type { Ports } from "../ports/index.js";
import { observeSnapshot, operatorAsgName } from "./operator.js";
import { plannerSettings } from "./run.js";
import { storageObservation } from "./storage.js";

export interface PlanReport {
  asOf: { instanceId: string; memberId: string } | null;
  plan: Plan;
  note: string;
}

export async function runPlan(ports: Ports, config: AgentConfig, log: Logger): Promise<PlanReport> {
  const asgName = await operatorAsgName(ports, config);
  const snap = await observeSnapshot(ports, config, asgName, log);
  const note =
    "seen from outside the leader: grace periods and unhealthy deadlines start now, so removals of " +
    "never-started members and health reports show as held back";
  const leader = snap.cluster?.members.find((m) => m.id === snap.cluster?.leaderId) ?? null;
  if (snap.cluster === null || leader === null) {
    const plan: Plan = {
      role: "unknown",
      actions: [],
      holds: [
        {
          rule: "partial-information",
          detail: snap.cluster === null ? "no etcd member answers" : "the cluster has no leader",
        },
      ],
    };
    return { asOf: null, plan, note };
  }
  const instance = snap.asg ? instanceOfMember(leader, snap.asg) : null;
  const now = ports.clock.now().toISOString();
  const since = Object.fromEntries(snap.cluster.members.map((m) => [m.id, now]));
  // Only the members that do not answer now are unhealthy since now (healthy ones are settled).
  const unhealthySince = Object.fromEntries(
    snap.cluster.members.filter((m) => !isHealthy(m)).map((m) => [m.id, now]),
  );
  const plan = planReconcile({
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
    // From outside: no defragmentation known to run, none done; under NOSPACE the plan starts at the compaction.
    storage: storageObservation(config),
  });
  return { asOf: { instanceId: instance?.instanceId ?? leader.name, memberId: leader.id }, plan, note };
}

export function formatPlan(r: PlanReport): string {
  const lines: string[] = [];
  lines.push(
    r.asOf ? `plan of the leader ${r.asOf.instanceId} (member ${r.asOf.memberId})` : "no leader to plan as",
  );
  if (r.plan.actions.length === 0) lines.push("actions: none");
  for (const a of r.plan.actions) lines.push(`  DO   ${a.type}: ${a.reason}`);
  for (const h of r.plan.holds) lines.push(`  HOLD [${h.rule}] ${RULES[h.rule]}: ${h.detail}`);
  lines.push(`note: ${r.note}`);
  return `${lines.join("\n")}\n`;
}

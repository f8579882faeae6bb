// `etcd-agent plan`: what the leader's `run` would do next, and why. Changes nothing.

import { storageObservation } from "../apply/storage.js";
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import { operatorAsgName } from "../observe/operator-group.js";
import { leaderObservation } from "../observe/reconcile.js";
import { observeSnapshot } from "../observe/snapshot.js";
import { type Plan, planReconcile } from "../planner/reconcile-plan.js";
import { RULES } from "../planner/rules.js";
import type { Ports } from "../ports/index.js";

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
  // From outside: no defragmentation known to run, none done; under NOSPACE the plan starts at the compaction.
  const seen = leaderObservation(snap, config, ports.clock.now().toISOString(), storageObservation(config));
  if (seen === null) {
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
  return { asOf: seen.asOf, plan: planReconcile(seen.observation), note };
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

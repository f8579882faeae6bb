// The one line `systemctl status etcd-agent` shows. Pure.
import { alarmsOf, isHealthy, voterCounts } from "./membership.js";
import type { Plan, ReconcileObservation } from "./reconcile-plan.js";

export function statusLine(obs: ReconcileObservation, plan: Plan, applied: string[]): string {
  if (obs.cluster === null) return "etcd not answering; waiting";
  const counts = voterCounts(obs.cluster.members);
  const learners = obs.cluster.members.filter((m) => m.isLearner).length;
  const down = obs.cluster.members.filter((m) => !isHealthy(m)).length;
  const alarms = alarmsOf(obs.cluster.members);
  const parts = [
    plan.role,
    ...(alarms.length > 0 ? [`ALARM ${alarms.join(",")}`] : []),
    `${counts.healthyVoters}/${counts.voters} voters healthy`,
    ...(learners > 0 ? [`${learners} learner(s)`] : []),
    ...(down > 0 ? [`${down} member(s) down`] : []),
  ];
  if (applied.length > 0) parts.push(`did: ${applied.join(", ")}`);
  else {
    const held = plan.holds.find((h) => h.rule !== "leader-only");
    if (held) parts.push(`held: ${held.rule}`);
  }
  return parts.join(" | ");
}

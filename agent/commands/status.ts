// `etcd-agent status`: the cluster as an operator needs to see it.
import type { AgentConfig } from "../config/config.js";
import { ClusterUnhealthyError } from "../errors.js";
import type { Logger } from "../log.js";
import { operatorAsgName } from "../observe/operator-group.js";
import { observeSnapshot } from "../observe/snapshot.js";
import { buildStatusReport, type StatusReport } from "../planner/status-report.js";
import type { Ports } from "../ports/index.js";

export async function runStatus(ports: Ports, config: AgentConfig, log: Logger): Promise<StatusReport> {
  const asgName = await operatorAsgName(ports, config);
  const snap = await observeSnapshot(ports, config, asgName, log);
  return buildStatusReport({
    ...snap,
    domain: config.domain,
    peerPort: config.peerPort,
    clientPort: config.clientPort,
    tls: config.tls !== null,
  });
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [r.summary, ""];
  lines.push(`cluster ${r.clusterId ?? "-"}  leader ${r.leaderId ?? "-"}`);
  if (r.alarms.length > 0)
    lines.push(`etcd alarms: ${r.alarms.join(", ")} (cluster-wide; see etcdctl alarm list)`);
  lines.push(
    "MEMBER ID             NAME                 INSTANCE             ROLE     STARTED HEALTHY DB SIZE    RAFT INDEX",
  );
  for (const m of r.members) {
    const role = m.leader ? "leader" : m.learner ? "learner" : "voter";
    lines.push(
      [
        m.id.padEnd(21),
        (m.name || "-").padEnd(20),
        (m.instanceId ?? "-").padEnd(20),
        role.padEnd(8),
        (m.started ? "yes" : "no").padEnd(7),
        (m.healthy ? "yes" : "NO").padEnd(7),
        String(m.dbSize ?? "-").padEnd(10),
        m.raftIndex ?? "-",
      ].join(" "),
    );
  }
  lines.push("", "INSTANCE             IP               LIFECYCLE            HEALTH     MEMBER");
  for (const i of r.instances) {
    lines.push(
      [
        i.instanceId.padEnd(20),
        (i.ip ?? "-").padEnd(16),
        i.lifecycleState.padEnd(20),
        i.health.padEnd(10),
        i.memberId ?? "-",
      ].join(" "),
    );
  }
  lines.push(
    "",
    `marker: ${r.marker.kind === "present" ? `${r.marker.marker.state} token=${r.marker.marker.token}` : r.marker.kind}`,
  );
  lines.push(
    `DNS: ${r.dns.pending === null ? "not compared" : r.dns.pending.length === 0 ? "equal to the healthy voters" : "differs"}`,
  );
  if (r.drift.length > 0) lines.push("drift:", ...r.drift.map((d) => `  - ${d}`));
  return `${lines.join("\n")}\n`;
}

export function assertHealthy(r: StatusReport): void {
  if (!r.healthy) throw new ClusterUnhealthyError(r.summary);
}

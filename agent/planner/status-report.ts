// The status an operator reads: members, instances, DNS against what it should be, drift. Pure.

import { type DnsChange, desiredRecords, dnsChanges } from "./dns-plan.js";
import { alarmsOf, instanceOfMember, isHealthy, isStarted, urlHost, voterCounts } from "./membership.js";
import type { AsgView, ClusterView, DnsRecord, MarkerRead } from "./observation.js";
import { hasQuorum, quorumSize } from "./quorum.js";

export interface StatusReport {
  healthy: boolean;
  summary: string;
  clusterId: string | null;
  leaderId: string | null;
  quorum: { voters: number; healthyVoters: number; needed: number } | null;
  /** etcd's alarms (NOSPACE, CORRUPT): cluster-wide, so not any member's health; the cluster is not healthy while one is raised. */
  alarms: string[];
  members: Array<{
    id: string;
    name: string;
    instanceId: string | null;
    peerUrl: string | null;
    learner: boolean;
    started: boolean;
    healthy: boolean;
    leader: boolean;
    dbSize: number | null;
    raftIndex: string | null;
    version: string | null;
  }>;
  instances: Array<{
    instanceId: string;
    ip: string | null;
    lifecycleState: string;
    health: string;
    memberId: string | null;
  }>;
  dns: { records: DnsRecord[] | null; pending: DnsChange[] | null };
  marker: MarkerRead;
  drift: string[];
}

export function buildStatusReport(input: {
  cluster: ClusterView | null;
  asg: AsgView | null;
  dns: DnsRecord[] | null;
  marker: MarkerRead;
  domain: string;
  peerPort: number;
  clientPort: number;
  tls: boolean;
}): StatusReport {
  const { cluster, asg } = input;
  const drift: string[] = [];
  const members =
    cluster?.members.map((m) => ({
      id: m.id,
      name: m.name,
      instanceId: asg ? (instanceOfMember(m, asg)?.instanceId ?? null) : null,
      peerUrl: m.peerUrls[0] ?? null,
      learner: m.isLearner,
      started: isStarted(m),
      healthy: isHealthy(m),
      leader: cluster.leaderId === m.id,
      dbSize: m.status?.dbSize ?? null,
      raftIndex: m.status?.raftIndex ?? null,
      version: m.status?.version ?? null,
    })) ?? [];
  const memberOfInstance = new Map(
    members.filter((m) => m.instanceId).map((m) => [m.instanceId as string, m.id]),
  );
  const instances =
    asg?.instances.map((i) => ({
      instanceId: i.instanceId,
      ip: i.privateIp,
      lifecycleState: i.lifecycleState,
      health: i.healthStatus,
      memberId: memberOfInstance.get(i.instanceId) ?? null,
    })) ?? [];

  if (asg !== null && cluster !== null) {
    for (const m of members) {
      if (m.instanceId === null)
        drift.push(`member ${m.id} (${m.name || m.peerUrl}) has no instance in ${asg.name}`);
    }
    for (const i of instances) {
      if (i.memberId === null && i.lifecycleState === "InService")
        drift.push(`instance ${i.instanceId} is InService but no member`);
    }
  }
  let pending: DnsChange[] | null = null;
  if (cluster !== null && input.dns !== null) {
    const voters = cluster.members
      .filter((m) => !m.isLearner && isStarted(m) && isHealthy(m))
      .flatMap((m) => {
        const ip = (asg ? instanceOfMember(m, asg)?.privateIp : null) ?? urlHost(m.peerUrls[0] ?? "");
        return ip ? [{ name: m.name, ip }] : [];
      });
    if (voters.length > 0) {
      pending = dnsChanges(input.dns, desiredRecords(voters, input), input.domain);
      for (const c of pending)
        drift.push(`DNS ${c.action} ${c.record.type} ${c.record.name} ${c.record.values.join(" ")}`);
    }
  }

  const counts = cluster ? voterCounts(cluster.members) : null;
  const quorum = counts ? { ...counts, needed: quorumSize(counts.voters) } : null;
  const unhealthy = members.filter((m) => !m.healthy);
  const alarms = cluster ? alarmsOf(cluster.members) : [];
  const healthy =
    cluster !== null &&
    counts !== null &&
    hasQuorum(counts) &&
    cluster.leaderId !== null &&
    unhealthy.length === 0 &&
    alarms.length === 0;
  const summary =
    cluster === null
      ? "no etcd member answers"
      : `${healthy ? "healthy" : "UNHEALTHY"}: ${alarms.length > 0 ? `etcd alarm ${alarms.join(", ")}; ` : ""}${counts?.healthyVoters}/${counts?.voters} voters healthy (quorum ${quorum?.needed}), ` +
        `${members.filter((m) => m.learner).length} learner(s), leader ${cluster.leaderId ?? "none"}` +
        (unhealthy.length > 0 ? `; not healthy: ${unhealthy.map((m) => m.name || m.id).join(", ")}` : "") +
        (drift.length > 0 ? `; ${drift.length} drift item(s)` : "");
  return {
    healthy,
    summary,
    clusterId: cluster?.clusterId ?? null,
    leaderId: cluster?.leaderId ?? null,
    quorum,
    alarms,
    members,
    instances,
    dns: { records: input.dns, pending },
    marker: input.marker,
    drift,
  };
}

// Small builders for planner observations. Defaults describe a healthy 3-node cluster whose
// leader is member "1" on i-00000001 at 127.0.1.1.
import type { BootObservation, MarkerRead } from "../../agent/planner/boot-plan.js";
import type { AsgInstance, AsgView, ClusterView, MemberView } from "../../agent/planner/observation.js";
import type { ReconcileObservation } from "../../agent/planner/reconcile-plan.js";

export const NOW = "2026-11-22T12:00:00.000Z";

export function iid(n: number): string {
  return `i-${n.toString(16).padStart(8, "0")}`;
}

export function ip(n: number): string {
  return `127.0.1.${n}`;
}

export function instance(n: number, over: Partial<AsgInstance> = {}): AsgInstance {
  return {
    instanceId: iid(n),
    lifecycleState: "InService",
    healthStatus: "Healthy",
    privateIp: ip(n),
    launchTime: `2026-11-22T10:00:0${n % 10}.000Z`,
    ...over,
  };
}

export function asg(instances: AsgInstance[], over: Partial<AsgView> = {}): AsgView {
  return { name: "etcd", desiredCapacity: instances.length, instances, ...over };
}

export interface MemberOpts {
  learner?: boolean;
  started?: boolean;
  healthy?: boolean;
  leaderId?: string;
  raftIndex?: string;
  name?: string;
}

/** Member n on instance n; healthy voter by default. */
export function member(n: number, o: MemberOpts = {}): MemberView {
  const started = o.started ?? true;
  const healthy = o.healthy ?? true;
  return {
    id: String(n),
    name: started ? (o.name ?? iid(n)) : "",
    peerUrls: [`http://${ip(n)}:2380`],
    clientUrls: started ? [`http://${ip(n)}:2379`] : [],
    isLearner: o.learner ?? false,
    instanceId: iid(n),
    status:
      started && healthy
        ? {
            memberId: String(n),
            leaderId: o.leaderId ?? "1",
            raftIndex: o.raftIndex ?? "100",
            raftTerm: "2",
            dbSize: 20480,
            isLearner: o.learner ?? false,
            version: "3.4.23",
            errors: [],
          }
        : null,
  };
}

export function cluster(members: MemberView[], leaderId: string | null = "1"): ClusterView {
  return { answeredBy: members[0]?.id ?? "0", clusterId: "42", members, leaderId };
}

export const ABSENT: MarkerRead = { kind: "absent" };

export function marker(
  state: "claimed" | "active" | "restoring",
  claimant = iid(1),
  token = `etcd-${claimant}`,
  clusterId?: string,
): MarkerRead {
  const id = clusterId ? ` cluster=${clusterId}` : "";
  return {
    kind: "present",
    marker: {
      state,
      token,
      claimant,
      ...(clusterId ? { cluster: clusterId } : {}),
      raw: `"etcd-agent-marker v1 state=${state} token=${token} claimant=${claimant}${id}"`,
    },
  };
}

export function bootObs(self: number, over: Partial<BootObservation> = {}): BootObservation {
  return {
    self: { instanceId: iid(self), privateIp: ip(self), targetLifecycleState: null },
    asg: asg([instance(1), instance(2), instance(3)]),
    cluster: null,
    marker: ABSENT,
    local: { hasData: false, state: null },
    now: NOW,
    startupGraceSeconds: 300,
    firstSeen: {},
    ...over,
  };
}

export function reconcileObs(self: number, over: Partial<ReconcileObservation> = {}): ReconcileObservation {
  return {
    self: { instanceId: iid(self), privateIp: ip(self), targetLifecycleState: null },
    asg: asg([instance(1), instance(2), instance(3)]),
    cluster: cluster([member(1), member(2), member(3)]),
    // The marker as the leader leaves it: active, with the cluster's ID ("42", as cluster() has).
    marker: marker("active", iid(1), "etcd-i-00000001", "42"),
    dns: null,
    hooks: { launch: "launch-hook", terminate: "terminate-hook" },
    now: NOW,
    firstSeenUnstarted: {},
    unhealthySince: {},
    reportedUnhealthy: [],
    localClusterToken: "etcd-i-00000001",
    config: {
      domain: "etcd.internal",
      peerPort: 2380,
      clientPort: 2379,
      tls: false,
      startupGraceSeconds: 300,
      unhealthyDeadlineSeconds: 600,
    },
    ...over,
  };
}

/** Seconds before NOW, as ISO-8601. */
export function ago(seconds: number): string {
  return new Date(Date.parse(NOW) - seconds * 1000).toISOString();
}

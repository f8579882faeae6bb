// Generators of planner observations for the property-based tests: members (voters, learners,
// started or not), their health and statuses (etcd alarms included), ASG instances in every
// lifecycle state, markers, local state, backups and clocks. The one place to change when the
// observation types gain fields.
import { fc } from "@fast-check/vitest";
import type { BootObservation, MarkerRead } from "../../../../agent/planner/boot-plan.js";
import { encodeMarker } from "../../../../agent/planner/marker.js";
import type {
  AsgInstance,
  ClusterView,
  LocalState,
  MemberStatus,
  MemberView,
} from "../../../../agent/planner/observation.js";
import type { ReconcileObservation } from "../../../../agent/planner/reconcile-plan.js";
import { ago, iid, ip, NOW } from "../../../support/fixtures.js";

/** Runs per property: FC_NUM_RUNS (npm run test:deep) or the file's default. */
export function runs(byDefault: number): number {
  const n = Number(process.env.FC_NUM_RUNS);
  return Number.isInteger(n) && n > 0 ? n : byDefault;
}

export const LIFECYCLE_STATES = [
  "Pending",
  "Pending:Wait",
  "Pending:Proceed",
  "InService",
  "Standby",
  "Terminating",
  "Terminating:Wait",
  "Terminating:Proceed",
  "Terminated",
  "Detaching",
  "Detached",
] as const;

/** What a member's Status call said: answered and healthy, no answer, an etcd alarm, no leader. */
export type Health = "ok" | "down" | "alarm" | "no-leader";

/** The cluster-wide alarms etcd puts into every member's Status. */
export const ALARMS = ["NOSPACE", "CORRUPT"] as const;

/** A member that answers Status with a leader: up, whatever alarm the cluster raised. */
export function answers(m: MemberView): boolean {
  return m.status !== null && m.status.leaderId !== "0";
}

export interface MemberSpec {
  learner: boolean;
  started: boolean;
  health: Health;
  /** Named after an instance (the agent's way) or a foreign name (added by hand). */
  foreign: boolean;
  /** The member's instance in the ASG, or null when it is not listed. */
  instance: { lifecycleState: string; healthStatus: "Healthy" | "Unhealthy" } | null;
  /** Seconds since it was first seen unstarted / unhealthy; null when never seen. */
  unstartedFor: number | null;
  unhealthyFor: number | null;
  reported: boolean;
}

const seconds = fc.option(fc.integer({ min: 0, max: 1500 }), { nil: null });

export const memberSpec: fc.Arbitrary<MemberSpec> = fc.record({
  learner: fc.boolean(),
  started: fc.oneof(
    { weight: 4, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  health: fc.constantFrom<Health>("ok", "ok", "down", "alarm", "no-leader"),
  foreign: fc.oneof(
    { weight: 9, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  instance: fc.option(
    fc.record({
      lifecycleState: fc.oneof(
        { weight: 3, arbitrary: fc.constant("InService") },
        { weight: 2, arbitrary: fc.constantFrom(...LIFECYCLE_STATES) },
      ),
      healthStatus: fc.constantFrom<"Healthy" | "Unhealthy">("Healthy", "Healthy", "Unhealthy"),
    }),
    { nil: null, freq: 5 },
  ),
  unstartedFor: seconds,
  unhealthyFor: seconds,
  reported: fc.boolean(),
});

export interface WorldSpec {
  members: MemberSpec[];
  /** Index of the member whose leader the answering members name; null: no leader. */
  leader: number | null;
  /** Instances in the ASG that are no member (launching, or joined nothing yet). */
  extras: { lifecycleState: string; healthStatus: "Healthy" | "Unhealthy" }[];
  /** Launch order: a permutation key per instance number. */
  launchOffsets: number[];
}

export const worldSpec: fc.Arbitrary<WorldSpec> = fc
  .record({
    members: fc.array(memberSpec, { minLength: 1, maxLength: 7 }),
    leader: fc.option(fc.nat(6), { nil: null, freq: 6 }),
    extras: fc.array(
      fc.record({
        lifecycleState: fc.constantFrom(...LIFECYCLE_STATES),
        healthStatus: fc.constantFrom<"Healthy" | "Unhealthy">("Healthy", "Unhealthy"),
      }),
      { maxLength: 2 },
    ),
    launchOffsets: fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 10, maxLength: 10 }),
  })
  .map((w) => ({ ...w, leader: w.leader === null ? null : w.leader % w.members.length }));

function launchTime(offset: number): string {
  return new Date(Date.parse("2026-11-22T10:00:00.000Z") + offset * 1000).toISOString();
}

/** Member k (1-based) of the world, on instance k at 127.0.1.k. */
export function buildMembers(w: WorldSpec): { members: MemberView[]; leaderId: string | null } {
  const leaderSpec = w.leader === null ? null : w.members[w.leader];
  // The leader answers (a leader that does not answer is named by none).
  const leaderUp = leaderSpec?.started === true && !leaderSpec.learner;
  const leaderId = leaderUp && w.leader !== null ? String(w.leader + 1) : null;
  const members = w.members.map((s, i): MemberView => {
    const n = i + 1;
    const isLeader = leaderId === String(n);
    const health: Health = isLeader ? (s.health === "alarm" ? "alarm" : "ok") : s.health;
    const status = (): MemberStatus | null => {
      if (!s.started || health === "down") return null;
      return {
        memberId: String(n),
        leaderId: health === "no-leader" || leaderId === null ? "0" : leaderId,
        raftIndex: String(100 - (i % 3)),
        raftTerm: "2",
        dbSize: 20480,
        isLearner: s.learner && !isLeader,
        version: "3.4.23",
        errors: health === "alarm" ? [`memberID:${n} alarm:${ALARMS[n % 2]}`] : [],
      };
    };
    return {
      id: String(n),
      name: s.started ? (s.foreign ? `etcd-${n}` : iid(n)) : "",
      peerUrls: [`http://${ip(n)}:2380`],
      clientUrls: s.started ? [`http://${ip(n)}:2379`] : [],
      isLearner: s.learner && !isLeader,
      instanceId: s.instance === null ? null : iid(n),
      status: status(),
    };
  });
  return { members, leaderId };
}

export function buildInstances(w: WorldSpec): AsgInstance[] {
  const out: AsgInstance[] = [];
  w.members.forEach((s, i) => {
    if (s.instance === null) return;
    out.push({
      instanceId: iid(i + 1),
      lifecycleState: s.instance.lifecycleState,
      healthStatus: s.instance.healthStatus,
      privateIp: ip(i + 1),
      launchTime: launchTime(w.launchOffsets[i] ?? i),
    });
  });
  w.extras.forEach((e, j) => {
    const n = w.members.length + j + 1;
    out.push({
      instanceId: iid(n),
      lifecycleState: e.lifecycleState,
      healthStatus: e.healthStatus,
      privateIp: ip(n),
      launchTime: launchTime(w.launchOffsets[n - 1] ?? n),
    });
  });
  return out;
}

export function buildCluster(w: WorldSpec): ClusterView {
  const { members, leaderId } = buildMembers(w);
  return {
    answeredBy: members.find((m) => m.status !== null)?.id ?? "1",
    clusterId: "42",
    members,
    leaderId,
  };
}

function clocks(w: WorldSpec): {
  firstSeenUnstarted: Record<string, string>;
  unhealthySince: Record<string, string>;
  reportedUnhealthy: string[];
} {
  const firstSeenUnstarted: Record<string, string> = {};
  const unhealthySince: Record<string, string> = {};
  const reportedUnhealthy: string[] = [];
  w.members.forEach((s, i) => {
    const id = String(i + 1);
    if (s.unstartedFor !== null) firstSeenUnstarted[id] = ago(s.unstartedFor);
    if (s.unhealthyFor !== null) unhealthySince[id] = ago(s.unhealthyFor);
    if (s.reported) reportedUnhealthy.push(iid(i + 1));
  });
  return { firstSeenUnstarted, unhealthySince, reportedUnhealthy };
}

export type MarkerSpec =
  | { kind: "absent" }
  | { kind: "unknown" }
  | {
      kind: "present";
      state: "claimed" | "active" | "restoring";
      /** Claimant: instance number (1..10). */
      claimant: number;
      /** The token is the claimant's (as tokenFor makes it) or another. */
      token: "claimant" | "other";
      withCluster: boolean;
    };

export const markerSpec: fc.Arbitrary<MarkerSpec> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<MarkerSpec>({ kind: "absent" }) },
  { weight: 1, arbitrary: fc.constant<MarkerSpec>({ kind: "unknown" }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("present" as const),
      state: fc.constantFrom("claimed" as const, "active" as const, "restoring" as const),
      claimant: fc.integer({ min: 1, max: 9 }),
      token: fc.constantFrom("claimant" as const, "other" as const),
      withCluster: fc.boolean(),
    }),
  },
);

export function buildMarker(m: MarkerSpec): MarkerRead {
  if (m.kind === "absent") return { kind: "absent" };
  if (m.kind === "unknown") return { kind: "unknown", error: "Throttling: Rate exceeded" };
  const claimant = iid(m.claimant);
  const token = m.token === "claimant" ? `etcd-${claimant}` : "etcd-i-0000abcd";
  const fields = { state: m.state, token, claimant, ...(m.withCluster ? { cluster: "42" } : {}) };
  return { kind: "present", marker: { ...fields, raw: encodeMarker(fields) } };
}

export interface ReconcileSpec {
  world: WorldSpec;
  /** Index of this node among the members; past the end: an instance that is no member. */
  self: number;
  /** This node is the leader (when there is one): most plans worth checking are the leader's. */
  selfIsLeader: boolean;
  target: string | null;
  marker: MarkerSpec;
  dnsReadable: boolean;
  hooks: boolean;
  grace: number;
  deadline: number;
}

export const reconcileSpec: fc.Arbitrary<ReconcileSpec> = fc.record({
  world: worldSpec,
  self: fc.nat(7),
  selfIsLeader: fc.boolean(),
  target: fc.constantFrom<string | null>(null, null, null, "InService", "Terminated"),
  marker: markerSpec,
  dnsReadable: fc.boolean(),
  hooks: fc.boolean(),
  grace: fc.constantFrom(0, 300),
  deadline: fc.constantFrom(0, 600),
});

export function buildReconcile(s: ReconcileSpec): ReconcileObservation {
  const leader = buildMembers(s.world).leaderId;
  const n = s.selfIsLeader && leader !== null ? Number(leader) : Math.min(s.self, s.world.members.length) + 1;
  const instances = buildInstances(s.world);
  if (!instances.some((i) => i.instanceId === iid(n))) {
    instances.push({
      instanceId: iid(n),
      lifecycleState: "InService",
      healthStatus: "Healthy",
      privateIp: ip(n),
      launchTime: launchTime(0),
    });
  }
  return {
    self: { instanceId: iid(n), privateIp: ip(n), targetLifecycleState: s.target },
    asg: { name: "etcd", desiredCapacity: instances.length, instances },
    cluster: buildCluster(s.world),
    marker: buildMarker(s.marker),
    dns: s.dnsReadable ? [] : null,
    hooks: s.hooks ? { launch: "launch-hook", terminate: "terminate-hook" } : null,
    now: NOW,
    ...clocks(s.world),
    localClusterToken: "etcd-i-00000001",
    config: {
      domain: "etcd.internal",
      peerPort: 2380,
      clientPort: 2379,
      tls: false,
      startupGraceSeconds: s.grace,
      unhealthyDeadlineSeconds: s.deadline,
    },
  };
}

export interface BootSpec {
  world: WorldSpec;
  /** false: no member answered (cluster null). */
  clusterAnswers: boolean;
  /** This node: instance number 1..10 (a member's when within the members). */
  self: number;
  selfInstance: { lifecycleState: string; healthStatus: "Healthy" | "Unhealthy" } | null;
  target: string | null;
  asgReadable: boolean;
  marker: MarkerSpec;
  local: {
    hasData: boolean;
    state: null | { token: "marker" | "other"; memberId: string | null };
  };
  recovery: null | {
    hasSnapshot: boolean;
    formerMembers: number[];
    unreachableFor: number;
  };
  grace: number;
}

export const bootSpec: fc.Arbitrary<BootSpec> = fc.record({
  world: worldSpec,
  clusterAnswers: fc.boolean(),
  self: fc.integer({ min: 1, max: 10 }),
  selfInstance: fc.option(
    fc.record({
      lifecycleState: fc.oneof(
        { weight: 3, arbitrary: fc.constant("InService") },
        { weight: 1, arbitrary: fc.constantFrom(...LIFECYCLE_STATES) },
      ),
      healthStatus: fc.constantFrom<"Healthy" | "Unhealthy">("Healthy", "Healthy", "Unhealthy"),
    }),
    { nil: null, freq: 8 },
  ),
  target: fc.constantFrom<string | null>(null, null, null, "InService", "Terminating:Wait"),
  asgReadable: fc.oneof(
    { weight: 9, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  marker: markerSpec,
  local: fc.record({
    hasData: fc.boolean(),
    state: fc.option(
      fc.record({
        token: fc.constantFrom("marker" as const, "other" as const),
        memberId: fc.option(fc.constantFrom("1", "2", "3", "9"), { nil: null }),
      }),
      { nil: null },
    ),
  }),
  recovery: fc.option(
    fc.record({
      hasSnapshot: fc.boolean(),
      formerMembers: fc.uniqueArray(fc.integer({ min: 1, max: 10 }), { maxLength: 5 }),
      unreachableFor: fc.integer({ min: 0, max: 1000 }),
    }),
    { nil: null },
  ),
  grace: fc.constantFrom(0, 300),
});

export function buildBoot(s: BootSpec): BootObservation {
  const instances = buildInstances(s.world).filter((i) => i.instanceId !== iid(s.self));
  if (s.selfInstance !== null) {
    instances.push({
      instanceId: iid(s.self),
      lifecycleState: s.selfInstance.lifecycleState,
      healthStatus: s.selfInstance.healthStatus,
      privateIp: ip(s.self),
      launchTime: launchTime(s.world.launchOffsets[s.self - 1] ?? 0),
    });
  }
  const marker = buildMarker(s.marker);
  const markerToken = marker.kind === "present" ? marker.marker.token : "etcd-i-00000001";
  const state: LocalState | null =
    s.local.state === null
      ? null
      : {
          clusterToken: s.local.state.token === "marker" ? markerToken : "etcd-i-0000ffff",
          memberId: s.local.state.memberId,
          name: iid(s.self),
          updatedAt: NOW,
        };
  const firstSeen: Record<string, string> = {};
  s.world.members.forEach((m, i) => {
    if (m.unstartedFor !== null) firstSeen[String(i + 1)] = ago(m.unstartedFor);
  });
  return {
    self: { instanceId: iid(s.self), privateIp: ip(s.self), targetLifecycleState: s.target },
    asg: s.asgReadable ? { name: "etcd", desiredCapacity: instances.length, instances } : null,
    cluster: s.clusterAnswers ? buildCluster(s.world) : null,
    marker,
    local: { hasData: s.local.hasData, state },
    now: NOW,
    startupGraceSeconds: s.grace,
    firstSeen,
    recovery:
      s.recovery === null
        ? null
        : {
            newest: s.recovery.hasSnapshot
              ? { key: "backups/etcd/snapshots/2026-11-22T11-45-00Z.db", takenAt: ago(900) }
              : null,
            formerMembers: s.recovery.formerMembers.map(iid),
            unreachableSince: ago(s.recovery.unreachableFor),
            restoreAfterSeconds: 300,
          },
  };
}

/**
 * A boot after the cluster was lost: no member answers, the marker is active or restoring, a
 * snapshot exists and the restore bound has passed, so the recovery rules are what decides.
 */
export const lostClusterBootSpec: fc.Arbitrary<BootSpec> = fc
  .record({
    spec: bootSpec,
    state: fc.constantFrom("active" as const, "restoring" as const),
    unreachableFor: fc.integer({ min: 300, max: 1000 }),
    formerMembers: fc.uniqueArray(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 5 }),
  })
  .map(({ spec, state, unreachableFor, formerMembers }) => ({
    ...spec,
    clusterAnswers: false,
    asgReadable: true,
    target: null,
    marker: { kind: "present", state, claimant: 9, token: "claimant", withCluster: true },
    recovery: { hasSnapshot: true, formerMembers, unreachableFor },
  }));

/**
 * One step of the multi-node boot model (one-cluster-model.ts). Node numbers are taken modulo
 * the nodes that exist; a step on a node it does not apply to changes nothing.
 * - boot: the node runs one boot round on an observation taken `stale` steps ago (its ASG listing
 *   missing the instance at `drop`, when set), and the apply stops short (a crash) when `crash`;
 * - leader: the serving cluster's leader runs one cycle (marks the cluster active, takes a snapshot);
 * - crash: the node's etcd dies, its disk stays (systemd boots it again);
 * - leave: the instance goes Terminating:Wait (its machine and etcd keep running);
 * - gone: the instance leaves the listing with its machine and disk;
 * - launch: the ASG launches a replacement with an empty disk.
 */
export type ModelCommand =
  | { t: "boot"; node: number; stale: number; drop: number | null; crash: boolean }
  | { t: "leader" }
  | { t: "crash"; node: number }
  | { t: "leave"; node: number }
  | { t: "gone"; node: number }
  | { t: "launch" };

export const modelCommand: fc.Arbitrary<ModelCommand> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant("boot" as const),
      node: fc.nat(9),
      stale: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }) },
      ),
      drop: fc.option(fc.nat(9), { nil: null, freq: 6 }),
      crash: fc.oneof(
        { weight: 5, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.constant<ModelCommand>({ t: "leader" }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("crash" as const), node: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("leave" as const), node: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("gone" as const), node: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.constant<ModelCommand>({ t: "launch" }) },
);

export interface ModelSpec {
  nodes: number;
  /** Launch time offsets (seconds) of the first instances: ties happen. */
  launchOffsets: number[];
  startupGraceSeconds: number;
  commands: ModelCommand[];
}

export const modelSpec: fc.Arbitrary<ModelSpec> = fc.record({
  nodes: fc.integer({ min: 2, max: 5 }),
  launchOffsets: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 5, maxLength: 5 }),
  startupGraceSeconds: fc.constantFrom(0, 300),
  commands: fc.array(modelCommand, { minLength: 1, maxLength: 40, size: "medium" }),
});

// A small pure model of N nodes booting over a shared world, for "exactly one cluster per marker".
// Each node runs decideBoot on an observation of the world (possibly taken some steps earlier, or
// from an ASG listing missing an instance) and applies the decision as agent/commands/boot.ts does:
// - bootstrap: claim "create" = create the marker if absent, "takeover" = swap it if unchanged,
//   "own" = no marker write; then the member registry entry of its token; then a new one-member
//   cluster with empty data;
// - restore: the registry entry of the new token naming the lost one (restoredFrom), then claim
//   "swap" = swap the marker if unchanged to `restoring` by this node with the new token, "own" =
//   no marker write; then a one-member cluster from the snapshot;
// - join: activateMarker = swap claimed/restoring -> active with `cluster=<the answering cluster's
//   ID>` if unchanged (and observe again); removeFirst = MemberRemove (needs quorum); else the
//   registry entry of the decision's token, then MemberAdd as a learner (needs quorum) or resume
//   the member, write the state with the decision's token, start etcd in the cluster the add went to;
// - rejoin: start etcd on this node's data (in the cluster the data belongs to, while it is a member).
// A crash stops an apply after its marker write or MemberAdd, before etcd starts. The leader's
// run loop is modelled by one cycle: foreignLeaderHold (a leader of a cluster the marker does not
// name writes nothing and saves no snapshot), else planMarker's write (anything but an active
// marker with a cluster ID -> active with this cluster's ID) and a snapshot (not while leaving).
// observe fills what observeBoot reads: EC2's state of every instance the listing misses
// ("running" while its machine is alive, "terminated" once gone), and, when no member answers
// under an active or restoring marker, the backups (newest snapshot of the lost token, former
// members = its members and the registry's entries of that token).
import {
  type BootDecision,
  type BootObservation,
  decideBoot,
  type Recovery,
} from "../../../../agent/planner/boot-plan.js";
import { encodeMarker, type MarkerFields } from "../../../../agent/planner/marker.js";
import type {
  AsgInstance,
  ClusterView,
  LocalState,
  MemberView,
} from "../../../../agent/planner/observation.js";
import { quorumSize } from "../../../../agent/planner/quorum.js";
import { foreignLeaderHold, type ReconcileObservation } from "../../../../agent/planner/reconcile-plan.js";
import { ago, iid, ip, NOW } from "../../../support/fixtures.js";
import type { ModelCommand, ModelSpec } from "./arbitraries.js";

interface ModelMember {
  id: string;
  instanceId: string;
  started: boolean;
}

interface ModelCluster {
  uid: string;
  token: string;
  /** Restored from a snapshot (not empty). */
  restored: boolean;
  /** A member of it has started once: it has held data. */
  served: boolean;
  members: ModelMember[];
}

interface ModelNode {
  instanceId: string;
  n: number;
  launchTime: string;
  lifecycle: "InService" | "Terminating:Wait";
  listed: boolean;
  /** The machine runs (false once the instance is gone). */
  alive: boolean;
  /** The cluster uid this node's etcd serves, or null when etcd is not running. */
  etcd: string | null;
  /** Which cluster the data dir holds, or null when empty. */
  data: string | null;
  state: LocalState | null;
}

interface ModelSnapshot {
  token: string;
  cluster: string;
  members: string[];
}

/** One entry of the member registry (`members/<token>/<instance>`), written before a member can exist. */
interface RegistryEntry {
  token: string;
  instance: string;
  /** A restorer's entry: the lost cluster's token. */
  restoredFrom?: string;
}

/** What can be observed of the world at one moment (kept for stale reads). */
interface Frame {
  listing: AsgInstance[];
  marker: MarkerFields | null;
  clusters: ModelCluster[];
  etcdOf: Record<string, string | null>;
  /** EC2's truth: whether each instance's machine runs. */
  aliveOf: Record<string, boolean>;
  snapshots: ModelSnapshot[];
  registry: RegistryEntry[];
}

export interface ModelWorld {
  nodes: ModelNode[];
  clusters: ModelCluster[];
  marker: MarkerFields | null;
  snapshots: ModelSnapshot[];
  registry: RegistryEntry[];
  history: Frame[];
  grace: number;
  nextId: number;
  log: string[];
}

const ASG = "etcd";
const clone = <T>(v: T): T => structuredClone(v);

export function newWorld(spec: ModelSpec): ModelWorld {
  const world: ModelWorld = {
    nodes: [],
    clusters: [],
    marker: null,
    snapshots: [],
    registry: [],
    history: [],
    grace: spec.startupGraceSeconds,
    nextId: 1,
    log: [],
  };
  for (let i = 0; i < spec.nodes; i++) addNode(world, spec.launchOffsets[i] ?? i);
  world.history.push(frame(world));
  return world;
}

function addNode(world: ModelWorld, offsetSeconds: number): void {
  const n = world.nodes.length + 1;
  world.nodes.push({
    instanceId: iid(n),
    n,
    launchTime: new Date(Date.parse("2026-11-22T10:00:00.000Z") + offsetSeconds * 1000).toISOString(),
    lifecycle: "InService",
    listed: true,
    alive: true,
    etcd: null,
    data: null,
    state: null,
  });
}

function frame(world: ModelWorld): Frame {
  return {
    listing: world.nodes
      .filter((n) => n.listed)
      .map((n) => ({
        instanceId: n.instanceId,
        lifecycleState: n.lifecycle,
        healthStatus: "Healthy",
        privateIp: ip(n.n),
        launchTime: n.launchTime,
      })),
    marker: clone(world.marker),
    clusters: clone(world.clusters),
    etcdOf: Object.fromEntries(world.nodes.map((n) => [n.instanceId, n.alive ? n.etcd : null])),
    aliveOf: Object.fromEntries(world.nodes.map((n) => [n.instanceId, n.alive])),
    snapshots: clone(world.snapshots),
    registry: clone(world.registry),
  };
}

const raw = (m: MarkerFields) => encodeMarker(m);

/** Voters are started members; the leader is the first running voter while the running voters are a quorum. */
function leaderOf(cluster: ModelCluster, etcdOf: Record<string, string | null>): ModelMember | null {
  const voters = cluster.members.filter((m) => m.started);
  const running = voters.filter((m) => etcdOf[m.instanceId] === cluster.uid);
  if (voters.length === 0 || running.length < quorumSize(voters.length)) return null;
  return running[0] ?? null;
}

function clusterView(f: Frame, uid: string, answeredBy: string): ClusterView {
  const cluster = f.clusters.find((c) => c.uid === uid) as ModelCluster;
  const leader = leaderOf(cluster, f.etcdOf);
  const members = cluster.members.map((m): MemberView => {
    const n = Number.parseInt(m.instanceId.slice(2), 16);
    const up = m.started && f.etcdOf[m.instanceId] === uid;
    return {
      id: m.id,
      name: m.started ? m.instanceId : "",
      peerUrls: [`http://${ip(n)}:2380`],
      clientUrls: m.started ? [`http://${ip(n)}:2379`] : [],
      isLearner: !m.started,
      instanceId: f.listing.some((i) => i.instanceId === m.instanceId) ? m.instanceId : null,
      status: up
        ? {
            memberId: m.id,
            leaderId: leader?.id ?? "0",
            raftIndex: "100",
            raftTerm: "2",
            dbSize: 20480,
            isLearner: false,
            version: "3.4.23",
            errors: [],
          }
        : null,
    };
  });
  return { answeredBy, clusterId: uid, members, leaderId: leader?.id ?? null };
}

/** What the node sees: `stale` frames ago, its listing missing the instance at `drop`. */
export function observe(
  world: ModelWorld,
  node: ModelNode,
  stale: number,
  drop: number | null,
): BootObservation {
  const f = world.history[Math.max(0, world.history.length - 1 - stale)] as Frame;
  const listing = f.listing.filter((_, i) => drop === null || i !== drop % Math.max(1, f.listing.length));
  // The peers asked are the listed instances but this one; the first that answers speaks.
  const peer = listing.find(
    (i) => i.instanceId !== node.instanceId && (f.etcdOf[i.instanceId] ?? null) !== null,
  );
  const uid = peer ? (f.etcdOf[peer.instanceId] as string) : null;
  const marker = f.marker;
  // observeBoot reads the backups only when no member answers under an active or restoring marker.
  const recovery =
    uid === null && (marker?.state === "active" || marker?.state === "restoring")
      ? recoveryOf(f, marker)
      : null;
  // EC2's state of every instance the listing misses (the claimant, former members).
  const ec2States = Object.fromEntries(
    Object.entries(f.aliveOf)
      .filter(([id]) => !listing.some((i) => i.instanceId === id))
      .map(([id, alive]) => [id, alive ? "running" : "terminated"]),
  );
  return {
    self: {
      instanceId: node.instanceId,
      privateIp: ip(node.n),
      targetLifecycleState: node.lifecycle === "Terminating:Wait" ? "Terminated" : "InService",
    },
    asg: { name: ASG, desiredCapacity: listing.length, instances: listing },
    cluster: uid === null || peer === undefined ? null : clusterView(f, uid, peer.instanceId),
    marker:
      marker === null ? { kind: "absent" } : { kind: "present", marker: { ...marker, raw: raw(marker) } },
    local: { hasData: node.data !== null, state: clone(node.state) },
    now: NOW,
    startupGraceSeconds: world.grace,
    firstSeen: {},
    ec2States,
    recovery,
  };
}

/**
 * What observeRecovery reads: the lost cluster's token (the active marker's own; under a restoring
 * marker the one its restorer's registry entry names), its newest snapshot (never another token's),
 * and every instance that was or may have been a member (the snapshot's and the registry's).
 */
function recoveryOf(f: Frame, marker: MarkerFields): Recovery {
  const formerToken =
    marker.state === "restoring"
      ? (f.registry.find((e) => e.token === marker.token && e.instance === marker.claimant)?.restoredFrom ??
        null)
      : marker.token;
  const newest =
    formerToken === null ? null : ([...f.snapshots].reverse().find((s) => s.token === formerToken) ?? null);
  const other = newest === null ? (f.snapshots.at(-1) ?? null) : null;
  const registered = f.registry.filter((e) => e.token === formerToken).map((e) => e.instance);
  return {
    formerToken,
    newest: newest === null ? null : { key: `snap-${newest.cluster}-${newest.token}`, takenAt: ago(60) },
    otherNewest:
      other === null ? null : { key: `snap-${other.cluster}-${other.token}`, clusterToken: other.token },
    formerMembers: [...new Set([...(newest?.members ?? []), ...registered])].sort(),
    unreachableSince: ago(3600),
    restoreAfterSeconds: 300,
  };
}

/** Compare-and-swap on the marker: `expected` null means create-if-absent. */
function swapMarker(world: ModelWorld, expected: MarkerFields | null, next: MarkerFields): boolean {
  const current = world.marker === null ? null : raw(world.marker);
  const want = expected === null ? null : raw(expected);
  if (current !== want) return false;
  world.marker = next;
  return true;
}

function hasQuorum(world: ModelWorld, cluster: ModelCluster): boolean {
  return leaderOf(cluster, frame(world).etcdOf) !== null;
}

function startEtcd(world: ModelWorld, node: ModelNode, uid: string): void {
  const cluster = world.clusters.find((c) => c.uid === uid);
  const member = cluster?.members.find((m) => m.instanceId === node.instanceId);
  if (!cluster || !member) {
    world.log.push(`${node.instanceId}: etcd refuses to start in ${uid}: not a member`);
    return;
  }
  // etcd makes its data dir on its first start: before that the disk holds nothing of the cluster.
  node.etcd = uid;
  node.data = uid;
  member.started = true;
  cluster.served = true;
}

/**
 * Violations of "a new empty cluster only when no evidence of a former one exists": a cluster
 * that held data and whose data is on a running machine, or a snapshot.
 */
function evidenceOfFormer(world: ModelWorld): string[] {
  const out: string[] = [];
  for (const c of world.clusters) {
    if (!c.served) continue;
    const holders = world.nodes.filter((n) => n.alive && n.data === c.uid).map((n) => n.instanceId);
    if (holders.length > 0) out.push(`cluster ${c.uid} (${c.token}) has data on ${holders.join(", ")}`);
  }
  if (world.snapshots.length > 0)
    out.push(`${world.snapshots.length} snapshot(s), newest of ${world.snapshots.at(-1)?.token}`);
  return out;
}

function newCluster(world: ModelWorld, node: ModelNode, token: string, restored: boolean): ModelCluster {
  const uid = `c${world.nextId++}`;
  const cluster: ModelCluster = {
    uid,
    token,
    restored,
    served: false,
    members: [{ id: String(world.nextId++), instanceId: node.instanceId, started: false }],
  };
  world.clusters.push(cluster);
  return cluster;
}

export class InvariantViolation extends Error {
  override name = "InvariantViolation";
}

function applyDecision(
  world: ModelWorld,
  node: ModelNode,
  d: BootDecision,
  obs: BootObservation,
  crash: boolean,
): void {
  const seen = obs.marker.kind === "present" ? (({ raw: _, ...m }) => m)(obs.marker.marker) : null;
  switch (d.kind) {
    case "wait":
    case "refuse":
      return;
    case "rejoin": {
      node.state = {
        clusterToken: d.clusterToken,
        memberId: d.memberId,
        name: node.instanceId,
        updatedAt: NOW,
      };
      if (!crash && node.data !== null) startEtcd(world, node, node.data);
      return;
    }
    case "bootstrap": {
      const next: MarkerFields = { state: "claimed", token: d.clusterToken, claimant: node.instanceId };
      const claimed = d.claim === "own" ? true : swapMarker(world, d.claim === "create" ? null : seen, next);
      if (!claimed) return;
      // Data moved aside is still evidence: nothing is deleted, an operator can move it back.
      const evidence = evidenceOfFormer(world);
      if (evidence.length > 0)
        throw new InvariantViolation(
          `${node.instanceId} bootstraps a new empty cluster (${d.claim}, token ${d.clusterToken}) while ${evidence.join("; ")}`,
        );
      // A crash after the claim: the restart finds the marker as this apply left it.
      if (crash) return;
      if (d.moveDataAside) node.data = null;
      register(world, { token: d.clusterToken, instance: node.instanceId });
      const cluster = newCluster(world, node, d.clusterToken, false);
      node.state = { clusterToken: d.clusterToken, memberId: null, name: node.instanceId, updatedAt: NOW };
      startEtcd(world, node, cluster.uid);
      return;
    }
    case "restore": {
      // The registry entry first: a takeover reads from it which cluster is being restored here.
      register(world, { token: d.clusterToken, instance: node.instanceId, restoredFrom: d.formerToken });
      const next: MarkerFields = { state: "restoring", token: d.clusterToken, claimant: node.instanceId };
      if (d.claim === "swap" && !swapMarker(world, seen, next)) return;
      // A crash after the swap: the restart finds the marker restoring by this node.
      if (crash) return;
      // Whatever is in the data dir goes aside; the restored member is moved into place.
      node.data = null;
      const cluster = newCluster(world, node, d.clusterToken, true);
      node.state = { clusterToken: d.clusterToken, memberId: null, name: node.instanceId, updatedAt: NOW };
      startEtcd(world, node, cluster.uid);
      return;
    }
    case "join": {
      if (d.activateMarker && seen !== null) {
        // claimed/restoring -> active naming the answering cluster, before anyone joins it.
        swapMarker(world, seen, {
          state: "active",
          token: seen.token,
          claimant: seen.claimant,
          cluster: d.clusterId,
        });
        return;
      }
      // Membership calls go to the endpoints that answered: whatever cluster they serve now.
      const at = world.nodes.find((n) => n.instanceId === obs.cluster?.answeredBy);
      const cluster = world.clusters.find((c) => c.uid === (at?.alive ? at.etcd : null));
      if (!cluster || !hasQuorum(world, cluster)) return;
      if (d.removeFirst !== null) {
        cluster.members = cluster.members.filter((m) => m.id !== d.removeFirst?.memberId);
        return;
      }
      if (d.moveDataAside) node.data = null;
      let member = cluster.members.find((m) => m.id === d.resumeMemberId);
      if (!member) {
        // In the member registry before the member exists (restore eligibility reads it).
        register(world, { token: d.clusterToken, instance: node.instanceId });
        // etcd allows one learner at a time (too-many-learners): the boot observes again.
        if (cluster.members.some((m) => !m.started)) return;
        member = { id: String(world.nextId++), instanceId: node.instanceId, started: false };
        cluster.members.push(member);
      }
      node.state = {
        clusterToken: d.clusterToken,
        memberId: member.id,
        name: node.instanceId,
        updatedAt: NOW,
      };
      if (!crash) startEtcd(world, node, cluster.uid);
      return;
    }
  }
}

/** registerMember: one entry per token and instance (a restore done again overwrites its entry). */
function register(world: ModelWorld, entry: RegistryEntry): void {
  world.registry = world.registry.filter((e) => e.token !== entry.token || e.instance !== entry.instance);
  world.registry.push(entry);
}

/**
 * One cycle of the serving cluster's leader, as planReconcile and run.ts do it: a leader of a
 * cluster the marker does not name (foreignLeaderHold) writes nothing and saves no snapshot; else
 * planMarker's write (an active marker without the cluster's ID gains it; absent, claimed or
 * restoring -> active with this cluster's ID, by compare-and-swap), then a snapshot under the
 * marker's token (the local one without a marker) unless the leader is leaving.
 */
function leaderCycle(world: ModelWorld): void {
  const f = frame(world);
  for (const cluster of world.clusters) {
    const leader = leaderOf(cluster, f.etcdOf);
    const node = world.nodes.find((n) => n.instanceId === leader?.instanceId);
    if (!node) continue;
    const m = world.marker;
    const marker: ReconcileObservation["marker"] =
      m === null ? { kind: "absent" } : { kind: "present", marker: { ...m, raw: raw(m) } };
    const localClusterToken = node.state?.clusterToken ?? null;
    const view = clusterView(f, cluster.uid, node.instanceId);
    // foreignLeaderHold reads only the marker and the local token of the observation.
    const foreign = foreignLeaderHold({ marker, localClusterToken } as ReconcileObservation, view);
    if (foreign !== null) {
      world.log.push(`  ${node.instanceId} leads ${cluster.uid}: held, ${foreign.rule}: ${foreign.detail}`);
      return;
    }
    if (m === null || m.state !== "active" || m.cluster === undefined) {
      const token = m?.token ?? localClusterToken;
      if (token !== null)
        swapMarker(world, m, {
          state: "active",
          token,
          claimant: m?.claimant ?? node.instanceId,
          cluster: cluster.uid,
        });
    }
    const snapshotToken = m?.token ?? localClusterToken;
    if (node.lifecycle === "InService" && snapshotToken !== null)
      world.snapshots.push({
        token: snapshotToken,
        cluster: cluster.uid,
        members: cluster.members.filter((x) => x.started).map((x) => x.instanceId),
      });
    return;
  }
}

/** The invariants after every step; throws InvariantViolation naming the clusters. */
export function checkInvariants(world: ModelWorld): void {
  const serving = world.clusters.filter((c) => world.nodes.some((n) => n.alive && n.etcd === c.uid));
  const describe = (c: ModelCluster) =>
    `${c.uid} (token ${c.token}${c.restored ? ", restored" : ""}; running on ${world.nodes
      .filter((n) => n.alive && n.etcd === c.uid)
      .map((n) => `${n.instanceId} holding ${n.state?.clusterToken}`)
      .join(", ")})`;
  if (serving.length > 1) {
    throw new InvariantViolation(
      `two clusters serve at once under the marker ${world.marker ? raw(world.marker) : "(none)"}: ${serving.map(describe).join(" and ")}`,
    );
  }
  for (const n of world.nodes) {
    if (!n.alive || n.etcd === null) continue;
    const c = world.clusters.find((x) => x.uid === n.etcd) as ModelCluster;
    if (n.state?.clusterToken !== c.token) {
      throw new InvariantViolation(
        `${n.instanceId} serves in ${describe(c)} but believes it holds the cluster of token ${n.state?.clusterToken}`,
      );
    }
  }
}

export function step(world: ModelWorld, cmd: ModelCommand): void {
  const node = "node" in cmd ? world.nodes[cmd.node % world.nodes.length] : undefined;
  switch (cmd.t) {
    case "boot": {
      if (!node?.alive || node.etcd !== null) break;
      const obs = observe(world, node, cmd.stale, cmd.drop);
      const d = decideBoot(obs);
      world.log.push(
        `${node.instanceId} boot (stale ${cmd.stale}${cmd.drop !== null ? `, drop ${cmd.drop}` : ""}${cmd.crash ? ", crash" : ""}): ${d.kind === "wait" || d.kind === "refuse" ? `${d.kind} ${d.hold.rule}` : `${d.kind}${d.kind === "bootstrap" || d.kind === "restore" ? ` ${d.claim}` : d.kind === "join" && d.activateMarker ? " activate" : ""}`}`,
      );
      applyDecision(world, node, d, obs, cmd.crash);
      break;
    }
    case "leader":
      leaderCycle(world);
      break;
    case "crash":
      if (node?.alive) node.etcd = null;
      break;
    case "leave":
      if (node?.listed) node.lifecycle = "Terminating:Wait";
      break;
    case "gone":
      if (node) Object.assign(node, { listed: false, alive: false, etcd: null, data: null });
      break;
    case "launch":
      if (world.nodes.length < 10) addNode(world, 100 + world.nodes.length);
      break;
  }
  if (cmd.t !== "boot") world.log.push(`${cmd.t}${node ? ` ${node.instanceId}` : ""}`);
  world.history.push(frame(world));
  checkInvariants(world);
}

// What the agent saw of the world, as plain data. The planners take these and nothing else:
// no SDK, no etcd client, no file system. Everything an adapter can fail to read is `null`
// ("unknown"), never an empty list, so a planner can tell "none" from "could not see".

/** ASG lifecycle states (DescribeAutoScalingGroups / DescribeAutoScalingInstances). */
export type LifecycleState =
  | "Pending"
  | "Pending:Wait"
  | "Pending:Proceed"
  | "Quarantined"
  | "InService"
  | "Terminating"
  | "Terminating:Wait"
  | "Terminating:Proceed"
  | "Terminated"
  | "Detaching"
  | "Detached"
  | "EnteringStandby"
  | "Standby"
  | "Warmed:Pending"
  | "Warmed:Pending:Wait"
  | "Warmed:Pending:Proceed"
  | "Warmed:Terminating"
  | "Warmed:Terminating:Wait"
  | "Warmed:Terminating:Proceed"
  | "Warmed:Terminated"
  | "Warmed:Stopped"
  | "Warmed:Running"
  | "Warmed:Hibernated";

export interface Identity {
  instanceId: string;
  privateIp: string;
  region: string;
  availabilityZone: string;
}

export interface AsgInstance {
  instanceId: string;
  lifecycleState: LifecycleState | string;
  healthStatus: "Healthy" | "Unhealthy" | string;
  /** From EC2; null when EC2 did not describe the instance (yet). */
  privateIp: string | null;
  /** ISO-8601 launch time from EC2; null when unknown. */
  launchTime: string | null;
}

export interface AsgView {
  name: string;
  desiredCapacity: number;
  instances: AsgInstance[];
}

/** One etcd member as MemberList reports it. IDs are uint64: always decimal strings. */
export interface Member {
  id: string;
  /** Empty until the member has started (etcd fills it in on first contact). */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** What Status on one member's client URL answered, or null when it did not answer. */
export interface MemberStatus {
  memberId: string;
  leaderId: string;
  raftIndex: string;
  /** The raft applied index (etcd 3.4+); absent: unknown, raftIndex (committed) stands in. */
  raftAppliedIndex?: string;
  raftTerm: string;
  dbSize: number;
  /** The part of dbSize that holds data (etcd 3.4+); the rest is free pages a defragmentation returns. Absent: unknown. */
  dbSizeInUse?: number;
  isLearner: boolean;
  version: string;
  errors: string[];
}

export interface MemberView extends Member {
  /** null: it did not answer a Status call this cycle. */
  status: MemberStatus | null;
  /** The ASG instance this member belongs to (by name, else by peer IP), or null. */
  instanceId: string | null;
}

export interface ClusterView {
  /** The endpoint that answered MemberList. */
  answeredBy: string;
  clusterId: string;
  members: MemberView[];
  /** The leader's member ID as the answering members agree on it; null when there is none. */
  leaderId: string | null;
}

/** The record outside etcd that says a cluster was claimed, is being restored, or exists (Route53 TXT). */
export interface ClusterMarker {
  state: "claimed" | "active" | "restoring";
  token: string;
  /** The instance that claimed the bootstrap (or the restore). */
  claimant: string;
  /** etcd's cluster ID (decimal uint64) once the cluster is active and known; absent before. */
  cluster?: string;
  /** The exact TXT value as stored, needed for compare-and-swap. */
  raw: string;
}

/** The marker as read: absent, present, or unknown (the zone could not be read, or the TXT is not a marker). */
export type MarkerRead =
  | { kind: "absent" }
  | { kind: "present"; marker: ClusterMarker }
  | { kind: "unknown"; error: string };

/** This instance, as every observation sees it. */
export interface SelfView {
  instanceId: string;
  privateIp: string;
  /**
   * Where the ASG takes this instance: IMDS autoscaling/target-lifecycle-state (the run loop also
   * reads the ASG's own state for it: Terminating counts as Terminated); null when unknown.
   */
  targetLifecycleState: string | null;
}

/** What this node holds on its own disk. */
export interface LocalView {
  /** etcd's data dir has a member/ directory (WAL or snapshots). */
  hasData: boolean;
  /** The agent's own record of what the data belongs to, or null when none. */
  state: LocalState | null;
}

export interface LocalState {
  clusterToken: string;
  memberId: string | null;
  name: string;
  updatedAt: string;
}

export interface DnsRecord {
  name: string;
  type: "A" | "SRV" | "TXT";
  ttl: number;
  values: string[];
}

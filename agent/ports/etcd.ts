import type { Writable } from "node:stream";
import type { Member, MemberStatus } from "../planner/observation.js";

export interface MemberListAnswer {
  clusterId: string;
  /** The member that answered. */
  memberId: string;
  members: Member[];
}

/** etcd's v3 cluster and maintenance API. Each call may go to any of the given endpoints. */
export interface EtcdCluster {
  memberList(endpoints: string[]): Promise<MemberListAnswer>;
  /** Status of exactly this endpoint; null when it does not answer in time. */
  status(endpoint: string): Promise<MemberStatus | null>;
  memberAdd(
    endpoints: string[],
    peerUrls: string[],
    isLearner: boolean,
  ): Promise<{ member: Member; members: Member[] }>;
  /**
   * Removes the member; false when it was already gone (another agent removed it first: the leader
   * and a joiner making room race for the same dead member). Either way it is not a member now.
   */
  memberRemove(endpoints: string[], memberId: string): Promise<boolean>;
  memberPromote(endpoints: string[], memberId: string): Promise<void>;
  /**
   * A snapshot of exactly this member's backend (the db file with etcd's own sha256 at its end),
   * streamed into `into` (ended when the snapshot is complete, destroyed on a failure), and its
   * revision. Never held whole in memory: etcd's database may be 8 GiB.
   */
  snapshot(endpoint: string, timeoutMs: number, into: Writable): Promise<{ revision: string }>;
  /**
   * Compacts the key space to its current revision (physically: etcd answers once the freed pages
   * are free in every member's db) and returns that revision. Already compacted there: no error.
   */
  compact(endpoints: string[]): Promise<string>;
  /**
   * Whether this member answers a serializable, count-only read within `timeoutMs`. A member that
   * is defragmenting answers Status (sizes unchanged) but not a read: the backend is locked.
   */
  answersRead(endpoint: string, timeoutMs: number): Promise<boolean>;
  /** Defragments exactly this member's db; it pauses that member until done (or `timeoutMs`). */
  defragment(endpoint: string, timeoutMs: number): Promise<void>;
  /** Disarms every raised alarm of this kind (one per member that raised it); returns how many. */
  alarmDisarm(endpoints: string[], kind: "NOSPACE"): Promise<number>;
  /** Must be sent to the leader's endpoint. */
  moveLeader(leaderEndpoint: string, toMemberId: string): Promise<void>;
  close(): Promise<void>;
}

// etcd's cluster and maintenance API over the etcd3 package (gRPC, v3 API only).

import { readFileSync } from "node:fs";
import { Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { handleWhen, noop, retry } from "cockatiel";
import { AlarmAction, AlarmType, Etcd3, type IMember, type IOptions, isRecoverableError } from "etcd3";
import { ConfigError, EtcdRequestError, EtcdUnavailableError, RefusedError } from "../errors.js";
import type { Member, MemberStatus } from "../planner/observation.js";
import type { EtcdCluster, MemberListAnswer } from "../ports/etcd.js";

export interface Etcd3Options {
  /** Deadline of one read (member list, status), in ms. */
  callTimeoutMs: number;
  /** Deadline of one membership change, in ms: etcd answers once the change is applied. */
  changeTimeoutMs?: number;
  /** How long to wait for a connection, in ms. */
  dialTimeoutMs?: number;
  /** TLS: the CA to trust and the client certificate to present, PEM files; absent: plaintext. */
  tls?: { caFile: string; certFile: string; keyFile: string };
}

function toMember(m: IMember): Member {
  return {
    id: String(m.ID),
    name: m.name ?? "",
    peerUrls: [...(m.peerURLs ?? [])],
    clientUrls: [...(m.clientURLs ?? [])],
    isLearner: Boolean(m.isLearner),
  };
}

/** etcd's own refusals, by the text etcd puts in them; checked before "unavailable" because etcd
 * sends some of them (such as "unhealthy cluster") with gRPC's UNAVAILABLE code. */
const REFUSALS: Array<[RegExp, EtcdRequestError["code"]]> = [
  [/unhealthy cluster/i, "unhealthy-cluster"],
  [/member not found/i, "member-not-found"],
  [/can only promote a learner member which is in sync|learner.*not (ready|in sync)/i, "learner-not-ready"],
  [/too many learner/i, "too-many-learners"],
  [/not leader|no leader|leader changed/i, "not-leader"],
];

function translate(error: unknown, what: string): Error {
  if (error instanceof ConfigError) return error;
  const message = error instanceof Error ? error.message : String(error);
  for (const [pattern, code] of REFUSALS) {
    if (pattern.test(message))
      return new EtcdRequestError(`etcd refused ${what}: ${message}`, code, { cause: error });
  }
  if (
    isRecoverableError(error as Error) ||
    /deadline|unavailable|ECONNREFUSED|No connection/i.test(message)
  ) {
    return new EtcdUnavailableError(`etcd did not answer ${what}: ${message}`, { cause: error });
  }
  return new EtcdRequestError(`etcd refused ${what}: ${message}`, "other", { cause: error });
}

export class Etcd3Cluster implements EtcdCluster {
  private readonly clients = new Map<string, Etcd3>();

  constructor(private readonly options: Etcd3Options) {}

  private changeDeadline() {
    return { deadline: Date.now() + (this.options.changeTimeoutMs ?? 10_000) };
  }

  /** The certificate files as read by the first call after construction or close() (a renewal closes). */
  private credentials: IOptions["credentials"] | null = null;

  private currentCredentials(): IOptions["credentials"] {
    const tls = this.options.tls;
    if (!tls) return undefined;
    if (this.credentials === null) {
      try {
        this.credentials = {
          rootCertificate: readFileSync(tls.caFile),
          certChain: readFileSync(tls.certFile),
          privateKey: readFileSync(tls.keyFile),
        };
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        throw new ConfigError(
          `TLS is on but ${e.path ?? tls.certFile} cannot be read (${e.code}): on a node, etcd-agent boot issues it; on the bastion run etcd-agent client-cert first, or pass --tls-ca-file/--tls-cert-file/--tls-key-file; --plaintext only for a plaintext cluster`,
        );
      }
    }
    return this.credentials;
  }

  /** One client per endpoint set, kept while the certificates stay the same. Retries go to the next host. */
  private client(endpoints: string[]): Etcd3 {
    const credentials = this.currentCredentials();
    const key = [...endpoints].sort().join(",");
    let c = this.clients.get(key);
    if (c === undefined) {
      const timeout = this.options.callTimeoutMs;
      c = new Etcd3({
        hosts: endpoints,
        ...(credentials ? { credentials } : {}),
        dialTimeout: this.options.dialTimeoutMs ?? timeout,
        defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
        faultHandling: {
          host: () => noop,
          global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(0, endpoints.length - 1) }),
        },
      });
      this.clients.set(key, c);
    }
    return c;
  }

  async memberList(endpoints: string[]): Promise<MemberListAnswer> {
    if (endpoints.length === 0) throw new EtcdUnavailableError("no etcd endpoint to ask for the member list");
    try {
      const out = await this.client(endpoints).cluster.memberList({});
      return {
        clusterId: String(out.header.cluster_id),
        memberId: String(out.header.member_id),
        members: (out.members ?? []).map(toMember),
      };
    } catch (error) {
      throw translate(error, `MemberList on ${endpoints.join(",")}`);
    }
  }

  async status(endpoint: string): Promise<MemberStatus | null> {
    try {
      const out = await this.client([endpoint]).maintenance.status();
      return {
        memberId: String(out.header.member_id),
        leaderId: String(out.leader),
        raftIndex: String(out.raftIndex),
        ...(out.raftAppliedIndex ? { raftAppliedIndex: String(out.raftAppliedIndex) } : {}),
        raftTerm: String(out.raftTerm),
        dbSize: Number(out.dbSize),
        ...(out.dbSizeInUse !== undefined && out.dbSizeInUse !== null
          ? { dbSizeInUse: Number(out.dbSizeInUse) }
          : {}),
        isLearner: Boolean(out.isLearner),
        version: out.version,
        errors: [...(out.errors ?? [])],
      };
    } catch {
      return null;
    }
  }

  async memberAdd(
    endpoints: string[],
    peerUrls: string[],
    isLearner: boolean,
  ): Promise<{ member: Member; members: Member[] }> {
    try {
      const out = await this.client(endpoints).cluster.memberAdd(
        { peerURLs: peerUrls, isLearner },
        this.changeDeadline(),
      );
      return { member: toMember(out.member), members: (out.members ?? []).map(toMember) };
    } catch (error) {
      throw translate(error, `MemberAdd ${peerUrls.join(",")}`);
    }
  }

  async memberRemove(endpoints: string[], memberId: string): Promise<boolean> {
    try {
      await this.client(endpoints).cluster.memberRemove({ ID: memberId }, this.changeDeadline());
      return true;
    } catch (error) {
      const e = translate(error, `MemberRemove ${memberId}`);
      if (e instanceof EtcdRequestError && e.code === "member-not-found") return false;
      throw e;
    }
  }

  async memberPromote(endpoints: string[], memberId: string): Promise<void> {
    try {
      await this.client(endpoints).cluster.memberPromote({ ID: memberId }, this.changeDeadline());
    } catch (error) {
      throw translate(error, `MemberPromote ${memberId}`);
    }
  }

  async moveLeader(leaderEndpoint: string, toMemberId: string): Promise<void> {
    try {
      await this.client([leaderEndpoint]).maintenance.moveLeader(
        { targetID: toMemberId },
        this.changeDeadline(),
      );
    } catch (error) {
      throw translate(error, `MoveLeader to ${toMemberId}`);
    }
  }

  async compact(endpoints: string[]): Promise<string> {
    try {
      const client = this.client(endpoints);
      const range = await client.kv.range({ key: Buffer.from([0]), count_only: true });
      const revision = String(range.header.revision);
      try {
        await client.kv.compact({ revision, physical: true }, this.changeDeadline());
      } catch (error) {
        // The same revision compacted before (a second NOSPACE cycle, another agent): done already.
        if (!/required revision has been compacted/i.test((error as Error).message)) throw error;
      }
      return revision;
    } catch (error) {
      throw translate(error, `Compact on ${endpoints.join(",")}`);
    }
  }

  async answersRead(endpoint: string, timeoutMs: number): Promise<boolean> {
    try {
      await this.client([endpoint]).kv.range(
        { key: Buffer.from([0]), count_only: true, serializable: true },
        { deadline: Date.now() + timeoutMs },
      );
      return true;
    } catch {
      return false;
    }
  }

  async defragment(endpoint: string, timeoutMs: number): Promise<void> {
    try {
      await this.client([endpoint]).maintenance.defragment({ deadline: Date.now() + timeoutMs });
    } catch (error) {
      throw translate(error, `Defragment on ${endpoint}`);
    }
  }

  async alarmDisarm(endpoints: string[], kind: "NOSPACE"): Promise<number> {
    try {
      const maintenance = this.client(endpoints).maintenance;
      const raised = await maintenance.alarm({
        action: AlarmAction.Get,
        memberID: "0",
        alarm: AlarmType.None,
      });
      // The answer names the kind as the proto does (NOSPACE) or by its number, depending on the loader.
      // etcd 3.4/3.5 drop the applier that refuses writes under CORRUPT when the last NOSPACE goes:
      // with CORRUPT raised (perhaps since the plan was made), nothing is disarmed.
      if ((raised.alarms ?? []).some((a) => /^(corrupt|2)$/i.test(String(a.alarm))))
        throw new RefusedError({
          rule: "etcd-alarm-corrupt",
          detail: `a CORRUPT alarm is raised on ${endpoints.join(",")}: disarming ${kind} would let writes through; nothing was disarmed`,
        });
      const mine = (raised.alarms ?? []).filter((a) => /^(nospace|1)$/i.test(String(a.alarm)));
      for (const a of mine)
        await maintenance.alarm(
          { action: AlarmAction.Deactivate, memberID: String(a.memberID), alarm: AlarmType.Nospace },
          this.changeDeadline(),
        );
      return mine.length;
    } catch (error) {
      if (error instanceof RefusedError) throw error;
      throw translate(error, `Alarm disarm ${kind} on ${endpoints.join(",")}`);
    }
  }

  async snapshot(endpoint: string, timeoutMs: number, into: Writable): Promise<{ revision: string }> {
    try {
      const client = this.client([endpoint]);
      // The revision the snapshot holds at least: etcd 3.4 leaves the stream's header empty.
      const range = await client.kv.range({ key: Buffer.from([0]), count_only: true });
      const atLeast = String(range.header.revision);
      const stream = await client.maintenance.snapshot({ deadline: Date.now() + timeoutMs });
      let revision: string | null = null;
      // Each message's blob goes on as it comes, with the writer's backpressure: nothing is held.
      const blobs = new Transform({
        readableObjectMode: false,
        writableObjectMode: true,
        transform(res: { header?: { revision?: unknown }; blob?: Uint8Array }, _encoding, done) {
          // Only the first message carries a header (the snapshot's point in time), when any does.
          if (revision === null && res.header && String(res.header.revision) !== "0")
            revision = String(res.header.revision);
          done(null, res.blob && res.blob.length > 0 ? Buffer.from(res.blob) : undefined);
        },
      });
      await pipeline(stream as unknown as NodeJS.ReadableStream, blobs, into);
      return { revision: revision ?? atLeast };
    } catch (error) {
      into.destroy(error as Error);
      throw translate(error, `Snapshot from ${endpoint}`);
    }
  }

  /** Closes every connection; the next call reads the certificate files again (after a renewal). */
  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    this.credentials = null;
  }
}

// Fakes for the run loop's unit tests: a three-member cluster where this node leads (an etcd fake
// with a snapshot that waits on a gate), the in-memory AWS, a map for a bucket. The real etcd and
// S3 paths are covered by the e2e tests; these are for timing and crash-after-every-step.
import { readFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { MemoryLocalNode } from "../../agent/adapters/memory-local.js";
import { parseSnapshotKey, type StoredObject } from "../../agent/planner/backup-plan.js";
import type { BackupStore, SnapshotFile } from "../../agent/ports/backups.js";
import type { EtcdCluster } from "../../agent/ports/etcd.js";
import type { Ports } from "../../agent/ports/index.js";
import { FakeAws } from "../fakes/fake-aws.js";

/** A bucket in a map; a put that fails or is aborted leaves nothing (as S3's multipart upload). */
export class MapStore implements BackupStore {
  readonly objects = new Map<string, { body: Buffer; meta: Record<string, string> }>();
  /** S3's LastModified per key when a test sets it; else the time in a snapshot's name (an honest writer). */
  readonly storedAt = new Map<string, string>();
  /** Versions per key: each put adds one (an overwrite leaves two). */
  readonly versions = new Map<string, number>();
  puts = 0;
  async put(key: string, body: Buffer | SnapshotFile, meta: Record<string, string>): Promise<void> {
    this.puts++;
    const bytes = Buffer.isBuffer(body) ? body : readFileSync(body.file);
    this.objects.set(key, { body: bytes, meta: { ...meta } });
    this.versions.set(key, (this.versions.get(key) ?? 0) + 1);
  }
  async list(prefix: string) {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix));
  }
  async listStored(prefix: string): Promise<StoredObject[]> {
    return (await this.list(prefix)).map((key) => ({
      key,
      lastModified: this.storedAt.get(key) ?? parseSnapshotKey(key)?.takenAt ?? new Date(0).toISOString(),
      versions: this.versions.get(key) ?? 1,
    }));
  }
  async get(key: string) {
    const o = this.objects.get(key);
    if (!o) throw new Error(`no ${key}`);
    return { body: o.body, meta: o.meta };
  }
  async head(key: string) {
    return (await this.get(key)).meta;
  }
  async delete(key: string) {
    this.objects.delete(key);
  }
}

/** A gate a fake holds its call at until the test opens it. */
export class Gate {
  private opened = false;
  private waiters: Array<() => void> = [];
  open(): void {
    this.opened = true;
    for (const w of this.waiters.splice(0)) w();
  }
  wait(): Promise<void> {
    return this.opened ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }
}

export const SNAPSHOT_BODY = Buffer.from("etcd backend bytes, then etcd's own sha256");

export interface FakeNode {
  ports: Ports;
  aws: FakeAws;
  backups: MapStore;
  gate: Gate;
  /** Snapshots asked of etcd. */
  snapshots: () => number;
  /** moveLeader calls, by target member ID. */
  moves: string[];
  selfId: string;
  ctx: { identity: { instanceId: string; privateIp: string }; asgName: string };
}

/** This node leads a healthy three-member cluster; `leaving` puts it in Terminating:Wait with a hook. */
export function fakeLeader(o: { leaving: boolean }): FakeNode {
  const aws = new FakeAws();
  const a = aws.launch(1, "127.0.0.11");
  aws.launch(2, "127.0.0.12");
  aws.launch(3, "127.0.0.13");
  aws.hooks = { launch: null, terminate: "etcd-terminate" };
  if (o.leaving) {
    a.lifecycleState = "Terminating:Wait";
    a.targetLifecycleState = "Terminated";
  }
  const members = [...aws.instances.values()].map((i, n) => ({
    id: String(n + 1),
    name: i.instanceId,
    peerUrls: [`http://${i.ip}:2380`],
    clientUrls: [`http://${i.ip}:2379`],
    isLearner: false,
  }));
  const gate = new Gate();
  let snapshots = 0;
  const moves: string[] = [];
  const etcd = {
    memberList: async () => ({ clusterId: "99", memberId: "1", members }),
    status: async (url: string) => {
      const m = members.find((x) => x.clientUrls[0] === url);
      if (!m) return null;
      return {
        memberId: m.id,
        leaderId: "1",
        raftIndex: "10",
        raftTerm: "2",
        dbSize: 1,
        isLearner: false,
        version: "3.4.23",
        errors: [],
      };
    },
    snapshot: async (_endpoint: string, _timeoutMs: number, into?: Writable) => {
      snapshots++;
      await gate.wait();
      if (into) into.end(SNAPSHOT_BODY);
      return { revision: "7", data: SNAPSHOT_BODY };
    },
    moveLeader: async (_leader: string, to: string) => {
      moves.push(to);
    },
    memberRemove: async () => true,
    memberPromote: async () => {},
    memberAdd: async () => {
      throw new Error("not in this test");
    },
    close: async () => {},
  } as unknown as EtcdCluster;
  const local = new MemoryLocalNode(true);
  local.state = { clusterToken: "tok-1" } as never;
  const backups = new MapStore();
  const ports: Ports = {
    metadata: aws.metadata(a.instanceId),
    autoscaling: aws.autoscaling(),
    ec2: aws.ec2(),
    dns: aws.dns(),
    etcd,
    clock: {
      now: () => new Date(),
      sleep: (ms: number) => new Promise((r) => setTimeout(r, Math.min(ms, 5))),
    },
    local,
    serviceManager: {
      ready: async () => {},
      status: async () => {},
      watchdog: async () => {},
      stopping: async () => {},
    },
    backups,
  };
  return {
    ports,
    aws,
    backups,
    gate,
    snapshots: () => snapshots,
    moves,
    selfId: "1",
    ctx: { identity: { instanceId: a.instanceId, privateIp: a.ip }, asgName: aws.asgName },
  };
}

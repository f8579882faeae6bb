// A node following a CA rotation survives a crash after every one of its steps (CA_ROTATION_STEPS):
// after the next look its files hold the phase's bundle and a certificate of the signing CA, its
// etcd runs on that bundle, the record says so, the restart lock is free, and etcd was restarted at
// most once more than needed. A held lock or a voter down holds the restart back by a named rule.
import { beforeAll, describe, expect, it } from "vitest";
import { SimulatedCrashError } from "../../../agent/apply/steps.js";
import { parseConfig } from "../../../agent/config/config.js";
import { ClusterUnhealthyError } from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";
import { createLogger } from "../../../agent/log.js";
import type { Member, MemberStatus } from "../../../agent/planner/observation.js";
import type { CertBundle, CertFile, CertFiles } from "../../../agent/ports/cert-files.js";
import type { EtcdService, FollowedCa, RestartLock } from "../../../agent/ports/etcd-service.js";
import type { Ports } from "../../../agent/ports/index.js";
import { type CaSecret, sameTrust, trustBundle, trustSet } from "../../../agent/tls/ca-rotation.js";
import { keyMatchesCert } from "../../../agent/tls/node-certs.js";
import { type CertKey, createCa, issue, signedBy } from "../../../agent/tls/pki.js";
import { bootCertificates, CA_ROTATION_STEPS, followCaRotation } from "../../../agent/tls/rotate-node.js";
import { MapSecrets } from "../../fakes/fake-secrets.js";

const SECRET = "etcd-agent/etcd/ca";
const SELF = "i-0abc";
const config = parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST" });
const ctx = {
  identity: { instanceId: SELF, privateIp: "127.0.1.5", availabilityZone: "x", region: "x" },
  asgName: "etcd",
} as never;
const log = createLogger({ write: () => true } as never);

class DiskLikeFiles implements CertFiles {
  files: Partial<CertBundle> = {};
  async read() {
    const { ca, cert, key } = this.files;
    return ca && cert && key ? { ca, cert, key } : null;
  }
  async write(b: CertBundle, afterFile?: (file: CertFile) => Promise<void>) {
    for (const f of ["ca", "key", "cert"] as const) {
      this.files[f] = b[f];
      await afterFile?.(f);
    }
  }
}

/** etcd as a process: it loads the CA file at start; the record is the agent's (or boot's). */
class FakeEtcd implements EtcdService {
  running: string;
  record: string | null;
  restarts = 0;
  constructor(
    private readonly files: DiskLikeFiles,
    loaded: string,
  ) {
    this.running = loaded;
    this.record = loaded;
  }
  async restart() {
    this.restarts++;
    this.running = this.files.files.ca as string;
  }
  async loadedTrust() {
    return this.record;
  }
  async recordLoadedTrust(bundle: string) {
    this.record = bundle;
  }
  followed: FollowedCa | null = null;
  async followedCa() {
    return this.followed;
  }
  async recordFollowedCa(f: FollowedCa) {
    this.followed = f;
  }
}

class MapLock implements RestartLock {
  holder: string | null = null;
  async acquire(_e: string[], owner: string) {
    if (this.holder === null || this.holder === owner) {
      this.holder = owner;
      return { held: true, holder: owner };
    }
    return { held: false, holder: this.holder };
  }
  async release(_e: string[], owner: string) {
    if (this.holder === owner) this.holder = null;
  }
}

const MEMBERS: Member[] = ["i-0abc", "i-0def", "i-0fed"].map((name, i) => ({
  id: String(i + 1),
  name,
  peerUrls: [`https://127.0.1.${5 + i}:2380`],
  clientUrls: [`https://127.0.1.${5 + i}:2379`],
  isLearner: false,
}));

/** Each member's raft applied index and who leads; by default all at 100 under member 1. */
interface Raft {
  leaderId: string;
  applied: (name: string) => string;
}

function etcdCluster(
  down: Set<string>,
  busy: Set<string> = new Set(),
  raft: Raft = { leaderId: "1", applied: () => "100" },
) {
  return {
    /** A defragmenting member answers Status but no read. */
    async answersRead(url: string) {
      const m = MEMBERS.find((x) => x.clientUrls[0] === url);
      return m !== undefined && !down.has(m.name) && !busy.has(m.name);
    },
    async memberList() {
      return { clusterId: "9", memberId: "1", members: MEMBERS };
    },
    async status(url: string): Promise<MemberStatus | null> {
      const m = MEMBERS.find((x) => x.clientUrls[0] === url);
      if (!m || down.has(m.name)) return null;
      return {
        memberId: m.id,
        leaderId: raft.leaderId,
        raftIndex: raft.applied(m.name),
        raftAppliedIndex: raft.applied(m.name),
        raftTerm: "1",
        dbSize: 1,
        isLearner: false,
        version: "3.4.23",
        errors: [],
      };
    },
    async close() {},
  };
}

let oldCa: CertKey;
let newCa: CertKey;
beforeAll(async () => {
  [oldCa, newCa] = await Promise.all([createCa("old", new Date(), 10), createCa("new", new Date(), 10)]);
});

/** A node of a steady cluster on the old CA, then the secret moved to `phase`. */
async function node(secret: CaSecret, down = new Set<string>(), busy = new Set<string>(), raft?: Raft) {
  const secrets = new MapSecrets();
  const files = new DiskLikeFiles();
  const leaf = await issue(oldCa, {
    commonName: SELF,
    names: ["127.0.1.5", `${SELF}.etcd.test`, "etcd.test"],
    usage: "node",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
  });
  files.files = { ca: oldCa.cert, cert: leaf.cert, key: leaf.key };
  secrets.values.set(SECRET, JSON.stringify(secret));
  const etcd = new FakeEtcd(files, oldCa.cert);
  const lock = new MapLock();
  const ports = {
    secrets,
    certs: files,
    clock: { now: () => new Date() },
    etcd: etcdCluster(down, busy, raft),
    etcdService: etcd,
    restartLock: lock,
  } as unknown as Ports;
  return { ports, files, etcd, lock };
}

const crashAt = (step: string) => (at: string) => {
  if (at === step) throw new SimulatedCrashError(at);
};
const noSleep = async () => {};

describe("following a CA rotation, crashed after each step", () => {
  it.each(
    CA_ROTATION_STEPS.map((s) => [s]),
  )("after %s: the next look leaves etcd on the new bundle, the record true and the lock free", async (step) => {
    const secret: CaSecret = { ...oldCa, next: newCa };
    const n = await node(secret);
    const wanted = trustBundle(secret);

    const crashed = await followCaRotation(n.ports, config, ctx, log, {
      afterStep: crashAt(step),
      sleep: noSleep,
    }).catch((e) => e);
    await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });

    expect(crashed).toBeInstanceOf(SimulatedCrashError);
    expect(sameTrust(n.etcd.running, wanted)).toBe(true);
    expect(sameTrust(n.etcd.record as string, wanted)).toBe(true);
    expect(n.lock.holder).toBeNull();
    expect(n.etcd.restarts).toBeGreaterThanOrEqual(1);
    expect(n.etcd.restarts).toBeLessThanOrEqual(2);
    expect(sameTrust(n.files.files.ca as string, wanted)).toBe(true);
    expect(signedBy(n.files.files.cert as string, oldCa.cert)).toBe(true);
    expect(keyMatchesCert(n.files.files.cert as string, n.files.files.key as string)).toBe(true);
    // A third look changes nothing.
    const again = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(again.decision.action).toBe("none");
  });

  it("sign-next: the certificate is issued by the new CA, with no restart (the bundle is the same)", async () => {
    const n = await node({ ...newCa, previous: { cert: oldCa.cert } });
    n.etcd.running = trustBundle({ ...oldCa, next: newCa });
    n.etcd.record = n.etcd.running;
    const out = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(out.kind).toBe("followed");
    expect(n.etcd.restarts).toBe(0);
    expect(signedBy(n.files.files.cert as string, newCa.cert)).toBe(true);
  });

  it("another member holds the restart lock: no restart, rule ca-restart-one-at-a-time", async () => {
    const n = await node({ ...oldCa, next: newCa });
    n.lock.holder = "i-0def";
    const out = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(out.decision).toMatchObject({ action: "hold", rule: "ca-restart-one-at-a-time" });
    expect(n.etcd.restarts).toBe(0);
  });

  it("a voter down: no restart, rule ca-restart-quorum", async () => {
    const n = await node({ ...oldCa, next: newCa }, new Set(["i-0fed"]));
    const out = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(out.decision).toMatchObject({ action: "hold", rule: "ca-restart-quorum" });
    expect(n.etcd.restarts).toBe(0);
    expect(n.lock.holder).toBeNull();
  });

  it("a voter busy defragmenting (Status answers, reads wait): no restart, rule ca-restart-quorum, the lock let go", async () => {
    const n = await node({ ...oldCa, next: newCa }, new Set(), new Set(["i-0fed"]));
    const out = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(out.decision).toMatchObject({ action: "hold", rule: "ca-restart-quorum" });
    expect(n.etcd.restarts).toBe(0);
    expect(n.lock.holder).toBeNull();
  });

  // F7: a member names a leader as soon as it is back, before it has replayed what it missed.
  it("a voter behind the leader's applied index: no restart, rule ca-restart-catching-up, the lock free", async () => {
    const raft = { leaderId: "2", applied: (name: string) => (name === "i-0fed" ? "10" : "5000") };
    const n = await node({ ...oldCa, next: newCa }, new Set(), new Set(), raft);
    const out = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(out.decision).toMatchObject({ action: "hold", rule: "ca-restart-catching-up" });
    expect(n.etcd.restarts).toBe(0);
    expect(n.lock.holder).toBeNull();
  });

  it("after its restart the lock is let go only once this member has caught up with the leader", async () => {
    let sleeps = 0;
    let n: Awaited<ReturnType<typeof node>> | undefined;
    const raft = {
      leaderId: "2",
      // This member (i-0abc) replays for three polls after its restart.
      applied: (name: string) => (name === SELF && (n?.etcd.restarts ?? 0) > 0 && sleeps < 3 ? "10" : "5000"),
    };
    n = await node({ ...oldCa, next: newCa }, new Set(), new Set(), raft);
    let heldWhileBehind = 0;
    const out = await followCaRotation(n.ports, config, ctx, log, {
      sleep: async () => {
        if (n?.lock.holder === SELF) heldWhileBehind++;
        sleeps++;
      },
    });
    expect(out.kind).toBe("restarted");
    expect(heldWhileBehind).toBeGreaterThanOrEqual(3);
    expect(n.lock.holder).toBeNull();
  });

  it("etcd never healthy after its restart: a ClusterUnhealthyError (exit UNHEALTHY) naming the wait, the lock kept", async () => {
    const raft = { leaderId: "2", applied: (name: string) => (name === SELF ? "10" : "5000") };
    const n = await node({ ...oldCa, next: newCa }, new Set(), new Set(), raft);
    const error = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ClusterUnhealthyError);
    expect(exitNameFor(error)).toBe("UNHEALTHY");
    expect((error as Error).message).toMatch(
      /did not answer healthy and caught up within \d+ s of its restart/,
    );
    // Kept: no other member restarts while this one has not caught up (the lock's lease ends it).
    expect(n.lock.holder).toBe(SELF);
  });

  // F8: a stale read of the secret two phases back would have this node trust only the old CA
  // while its peers present certificates of the new one.
  it("a stale read (steady old CA after sign-next was followed): ignored, rule ca-secret-stale, files and etcd unchanged", async () => {
    const signNext: CaSecret = { ...newCa, previous: { cert: oldCa.cert }, generation: 2 };
    const n = await node({ ...oldCa });
    const both = trustBundle(signNext);
    const leaf = await issue(newCa, {
      commonName: SELF,
      names: ["127.0.1.5", `${SELF}.etcd.test`, "etcd.test"],
      usage: "node",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    n.files.files = { ca: both, cert: leaf.cert, key: leaf.key };
    n.etcd.running = both;
    n.etcd.record = both;
    n.etcd.followed = { generation: 2, phase: "sign-next", trust: trustSet(both) };
    const out = await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(out.decision).toMatchObject({ action: "hold", rule: "ca-secret-stale" });
    expect(out.phase).toBe("sign-next");
    expect(n.files.files.ca).toBe(both);
    expect(n.files.files.cert).toBe(leaf.cert);
    expect(n.etcd.restarts).toBe(0);
    expect(n.etcd.followed?.generation).toBe(2);
  });

  it("each look records the generation it followed; a later one moves it forward", async () => {
    const n = await node({ ...oldCa, next: newCa, generation: 1 });
    await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(n.etcd.followed).toEqual({
      generation: 1,
      phase: "trust-next",
      trust: trustSet(trustBundle({ ...oldCa, next: newCa })),
    });
    await n.ports.secrets?.put(
      SECRET,
      JSON.stringify({ ...newCa, previous: { cert: oldCa.cert }, generation: 2 }),
    );
    await followCaRotation(n.ports, config, ctx, log, { sleep: noSleep });
    expect(n.etcd.followed).toMatchObject({ generation: 2, phase: "sign-next" });
  });

  it("boot after a stale read keeps the files this node followed (rule ca-secret-stale)", async () => {
    const signNext: CaSecret = { ...newCa, previous: { cert: oldCa.cert }, generation: 2 };
    const n = await node({ ...oldCa });
    const both = trustBundle(signNext);
    const leaf = await issue(newCa, {
      commonName: SELF,
      names: ["127.0.1.5", `${SELF}.etcd.test`, "etcd.test"],
      usage: "node",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
    });
    n.files.files = { ca: both, cert: leaf.cert, key: leaf.key };
    n.etcd.followed = { generation: 2, phase: "sign-next", trust: trustSet(both) };
    await bootCertificates(n.ports, config, ctx, log);
    expect(n.files.files.ca).toBe(both);
    expect(n.files.files.cert).toBe(leaf.cert);
    expect(n.etcd.record).toBe(both);
  });
});

// runBoot's restore with AWS, S3 and the disk faked (no etcd answers, a stand-in restore tool):
// the unreachable clock across boots as systemd restarts them (#13 defect 3), and a restore that
// fails part way stays `restoring` and is never turned into a new empty cluster (#13 defect 1).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalDisk } from "../../../agent/adapters/local-disk.js";
import { noServiceManager } from "../../../agent/adapters/systemd-notify.js";
import type { AfterStep } from "../../../agent/apply/steps.js";
import { sha256 } from "../../../agent/backups/index.js";
import { type BootResult, runBoot } from "../../../agent/commands/boot.js";
import { EtcdUnavailableError, WaitingError } from "../../../agent/errors.js";
import { createLogger } from "../../../agent/log.js";
import { snapshotKey } from "../../../agent/planner/backup-plan.js";
import { parseEnvFile } from "../../../agent/planner/etcd-env.js";
import { decodeMarker, markerRecord } from "../../../agent/planner/marker.js";
import type { EtcdCluster } from "../../../agent/ports/etcd.js";
import type { Ports } from "../../../agent/ports/index.js";
import { FakeAws } from "../../fakes/fake-aws.js";
import { FakeBackups } from "../../fakes/fake-backups.js";
import { nodeConfig } from "../../support/etcd-node.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-boot-restore-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const MARKER = "_etcd-cluster.etcd.test";
const OLD_TOKEN = "etcd-i-00000001";

/** A clock that only moves when told to, or when the code under test sleeps. */
class StepClock {
  constructor(public t: number) {}
  now(): Date {
    return new Date(this.t);
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }
}

/** No etcd answers anywhere. */
const silentEtcd = new Proxy({} as EtcdCluster, {
  get: (_t, prop) =>
    prop === "close"
      ? async () => {}
      : async () => {
          throw new EtcdUnavailableError(`no member answers (${String(prop)})`);
        },
});

/** A stand-in for etcdctl snapshot restore: makes <data-dir>/member/{wal,snap}. */
function fakeRestoreTool(dir: string): string {
  const path = join(dir, "etcdctl");
  writeFileSync(
    path,
    [
      "#!/bin/sh",
      'while [ $# -gt 0 ]; do if [ "$1" = "--data-dir" ]; then mkdir -p "$2/member/wal" "$2/member/snap"; fi; shift; done',
      "",
    ].join("\n"),
  );
  chmodSync(path, 0o755);
  return path;
}

let seq = 0;
function world(opts: { config?: Record<string, unknown>; corrupt?: boolean } = {}) {
  const dir = join(root, `w${++seq}`);
  mkdirSync(dir, { recursive: true });
  const aws = new FakeAws();
  // The lost cluster's instances (1, 2) are gone (EC2 says terminated); the ASG holds new ones 4, 5, 6.
  for (const n of [1, 2]) {
    aws.launch(n, `127.0.50.${n}`);
    aws.terminate(`i-${n.toString(16).padStart(8, "0")}`);
  }
  const self = aws.launch(4, "127.0.50.4");
  aws.launch(5, "127.0.50.5");
  aws.launch(6, "127.0.50.6");
  aws.records.set(`TXT ${MARKER}`, {
    ...markerRecord(MARKER, { state: "active", token: OLD_TOKEN, claimant: "i-00000001" }),
    name: MARKER,
  });
  const backups = new FakeBackups();
  const body = Buffer.from("an etcd snapshot");
  const key = snapshotKey("backups/etcd/", new Date("2026-11-22T11:00:00Z"), "42", OLD_TOKEN);
  backups.objects.set(key, {
    body,
    meta: {
      sha256: opts.corrupt ? sha256(Buffer.from("other")) : sha256(body),
      members: "i-00000001,i-00000002",
    },
  });
  const clock = new StepClock(Date.parse("2026-11-22T12:00:00.000Z"));
  const config = nodeConfig(dir, {
    backupBucket: "etcd-backups",
    restoreTool: fakeRestoreTool(dir),
    ...opts.config,
  });
  const ports: Ports = {
    clock,
    metadata: aws.metadata(self.instanceId),
    autoscaling: aws.autoscaling(),
    ec2: aws.ec2(),
    dns: aws.dns(),
    etcd: silentEtcd,
    local: new LocalDisk({
      dataDir: config.dataDir,
      stateDir: config.stateDir,
      envFile: config.envFile,
      clock,
    }),
    serviceManager: noServiceManager,
    backups,
  };
  const lines: string[] = [];
  const log = createLogger(
    { write: (l: string) => lines.push(l) } as unknown as import("node:stream").Writable,
    {
      level: "debug",
    },
  );
  const boot = (afterStep?: AfterStep) =>
    runBoot(
      ports,
      config,
      {
        identity: { instanceId: self.instanceId, privateIp: self.ip, region: "r", availabilityZone: "a" },
        asgName: "etcd",
      },
      log,
      afterStep ? { afterStep } : {},
    );
  const marker = () => {
    const r = aws.record(MARKER, "TXT");
    return r ? decodeMarker(r.values[0] as string) : null;
  };
  const env = () => (existsSync(config.envFile) ? parseEnvFile(readFileSync(config.envFile, "utf8")) : null);
  return { aws, self, backups, clock, config, ports, boot, marker, env, lines, key, body };
}

/** Boots as systemd runs the unit: a boot that waits out its timeout exits, 15 s later the next. */
async function bootsUntilDone(w: ReturnType<typeof world>, max: number) {
  const holds: string[] = [];
  for (let n = 1; n <= max; n++) {
    try {
      const result: BootResult = await w.boot();
      return { result, boots: n, holds };
    } catch (error) {
      if (!(error instanceof WaitingError)) throw error;
      holds.push(error.hold.rule);
      w.clock.t += 15_000; // RestartSec
    }
  }
  return { result: null, boots: max, holds };
}

describe("automatic restore with the shipped defaults (#13 defect 3)", () => {
  it("boots restarted by systemd keep the unreachable clock: the third boot restores", async () => {
    // bootTimeoutSeconds 120 and restoreAfterSeconds 300 are the shipped defaults.
    const w = world({ config: { bootTimeoutSeconds: 120 } });
    expect(w.config.bootTimeoutSeconds).toBe(120);
    expect(w.config.backup?.restoreAfterSeconds).toBe(300);

    const done = await bootsUntilDone(w, 6);

    expect(done.holds).toEqual(["restore-wait", "restore-wait"]);
    expect(done.result?.decision).toBe("restore");
    expect(done.boots).toBe(3);
  });

  it("a node that was off for a day does not find a day-old clock: it waits the bound again", async () => {
    const w = world({ config: { bootTimeoutSeconds: 120 } });
    await expect(w.boot()).rejects.toThrow(/\[rule: restore-wait\]/);
    w.clock.t += 86_400_000;

    // The second boot counts from its own start, not from the day-old first sighting.
    const second = await w.boot().catch((e: unknown) => e);
    expect(second).toBeInstanceOf(WaitingError);
    const waited = Number(/no member for (\d+)s of 300s/.exec((second as WaitingError).hold.detail)?.[1]);
    expect((second as WaitingError).hold.rule).toBe("restore-wait");
    expect(waited).toBeLessThanOrEqual(120);
    w.clock.t += 15_000;
    const after = await bootsUntilDone(w, 3);
    expect(after.result?.decision).toBe("restore");
  });
});

describe("a restore that fails part way stays restoring, never an empty cluster (#13 defect 1)", () => {
  const expectStillRestoring = (w: ReturnType<typeof world>) => {
    expect(w.marker()).toMatchObject({ state: "restoring", claimant: w.self.instanceId });
    expect(w.marker()?.token).not.toBe(OLD_TOKEN);
    // No environment for etcd: nothing starts, least of all a new cluster on empty data.
    expect(w.env()).toBeNull();
  };

  it("every snapshot failing its checksum: restoring; the next boot tries again, never bootstraps", async () => {
    const w = world({ corrupt: true, config: { restoreAfterSeconds: 10, bootTimeoutSeconds: 60 } });

    await expect(w.boot()).rejects.toThrow(/no snapshot verified/);
    expectStillRestoring(w);
    await expect(w.boot()).rejects.toThrow(/no snapshot verified/);
    expectStillRestoring(w);

    // A good copy appears (an operator re-uploads it): the same instance finishes its restore.
    w.backups.objects.set(w.key, { body: w.body, meta: { sha256: sha256(w.body), members: "i-00000001" } });
    const done = await w.boot();
    expect(done.decision).toBe("restore");
    expect(w.env()?.ETCD_INITIAL_CLUSTER_STATE).toBe("existing");
    expect(w.env()?.ETCD_INITIAL_CLUSTER_TOKEN).toBe(w.marker()?.token);
  });

  it("the restore tool missing: restoring; the next boot does not bootstrap", async () => {
    const w = world({ config: { restoreAfterSeconds: 10, restoreTool: join(root, "no-such-etcdctl") } });

    await expect(w.boot()).rejects.toThrow(/cannot run .*no-such-etcdctl/);
    expectStillRestoring(w);
    await expect(w.boot()).rejects.toThrow(/cannot run .*no-such-etcdctl/);
    expectStillRestoring(w);
  });

  it("S3 failing the download: restoring; the next boot waits or fails, never bootstraps", async () => {
    const w = world({ config: { restoreAfterSeconds: 10, bootTimeoutSeconds: 30 } });
    w.backups.failGet = "503 SlowDown";

    await expect(w.boot()).rejects.toThrow(/503 SlowDown/);
    expectStillRestoring(w);
    await expect(w.boot()).rejects.toThrow(/\[rule: partial-information\]|503 SlowDown/);
    expectStillRestoring(w);
    expect(w.lines.join("")).not.toContain('"action":"bootstrap"');
  });

  it("the member registry not writable: no marker swap, no restore until it is", async () => {
    const w = world({ config: { restoreAfterSeconds: 10, bootTimeoutSeconds: 30 } });
    w.backups.failPut = "AccessDenied";
    w.backups.failPutOn = "/members/";

    await expect(w.boot()).rejects.toThrow(/AccessDenied/);
    expect(w.marker()).toMatchObject({ state: "active", token: OLD_TOKEN });
    expect(w.env()).toBeNull();
  });
});

describe("the restore loads the snapshot its plan named (#17)", () => {
  /** A snapshot of the lost cluster, taken at `at`, whose content verifies. */
  const putSnapshot = (w: ReturnType<typeof world>, at: string, body: string) => {
    const key = snapshotKey("backups/etcd/", new Date(at), "77", OLD_TOKEN);
    const data = Buffer.from(body);
    w.backups.objects.set(key, { body: data, meta: { sha256: sha256(data), members: "i-00000001" } });
    return key;
  };
  const restoredKeys = (w: ReturnType<typeof world>) =>
    w.lines
      .map((l) => JSON.parse(l) as { msg: string; key?: string })
      .filter((l) => l.msg.startsWith("restored the cluster from a snapshot"))
      .map((l) => l.key);

  it("a newer snapshot appearing after the plan is not the one restored", async () => {
    const w = world({ config: { restoreAfterSeconds: 10, bootTimeoutSeconds: 60 } });
    let newer = "";
    // Between the plan and the download: a snapshot newer than the planned one is uploaded.
    const done = await w.boot((step) => {
      if (step === "restore:swap-marker") newer = putSnapshot(w, "2026-11-22T11:30:00Z", "newer data");
    });

    expect(done.decision).toBe("restore");
    expect(newer).not.toBe("");
    expect(restoredKeys(w)).toEqual([w.key]);
  });

  it("a planned snapshot failing its checksum: the older one the same plan named is restored", async () => {
    const w = world({ corrupt: true, config: { restoreAfterSeconds: 10, bootTimeoutSeconds: 60 } });
    const older = putSnapshot(w, "2026-11-22T10:00:00Z", "older data");

    const done = await w.boot();

    expect(done.decision).toBe("restore");
    expect(restoredKeys(w)).toEqual([older]);
  });

  it("the planned snapshot gone before the download: refused, naming the rule; nothing restored", async () => {
    const w = world({ config: { restoreAfterSeconds: 10, bootTimeoutSeconds: 60 } });
    putSnapshot(w, "2026-11-22T10:00:00Z", "older data");
    const booted = w.boot((step) => {
      if (step === "restore:swap-marker") w.backups.objects.delete(w.key);
    });

    await expect(booted).rejects.toThrow(/\[rule: snapshot-unverified\].*gone/);
    expect(restoredKeys(w)).toEqual([]);
    expect(w.env()).toBeNull();
    expect(w.marker()).toMatchObject({ state: "restoring", claimant: w.self.instanceId });
  });
});

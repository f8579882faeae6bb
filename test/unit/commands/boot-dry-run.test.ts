// `etcd-agent boot --dry-run` (#17): one observation, the decision, and the typed steps the
// applier would take, printed; with every port that can write refusing (and recording) any write,
// nothing is attempted: no etcd membership call, no disk, no DNS, no S3, no memory clock.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sha256 } from "../../../agent/backups/index.js";
import { dryRunBoot, formatDryRun } from "../../../agent/commands/boot.js";
import { EtcdUnavailableError } from "../../../agent/errors.js";
import { createLogger } from "../../../agent/log.js";
import { snapshotKey } from "../../../agent/planner/backup-plan.js";
import { markerRecord } from "../../../agent/planner/marker.js";
import { emptyMemory } from "../../../agent/planner/memory.js";
import type { EtcdCluster } from "../../../agent/ports/etcd.js";
import type { Ports } from "../../../agent/ports/index.js";
import type { LocalNode } from "../../../agent/ports/local-node.js";
import { FakeAws } from "../../fakes/fake-aws.js";
import { FakeBackups } from "../../fakes/fake-backups.js";
import { nodeConfig } from "../../support/etcd-node.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-boot-dry-run-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const MARKER = "_etcd-cluster.etcd.test";
const OLD_TOKEN = "etcd-i-00000001";
const NOW = Date.parse("2026-11-22T12:00:00.000Z");

/** `target` with the named methods replaced by ones that record the call and fail. */
function refuseWrites<T extends object>(target: T, port: string, methods: string[], writes: string[]): T {
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value = Reflect.get(t, prop, receiver);
      if (typeof prop === "string" && methods.includes(prop))
        return async () => {
          writes.push(`${port}.${prop}`);
          throw new Error(`dry run wrote ${port}.${prop}`);
        };
      return typeof value === "function" ? value.bind(t) : value;
    },
  });
}

/** No etcd answers; any call but the reads is recorded as a write. */
function silentEtcd(writes: string[]): EtcdCluster {
  return new Proxy({} as EtcdCluster, {
    get: (_t, prop) => async () => {
      if (prop !== "memberList" && prop !== "status" && prop !== "close") writes.push(`etcd.${String(prop)}`);
      throw new EtcdUnavailableError(`no member answers (${String(prop)})`);
    },
  });
}

function world(opts: { lost: boolean }) {
  const dir = mkdtempSync(join(root, "w"));
  const writes: string[] = [];
  const aws = new FakeAws();
  if (opts.lost) {
    // The lost cluster's instances (1, 2) are terminated; the marker still names it active.
    for (const n of [1, 2]) {
      aws.launch(n, `127.0.51.${n}`);
      aws.terminate(`i-${n.toString(16).padStart(8, "0")}`);
    }
    aws.records.set(`TXT ${MARKER}`, {
      ...markerRecord(MARKER, { state: "active", token: OLD_TOKEN, claimant: "i-00000001" }),
      name: MARKER,
    });
  }
  const self = aws.launch(4, "127.0.51.4");
  const backups = new FakeBackups();
  const body = Buffer.from("an etcd snapshot");
  const key = snapshotKey("backups/etcd/", new Date("2026-11-22T11:00:00Z"), "42", OLD_TOKEN);
  backups.objects.set(key, { body, meta: { sha256: sha256(body), members: "i-00000001,i-00000002" } });
  // Planted: dated in the future. A boot records it under events/ (the alarm); a dry run must not.
  backups.objects.set(snapshotKey("backups/etcd/", new Date("2026-11-23T11:00:00Z"), "99", OLD_TOKEN), {
    body,
    meta: { sha256: sha256(body) },
  });
  // No member has answered for 10 minutes (confirmed a minute ago): past the restore bound.
  const memory = {
    ...emptyMemory(),
    unreachableSince: new Date(NOW - 600_000).toISOString(),
    unreachableConfirmedAt: new Date(NOW - 60_000).toISOString(),
  };
  const local: LocalNode = {
    hasData: async () => false,
    readState: async () => null,
    readEnvFile: async () => null,
    readMemory: async () => memory,
    writeState: async () => {},
    moveDataAside: async () => null,
    adoptRestored: async () => {},
    writeEnvFile: async () => {},
    writeMemory: async () => {},
  };
  const config = nodeConfig(dir, opts.lost ? { backupBucket: "etcd-backups", restoreAfterSeconds: 300 } : {});
  const ports: Ports = {
    clock: { now: () => new Date(NOW), sleep: async () => {} },
    metadata: aws.metadata(self.instanceId),
    autoscaling: refuseWrites(
      aws.autoscaling(),
      "autoscaling",
      ["completeLifecycleAction", "recordLifecycleActionHeartbeat", "setInstanceUnhealthy"],
      writes,
    ),
    ec2: aws.ec2(),
    dns: refuseWrites(aws.dns(), "dns", ["change", "swapTxt"], writes),
    etcd: silentEtcd(writes),
    local: refuseWrites(
      local,
      "local",
      ["writeState", "moveDataAside", "adoptRestored", "writeEnvFile", "writeMemory"],
      writes,
    ),
    serviceManager: {
      ready: () => {},
      status: () => {},
      stopping: () => {},
    } as unknown as Ports["serviceManager"],
    ...(opts.lost ? { backups: refuseWrites(backups, "backups", ["put", "delete"], writes) } : {}),
  };
  const log = createLogger({ write: () => true } as unknown as import("node:stream").Writable, {
    level: "debug",
  });
  const dryRun = () =>
    dryRunBoot(
      ports,
      config,
      {
        identity: { instanceId: self.instanceId, privateIp: self.ip, region: "r", availabilityZone: "a" },
        asgName: "etcd",
      },
      log,
    );
  return { dryRun, writes, key };
}

describe("etcd-agent boot --dry-run (#17)", () => {
  it("a lost cluster: prints the restore's steps with the planned snapshot, and writes nothing", async () => {
    const w = world({ lost: true });

    const r = await w.dryRun();

    expect(r.decision).toBe("restore");
    expect(r.steps.map((s) => s.split(" ")[0])).toEqual([
      "restore:register",
      "restore:swap-marker",
      "restore:move-data-aside",
      "restore:download-verify",
      "restore:restore-to-staging",
      "restore:record-event",
      "restore:adopt",
      "restore:write-state",
      "restore:write-env",
    ]);
    expect(r.steps[3]).toBe(`restore:download-verify ${w.key}`);
    expect(w.writes).toEqual([]);
    expect(formatDryRun(r)).toMatch(
      /^boot would restore: .*\n {2}1\. restore:register\n[\s\S]*dry run: nothing was changed\n$/,
    );
  });

  it("a new group: prints the bootstrap's steps, and writes nothing", async () => {
    const w = world({ lost: false });

    const r = await w.dryRun();

    expect(r).toMatchObject({
      decision: "bootstrap",
      rule: null,
      steps: [
        "bootstrap:claim-marker (create)",
        "bootstrap:register",
        "bootstrap:write-state",
        "bootstrap:write-env (ETCD_INITIAL_CLUSTER_STATE=new)",
      ],
    });
    expect(w.writes).toEqual([]);
  });
});

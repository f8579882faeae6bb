// Disaster recovery with real etcd 3.4 on 127.0.28.x, AWS and S3 faked in process (#13):
// a restore killed after each of its steps, then booted again as systemd would, always ends with
// the snapshot's data under a `restoring` marker (then `active` once it serves), never a new empty
// cluster (defect 1); a member that joined after the newest snapshot and is still in the ASG holds
// the restore (defect 6).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { SimulatedCrashError } from "../../agent/apply/steps.js";
import { saveSnapshot } from "../../agent/backups/index.js";
import { RESTORE_STEPS, runBoot } from "../../agent/commands/boot.js";
import { WaitingError } from "../../agent/errors.js";
import { parseEnvFile } from "../../agent/planner/etcd-env.js";
import { decodeMarker } from "../../agent/planner/marker.js";
import type { ClusterMarker } from "../../agent/planner/observation.js";
import type { Ports } from "../../agent/ports/index.js";
import { FakeAws } from "../fakes/fake-aws.js";
import { FakeBackups } from "../fakes/fake-backups.js";
import {
  boot,
  bringUp,
  eventually,
  killEtcd,
  makeNode,
  shutdown,
  startEtcd,
  startLoop,
  stopLoop,
  stopNode,
  type TestNode,
} from "../support/etcd-node.js";

const SUBNET = "127.0.28";
const MARKER = "_etcd-cluster.etcd.test";

/** Real time, except that sleeps (the boot's waits) pass at once while `fast`. */
class SkipClock {
  fast = true;
  private offset = 0;
  now(): Date {
    return new Date(Date.now() + this.offset);
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.fast) {
      this.offset += ms;
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

function harness(root: string) {
  const aws = new FakeAws();
  const store = new FakeBackups();
  const nodes: TestNode[] = [];
  const make = (n: number, over: Record<string, unknown> = {}, clock: SkipClock | null = null) => {
    const node = makeNode(aws, root, n, `${SUBNET}.${n}`, {
      config: {
        backupBucket: "etcd-backups",
        restoreAfterSeconds: 10,
        restoreTool: "/usr/bin/etcdctl",
        ...over,
      },
      ports: (p: Ports) => ({ ...p, backups: store, ...(clock ? { clock } : {}) }),
    });
    nodes.push(node);
    return node;
  };
  const marker = (): ClusterMarker | null => {
    const r = aws.record(MARKER, "TXT");
    return r ? decodeMarker(r.values[0] as string) : null;
  };
  const url = (node: TestNode) => `http://${node.ip}:2379`;
  return { aws, store, nodes, make, marker, url };
}

async function read(url: string, key: string): Promise<string | null> {
  const client = new Etcd3({ hosts: [url], dialTimeout: 2000 });
  try {
    return await client.get(key).string();
  } finally {
    client.close();
  }
}

/** Seeds a one-member cluster on node `n`, writes a key, snapshots it, and loses the member. */
async function seedAndLose(h: ReturnType<typeof harness>, n: number) {
  const seed = h.make(n);
  expect((await bringUp(seed)).decision).toBe("bootstrap");
  const active = await eventually("the marker active", 30_000, async () =>
    h.marker()?.state === "active" ? h.marker() : undefined,
  );
  await eventually("the seed serving a write", 30_000, async () => {
    const client = new Etcd3({ hosts: [h.url(seed)], dialTimeout: 2000 });
    try {
      await client.put("/restore/before").value("kept");
      return true;
    } finally {
      client.close();
    }
  });
  const saved = await saveSnapshot(
    seed.ports,
    seed.config,
    "etcd",
    h.url(seed),
    active?.token as string,
    seed.log,
    [seed.instanceId],
  );
  return { seed, token: active?.token as string, raw: h.aws.record(MARKER, "TXT"), saved };
}

describe("a restore killed after each of its steps (#13 defect 1)", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-restore-it-"));
  const h = harness(root);
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });

  afterAll(async () => {
    await shutdown(h.nodes);
    await probe.close();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("every step: the next boot finishes the restore with the snapshot's data, one event, never an empty cluster", async () => {
    const { seed, token: lostToken, raw } = await seedAndLose(h, 1);
    await stopNode(seed, true);
    h.aws.terminate(seed.instanceId);
    expect(RESTORE_STEPS.length).toBeGreaterThanOrEqual(7);

    for (const [i, step] of RESTORE_STEPS.entries()) {
      const last = i === RESTORE_STEPS.length - 1;
      // The lost cluster again: marked active, every member gone.
      if (raw) h.aws.records.set(`TXT ${MARKER}`, raw);
      const clock = new SkipClock();
      const node = h.make(10 + i, {}, clock);
      const ctx = { identity: await node.ports.metadata.identity(), asgName: "etcd" };

      const crashed = runBoot(node.ports, node.config, ctx, node.log, {
        afterStep: (s) => {
          if (s === step) throw new SimulatedCrashError(s);
        },
      });
      await expect(crashed, step).rejects.toBeInstanceOf(SimulatedCrashError);

      // Right after the crash: never claimed, never active under a new token.
      const during = h.marker();
      expect(during?.state, step).not.toBe("claimed");
      if (during?.state === "active") expect(during.token, step).toBe(lostToken);
      else expect(during, step).toMatchObject({ state: "restoring", claimant: node.instanceId });
      const envAfterCrash = (() => {
        try {
          return parseEnvFile(readFileSync(node.config.envFile, "utf8"));
        } catch {
          return null;
        }
      })();
      expect(envAfterCrash?.ETCD_INITIAL_CLUSTER_STATE ?? "none", step).not.toBe("new");

      // systemd starts the boot again; then etcd on what it wrote.
      const again = await boot(node);
      expect(["restore", "rejoin"], step).toContain(again.decision);
      const env = parseEnvFile(readFileSync(node.config.envFile, "utf8"));
      expect(env.ETCD_INITIAL_CLUSTER_STATE, step).toBe("existing");
      const after = h.marker();
      expect(after, step).toMatchObject({ state: "restoring", claimant: node.instanceId });
      expect(after?.token, step).not.toBe(lostToken);
      expect(env.ETCD_INITIAL_CLUSTER_TOKEN, step).toBe(after?.token);
      await startEtcd(node);
      const value = await eventually(
        `${step}: the snapshot's key served`,
        30_000,
        async () => (await read(h.url(node), "/restore/before")) ?? undefined,
      );
      expect(value, step).toBe("kept");
      // One record (it alarms) per restored cluster: a restore done again overwrites it.
      expect(h.store.keys(`events/restore-${after?.token}`), step).toHaveLength(1);
      const record = JSON.parse(
        h.store.objects.get(h.store.keys(`events/restore-${after?.token}`)[0] as string)?.body.toString() ??
          "{}",
      );
      expect(record, step).toMatchObject({
        event: "restore",
        formerToken: lostToken,
        instanceId: node.instanceId,
      });

      if (last) {
        // restoring -> active only once the restored member serves: the run loop's leader writes it.
        clock.fast = false;
        startLoop(node);
        const active = await eventually("the marker active under the restored token", 30_000, async () =>
          h.marker()?.state === "active" ? h.marker() : undefined,
        );
        expect(active?.token).toBe(after?.token);
        const members = await probe.memberList([h.url(node)]);
        expect(members.members.map((m) => m.name)).toEqual([node.instanceId]);
        await stopLoop(node);
      }
      await killEtcd(node);
      h.aws.terminate(node.instanceId);
    }
  }, 300_000);
});

describe("a restore taken over when its restorer is gone (#13 defect 1)", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-restore-it-takeover-"));
  const h = harness(root);

  afterAll(async () => {
    await shutdown(h.nodes);
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("the restorer dies after downloading; the next designated instance restores again under its own token", async () => {
    const { seed, token: lostToken } = await seedAndLose(h, 51);
    await stopNode(seed, true);
    h.aws.terminate(seed.instanceId);
    const first = h.make(52, {}, new SkipClock());
    const second = h.make(53, {}, new SkipClock());
    const ctx = { identity: await first.ports.metadata.identity(), asgName: "etcd" };

    const crashed = runBoot(first.ports, first.config, ctx, first.log, {
      afterStep: (s) => {
        if (s === "restore:download-verify") throw new SimulatedCrashError(s);
      },
    });
    await expect(crashed).rejects.toBeInstanceOf(SimulatedCrashError);
    expect(h.marker()).toMatchObject({ state: "restoring", claimant: first.instanceId });
    // While the restorer lives, the other waits for it.
    const waiting = await boot(second).catch((e: unknown) => e);
    expect((waiting as WaitingError).hold?.rule).toBe("restore-in-progress");

    h.aws.terminate(first.instanceId);
    const result = await boot(second);

    expect(result.decision).toBe("restore");
    const marker = h.marker();
    expect(marker).toMatchObject({ state: "restoring", claimant: second.instanceId });
    expect([lostToken, `etcd-${first.instanceId}`]).not.toContain(marker?.token);
    await startEtcd(second);
    const value = await eventually(
      "the snapshot's key served",
      30_000,
      async () => (await read(h.url(second), "/restore/before")) ?? undefined,
    );
    expect(value).toBe("kept");
    expect(h.store.keys("events/")).toEqual([`backups/etcd/events/restore-${marker?.token}.json`]);
  }, 120_000);
});

describe("restore eligibility from the member registry (#13 defect 6)", () => {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-restore-it6-"));
  const h = harness(root);

  afterAll(async () => {
    await shutdown(h.nodes);
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  });

  it("a member that joined after the newest snapshot and is still in the ASG (down) holds the restore", async () => {
    const { seed, token, saved } = await seedAndLose(h, 101);
    expect(saved.clusterToken).toBe(token);
    // Joins after the snapshot: the snapshot names only the seed.
    const late = h.make(102);
    expect((await bringUp(late)).decision).toBe("join");
    await eventually("the late member started", 30_000, async () => {
      const list = await seed.ports.etcd.memberList([h.url(seed)]);
      return list.members.length === 2 && list.members.every((m) => m.name !== "") ? list : undefined;
    });
    // Every etcd down; the seed's instance is gone, the late member's is still in the ASG.
    await stopNode(seed, true);
    await stopNode(late, true);
    h.aws.terminate(seed.instanceId);
    // Its instance is down and marked unhealthy, not yet replaced: the fresh one is the designated
    // instance, and only the late member's possible return can hold the restore.
    const lateInstance = h.aws.instances.get(late.instanceId);
    if (lateInstance) lateInstance.healthStatus = "Unhealthy";

    const clock = new SkipClock();
    const fresh = h.make(103, { bootTimeoutSeconds: 15 }, clock);
    const attempt = await boot(fresh).catch((e: unknown) => e);

    expect(attempt).toBeInstanceOf(WaitingError);
    expect((attempt as WaitingError).hold.rule).toBe("former-member-present");
    expect((attempt as WaitingError).hold.detail).toContain(late.instanceId);
    expect(h.marker()).toMatchObject({ state: "active", token });
    expect(h.store.keys("events/")).toEqual([]);
    // What held it: the late member's registry entry, written before its MemberAdd.
    expect(h.store.keys(`members/${token}/`)).toEqual([
      `backups/etcd/members/${token}/${seed.instanceId}`,
      `backups/etcd/members/${token}/${late.instanceId}`,
    ]);
  }, 180_000);
});

// The restore tool's revision bump, asked of the tool (etcd 3.4's real etcdctl, and a stand-in
// for etcdutl 3.5.10+ that records its arguments), and the restore record that alarms.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { recordRestoreEvent, sha256 } from "../../../agent/backups/index.js";
import { restoreArgs, restoreSnapshot, toolBumpsRevision } from "../../../agent/backups/restore.js";
import { createLogger } from "../../../agent/log.js";
import { parseSnapshotKey, snapshotKey } from "../../../agent/planner/backup-plan.js";
import type { BackupStore } from "../../../agent/ports/backups.js";
import type { Ports } from "../../../agent/ports/index.js";
import { nodeConfig } from "../../support/etcd-node.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-restore-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class MapStore implements BackupStore {
  readonly objects = new Map<string, { body: Buffer; meta: Record<string, string> }>();
  async put(key: string, body: Buffer, meta: Record<string, string>) {
    this.objects.set(key, { body, meta });
  }
  async list(prefix: string) {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix));
  }
  async listStored(prefix: string) {
    return (await this.list(prefix)).map((key) => ({
      key,
      lastModified: parseSnapshotKey(key)?.takenAt ?? new Date(0).toISOString(),
      versions: 1,
    }));
  }
  async get(key: string) {
    const o = this.objects.get(key);
    if (!o) throw new Error(`no ${key}`);
    return o;
  }
  async head(key: string) {
    return (await this.get(key)).meta;
  }
  async delete(key: string) {
    this.objects.delete(key);
  }
}

/** A stand-in for etcdutl 3.5.10+: its help names both flags; a restore records its arguments. */
function fakeEtcdutl(dir: string): string {
  const path = join(dir, "etcdutl");
  writeFileSync(
    path,
    [
      "#!/bin/sh",
      'if [ "$3" = "--help" ]; then echo "  --bump-revision uint   How much to increase the latest revision after restore"; echo "  --mark-compacted   Mark the latest revision after restore as the point of scheduled compaction"; exit 0; fi',
      `echo "$@" > ${join(dir, "args")}`,
      'while [ $# -gt 0 ]; do if [ "$1" = "--data-dir" ]; then mkdir -p "$2/member"; fi; shift; done',
      "",
    ].join("\n"),
  );
  chmodSync(path, 0o755);
  return path;
}

function setup(name: string, over: Record<string, unknown> = {}) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const config = nodeConfig(dir, { backupBucket: "etcd-backups", ...over });
  const backups = new MapStore();
  const body = Buffer.from("an etcd snapshot");
  const key = snapshotKey("backups/etcd/", new Date("2026-11-22T12:00:00Z"), "42", "tok-1");
  backups.objects.set(key, { body, meta: { sha256: sha256(body) } });
  const ports = {
    backups,
    clock: { now: () => new Date("2026-11-22T12:30:00.000Z") },
  } as unknown as Ports;
  const lines: string[] = [];
  const log = createLogger(
    { write: (l: string) => lines.push(l) } as unknown as import("node:stream").Writable,
    {
      level: "debug",
    },
  );
  return { dir, config, ports, backups, log, lines, key };
}

/** restoreSnapshot of the setup's snapshot into <dir>/restored as member i-1, with `tool`. */
function restoreWith(s: ReturnType<typeof setup>, tool: string, clusterToken?: string) {
  return restoreSnapshot(s.ports, s.config, "etcd", s.log, {
    dataDir: join(s.dir, "restored"),
    name: "i-1",
    peerUrl: "http://127.0.0.1:2380",
    tool,
    ...(clusterToken ? { clusterToken } : {}),
  });
}

describe("restore: the revision bump", () => {
  it("etcd 3.4's etcdctl has no --bump-revision; a tool whose help names both flags has", () => {
    expect(toolBumpsRevision("etcdctl")).toBe(false);
    expect(toolBumpsRevision(fakeEtcdutl(mkdtempSync(join(root, "probe-"))))).toBe(true);
    expect(toolBumpsRevision(join(root, "no-such-tool"))).toBe(false);
  });

  it("passes --bump-revision N --mark-compacted to a tool that takes them", async () => {
    const s = setup("bump");
    const tool = fakeEtcdutl(s.dir);
    const result = await restoreWith(s, tool, "tok-2");
    expect(result).toMatchObject({ key: s.key, bumpRevision: 1_000_000_000, corrupt: [] });
    expect(readFileSync(join(s.dir, "args"), "utf8")).toMatch(
      /--initial-cluster-token tok-2 --bump-revision 1000000000 --mark-compacted\n$/,
    );
  });

  it("restores without the flags on etcd 3.4 and warns what that means for watchers", async () => {
    const s = setup("no-bump");
    // etcdctl 3.4 is real here; the snapshot is not, so only the refusal of the body matters:
    // the arguments were decided before, and the warning names the consequence.
    await expect(restoreWith(s, "etcdctl")).rejects.toThrow(/etcdctl snapshot restore of .* failed/);
    const warn = s.lines.map((l) => JSON.parse(l)).find((l) => l.level === "warn");
    expect(warn?.msg).toMatch(/cannot bump the revision .* restart the cluster's clients/);
  });

  it("--restore-bump-revision 0 turns it off, even where the tool could", async () => {
    const s = setup("off", { restoreBumpRevision: 0 });
    const tool = fakeEtcdutl(s.dir);
    const result = await restoreWith(s, tool);
    expect(result.bumpRevision).toBeNull();
    expect(readFileSync(join(s.dir, "args"), "utf8")).not.toContain("--bump-revision");
  });

  it("restoreArgs leaves the flags out without a bump", () => {
    const base = { file: "s.db", dataDir: "d", name: "n", peerUrl: "http://127.0.0.1:2380", token: "t" };
    expect(restoreArgs({ ...base, bumpRevision: null })).not.toContain("--mark-compacted");
    expect(restoreArgs({ ...base, bumpRevision: 5 }).slice(-3)).toEqual([
      "--bump-revision",
      "5",
      "--mark-compacted",
    ]);
  });

  it("refuses a bump that is not a whole number, naming the flag", () => {
    expect(() => setup("bad", { restoreBumpRevision: "lots" })).toThrow(
      /--restore-bump-revision.*whole number from 0 to 1000000000000, got "lots"/,
    );
  });
});

describe("restore record", () => {
  it("goes under events/ beside the snapshots, where the alarm rule looks, and is not taken for a snapshot", async () => {
    const s = setup("event");
    const key = await recordRestoreEvent(s.ports, s.config, "etcd", {
      instanceId: "i-0abc",
      key: s.key,
      revision: "42",
    });
    expect(key).toBe("backups/etcd/events/restore-2026-11-22T12-30-00-000Z-i-0abc.json");
    const body = JSON.parse(s.backups.objects.get(key)?.body.toString("utf8") ?? "{}");
    expect(body).toMatchObject({
      event: "restore",
      at: "2026-11-22T12:30:00.000Z",
      instanceId: "i-0abc",
      revision: "42",
    });
    const { listSnapshots } = await import("../../../agent/backups/index.js");
    expect((await listSnapshots(s.ports, s.config, "etcd")).map((r) => r.key)).toEqual([s.key]);
  });
});

// A snapshot upload survives a crash after every one of its steps (issue #13): the next run
// converges, a partial upload never counts as a snapshot, and no snapshot file is left on disk.
// And the snapshot is streamed (defect 12): the store gets a file, never the snapshot in memory.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SimulatedCrashError } from "../../../agent/apply/steps.js";
import { BACKUP_STEPS, type BackupState, backupIfDue, listSnapshots } from "../../../agent/backups/index.js";
import { parseConfig } from "../../../agent/config/config.js";
import { createLogger } from "../../../agent/log.js";
import type { SnapshotFile } from "../../../agent/ports/backups.js";
import { fakeLeader, SNAPSHOT_BODY } from "../../support/fake-node.js";

const work = mkdtempSync(join(tmpdir(), "etcd-agent-snapsteps-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const log = createLogger({ write: () => true } as never);

function setup(name: string) {
  const stateDir = join(work, name);
  const config = parseConfig({
    domain: "etcd.test",
    hostedZoneId: "ZTEST",
    plaintext: true,
    stateDir,
    backupBucket: "etcd-backups",
  });
  const f = fakeLeader({ leaving: false });
  f.gate.open();
  const fresh = (): BackupState => ({ lastTakenAt: undefined });
  const save = (state: BackupState, afterStep?: (step: string) => void) =>
    backupIfDue(f.ports, config, "etcd", "http://127.0.0.11:2379", "tok-1", state, log, ["i-1"], {
      afterStep,
    });
  const leftovers = () => {
    const dir = join(stateDir, "snapshots");
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  return { f, config, stateDir, fresh, save, leftovers };
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("a snapshot upload, crashed after each step", () => {
  it.each(
    BACKUP_STEPS.map((s) => [s]),
  )("after %s: the next run converges to one whole snapshot", async (step) => {
    const s = setup(step.replace(/\W/g, "-"));
    const crashed = await s
      .save(s.fresh(), (at) => {
        if (at === step) throw new SimulatedCrashError(at);
      })
      .catch((e: Error) => e);

    // A restarted agent: nothing carried over but the bucket and the disk.
    await s.save(s.fresh());
    const refs = await listSnapshots(s.f.ports, s.config, "etcd");

    expect(crashed).toBeInstanceOf(SimulatedCrashError);
    expect(refs).toHaveLength(1);
    for (const ref of refs) {
      const o = s.f.backups.objects.get(ref.key);
      expect(o?.body.equals(SNAPSHOT_BODY)).toBe(true);
      expect(o?.meta.sha256).toBe(sha(SNAPSHOT_BODY));
    }
    expect(s.leftovers()).toEqual([]);
  });

  it("a snapshot file left by a killed save is removed by the next one", async () => {
    const s = setup("killed");
    mkdirSync(join(s.stateDir, "snapshots"), { recursive: true });
    writeFileSync(join(s.stateDir, "snapshots", "snapshot-123-abcd.db.partial"), "half a snapshot");

    await s.save(s.fresh());

    expect(s.leftovers()).toEqual([]);
    expect(s.f.backups.objects.size).toBe(1);
  });
});

describe("the snapshot is streamed (defect 12)", () => {
  it("etcd's snapshot goes to a file and the store uploads from it: no snapshot buffer reaches the store", async () => {
    const s = setup("streamed");
    const bodies: Array<Buffer | SnapshotFile> = [];
    const put = s.f.backups.put.bind(s.f.backups);
    s.f.backups.put = async (key, body, meta) => {
      bodies.push(body);
      return put(key, body, meta);
    };

    await s.save(s.fresh());

    expect(bodies).toHaveLength(1);
    expect(Buffer.isBuffer(bodies[0])).toBe(false);
    expect((bodies[0] as SnapshotFile).bytes).toBe(SNAPSHOT_BODY.length);
  });
});

// Backups nobody can poison (issue #16): a snapshot key dated in the future, or overwritten after
// it was written, is refused, logged and alarmed (a record under events/ the bucket's rule sends to
// the alarm topic), never counted as the newest nor restored; a planted 2099 key cannot stop the
// schedule; objects in sub-folders are not snapshots.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type BackupState, backupIfDue, listSnapshots } from "../../../agent/backups/index.js";
import { parseConfig } from "../../../agent/config/config.js";
import { createLogger } from "../../../agent/log.js";
import { fakeLeader } from "../../support/fake-node.js";

const work = mkdtempSync(join(tmpdir(), "etcd-agent-poison-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function setup(name: string) {
  const config = parseConfig({
    domain: "etcd.test",
    hostedZoneId: "ZTEST",
    plaintext: true,
    stateDir: join(work, name),
    backupBucket: "etcd-backups",
  });
  const f = fakeLeader({ leaving: false });
  f.gate.open();
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ write: (s: string) => lines.push(JSON.parse(s)) } as never, { level: "debug" });
  const plant = (key: string, body = "planted") =>
    f.backups.put(`backups/etcd/${key}`, Buffer.from(body), { sha256: "0".repeat(64) });
  return { f, config, log, lines, plant };
}

const PLANTED_2099 = "2099-01-01T00-00-00-000Z_r999999_tok-1.db";

describe("a planted or overwritten snapshot (#16)", () => {
  it("a key dated 2099 does not stop the schedule: a snapshot is taken, the key refused, logged and alarmed", async () => {
    const s = setup("future");
    await s.plant(PLANTED_2099);
    const state: BackupState = { lastTakenAt: undefined };

    const took = await backupIfDue(
      s.f.ports,
      s.config,
      "etcd",
      "http://127.0.0.11:2379",
      "tok-1",
      state,
      s.log,
    );

    expect(took).toBe(true);
    expect(s.f.snapshots()).toBe(1);
    expect(
      [...s.f.backups.objects.keys()].filter((k) => k.startsWith("backups/etcd/events/refused-")),
    ).toEqual(["backups/etcd/events/refused-2099-01-01T00-00-00-000Z_r999999_tok-1.json"]);
    const refused = s.lines.filter(
      (l) =>
        l.msg ===
        "refused a snapshot: planted or overwritten; it is not restored and does not count as the newest",
    );
    expect(refused.map((l) => [l.level, l.key])).toContainEqual(["error", `backups/etcd/${PLANTED_2099}`]);
    expect(String(refused[0]?.reason)).toMatch(/in the future/);
  });

  it("a key written twice (overwritten after the fact) is not listed, so never restored", async () => {
    const s = setup("overwritten");
    const key = `${new Date(Date.now() - 60_000).toISOString().replace(/:/g, "-").replace(".", "-")}_r7_tok-1.db`;
    await s.plant(key, "honest");
    await s.plant(key, "poisoned");

    const listed = await listSnapshots(s.f.ports, s.config, "etcd", s.log);

    expect(listed.map((r) => r.key)).toEqual([]);
    expect([...s.f.backups.objects.keys()].some((k) => k.includes("events/refused-"))).toBe(true);
  });

  it("a snapshot named after the time S3 stored it is refused (a backdated store cannot pass as newer)", async () => {
    const s = setup("named-late");
    const key = "2026-01-01T12-00-00-000Z_r7_tok-1.db";
    await s.plant(key);
    s.f.backups.storedAt.set(`backups/etcd/${key}`, "2026-01-01T11:00:00.000Z");

    expect((await listSnapshots(s.f.ports, s.config, "etcd", s.log)).map((r) => r.key)).toEqual([]);
  });

  it("the newest is the one S3 stored last, whatever the names say", async () => {
    const s = setup("stored-order");
    await s.plant("2026-01-01T09-00-00-000Z_r7_tok-1.db");
    s.f.backups.storedAt.set("backups/etcd/2026-01-01T09-00-00-000Z_r7_tok-1.db", "2026-01-01T11:00:00.000Z");
    await s.plant("2026-01-01T10-00-00-000Z_r8_tok-1.db");

    const listed = await listSnapshots(s.f.ports, s.config, "etcd", s.log);

    expect(listed.map((r) => r.revision)).toEqual(["7", "8"]);
  });

  it("an object in a sub-folder of the prefix is not a snapshot", async () => {
    const s = setup("sub-folder");
    await s.plant("x/2026-01-01T09-00-00-000Z_r7_tok-1.db");
    await s.plant("events/2026-01-01T09-00-00-000Z_r7_tok-1.db");

    expect(await listSnapshots(s.f.ports, s.config, "etcd", s.log)).toEqual([]);
  });

  it("another cluster's newer snapshot does not make this cluster's backup less due", async () => {
    const s = setup("other-token");
    await s.plant(
      `${new Date(Date.now() - 60_000).toISOString().replace(/:/g, "-").replace(".", "-")}_r7_tok-old.db`,
    );
    const state: BackupState = { lastTakenAt: undefined };

    expect(
      await backupIfDue(s.f.ports, s.config, "etcd", "http://127.0.0.11:2379", "tok-1", state, s.log),
    ).toBe(true);
  });
});

// Snapshots run beside the run loop (issue #13, defect 11): a slow snapshot never holds a cycle, a
// leaving leader heartbeats its terminate hook while its one last-word snapshot runs, and a
// snapshot that outlives its deadline is abandoned and logged.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startBeside } from "../../../agent/backups/index.js";
import { initialLoopState, reconcileOnce } from "../../../agent/commands/run.js";
import { parseConfig } from "../../../agent/config/config.js";
import { createLogger } from "../../../agent/log.js";
import { fakeLeader } from "../../support/fake-node.js";

const work = mkdtempSync(join(tmpdir(), "etcd-agent-bg-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const config = parseConfig({
  domain: "etcd.test",
  hostedZoneId: "ZTEST",
  plaintext: true,
  stateDir: work,
  backupBucket: "etcd-backups",
});

function logged() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ write: (s: string) => lines.push(JSON.parse(s)) } as never, { level: "debug" });
  return { log, lines };
}

/** The cycle, or "still running" if it has not returned within a second of real time. */
async function cycleWithin(p: Promise<unknown>): Promise<"returned" | "still running"> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"still running">((r) => {
    timer = setTimeout(() => r("still running"), 1000);
  });
  const out = await Promise.race([p.then(() => "returned" as const), late]);
  clearTimeout(timer);
  return out;
}

/** Polls `done` every 10 ms for at most 2 s (the background task's file steps take real time). */
async function until(done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  return done();
}

const heartbeats = (calls: string[]) =>
  calls.filter((c) => c === "AutoScaling.RecordLifecycleActionHeartbeat");

describe("a leaving leader's last-word snapshot (defect 11)", () => {
  it("heartbeats the terminate hook in the same cycle while a slow snapshot runs, and hands over once it is saved", async () => {
    const f = fakeLeader({ leaving: true });
    const { log } = logged();
    const state = initialLoopState();

    const first = reconcileOnce(f.ports, config, f.ctx as never, state, log);
    const outcome = await cycleWithin(first);
    const heartbeatsDuringSnapshot = heartbeats(f.aws.calls).length;
    f.gate.open();
    await first;

    expect(outcome).toBe("returned");
    expect(heartbeatsDuringSnapshot).toBe(1);
    expect(f.moves).toEqual([]);

    await state.backup.current?.done;
    await reconcileOnce(f.ports, config, f.ctx as never, state, log);
    expect(f.moves).toEqual(["2"]);
    // One last-word snapshot for the leave, however many hand-over attempts.
    await reconcileOnce(f.ports, config, f.ctx as never, state, log);
    expect(f.snapshots()).toBe(1);
    expect(f.backups.objects.size).toBe(1);
  });
});

describe("the scheduled snapshot (defect 11)", () => {
  it("runs beside the loop: a cycle returns while it is still streaming, and the next cycle starts no second one", async () => {
    const f = fakeLeader({ leaving: false });
    const { log } = logged();
    const state = initialLoopState();

    const outcome = await cycleWithin(reconcileOnce(f.ports, config, f.ctx as never, state, log));
    const streaming = await until(() => f.snapshots() === 1);
    const second = await cycleWithin(reconcileOnce(f.ports, config, f.ctx as never, state, log));
    const snapshotsWhileRunning = f.snapshots();
    f.gate.open();
    await state.backup.current?.done;

    expect(outcome).toBe("returned");
    expect(streaming).toBe(true);
    expect(second).toBe("returned");
    expect(snapshotsWhileRunning).toBe(1);
    expect(f.backups.objects.size).toBe(1);
  });

  it("is abandoned and logged when it outlives its deadline, and its work is told to stop", async () => {
    const { log, lines } = logged();
    const state = initialLoopState();
    let aborted = false;
    const bg = startBeside(
      state.backup,
      "scheduled",
      log,
      0,
      (signal) =>
        new Promise<never>(() => {
          signal.addEventListener("abort", () => {
            aborted = true;
          });
        }),
      20,
    );
    await bg?.done;

    expect(bg?.outcome).toBe("abandoned");
    expect(aborted).toBe(true);
    expect(lines.map((l) => l.msg)).toContain(
      "snapshot abandoned: it outlived its deadline; the next one starts when due",
    );
  });
});

// The watchdog kept alive while a bounded operation (a snapshot and its upload) runs, and only
// until its bound: past it a hang is still caught.
import { afterEach, describe, expect, it, vi } from "vitest";
import { KEEP_ALIVE_EVERY_MS, whileBounded } from "../../../agent/commands/keep-alive.js";
import type { ServiceManager } from "../../../agent/ports/service-manager.js";

function counting(): ServiceManager & { pings: number } {
  const sm = {
    pings: 0,
    ready: async () => {},
    status: async () => {},
    stopping: async () => {},
    watchdog: async () => {
      sm.pings++;
    },
  };
  return sm;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("whileBounded", () => {
  it("pings every 30 s while the operation runs, and stops when it ends", async () => {
    vi.useFakeTimers();
    const sm = counting();
    let finish: (v: string) => void = () => {};
    const done = whileBounded(
      sm,
      600_000,
      () =>
        new Promise<string>((r) => {
          finish = r;
        }),
    );
    await vi.advanceTimersByTimeAsync(KEEP_ALIVE_EVERY_MS * 4 + 1);
    expect(sm.pings).toBe(4);
    finish("saved");
    await expect(done).resolves.toBe("saved");
    await vi.advanceTimersByTimeAsync(KEEP_ALIVE_EVERY_MS * 4);
    expect(sm.pings).toBe(4);
  });

  it("stops pinging past the bound even if the operation hangs, so systemd's watchdog still fires", async () => {
    vi.useFakeTimers();
    const sm = counting();
    void whileBounded(sm, 100_000, () => new Promise<never>(() => {}));
    await vi.advanceTimersByTimeAsync(600_000);
    expect(sm.pings).toBe(3);
  });

  it("stops on a failure and passes it on", async () => {
    vi.useFakeTimers();
    const sm = counting();
    await expect(
      whileBounded(sm, 600_000, async () => Promise.reject(new Error("S3 said no"))),
    ).rejects.toThrow("S3 said no");
    await vi.advanceTimersByTimeAsync(KEEP_ALIVE_EVERY_MS * 3);
    expect(sm.pings).toBe(0);
  });
});

// The run loop's timing guarantees (issue #13, defects 10 and 11): systemd's watchdog is pinged
// while the loop waits between cycles, however long the interval, and a slow snapshot runs beside
// the loop so a leaving leader's lifecycle heartbeat is never held behind it.
import { describe, expect, it } from "vitest";
import { runLoop } from "../../../agent/commands/run.js";
import { parseConfig } from "../../../agent/config/config.js";
import { createLogger } from "../../../agent/log.js";
import type { Ports } from "../../../agent/ports/index.js";

const log = createLogger({ write: () => true } as never);
const ctx = { identity: { instanceId: "i-0self", privateIp: "127.0.0.9" }, asgName: "etcd" } as never;

/** A clock that moves only when slept on; the service manager records when each ping came. */
function loopFakes() {
  let now = 0;
  const pings: number[] = [];
  const ports = {
    clock: {
      now: () => new Date(now),
      sleep: async (ms: number, signal?: AbortSignal) => {
        if (!signal?.aborted) now += ms;
      },
    },
    serviceManager: {
      ready: async () => {},
      status: async () => {},
      stopping: async () => {},
      watchdog: async () => {
        pings.push(now);
      },
    },
    etcd: {
      memberList: async () => ({ clusterId: "1", memberId: "1", members: [] }),
      status: async () => ({ leaderId: "1" }),
      close: async () => {},
    },
    // Every other port is missing: the cycle fails at once, as a cycle may; the loop goes on.
  } as unknown as Ports;
  return { ports, pings, now: () => now };
}

/** The longest stretch without a watchdog ping, counting from the start and up to the end. */
function longestGap(pings: number[], end: number): number {
  let last = 0;
  let gap = 0;
  for (const p of [...pings, end]) {
    gap = Math.max(gap, p - last);
    last = p;
  }
  return gap;
}

describe("the watchdog during the wait between cycles (defect 10)", () => {
  it("is pinged at least every 40 s during a 300 s interval, so WatchdogSec=120s never fires", async () => {
    const f = loopFakes();
    const config = parseConfig({
      domain: "etcd.test",
      hostedZoneId: "ZTEST",
      plaintext: true,
      intervalSeconds: 300,
    });
    await runLoop(f.ports, config, ctx, log, { maxCycles: 2 });
    expect(f.now()).toBeGreaterThanOrEqual(600_000);
    expect(longestGap(f.pings, f.now())).toBeLessThanOrEqual(40_000);
  });

  it("with a shorter watchdog from systemd (60 s), is pinged at least every third of it", async () => {
    const f = loopFakes();
    const config = parseConfig({
      domain: "etcd.test",
      hostedZoneId: "ZTEST",
      plaintext: true,
      intervalSeconds: 30,
    });
    await runLoop(f.ports, config, ctx, log, { maxCycles: 4, watchdogMs: 60_000 });
    expect(f.now()).toBeGreaterThanOrEqual(120_000);
    expect(longestGap(f.pings, f.now())).toBeLessThanOrEqual(21_000);
  });
});

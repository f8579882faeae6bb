// How often the run loop pings systemd's watchdog while it waits: a third of WatchdogSec, at most
// every 30 s, never more than once a second.
import { describe, expect, it } from "vitest";
import { KEEP_ALIVE_EVERY_MS, pingEveryMs } from "../../../agent/planner/keep-alive.js";

describe("pingEveryMs", () => {
  it.each([
    [null, KEEP_ALIVE_EVERY_MS],
    [120_000, 30_000],
    [60_000, 20_000],
    [1_500, 1000],
  ])("with a watchdog of %s ms pings every %s ms", (watchdog, every) => {
    expect(pingEveryMs(watchdog)).toBe(every);
  });
});

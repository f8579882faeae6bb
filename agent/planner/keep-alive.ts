// systemd's watchdog (WatchdogSec=120s) must hear from the run loop, and only from it: the loop
// pings once a cycle and while it waits between cycles. Long work (a snapshot and its upload)
// runs beside the loop and never pings, so a stuck loop is still caught whatever runs beside it.

/** The longest the loop goes between pings when no watchdog is known. */
export const KEEP_ALIVE_EVERY_MS = 30_000;

/** How often the loop pings while it waits: a third of WatchdogSec, at most every 30 s. */
export function pingEveryMs(watchdogMs: number | null | undefined): number {
  return watchdogMs
    ? Math.min(KEEP_ALIVE_EVERY_MS, Math.max(1000, Math.floor(watchdogMs / 3)))
    : KEEP_ALIVE_EVERY_MS;
}

// systemd's watchdog (WatchdogSec=120s) is pinged once a cycle; a snapshot of a large database and
// its upload can outlast that. While such a bounded operation runs, the watchdog is pinged every
// 30 s, but only until the operation's own bound: past it, pings stop and a hang is still caught.
import type { ServiceManager } from "../ports/service-manager.js";

export const KEEP_ALIVE_EVERY_MS = 30_000;

export async function whileBounded<T>(sm: ServiceManager, boundMs: number, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - started > boundMs) clearInterval(timer);
    else void sm.watchdog();
  }, KEEP_ALIVE_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

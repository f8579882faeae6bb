// SIGTERM and SIGINT, for both entry points (main.ts, sea-main.ts): the first aborts the command's
// signal (it stops at its next step and returns its exit code); a second exits at once.
import { EXIT } from "./exit-codes.js";

/** The part of `process` the handler uses; tests pass a fake. */
export interface SignalTarget {
  on(signal: "SIGTERM" | "SIGINT", listener: () => void): unknown;
  exit(code: number): never | undefined;
}

/** Installs the handler on `target`; returns the signal the command is given. */
export function onInterrupt(target: SignalTarget = process): AbortSignal {
  const controller = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    target.on(sig, () => {
      if (controller.signal.aborted) target.exit(EXIT.INTERRUPTED);
      controller.abort();
    });
  }
  return controller.signal;
}

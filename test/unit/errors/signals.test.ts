import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { EXIT } from "../../../agent/exit-codes.js";
import { onInterrupt } from "../../../agent/signals.js";

describe("the entry points' signal handler", () => {
  it("aborts on the first SIGTERM or SIGINT and exits with EXIT.INTERRUPTED on the second", () => {
    for (const first of ["SIGTERM", "SIGINT"] as const) {
      const proc = new EventEmitter();
      const exits: number[] = [];
      const signal = onInterrupt({
        on: (sig, listener) => proc.on(sig, listener),
        exit: (code: number) => {
          exits.push(code);
          return undefined;
        },
      });
      expect(signal.aborted).toBe(false);
      proc.emit(first);
      expect(signal.aborted).toBe(true);
      expect(exits).toEqual([]);
      proc.emit(first === "SIGTERM" ? "SIGINT" : "SIGTERM");
      expect(exits).toEqual([EXIT.INTERRUPTED]);
    }
  });
});

// A failure that repeats every cycle (CloudWatch unreachable, the metrics port taken) is logged
// once per window, with how many were not logged since: the log stays readable and cheap.
import type { Logger } from "../log.js";

export class RateLimitedLog {
  private lastAt: number | null = null;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  warn(msg: string, fields: Record<string, unknown>): void {
    const now = this.now();
    if (this.lastAt !== null && now - this.lastAt < this.windowMs) {
      this.suppressed++;
      return;
    }
    this.log.warn(msg, { ...fields, ...(this.suppressed > 0 ? { suppressed: this.suppressed } : {}) });
    this.lastAt = now;
    this.suppressed = 0;
  }
}

// The named steps of a multi-step action (bootstrap, join, restore, leave, certificate issuance,
// snapshot upload). Each step is logged as it completes, and a test can stop the action right after
// any of them (`afterStep`), as a crash or power loss would: the crash-after-every-step tests
// enumerate the step lists exported beside each action and hook in here.

import type { Logger } from "../log.js";

/** Called after a step completed; a test throws from it to crash the action at that point. */
export type AfterStep = (step: string) => void | Promise<void>;

export class Steps {
  constructor(
    private readonly log: Logger,
    private readonly afterStep: AfterStep | undefined = undefined,
  ) {}

  /** Runs one named step, logs it as done, then gives a test its chance to crash here. */
  async run<T>(step: string, fn: () => Promise<T>, fields: Record<string, unknown> = {}): Promise<T> {
    const result = await fn();
    this.log.debug("step done", { step, ...fields });
    if (this.afterStep) await this.afterStep(step);
    return result;
  }
}

/** What a test throws from `afterStep`: the process "died" here. */
export class SimulatedCrashError extends Error {
  override name = "SimulatedCrashError";
  constructor(readonly step: string) {
    super(`simulated crash after step ${step}`);
  }
}

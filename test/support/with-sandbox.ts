// The frame of a failure-suite scenario: a healthy sandbox, the continuous writer running through
// the scenario, and afterwards every acknowledged write read back from the cluster.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { HookConfig, ReplacementOrder } from "../sandbox/aws-gaps.js";
import { Sandbox } from "../sandbox/sandbox.js";
import { worldInstances } from "../sandbox/world.js";
import { ContinuousWriter, type WriterReport } from "../sandbox/writer.js";

/** A writer that follows the sandbox's running instances. */
export function startWriter(sandbox: Sandbox): ContinuousWriter {
  const writer = new ContinuousWriter(
    async () => (await worldInstances(sandbox.world)).map((i) => sandbox.clientUrl(i.ip)),
    { clientOptions: () => sandbox.etcd3Options() },
  );
  writer.start();
  return writer;
}

/** Stops the writer and fails the test unless every acknowledged write is there, unchanged. */
export async function expectEveryWriteReadable(writer: ContinuousWriter): Promise<WriterReport> {
  const report = await writer.stopAndVerify();
  expect(report.acknowledged, "the writer got no write acknowledged at all").toBeGreaterThan(0);
  expect(report.missing, "acknowledged writes missing after the scenario").toEqual([]);
  expect(report.wrong, "acknowledged writes with another value after the scenario").toEqual([]);
  return report;
}

export interface ScenarioOptions {
  subnet: string;
  nodes?: number;
  /** Default production's hooks; null: none (a scenario about their absence). */
  hooks?: { launch: HookConfig; terminate: HookConfig } | null;
  /** Default production's grace period (300 s). */
  healthCheckGracePeriodSeconds?: number;
  replacementOrder?: ReplacementOrder;
  timeScale?: number;
  /** A replacement may get the dead node's address. */
  reuseAddresses?: boolean;
  /** Lifetime of the certificates the agents issue (default 90 days). */
  certLifetimeSeconds?: number;
  /** Run the continuous writer through the scenario (default true). */
  writer?: boolean;
}

/** A healthy sandbox with the writer running (unless told not to); close() stops and removes it all. */
export interface Scenario {
  sandbox: Sandbox;
  root: string;
  writer: ContinuousWriter | null;
  close(): Promise<void>;
}

export async function openScenario(options: ScenarioOptions): Promise<Scenario> {
  const root = mkdtempSync(join(tmpdir(), "etcd-agent-sandbox-"));
  const sandbox = await Sandbox.create({
    nodes: options.nodes ?? 3,
    stateDir: root,
    subnetCidr: options.subnet,
    ...(options.hooks !== undefined ? { hooks: options.hooks } : {}),
    ...(options.healthCheckGracePeriodSeconds !== undefined
      ? { healthCheckGracePeriodSeconds: options.healthCheckGracePeriodSeconds }
      : {}),
    ...(options.replacementOrder ? { replacementOrder: options.replacementOrder } : {}),
    ...(options.timeScale ? { timeScale: options.timeScale } : {}),
    ...(options.reuseAddresses ? { reuseAddresses: true } : {}),
    ...(options.certLifetimeSeconds ? { certLifetimeSeconds: options.certLifetimeSeconds } : {}),
  });
  const scenario: Scenario = {
    sandbox,
    root,
    writer: null,
    async close() {
      await scenario.writer?.close();
      await sandbox.stop();
      if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    sandbox.startHypervisor();
    await sandbox.waitHealthy(150_000);
    // With a launch hook, healthy means every instance is also InService: an instance still in
    // Pending:Wait is not reported unhealthy by the agents (its hook's timeout decides), so a
    // scenario that breaks a member must start after every agent has completed its launch hook.
    const deadline = Date.now() + 60_000;
    while (Object.keys(sandbox.gaps.waits()).length > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    if (options.writer !== false) scenario.writer = startWriter(sandbox);
    return scenario;
  } catch (error) {
    await scenario.close();
    throw error;
  }
}

export async function withSandbox(
  options: ScenarioOptions,
  body: (sandbox: Sandbox) => Promise<void>,
): Promise<WriterReport | null> {
  const scenario = await openScenario(options);
  try {
    await body(scenario.sandbox);
    return scenario.writer ? await expectEveryWriteReadable(scenario.writer) : null;
  } finally {
    await scenario.close();
  }
}

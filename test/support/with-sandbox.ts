// The frame of a failure-suite scenario: a healthy sandbox, the continuous writer running through
// the scenario, and at its end the invariants every scenario must leave true (checked here, in the
// frame, so no scenario can leave them out):
// - every acknowledged write reads back unchanged (outside a scenario that declares a restore);
// - every answering member reports one and the same cluster ID, the marker is active and names
//   that cluster (when it carries its ID), and every answering node's state names the marker's token;
// - no member is left added but never started, and no learner is left unpromoted.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import { expect } from "vitest";
import { markerName, normalizeName } from "../../agent/planner/dns-plan.js";
import { decodeMarker } from "../../agent/planner/marker.js";
import type { ClusterMarker } from "../../agent/planner/observation.js";
import type { HookConfig, ReplacementOrder } from "../sandbox/aws-gaps.js";
import { Sandbox } from "../sandbox/sandbox.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { ContinuousWriter, type WriterReport } from "../sandbox/writer.js";
import { eventually } from "./etcd-node.js";
import { type ClusterPicture, clusterViolations, settled } from "./scenario-invariants.js";

/** A writer that follows the sandbox's running instances. */
export function startWriter(sandbox: Sandbox): ContinuousWriter {
  const writer = new ContinuousWriter(
    async () => (await worldInstances(sandbox.world)).map((i) => sandbox.clientUrl(i.ip)),
    { clientOptions: () => sandbox.etcd3Options() },
  );
  writer.start();
  return writer;
}

/**
 * Stops the writer and fails the test unless every acknowledged write is there, unchanged. The
 * read-back happens once: a second call (the frame's, after a scenario's own) asserts the same report.
 */
export async function expectEveryWriteReadable(writer: ContinuousWriter): Promise<WriterReport> {
  const report = writer.report ?? (await writer.stopAndVerify());
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
  /** Test-only: the lifecycle waits' global timeout, in sandbox seconds (AWS's: 48 h or 100 x the heartbeat timeout). */
  globalTimeoutSeconds?: number;
  /** A replacement may get the dead node's address. */
  reuseAddresses?: boolean;
  /** Lifetime of the certificates the agents issue (default 90 days). */
  certLifetimeSeconds?: number;
  /**
   * The scenario restores the cluster from a snapshot: writes acknowledged after the snapshot are
   * lost by definition, so the writer does not run (it is the only way to run without it).
   */
  declaresRestore?: boolean;
  /** Machine mode: each instance a container under systemd, from its Ignition config (docs/node.md). */
  machines?: boolean;
  /** Test-only: more environment for every agent (process mode), e.g. a small etcd quota. */
  agentEnvironment?: Record<string, string>;
}

/**
 * A healthy sandbox with the writer running (unless the scenario declares a restore). close()
 * checks the end-of-scenario invariants (unless a scenario already did, by verify()), then stops
 * and removes it all; a failed invariant fails close(), so an afterAll that closes fails the file.
 */
export interface Scenario {
  sandbox: Sandbox;
  root: string;
  writer: ContinuousWriter | null;
  /** The end-of-scenario invariants, once: the writer's read-back (unless done) and the cluster's. */
  verify(): Promise<ScenarioReport>;
  close(): Promise<void>;
}

export interface ScenarioReport {
  writer: WriterReport | null;
  cluster: ClusterInvariants;
}

/** How long the end of a scenario may take to settle a join or promotion under way. */
const SETTLE_MS = 90_000;

export interface ClusterInvariants {
  clusterId: string;
  marker: ClusterMarker;
  /** The running instances whose etcd answered. */
  answering: string[];
}

async function readMarker(sandbox: Sandbox): Promise<ClusterMarker[]> {
  const { r53 } = clients(sandbox.world.endpoint);
  const out = await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: sandbox.world.hostedZoneId }));
  const name = markerName(sandbox.world.domain);
  return (out.ResourceRecordSets ?? [])
    .filter((r) => r.Type === "TXT" && normalizeName(r.Name ?? "") === name)
    .flatMap((r) => (r.ResourceRecords ?? []).map((v) => decodeMarker(v.Value ?? "")))
    .filter((m): m is ClusterMarker => m !== null);
}

function stateToken(sandbox: Sandbox, instanceId: string): string | null {
  try {
    const state = JSON.parse(readFileSync(join(sandbox.stateDir, instanceId, "state", "state.json"), "utf8"));
    return typeof state.clusterToken === "string" ? state.clusterToken : null;
  } catch {
    return null;
  }
}

async function clusterPicture(sandbox: Sandbox): Promise<ClusterPicture> {
  const instances = await worldInstances(sandbox.world);
  const answering: ClusterPicture["answering"] = [];
  if (await sandbox.harnessReady()) {
    for (const i of instances) {
      const list = await sandbox.probe.memberList([sandbox.clientUrl(i.ip)]).catch(() => null);
      if (list === null) continue;
      answering.push({
        instanceId: i.instanceId,
        clusterId: list.clusterId,
        unstarted: list.members.filter((m) => m.name === "").map((m) => m.id),
        learners: list.members.filter((m) => m.isLearner).map((m) => m.name || m.id),
      });
    }
  }
  const tokens = Object.fromEntries(answering.map((a) => [a.instanceId, stateToken(sandbox, a.instanceId)]));
  return { answering, markers: await readMarker(sandbox), tokens };
}

/**
 * Waits (bounded) for anything under way to settle, then asserts: one cluster ID among every
 * answering member, equal to the marker's cluster (when the marker names one); the marker active
 * and its token the one every answering node holds; no member added but never started; no learner.
 */
export async function expectClusterInvariants(sandbox: Sandbox): Promise<ClusterInvariants> {
  let last: ClusterPicture = { answering: [], markers: [], tokens: {} };
  await eventually("the cluster to settle at the end of the scenario", SETTLE_MS, async () => {
    last = await clusterPicture(sandbox);
    return last.answering.length > 0 && settled(last) ? true : undefined;
  }).catch(() => undefined);
  const p = last;
  expect(clusterViolations(p), `at the end of the scenario: ${JSON.stringify(p)}`).toEqual([]);
  const ids = [...new Set(p.answering.map((a) => a.clusterId))];
  const marker = p.markers[0] as ClusterMarker;
  return { clusterId: ids[0] as string, marker, answering: p.answering.map((a) => a.instanceId) };
}

export async function openScenario(options: ScenarioOptions): Promise<Scenario> {
  return (await open(options)).scenario;
}

/** The scenario, and a stop that skips the invariants (for a scenario whose body already failed). */
async function open(options: ScenarioOptions): Promise<{ scenario: Scenario; stop(): Promise<void> }> {
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
    ...(options.globalTimeoutSeconds !== undefined
      ? { globalTimeoutSeconds: options.globalTimeoutSeconds }
      : {}),
    ...(options.reuseAddresses ? { reuseAddresses: true } : {}),
    ...(options.certLifetimeSeconds ? { certLifetimeSeconds: options.certLifetimeSeconds } : {}),
    ...(options.machines ? { machines: true } : {}),
    ...(options.agentEnvironment ? { agentEnvironment: options.agentEnvironment } : {}),
  });
  let verified: Promise<ScenarioReport> | null = null;
  const stop = async () => {
    await scenario.writer?.close();
    await sandbox.stop();
    if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
  };
  const scenario: Scenario = {
    sandbox,
    root,
    writer: null,
    verify() {
      verified ??= (async () => {
        const writer = scenario.writer;
        const writerReport = writer ? await expectEveryWriteReadable(writer) : null;
        return { writer: writerReport, cluster: await expectClusterInvariants(sandbox) };
      })();
      return verified;
    },
    async close() {
      try {
        await scenario.verify();
      } finally {
        await stop();
      }
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
    if (!options.declaresRestore) scenario.writer = startWriter(sandbox);
    return { scenario, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function withSandbox(
  options: ScenarioOptions,
  body: (sandbox: Sandbox) => Promise<void>,
): Promise<ScenarioReport> {
  const { scenario, stop } = await open(options);
  try {
    await body(scenario.sandbox);
  } catch (error) {
    // The scenario's own failure is the one to read; the invariants would only add noise.
    await stop();
    throw error;
  }
  await scenario.close();
  return scenario.verify();
}

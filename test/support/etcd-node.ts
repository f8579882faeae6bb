// A node of a test cluster: the agent's boot and run loop in this process, and a real etcd
// process started from the environment file boot wrote, in the order systemd runs them.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { LocalDisk } from "../../agent/adapters/local-disk.js";
import { SystemClock } from "../../agent/adapters/system-clock.js";
import { noServiceManager } from "../../agent/adapters/systemd-notify.js";
import type { AfterStep } from "../../agent/apply/steps.js";
import { type BootResult, runBoot } from "../../agent/commands/boot.js";
import { runLoop } from "../../agent/commands/run.js";
import { type AgentConfig, parseConfig } from "../../agent/config/config.js";
import { createLogger, type Logger } from "../../agent/log.js";
import { parseEnvFile } from "../../agent/planner/etcd-env.js";
import type { Ports } from "../../agent/ports/index.js";
import { renderUnits } from "../../ignition/render.js";
import type { FakeAws } from "../fakes/fake-aws.js";

export const ETCD_BIN = process.env.ETCD_BIN ?? "etcd";

export interface TestNode {
  n: number;
  instanceId: string;
  ip: string;
  dir: string;
  config: AgentConfig;
  ports: Ports;
  log: Logger;
  etcd: ChildProcess | null;
  loop: { controller: AbortController; done: Promise<number> } | null;
}

export function nodeConfig(dir: string, over: Record<string, unknown> = {}): AgentConfig {
  return parseConfig({
    domain: "etcd.test",
    hostedZoneId: "ZTEST",
    asgName: "etcd",
    dataDir: join(dir, "data"),
    stateDir: join(dir, "state"),
    envFile: join(dir, "etcd.env"),
    intervalSeconds: 1,
    startupGraceSeconds: 30,
    unhealthyDeadlineSeconds: 30,
    bootTimeoutSeconds: 60,
    // The integration suite is about membership with AWS faked in process; TLS is the sandbox's.
    plaintext: true,
    ...over,
  });
}

export function makeNode(
  aws: FakeAws,
  root: string,
  n: number,
  ip: string,
  over: { config?: Record<string, unknown>; ports?: (p: Ports) => Ports } = {},
): TestNode {
  const inst = aws.instances.get(`i-${n.toString(16).padStart(8, "0")}`) ?? aws.launch(n, ip);
  const dir = join(root, `node-${n}`);
  mkdirSync(dir, { recursive: true });
  const config = nodeConfig(dir, over.config);
  const clock = new SystemClock();
  const base: Ports = {
    clock,
    metadata: aws.metadata(inst.instanceId),
    autoscaling: aws.autoscaling(),
    ec2: aws.ec2(),
    dns: aws.dns(),
    etcd: new Etcd3Cluster({ callTimeoutMs: 2000 }),
    local: new LocalDisk({
      dataDir: config.dataDir,
      stateDir: config.stateDir,
      envFile: config.envFile,
      clock,
    }),
    serviceManager: noServiceManager,
  };
  const logStream = createWriteStream(join(dir, "agent.log"), { flags: "a" });
  return {
    n,
    instanceId: inst.instanceId,
    ip: inst.ip,
    dir,
    config,
    ports: over.ports ? over.ports(base) : base,
    log: createLogger(logStream, { level: "debug", base: { instance_id: inst.instanceId } }),
    etcd: null,
    loop: null,
  };
}

export async function boot(
  node: TestNode,
  mode: "boot" | "join" = "boot",
  afterStep?: AfterStep,
): Promise<BootResult> {
  return runBoot(
    node.ports,
    node.config,
    { identity: await node.ports.metadata.identity(), asgName: "etcd" },
    node.log,
    { mode, ...(afterStep ? { afterStep } : {}) },
  );
}

/**
 * Whether the etcd unit runs `etcd-agent boot` before every start of etcd (ExecStartPre), read
 * from the units Ignition ships for both OSes: the tests start etcd the way those units do.
 */
export function etcdUnitRunsBoot(): boolean {
  const texts = (["flatcar", "fcos"] as const).map((os) => {
    const unit = renderUnits(os).find((u) => u.name === "etcd-member.service");
    return [unit?.contents ?? "", ...(unit?.dropins ?? []).map((d) => d.contents)].join("\n");
  });
  return texts.every((t) => /^ExecStartPre=.*etcd-agent boot/m.test(t));
}

/**
 * etcd as its unit runs it: ExecStartPre (when the units have it), then etcd, restarted when it
 * exits as Restart=on-failure does, at most `starts` times. Running: etcd was still up `settleMs`
 * after its last start.
 */
export async function runEtcdUnit(
  node: TestNode,
  options: { starts?: number; settleMs?: number } = {},
): Promise<{ running: boolean; starts: number; preFailures: string[] }> {
  const starts = options.starts ?? 5;
  const settleMs = options.settleMs ?? 6000;
  const runsBoot = etcdUnitRunsBoot();
  const preFailures: string[] = [];
  for (let start = 1; start <= starts; start++) {
    if (runsBoot) {
      try {
        await boot(node);
      } catch (error) {
        preFailures.push((error as Error).message);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
    }
    await startEtcd(node);
    const child = node.etcd;
    const exited = await new Promise<boolean>((resolve) => {
      if (!child) return resolve(true);
      const timer = setTimeout(() => resolve(false), settleMs);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!exited) return { running: true, starts: start, preFailures };
    node.etcd = null;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return { running: false, starts, preFailures };
}

/** Starts etcd with exactly the environment boot wrote, as the systemd unit would. */
export async function startEtcd(node: TestNode): Promise<void> {
  const env = parseEnvFile(await readFile(node.config.envFile, "utf8"));
  const out = createWriteStream(join(node.dir, "etcd.log"), { flags: "a" });
  const child = spawn(ETCD_BIN, [], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env, ETCD_LOGGER: "zap" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  node.etcd = child;
}

export async function killEtcd(node: TestNode, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  const child = node.etcd;
  node.etcd = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

export function startLoop(node: TestNode): void {
  const controller = new AbortController();
  const done = runLoop(
    node.ports,
    node.config,
    {
      identity: {
        instanceId: node.instanceId,
        privateIp: node.ip,
        region: "eu-west-1",
        availabilityZone: "a",
      },
      asgName: "etcd",
    },
    node.log,
    { signal: controller.signal, maxCycles: 600 },
  );
  node.loop = { controller, done };
}

export async function stopLoop(node: TestNode): Promise<void> {
  if (!node.loop) return;
  node.loop.controller.abort();
  await node.loop.done;
  node.loop = null;
}

/** Boot, start etcd, start the run loop: a node's systemd units in order. */
export async function bringUp(node: TestNode): Promise<BootResult> {
  const result = await boot(node);
  await startEtcd(node);
  startLoop(node);
  return result;
}

export async function stopNode(node: TestNode, crash = false): Promise<void> {
  await stopLoop(node);
  await killEtcd(node, crash ? "SIGKILL" : "SIGTERM");
}

export async function shutdown(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => stopNode(n, true)));
  await Promise.all(nodes.map((n) => n.ports.etcd.close()));
}

/** Polls until `check` returns a value that is not undefined, or fails after `ms`. */
export async function eventually<T>(
  what: string,
  ms: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (let i = 0; i < 10_000; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`,
  );
}

// A node as its systemd units run it, with real processes: an IMDSv2 endpoint of its own, then
// `etcd-agent boot` (retried while it exits non-zero, as Restart=on-failure does), then etcd's unit:
// `etcd-agent boot` again (its ExecStartPre) and etcd from the environment file boot wrote,
// restarted when it exits (Restart=on-failure), then `etcd-agent run`. Everything binds to the
// instance's 127.x IP.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseEnvFile } from "../../agent/planner/etcd-env.js";
import { type ImdsServer, startImds } from "../support/imds-server.js";
import type { World, WorldInstance } from "./world.js";

export const AGENT_BINARY = new URL("../../dist/etcd-agent-linux-x64", import.meta.url).pathname;

/** The metrics as on a node: the leader publishes to (moto's) CloudWatch, each node serves Prometheus on its IP. */
export const SANDBOX_METRICS = { namespace: "EtcdAgent", port: 9379 } as const;

/**
 * Where a joining node dies on its first boot, for the failure suite. The boot cannot be stopped
 * from outside between two of its steps (they are microseconds apart), so the first two make its
 * next write fail, which leaves etcd and the disk exactly as a kill at that point would:
 * - after-member-add: the state directory is immutable (chattr +i), so the state file write after
 *   MemberAdd fails; nothing local is written.
 * - after-state-file: the env file's path is a directory, so the env file cannot be written.
 * - after-env-file: boot is killed (SIGKILL) when it logs that etcd may start.
 * - before-promote: `etcd-agent run` is killed as it starts, before it can promote the learner,
 *   and restarted as systemd does.
 * Each fault fires once (an attempt that ends before reaching its step leaves it armed); the next
 * attempt runs on a clean node, as after a restart.
 */
export type JoinFault = "after-member-add" | "after-state-file" | "after-env-file" | "before-promote";

export interface NodeFaults {
  join?: JoinFault;
  /** The node's IMDS refuses tokens (HTTP 503) for this long after the node starts. */
  imdsDownMs?: number;
  /**
   * Machine mode only: the machine boots with its agent units held (HELD_UNITS), so the instance is
   * in the group but not a member until a test releases them (releaseHeldUnits).
   */
  held?: boolean;
}

export interface NodeProcess {
  instance: WorldInstance;
  dir: string;
  imds: ImdsServer;
  etcd: ChildProcess | null;
  agent: ChildProcess | null;
  /** How many times `etcd-agent run` was started (restarts as systemd's Restart=always). */
  runStarts: number;
  /** SIGTERM, as systemd stops units. */
  stop(): Promise<void>;
  /** SIGKILL: the instance is gone. */
  crash(): Promise<void>;
}

function chattr(flag: "+i" | "-i", path: string): void {
  try {
    execFileSync("chattr", [flag, path], { stdio: "pipe" });
  } catch (error) {
    throw new Error(
      `chattr ${flag} ${path} failed (${(error as Error).message.trim()}); the after-member-add fault needs root on ext4 or xfs`,
    );
  }
}

/** etcd's restore tool in the sandbox's etcd: etcdutl from 3.5 on, etcdctl on Debian's 3.4. */
function restoreTool(world: World): string {
  const dir = world.etcdBin ?? "/usr/bin";
  return existsSync(join(dir, "etcdutl")) ? join(dir, "etcdutl") : join(dir, "etcdctl");
}

function agentEnv(world: World, dir: string, imds: ImdsServer, ip: string): NodeJS.ProcessEnv {
  return {
    PATH: "/usr/bin:/bin",
    AWS_ENDPOINT_URL: world.agentEndpoint ?? world.endpoint,
    AWS_REGION: world.region,
    AWS_ACCESS_KEY_ID: "sandbox",
    AWS_SECRET_ACCESS_KEY: "sandbox",
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    ETCD_AGENT_DOMAIN: world.domain,
    ETCD_AGENT_HOSTED_ZONE_ID: world.hostedZoneId,
    ETCD_AGENT_DATA_DIR: join(dir, "data"),
    ETCD_AGENT_STATE_DIR: join(dir, "state"),
    ETCD_AGENT_ENV_FILE: join(dir, "etc", "etcd.env"),
    ETCD_AGENT_INTERVAL_SECONDS: "10",
    // Snapshots to moto's S3: the leader saves one at once, then every 15 minutes.
    ETCD_AGENT_BACKUP_BUCKET: world.backupBucket,
    ETCD_AGENT_BACKUP_S3_PATH_STYLE: "true",
    // Recovery after every member is lost: the sandbox waits 20 s (300 s on a node); Debian's etcdctl restores.
    ETCD_AGENT_RESTORE_AFTER_SECONDS: process.env.ETCD_SANDBOX_RESTORE_AFTER_SECONDS ?? "20",
    ETCD_AGENT_RESTORE_TOOL: restoreTool(world),
    // TLS by default, as on a node: the CA in moto's Secrets Manager, certificates under the node's dir.
    ...(world.tls
      ? {
          ETCD_AGENT_TLS_DIR: join(dir, "tls"),
          // etcd checks a connecting peer's address against its certificate; on loopback every
          // node connects from 127.0.0.1 (on EC2 from its own IP, which the certificate names).
          // Without it etcd would look the certificate's DNS names up with the system resolver.
          ETCD_AGENT_TLS_EXTRA_NAMES: "127.0.0.1",
          // A CA rotation restarts etcd: here SIGTERM to the stand-in's etcd (which restarts it after
          // boot, as systemd's unit does), waiting until the old process is gone.
          ETCD_AGENT_ETCD_RESTART_COMMAND: `pid=$(cat '${join(dir, "etcd.pid")}') && kill -TERM "$pid" && for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done; exit 1`,
          ETCD_AGENT_TLS_CA_CHECK_SECONDS: "10",
          ...(world.tls.certLifetimeSeconds
            ? { ETCD_AGENT_TLS_CERT_LIFETIME_SECONDS: String(world.tls.certLifetimeSeconds) }
            : {}),
        }
      : { ETCD_AGENT_PLAINTEXT: "true" }),
    // The sandbox reports a member that stays unhealthy after 30 s (600 s on a real node).
    ETCD_AGENT_UNHEALTHY_DEADLINE_SECONDS: process.env.ETCD_SANDBOX_UNHEALTHY_DEADLINE_SECONDS ?? "30",
    ETCD_AGENT_METRICS_NAMESPACE: SANDBOX_METRICS.namespace,
    ETCD_AGENT_METRICS_LISTEN: `${ip}:${SANDBOX_METRICS.port}`,
    // Every 10 s (60 on a node), so the sandbox's view and tests see figures within a cycle or two.
    ETCD_AGENT_METRICS_PERIOD_SECONDS: "10",
    // For benchmarks that try V8 flags on the agent (npm run bench:binary -- --node-options ...).
    ...(process.env.ETCD_AGENT_NODE_OPTIONS ? { NODE_OPTIONS: process.env.ETCD_AGENT_NODE_OPTIONS } : {}),
    ...world.agentEnvironment,
  };
}

async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

export async function startNode(
  world: World,
  instance: WorldInstance,
  root: string,
  signal?: AbortSignal,
  faults: NodeFaults = {},
): Promise<NodeProcess> {
  const dir = join(root, instance.instanceId);
  mkdirSync(join(dir, "state"), { recursive: true });
  mkdirSync(join(dir, "etc"), { recursive: true });
  const imds = await startImds({
    metadata: {
      "instance-id": instance.instanceId,
      "local-ipv4": instance.ip,
      "placement/availability-zone": instance.availabilityZone,
      "placement/region": world.region,
      "autoscaling/target-lifecycle-state": "InService",
    },
  });
  let imdsTimer: NodeJS.Timeout | undefined;
  if (faults.imdsDownMs) {
    imds.behaviour.tokenStatus = 503;
    imdsTimer = setTimeout(() => {
      imds.behaviour.tokenStatus = 200;
    }, faults.imdsDownMs);
  }
  const closeImds = async () => {
    clearTimeout(imdsTimer);
    await imds.close();
  };
  const env = agentEnv(world, dir, imds, instance.ip);
  const log = createWriteStream(join(dir, "agent.log"), { flags: "a" });
  // The IMDS server lives in this process: boot must run asynchronously so it can answer.
  // A fault stays armed until it fired: an attempt can end before the step it targets (a boot
  // that lost a race and exits to observe again), and the next attempt must meet it then.
  let armed = faults.join;
  for (let attempt = 1; ; attempt++) {
    const fault = armed;
    let output = "";
    let killedByFault = false;
    if (fault === "after-member-add") chattr("+i", join(dir, "state"));
    if (fault === "after-state-file")
      mkdirSync(join(dir, "etc", "etcd.env", "not-a-file"), { recursive: true });
    const code = await new Promise<number | null>((resolve) => {
      const boot = spawn(AGENT_BINARY, ["boot"], { env, stdio: ["ignore", "pipe", "pipe"] });
      boot.stdout?.pipe(log, { end: false });
      boot.stderr?.pipe(log, { end: false });
      const capture = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        if (fault === "after-env-file" && !killedByFault && output.includes("etcd may start")) {
          killedByFault = true;
          boot.kill("SIGKILL");
        }
      };
      boot.stdout?.on("data", capture);
      boot.stderr?.on("data", capture);
      const timer = setTimeout(() => boot.kill("SIGKILL"), 180_000);
      const abort = () => boot.kill("SIGKILL");
      signal?.addEventListener("abort", abort, { once: true });
      boot.on("exit", (c) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        resolve(c);
      });
    });
    if (fault === "after-member-add") chattr("-i", join(dir, "state"));
    if (fault === "after-state-file") rmSync(join(dir, "etc", "etcd.env"), { recursive: true, force: true });
    if (
      (fault === "after-member-add" && /operation not permitted/i.test(output)) ||
      (fault === "after-state-file" && /EISDIR|illegal operation on a directory/i.test(output)) ||
      (fault === "after-env-file" && killedByFault) ||
      code === 0
    )
      armed = undefined;
    if (signal?.aborted) {
      await closeImds();
      throw new Error(`boot on ${instance.instanceId} stopped: the sandbox is going down`);
    }
    if (code === 0) break;
    if (attempt >= 40) {
      await closeImds();
      throw new Error(`boot on ${instance.instanceId} kept failing (exit ${code}); see ${dir}/agent.log`);
    }
    await new Promise((res) => setTimeout(res, 2000));
  }
  let stopping = false;
  const etcdLog = createWriteStream(join(dir, "etcd.log"), { flags: "a" });
  /** ExecStartPre: boot again before every start of etcd; true when it exited 0. */
  const bootBeforeEtcd = () =>
    new Promise<boolean>((resolve) => {
      const boot = spawn(AGENT_BINARY, ["boot"], { env, stdio: ["ignore", "pipe", "pipe"] });
      boot.stdout?.pipe(log, { end: false });
      boot.stderr?.pipe(log, { end: false });
      const timer = setTimeout(() => boot.kill("SIGKILL"), 180_000);
      boot.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c === 0);
      });
    });
  const spawnEtcd = () => {
    const etcdEnv = parseEnvFile(readFileSync(join(dir, "etc", "etcd.env"), "utf8"));
    const child = spawn(world.etcdBin ? join(world.etcdBin, "etcd") : "etcd", [], {
      env: { PATH: "/usr/bin:/bin", ...etcdEnv, ETCD_LOGGER: "zap" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(etcdLog, { end: false });
    child.stderr?.pipe(etcdLog, { end: false });
    if (child.pid !== undefined) writeFileSync(join(dir, "etcd.pid"), String(child.pid));
    return child;
  };
  if (!(await bootBeforeEtcd())) {
    await closeImds();
    throw new Error(`boot before etcd on ${instance.instanceId} failed; see ${dir}/agent.log`);
  }
  let etcdStarts = 1;
  const node: NodeProcess = {
    instance,
    dir,
    imds,
    etcd: spawnEtcd(),
    agent: null,
    runStarts: 0,
    async stop() {
      stopping = true;
      await stopChild(node.agent);
      await stopChild(node.etcd);
      await closeImds();
    },
    async crash() {
      stopping = true;
      await Promise.all([stopChild(node.agent, "SIGKILL"), stopChild(node.etcd, "SIGKILL")]);
      await closeImds();
    },
  };
  // etcd's unit: Restart=on-failure (10 s on a node, 2 s here), boot before every start, at most 20.
  const watchEtcd = (child: ChildProcess) => {
    child.once("exit", (code, sig) => {
      if (stopping || etcdStarts > 20 || (code === 0 && sig === null)) return;
      const restart = async () => {
        if (stopping) return;
        etcdStarts++;
        if (!(await bootBeforeEtcd())) {
          if (!stopping && etcdStarts <= 20) setTimeout(() => void restart(), 2000);
          return;
        }
        if (stopping) return;
        node.etcd = spawnEtcd();
        watchEtcd(node.etcd);
      };
      setTimeout(() => void restart(), 2000);
    });
  };
  if (node.etcd) watchEtcd(node.etcd);
  // `etcd-agent run` as etcd-agent.service runs it: Restart=always, here at most 20 restarts.
  const startRun = () => {
    const agent = spawn(AGENT_BINARY, ["run"], { env, stdio: ["ignore", "pipe", "pipe"] });
    node.agent = agent;
    node.runStarts++;
    agent.stdout?.pipe(log, { end: false });
    agent.stderr?.pipe(log, { end: false });
    if (faults.join === "before-promote" && node.runStarts === 1) agent.kill("SIGKILL");
    agent.once("exit", () => {
      if (stopping || node.runStarts > 20) return;
      setTimeout(() => {
        if (!stopping) startRun();
      }, 2000);
    });
  };
  startRun();
  return node;
}

/** Resident memory of a process in KiB (VmRSS), or null when it is gone. */
export function rssKiB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

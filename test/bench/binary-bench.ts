// npm run bench:binary [-- --minutes N]: the single executable's size, `--version` wall time, and
// the resident memory of `etcd-agent run` on a 3-node cluster (moto + real etcd + the binary)
// after N minutes (default 10). Prints a Markdown table for docs/benchmarks.md.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { SEA_NODE_VERSION } from "../../agent/build/node-version.js";
import { startMoto } from "../sandbox/moto-server.js";
import { AGENT_BINARY, type NodeProcess, rssKiB, startNode } from "../sandbox/node-process.js";
import { createWorld, worldInstances } from "../sandbox/world.js";
import { millis, wallMs } from "./measure.js";

const minutesArg = process.argv.indexOf("--minutes");
const MINUTES = minutesArg > 0 ? Number(process.argv[minutesArg + 1]) : 10;
if (!Number.isFinite(MINUTES) || MINUTES <= 0 || MINUTES > 60) {
  throw new Error(`--minutes must be a number from 1 to 60, got ${process.argv[minutesArg + 1]}`);
}

const fmt = millis;

async function main(): Promise<void> {
  const lines: string[] = [];
  const mib = (p: string) => (statSync(p).size / 1024 / 1024).toFixed(1);
  const baseNode = join(process.cwd(), ".cache/node-sea", `x64-${SEA_NODE_VERSION}`, "package/bin/node");
  const version = wallMs(AGENT_BINARY, ["--version"], 21);
  const bare = wallMs(baseNode, ["-e", "0"], 21);
  lines.push(`| binary size, linux-x64 | ${mib(AGENT_BINARY)} MiB |`);
  lines.push(`| binary size, linux-arm64 | ${mib(AGENT_BINARY.replace("x64", "arm64"))} MiB |`);
  lines.push(`| \`--version\` wall time, median of 21 (min–max) | ${fmt(version)} |`);
  lines.push(
    `| the same Node running \`-e 0\` (the floor) | ${fmt(bare)}; ratio ${(version.median / bare.median).toFixed(1)}× |`,
  );

  const root = mkdtempSync(join(tmpdir(), "etcd-agent-bench-"));
  const moto = await startMoto(join(root, "moto.log"));
  const nodes: NodeProcess[] = [];
  try {
    // Its own subnet, so it can run beside a sandbox (127.0.1.x) or the tests.
    const world = await createWorld(moto.url, { nodes: 3, subnetCidr: "127.0.41.0/24" });
    const instances = await worldInstances(world);
    nodes.push(...(await Promise.all(instances.map((i) => startNode(world, i, root)))));
    const samples: Record<string, number[]> = {};
    const sampleAt = new Set([1, Math.ceil(MINUTES / 2), MINUTES]);
    for (let minute = 1; minute <= MINUTES; minute++) {
      await new Promise((r) => setTimeout(r, 60_000));
      if (!sampleAt.has(minute)) continue;
      samples[minute] = nodes.map((n) => rssKiB(n.agent?.pid) ?? Number.NaN);
      process.stderr.write(
        `minute ${minute}: run RSS ${(samples[minute] ?? []).map((k) => `${(k / 1024).toFixed(1)} MiB`).join(", ")}\n`,
      );
    }
    for (const [minute, kib] of Object.entries(samples)) {
      lines.push(
        `| RSS of \`etcd-agent run\` after ${minute} min (3 nodes) | ${kib.map((k) => `${(k / 1024).toFixed(1)}`).join(" / ")} MiB |`,
      );
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await moto.stop();
    rmSync(root, { recursive: true, force: true });
  }
  process.stdout.write(
    `machine: ${cpus().length} × ${cpus()[0]?.model}, ${new Date().toISOString()}\n\n| measure | value |\n| --- | --- |\n${lines.join("\n")}\n`,
  );
}

await main();

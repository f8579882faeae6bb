// The memory a snapshot costs the agent (issue #13, defect 12): a real etcd 3.4 holding about
// 50 MiB, moto's S3, and `saveSnapshot` from the given agent tree in a child process that samples
// its resident set every 10 ms. Run under the tests' lock (it uses 127.0.45.1):
//   flock /tmp/etcd-agent-tests.lock npx tsx test/bench/snapshot-rss.ts [agent-dir ...]
// SIZE_MIB=200 in the environment for a larger database (default 50).
// Each agent dir is a copy of agent/ (default: this tree's); the figures go to docs/benchmarks.md.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { Etcd3 } from "etcd3";
import { startMoto } from "../sandbox/moto-server.js";

const IP = "127.0.45.1";
const ENDPOINT = `http://${IP}:2379`;
const BUCKET = "rss-bench";
const MIB = 1024 * 1024;

async function child(agentDir: string, motoUrl: string, stateDir: string): Promise<void> {
  const { saveSnapshot } = await import(join(agentDir, "backups/index.ts"));
  const { Etcd3Cluster } = await import(join(agentDir, "adapters/etcd3-cluster.ts"));
  const { S3Backups } = await import(join(agentDir, "adapters/s3-backups.ts"));
  const { parseConfig } = await import(join(agentDir, "config/config.ts"));
  const { createLogger } = await import(join(agentDir, "log.ts"));
  const config = parseConfig({
    domain: "etcd.test",
    hostedZoneId: "ZTEST",
    plaintext: true,
    stateDir,
    backupBucket: BUCKET,
    backupS3PathStyle: true,
  });
  const s3 = new S3Client({
    region: "eu-west-1",
    endpoint: motoUrl,
    forcePathStyle: true,
    credentials: { accessKeyId: "x", secretAccessKey: "x" },
  });
  const etcd = new Etcd3Cluster({ callTimeoutMs: 10_000 });
  const ports = {
    etcd,
    backups: new S3Backups(s3, BUCKET),
    clock: { now: () => new Date(), sleep: (ms: number) => new Promise((r) => setTimeout(r, ms)) },
    serviceManager: {
      ready: async () => {},
      status: async () => {},
      watchdog: async () => {},
      stopping: async () => {},
    },
  };
  // Warm up the clients (connections, SDK) so the baseline is the agent at rest, not at load.
  await etcd.status(ENDPOINT);
  await ports.backups.list("none/");
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const log = createLogger({ write: () => true });
  const started = Date.now();
  const saved = await saveSnapshot(ports, config, "etcd", ENDPOINT, "tok", log, ["i-1"]);
  const ms = Date.now() - started;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  await etcd.close();
  process.stdout.write(
    `${JSON.stringify({ agentDir, bytes: saved.bytes, rssBeforeMiB: +(before / MIB).toFixed(1), rssPeakMiB: +(peak / MIB).toFixed(1), addedMiB: +((peak - before) / MIB).toFixed(1), ms })}\n`,
  );
}

async function main(): Promise<void> {
  const dirs = process.argv.slice(2).map((d) => resolve(d));
  if (dirs.length === 0) dirs.push(resolve("agent"));
  const work = mkdtempSync(join(tmpdir(), "etcd-agent-rss-"));
  const moto = await startMoto();
  let etcd: ChildProcess | null = null;
  try {
    const s3 = new S3Client({
      region: "eu-west-1",
      endpoint: moto.url,
      forcePathStyle: true,
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });
    await s3.send(
      new CreateBucketCommand({
        Bucket: BUCKET,
        CreateBucketConfiguration: { LocationConstraint: "eu-west-1" },
      }),
    );
    etcd = spawn(
      "etcd",
      [
        "--name=rss",
        `--data-dir=${join(work, "etcd")}`,
        `--listen-client-urls=${ENDPOINT}`,
        `--advertise-client-urls=${ENDPOINT}`,
        `--listen-peer-urls=http://${IP}:2380`,
        `--initial-advertise-peer-urls=http://${IP}:2380`,
        `--initial-cluster=rss=http://${IP}:2380`,
      ],
      { stdio: "ignore" },
    );
    const client = new Etcd3({ hosts: ENDPOINT });
    for (let i = 0; i < 100; i++) {
      try {
        await client.maintenance.status();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // About SIZE_MIB (default 50) MiB of incompressible values, 512 KiB each.
    const values = Math.round(Number(process.env.SIZE_MIB ?? 50) * 2);
    for (let i = 0; i < values; i++) await client.put(`/rss/${i}`).value(randomBytes(512 * 1024));
    client.close();
    for (const dir of dirs) {
      const out = execFileSync(
        process.execPath,
        [
          "--expose-gc",
          "--import",
          "tsx",
          new URL(import.meta.url).pathname,
          "--child",
          dir,
          moto.url,
          join(work, "state"),
        ],
        { encoding: "utf8" },
      );
      process.stdout.write(out);
    }
  } finally {
    etcd?.kill("SIGKILL");
    await moto.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--child") {
  await child(process.argv[3] as string, process.argv[4] as string, process.argv[5] as string);
} else {
  await main();
}

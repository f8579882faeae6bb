// Defragmentation's pause per member (issue #18), a section of `npm run bench` that also runs alone
// (`npm run bench -- --defrag`): three hand-started etcd members (the etcd on PATH, Debian's 3.4)
// on 127.0.74.x; a db made fragmented by writes, deletes of every other key and a compaction; then
// each member defragmented in the agent's order (followers first, the leader last) through the
// agent's own adapter (Etcd3Cluster.defragment), the pause set against a plain Status round trip
// to the same member and against its db size. Importing this file runs nothing.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { type Summary, summarize, until } from "./measure.js";

const BASE = "127.0.74";
const MIB = 1024 * 1024;
const VALUE_BYTES = 4 * 1024;
/** Puts (or deletes) per transaction: under etcd's 128 operations and 1.5 MiB per request. */
const PER_TXN = 100;
/** The db sizes written, in MiB, one round each on the same cluster (half of it freed each round). */
export const DEFRAG_SIZES_MIB = [16, 64];

export interface DefragMember {
  role: "follower" | "leader";
  dbBefore: number;
  inUseBefore: number;
  dbAfter: number;
  pauseMs: number;
  status: Summary;
}

export interface DefragRound {
  writtenMiB: number;
  members: DefragMember[];
}

function spawnEtcd(dir: string, name: string, ip: string, cluster: string): ChildProcess {
  return spawn(
    "etcd",
    [
      ...["--name", name, "--data-dir", join(dir, name)],
      ...["--listen-client-urls", `http://${ip}:2379`, "--advertise-client-urls", `http://${ip}:2379`],
      ...["--listen-peer-urls", `http://${ip}:2380`, "--initial-advertise-peer-urls", `http://${ip}:2380`],
      ...[
        "--initial-cluster",
        cluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "defrag",
      ],
    ],
    { stdio: "ignore" },
  );
}

/** Writes `mib` MiB under a fresh prefix, deletes every other key, compacts: about half is free. */
async function fragment(client: Etcd3, round: number, mib: number): Promise<void> {
  const keys = Math.ceil((mib * MIB) / VALUE_BYTES);
  const value = Buffer.alloc(VALUE_BYTES, round);
  const key = (i: number) => `/defrag-bench/${round}/${String(i).padStart(7, "0")}`;
  for (let i = 0; i < keys; i += PER_TXN) {
    const puts = [];
    for (let j = i; j < Math.min(keys, i + PER_TXN); j++) puts.push(client.put(key(j)).value(value));
    await client
      .if(key(i), "Version", ">", -1)
      .then(...puts)
      .commit();
  }
  const odd = Array.from({ length: keys }, (_, i) => i).filter((i) => i % 2 === 1);
  for (let i = 0; i < odd.length; i += PER_TXN) {
    const deletes = odd.slice(i, i + PER_TXN).map((k) => client.delete().key(key(k)));
    await client
      .if(key(0), "Version", ">", -1)
      .then(...deletes)
      .commit();
  }
}

async function statusTimes(probe: Etcd3Cluster, endpoint: string, runs: number): Promise<Summary> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    if ((await probe.status(endpoint)) === null) throw new Error(`no Status from ${endpoint}`);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return summarize(times);
}

/** The rounds on one hand-started cluster; `log` gets a line per member. */
export async function measureDefrag(root: string, log: (line: string) => void): Promise<DefragRound[]> {
  const dir = join(root, "defrag");
  mkdirSync(dir, { recursive: true });
  const ips = [1, 2, 3].map((n) => `${BASE}.${n}`);
  const endpoints = ips.map((ip) => `http://${ip}:2379`);
  const initial = ips.map((ip, i) => `d${i}=http://${ip}:2380`).join(",");
  const procs = ips.map((ip, i) => spawnEtcd(dir, `d${i}`, ip, initial));
  const probe = new Etcd3Cluster({ callTimeoutMs: 10_000 });
  const client = new Etcd3({ hosts: endpoints });
  try {
    await until("three hand-started members with a leader", 120_000, async () => {
      const statuses = await Promise.all(endpoints.map((e) => probe.status(e)));
      return statuses.every((s) => s && s.leaderId !== "0") ? true : undefined;
    });
    const rounds: DefragRound[] = [];
    for (const [round, mib] of DEFRAG_SIZES_MIB.entries()) {
      await fragment(client, round + 1, mib);
      await probe.compact(endpoints);
      const statuses = await Promise.all(endpoints.map((e) => probe.status(e)));
      const leaderId = statuses[0]?.leaderId;
      // The agent's order: followers first, the leader last.
      const order = endpoints
        .map((e, i) => ({ e, s: statuses[i] }))
        .sort((a, b) => Number(a.s?.memberId === leaderId) - Number(b.s?.memberId === leaderId));
      const members: DefragMember[] = [];
      for (const { e } of order) {
        const status = await statusTimes(probe, e, 21);
        const before = await probe.status(e);
        if (before === null) throw new Error(`no Status from ${e}`);
        const t0 = process.hrtime.bigint();
        await probe.defragment(e, 600_000);
        const pauseMs = Number(process.hrtime.bigint() - t0) / 1e6;
        const after = await probe.status(e);
        const m: DefragMember = {
          role: before.memberId === leaderId ? "leader" : "follower",
          dbBefore: before.dbSize,
          inUseBefore: before.dbSizeInUse ?? Number.NaN,
          dbAfter: after?.dbSize ?? Number.NaN,
          pauseMs,
          status,
        };
        members.push(m);
        log(
          `defrag, ${mib} MiB written: ${m.role} ${(m.dbBefore / MIB).toFixed(1)} MiB db → ${(m.dbAfter / MIB).toFixed(1)} MiB in ${pauseMs.toFixed(0)} ms (Status ${status.median.toFixed(1)} ms)`,
        );
      }
      rounds.push({ writtenMiB: mib, members });
    }
    return rounds;
  } finally {
    client.close();
    await probe.close();
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once("exit", () => resolve());
            p.kill("SIGKILL");
          }),
      ),
    );
  }
}

/** The section's table: one row per member and round. */
export function defragTable(rounds: DefragRound[]): string[] {
  const rows = rounds.flatMap((r) =>
    r.members.map(
      (m) =>
        `| ${r.writtenMiB} MiB written, half deleted | ${m.role} | ${(m.dbBefore / MIB).toFixed(1)} MiB (${(m.inUseBefore / MIB).toFixed(1)} in use) → ${(m.dbAfter / MIB).toFixed(1)} MiB | ${m.pauseMs.toFixed(0)} ms | ${(m.pauseMs / (m.dbBefore / MIB)).toFixed(1)} ms | ${m.status.median.toFixed(1)} ms (${m.status.min.toFixed(1)}–${m.status.max.toFixed(1)}) | ${(m.pauseMs / m.status.median).toFixed(0)}× |`,
    ),
  );
  return [
    "| db | member (in the agent's order) | db size before → after | pause (Defragment) | pause per MiB of db | Status round trip, median of 21 (min–max) | pause / Status |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ];
}

// Small helpers shared by the benchmarks: wall time of a command, and summaries of samples.
import { spawnSync } from "node:child_process";

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(samples: number[]): Summary {
  if (samples.length === 0) throw new Error("no samples to summarize");
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[s.length - 1] as number, n: s.length };
}

export function wallMs(cmd: string, args: string[], runs: number): Summary {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { stdio: "ignore" });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}`);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return summarize(times);
}

/** "12.3 s (11.9–13.0)" from milliseconds. */
export const seconds = (t: Summary) =>
  t.n === 1
    ? `${(t.median / 1000).toFixed(1)} s`
    : `${(t.median / 1000).toFixed(1)} s (${(t.min / 1000).toFixed(1)}–${(t.max / 1000).toFixed(1)})`;

/** "141 ms (129–152)". */
export const millis = (t: Summary) => `${t.median.toFixed(0)} ms (${t.min.toFixed(0)}–${t.max.toFixed(0)})`;

/** Polls `check` every `everyMs` until it returns a value; bounded by `ms`. */
export async function until<T>(
  what: string,
  ms: number,
  check: () => Promise<T | undefined>,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}`);
}

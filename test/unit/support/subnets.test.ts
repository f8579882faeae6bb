// The real-etcd test files run two at a time (vitest.config.ts, maxWorkers 2). What keeps two of them
// apart is that each binds its own 127.0.N.0/24: etcd's ports (2379/2380), the per-instance IMDS and
// metrics ports are fixed, only the address differs. This reads every such file for the third octets
// it names and fails when two files share one, so a new scenario cannot silently take a neighbour's
// addresses. 127.0.0.x is shared on purpose: only ephemeral ports (moto, stubs) listen there.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DIRS = ["test/e2e", "test/integration", "test/binary"];
/** How many runs a file that computes its subnet from a run number may take (simultaneous-boot). */
const MAX_RUNS = 10;

function octetsOf(source: string): Set<number> {
  const octets = new Set<number>();
  for (const m of source.matchAll(/127\.0\.(\d{1,3})\./g)) octets.add(Number(m[1]));
  // `127.0.${80 + run}.0/24`: a base plus a run number.
  for (const m of source.matchAll(/127\.0\.\$\{(\d{1,3}) \+ run\}/g))
    for (let run = 0; run < MAX_RUNS; run++) octets.add(Number(m[1]) + run);
  octets.delete(0);
  return octets;
}

describe("the real-etcd test files' subnets", () => {
  it("reads literal and run-numbered subnets", () => {
    expect([...octetsOf('const SUBNET = "127.0.27"; x = "127.0.27.1"; y = "127.0.0.1"')]).toEqual([27]);
    expect([...octetsOf(["`127.0.$", "{80 + run}.0/24`"].join(""))]).toEqual([
      80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    ]);
  });

  it("no two files that may run side by side share a 127.0.N.0/24", () => {
    const owner = new Map<number, string>();
    const clashes: string[] = [];
    for (const dir of DIRS)
      for (const name of readdirSync(dir).filter((n) => n.endsWith(".test.ts"))) {
        const file = join(dir, name);
        for (const octet of octetsOf(readFileSync(file, "utf8"))) {
          const other = owner.get(octet);
          if (other && other !== file) clashes.push(`127.0.${octet}.0/24: ${other} and ${file}`);
          else owner.set(octet, file);
        }
      }
    expect(clashes).toEqual([]);
    expect(owner.size).toBeGreaterThan(20);
  });
});

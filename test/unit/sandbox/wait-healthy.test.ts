// `etcd-sandbox up` (and --detach, which returns when the view is written) is ready only when the
// cluster has settled AND the zone's records equal the voting members (issue #17: right after
// `up --detach`, `etcd-agent status` showed DNS drift that cleared seconds later).
import { describe, expect, it } from "vitest";
import { Sandbox } from "../../sandbox/sandbox.js";

type Fake = Pick<Sandbox, "settledInstances" | "dnsDrift" | "errors">;

function fake(driftPolls: string[][]): Fake & { driftCalls: number } {
  const f = {
    errors: [] as string[],
    driftCalls: 0,
    settledInstances: async () => [
      { instanceId: "i-00000001", ip: "127.0.71.10", availabilityZone: "us-east-1a" },
    ],
    dnsDrift: async () => {
      const d = driftPolls[Math.min(f.driftCalls, driftPolls.length - 1)] ?? [];
      f.driftCalls++;
      return d;
    },
  };
  return f as unknown as Fake & { driftCalls: number };
}

describe("Sandbox.waitHealthy with dns", () => {
  it("resolves only once DNS equals the voters, not as soon as the members settle", async () => {
    const f = fake([["DNS UPSERT SRV _etcd-server-ssl._tcp.x"], ["DNS UPSERT A i-00000001.x"], []]);
    await Sandbox.prototype.waitHealthy.call(f, 10_000, { dns: true, pollMs: 1 });
    expect(f.driftCalls).toBe(3);
  });

  it("throws after the bound, naming the drift left", async () => {
    const f = fake([["DNS DELETE SRV _etcd-client-ssl._tcp.x"]]);
    await expect(Sandbox.prototype.waitHealthy.call(f, 50, { dns: true, pollMs: 1 })).rejects.toThrow(
      /DNS did not equal the voting members within 0 s.*DNS DELETE SRV _etcd-client-ssl\._tcp\.x/,
    );
  });
});

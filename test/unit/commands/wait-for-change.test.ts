// The run loop's wait between cycles: the full interval when nothing changes, a cycle within a
// second of the local etcd showing a new cluster shape (members, leader, alarms) or of the
// defragmentation running beside the loop ending.
import { describe, expect, it } from "vitest";
import { clusterShape, waitForChange } from "../../../agent/commands/run.js";
import type { Ports } from "../../../agent/ports/index.js";

const URL = "http://127.0.0.1:2379";

function fakes(shapes: Array<string | null>, alarms: string[][] = [[]]) {
  let calls = 0;
  const sleeps: number[] = [];
  const member = (id: string) => ({ id, name: `i-${id}`, peerUrls: [], clientUrls: [], isLearner: false });
  const ports = {
    clock: {
      now: () => new Date(0),
      sleep: async (ms: number) => {
        sleeps.push(ms);
      },
    },
    etcd: {
      memberList: async () => {
        const shape = shapes[Math.min(calls++, shapes.length - 1)];
        if (shape === null) throw new Error("etcd down");
        return { clusterId: "1", members: (shape ?? "").split(",").map(member) };
      },
      status: async () => ({
        leaderId: "1",
        errors: (alarms[Math.min(calls - 1, alarms.length - 1)] ?? []).map(
          (kind) => `memberID:1 alarm:${kind} `,
        ),
      }),
    },
  } as unknown as Ports;
  return { ports, sleeps, calls: () => calls };
}

describe("waitForChange", () => {
  it("waits the whole interval, in 1 s steps, when the cluster keeps its shape", async () => {
    const f = fakes(["a,b,c"]);
    await waitForChange(f.ports, URL, await clusterShape(f.ports, URL), 10_000);
    expect(f.sleeps).toEqual(Array(10).fill(1000));
  });

  it("returns within a second of a member appearing", async () => {
    const f = fakes(["a,b,c", "a,b,c", "a,b,c", "a,b,c,d"]);
    await waitForChange(f.ports, URL, await clusterShape(f.ports, URL), 10_000);
    expect(f.sleeps).toHaveLength(3);
  });

  it("returns at once when the cluster changed since the cycle began (a promotion during the cycle)", async () => {
    const f = fakes(["a,b,c", "a,b,c,d"]);
    const before = await clusterShape(f.ports, URL);
    await waitForChange(f.ports, URL, before, 10_000);
    expect(f.sleeps).toHaveLength(1);
  });

  it("does not cut the interval short when the local etcd does not answer", async () => {
    const f = fakes([null, "a,b,c,d"]);
    await waitForChange(f.ports, URL, await clusterShape(f.ports, URL), 5_000);
    expect(f.sleeps).toEqual(Array(5).fill(1000));
    expect(f.calls()).toBe(1);
  });

  it("returns within a second of an alarm being raised (NOSPACE waits for no interval)", async () => {
    const f = fakes(["a,b,c"], [[], [], [], ["NOSPACE"]]);
    await waitForChange(f.ports, URL, await clusterShape(f.ports, URL), 10_000);
    expect(f.sleeps).toHaveLength(3);
  });

  it("returns within a second of the defragmentation beside the loop ending", async () => {
    const f = fakes(["a,b,c"]);
    let running = true;
    const before = await clusterShape(f.ports, URL);
    const waiting = waitForChange(f.ports, URL, before, 10_000, {
      ended: () => {
        if (f.sleeps.length === 4) running = false;
        return !running;
      },
    });
    await waiting;
    expect(f.sleeps).toHaveLength(4);
  });
});

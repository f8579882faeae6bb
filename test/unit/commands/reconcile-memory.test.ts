// The run loop's safety clocks live in the state dir: an agent restarted halfway through a deadline
// acts at the deadline, not a deadline after the restart.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryLocalNode } from "../../../agent/adapters/memory-local.js";
import { initialLoopState, reconcileOnce } from "../../../agent/commands/run.js";
import { createLogger, silentLogger } from "../../../agent/log.js";
import { desiredRecords } from "../../../agent/planner/dns-plan.js";
import type { MemberStatus } from "../../../agent/planner/observation.js";
import type { EtcdCluster } from "../../../agent/ports/etcd.js";
import type { Ports } from "../../../agent/ports/index.js";
import { FakeAws } from "../../fakes/fake-aws.js";
import { nodeConfig } from "../../support/etcd-node.js";

const ipOf = (n: number) => `127.0.23.${n}`;
const T0 = Date.parse("2026-11-22T12:00:00.000Z");

function world(down: Set<number>, errors: string[] = []) {
  const aws = new FakeAws();
  for (const n of [1, 2, 3]) aws.launch(n, ipOf(n));
  const ids = [1, 2, 3].map((n) => `i-${n.toString(16).padStart(8, "0")}`);
  const members = [1, 2, 3].map((n) => ({
    id: String(n),
    name: ids[n - 1] as string,
    peerUrls: [`http://${ipOf(n)}:2380`],
    clientUrls: [`http://${ipOf(n)}:2379`],
    isLearner: false,
  }));
  const etcd = {
    memberList: async () => ({ clusterId: "42", memberId: "1", members }),
    status: async (url: string): Promise<MemberStatus | null> => {
      const n = Number(url.split(":")[1]?.split(".")[3]);
      if (down.has(n)) return null;
      return {
        memberId: String(n),
        leaderId: "1",
        raftIndex: "100",
        raftTerm: "2",
        dbSize: 20480,
        isLearner: false,
        version: "3.4.23",
        errors: [...errors],
      };
    },
    close: async () => {},
  } as unknown as EtcdCluster;
  let now = T0;
  const local = new MemoryLocalNode();
  const ports = {
    metadata: aws.metadata(ids[0] as string),
    autoscaling: aws.autoscaling(),
    ec2: aws.ec2(),
    dns: aws.dns(),
    etcd,
    clock: { now: () => new Date(now), sleep: async () => {} },
    local,
  } as unknown as Ports;
  const ctx = {
    identity: { instanceId: ids[0] as string, privateIp: ipOf(1), region: "r", availabilityZone: "a" },
    asgName: "etcd",
  };
  return {
    aws,
    ports,
    ctx,
    local,
    setNow: (s: number) => {
      now = T0 + s * 1000;
    },
  };
}

describe("the run loop's memory across a restart", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-agent-memory-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = nodeConfig(dir, { unhealthyDeadlineSeconds: 600, intervalSeconds: 10 });

  it("reports a member at the unhealthy deadline even when the agent restarted halfway", async () => {
    const w = world(new Set([3]));
    let state = initialLoopState();
    const reportedAt: number[] = [];
    for (let s = 0; s <= 620; s += 10) {
      if (s === 300) state = initialLoopState(); // systemd restarted the agent
      w.setNow(s);
      await reconcileOnce(w.ports, config, w.ctx, state, silentLogger);
      if (w.aws.reportedUnhealthy.length > 0 && reportedAt.length === 0) reportedAt.push(s);
    }
    expect(reportedAt).toEqual([600]);
  });

  it("starts the member clocks again after a long stop: nobody watched the members meanwhile", async () => {
    const w = world(new Set([3]));
    let state = initialLoopState();
    const reportedAt: number[] = [];
    for (let s = 0; s <= 1400; s += 10) {
      if (s >= 310 && s < 700) continue; // stopped after 300 s, for 390 s
      if (s === 300 || s === 700) state = initialLoopState(); // a restart: the clocks carry on; then start again
      w.setNow(s);
      await reconcileOnce(w.ports, config, w.ctx, state, silentLogger);
      if (w.aws.reportedUnhealthy.length > 0 && reportedAt.length === 0) reportedAt.push(s);
    }
    expect(reportedAt).toEqual([1300]);
  });

  it("never writes its stale copy of boot's unreachable clock over the one boot keeps", async () => {
    const w = world(new Set([3]));
    // run starts with an old unreachable clock on disk; boot (before an etcd restart) then
    // writes a newer one beside the loop.
    await w.local.writeMemory({
      unreachableSince: "2026-11-22T11:00:00.000Z",
      unreachableConfirmedAt: "2026-11-22T11:01:00.000Z",
    });
    const state = initialLoopState();
    w.setNow(0);
    await reconcileOnce(w.ports, config, w.ctx, state, silentLogger);
    const boots = {
      unreachableSince: "2026-11-22T12:00:30.000Z",
      unreachableConfirmedAt: "2026-11-22T12:00:40.000Z",
    };
    await w.local.writeMemory({ ...((await w.local.readMemory()) as object), ...boots });
    for (const s of [70, 140, 210]) {
      w.setNow(s);
      await reconcileOnce(w.ports, config, w.ctx, state, silentLogger);
    }
    expect(await w.local.readMemory()).toMatchObject(boots);
  });

  it("remembers the DNS writes across a restart, so the budget holds", async () => {
    const w = world(new Set());
    const state = initialLoopState();
    w.setNow(0);
    await reconcileOnce(w.ports, config, w.ctx, state, silentLogger);
    const after = initialLoopState();
    w.setNow(10);
    await reconcileOnce(w.ports, config, w.ctx, after, silentLogger);
    expect(after.memory.dnsWrites).toHaveLength(1);
  });

  it("logs an etcd alarm once when raised and once when cleared", async () => {
    const errors: string[] = [];
    const w = world(new Set(), errors);
    const lines: string[] = [];
    const out = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger(out, { level: "debug" });
    const state = initialLoopState();
    for (const [s, alarm] of [
      [0, false],
      [10, true],
      [20, true],
      [30, true],
      [40, false],
      [50, false],
    ] as const) {
      errors.splice(0, errors.length, ...(alarm ? ["memberID:1 alarm:NOSPACE "] : []));
      w.setNow(s);
      await reconcileOnce(w.ports, config, w.ctx, state, log);
    }
    const alarmLines = lines.filter((l) => l.includes("etcd alarm")).map((l) => JSON.parse(l).msg);
    expect(alarmLines).toEqual(["etcd alarm raised: NOSPACE", "etcd alarm cleared: NOSPACE"]);
    expect(w.aws.reportedUnhealthy).toEqual([]);
  });

  it("a leader whose Status calls reach nobody else reports nobody and keeps DNS (defect 13)", async () => {
    const w = world(new Set([2, 3]));
    const records = desiredRecords(
      [1, 2, 3].map((n) => ({ name: `i-${n.toString(16).padStart(8, "0")}`, ip: ipOf(n) })),
      { domain: config.domain, peerPort: config.peerPort, clientPort: config.clientPort, tls: false },
    );
    await w.ports.dns.change(records.map((record) => ({ action: "UPSERT" as const, record })));
    const state = initialLoopState();
    for (let s = 0; s <= 700; s += 10) {
      w.setNow(s);
      await reconcileOnce(w.ports, config, w.ctx, state, silentLogger);
    }
    expect(w.aws.reportedUnhealthy).toEqual([]);
    expect(w.aws.record(`i-00000003.${config.domain}`, "A")?.values).toEqual([ipOf(3)]);
    expect(w.aws.record(`_etcd-client._tcp.${config.domain}`, "SRV")?.values).toHaveLength(3);
  });
});

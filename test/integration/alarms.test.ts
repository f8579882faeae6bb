// etcd's own alarm, raised for real (a full backend): shown as an alarm, never read as a member
// being unhealthy. One etcd 3.4 on 127.0.65.1 with a tiny quota.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlarmAction, AlarmType, Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { observeCluster } from "../../agent/observe/observe.js";
import { alarmsOf, isHealthy } from "../../agent/planner/membership.js";
import { RULES } from "../../agent/planner/rules.js";
import { buildStatusReport } from "../../agent/planner/status-report.js";
import { ETCD_BIN, eventually } from "../support/etcd-node.js";

const IP = "127.0.65.1";
const URL = `http://${IP}:2379`;

describe("an etcd alarm with real etcd", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-agent-alarm-"));
  const probe = new Etcd3Cluster({ callTimeoutMs: 2000 });
  const client = new Etcd3({ hosts: URL });
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    child = spawn(
      ETCD_BIN,
      [
        ...["--name", "solo", "--data-dir", join(dir, "data"), "--quota-backend-bytes", String(256 * 1024)],
        ...["--listen-client-urls", URL, "--advertise-client-urls", URL],
        ...["--listen-peer-urls", `http://${IP}:2380`, "--initial-advertise-peer-urls", `http://${IP}:2380`],
        ...["--initial-cluster", `solo=http://${IP}:2380`],
      ],
      { stdio: "ignore" },
    );
    await eventually("etcd serving", 30_000, async () => {
      const s = await probe.status(URL);
      return s !== null && s.leaderId !== "0" ? true : undefined;
    });
  });

  afterAll(async () => {
    client.close();
    await probe.close();
    const exited = new Promise((r) => child?.once("exit", r));
    child?.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it("a full backend raises NOSPACE: status shows the alarm, the member stays healthy", async () => {
    const value = Buffer.alloc(16 * 1024, 1);
    const full = await eventually<Error>("the NOSPACE alarm", 60_000, async () => {
      for (let i = 0; i < 8; i++) {
        try {
          await client.put(`k${Math.random()}`).value(value);
        } catch (error) {
          return error as Error;
        }
      }
      return undefined;
    });
    const cluster = await observeCluster(probe, [URL], null, 2379);
    const report = buildStatusReport({
      cluster,
      asg: null,
      dns: null,
      marker: { kind: "absent" },
      domain: "etcd.internal",
      peerPort: 2380,
      clientPort: 2379,
      tls: false,
    });

    expect(full.message).toMatch(/space exceeded/);
    expect(cluster?.members.map(isHealthy)).toEqual([true]);
    expect(alarmsOf(cluster?.members ?? [])).toEqual(["NOSPACE"]);
    expect(report.alarms).toEqual(["NOSPACE"]);
    expect(report.members.map((m) => m.healthy)).toEqual([true]);
  });

  it("a CORRUPT alarm beside NOSPACE: the agent's disarm refuses and leaves both raised (a disarm would drop CORRUPT's write protection)", async () => {
    // etcd 3.4/3.5 swap their applier back to the plain one when the last NOSPACE goes, dropping the
    // one that refuses writes under CORRUPT until etcd restarts.
    // A client of its own: the first test's refused writes opened the shared client's circuit breaker.
    const admin = new Etcd3({ hosts: URL });
    onTestFinished(() => admin.close());
    const alarms = admin.maintenance;
    await alarms.alarm({ action: AlarmAction.Activate, memberID: "0", alarm: AlarmType.Corrupt });
    const before = await eventually("CORRUPT and NOSPACE both raised", 10_000, async () => {
      const got = (await alarms.alarm({ action: AlarmAction.Get, memberID: "0", alarm: AlarmType.None }))
        .alarms;
      const kinds = got.map((a) => String(a.alarm)).sort();
      return kinds.length === 2 ? kinds : undefined;
    });

    await expect(probe.alarmDisarm([URL], "NOSPACE")).rejects.toThrow(RULES["etcd-alarm-corrupt"]);

    const after = (await alarms.alarm({ action: AlarmAction.Get, memberID: "0", alarm: AlarmType.None }))
      .alarms;
    expect(after.map((a) => String(a.alarm)).sort()).toEqual(before);
  });
});

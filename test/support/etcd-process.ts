// One real etcd process for tests that need a cluster but no agent: a single member on `ip`.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { ETCD_BIN, eventually } from "./etcd-node.js";

export interface SingleEtcd {
  clientUrl: string;
  stop(): Promise<void>;
}

export async function startSingleEtcd(ip: string): Promise<SingleEtcd> {
  const dir = mkdtempSync(join(tmpdir(), "etcd-single-"));
  const child: ChildProcess = spawn(
    ETCD_BIN,
    [
      "--name",
      "solo",
      "--data-dir",
      join(dir, "data"),
      "--listen-client-urls",
      `http://${ip}:2379`,
      "--advertise-client-urls",
      `http://${ip}:2379`,
      "--listen-peer-urls",
      `http://${ip}:2380`,
      "--initial-advertise-peer-urls",
      `http://${ip}:2380`,
      "--initial-cluster",
      `solo=http://${ip}:2380`,
    ],
    { stdio: "ignore" },
  );
  const clientUrl = `http://${ip}:2379`;
  const probe = new Etcd3Cluster({ callTimeoutMs: 1000 });
  await eventually(`etcd on ${ip}`, 30_000, async () =>
    (await probe.status(clientUrl))?.leaderId !== "0" ? true : undefined,
  );
  await probe.close();
  return {
    clientUrl,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

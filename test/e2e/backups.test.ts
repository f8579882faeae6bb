// Backups in the sandbox, with moto's S3: the leader saves a snapshot on its own; an operator saves,
// lists and restores with the binary; the newest snapshot corrupted, restore skips it (and says
// so) and restores the one before, which a real etcd then serves with every key it held.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { Etcd3 } from "etcd3";
import { afterAll, describe, expect, it } from "vitest";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { operatorAgent as agent } from "../support/operator-cli.js";
import { withSandbox } from "../support/with-sandbox.js";

const work = mkdtempSync(join(tmpdir(), "etcd-agent-backups-"));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

async function putKeys(sandbox: Sandbox, endpoints: string[], from: number, to: number): Promise<void> {
  const client = new Etcd3({ hosts: endpoints, ...sandbox.etcd3Options() });
  try {
    for (let i = from; i < to; i++)
      await client.put(`/backup-test/${String(i).padStart(4, "0")}`).value(`v${i}`);
  } finally {
    client.close();
  }
}

describe("backups to S3", () => {
  it("scheduled and by hand; a corrupt newest snapshot is reported and the previous one restored", async () => {
    await withSandbox({ subnet: "127.0.39.0/24" }, async (sandbox) => {
      const instances = await worldInstances(sandbox.world);
      const endpoints = instances.map((i) => sandbox.clientUrl(i.ip));
      const endpoint = endpoints[0] as string;

      // The leader saves one as soon as it leads (none existed).
      await eventually("the leader's first snapshot", 60_000, async () => {
        const logs = instances.map((i) =>
          readFileSync(join(sandbox.stateDir, i.instanceId, "agent.log"), "utf8"),
        );
        return logs.some((l) => l.includes('"msg":"saved a snapshot"')) ? true : undefined;
      });

      await putKeys(sandbox, endpoints, 0, 50);
      const good = await agent(sandbox, endpoint, ["snapshot", "save"]);
      expect(good.err).not.toMatch(/error/i);
      expect(good.code).toBe(0);
      const goodKey = JSON.parse(good.out).key as string;

      await putKeys(sandbox, endpoints, 50, 100);
      const newest = await agent(sandbox, endpoint, ["snapshot", "save"]);
      expect(newest.code).toBe(0);
      const newestKey = JSON.parse(newest.out).key as string;

      const list = await agent(sandbox, endpoint, ["snapshot", "list"]);
      expect(list.code).toBe(0);
      const keys = (JSON.parse(list.out) as Array<{ key: string }>).map((r) => r.key);
      expect(keys.length).toBeGreaterThanOrEqual(3);
      expect(keys.slice(0, 2)).toEqual([newestKey, goodKey]);

      // Corrupt the newest: same metadata (its recorded sha256), different bytes.
      const { s3 } = clients(sandbox.world.endpoint);
      const obj = await s3.send(new GetObjectCommand({ Bucket: sandbox.world.backupBucket, Key: newestKey }));
      const bytes = Buffer.from((await obj.Body?.transformToByteArray()) ?? []);
      bytes.fill(0x42, 1000, 3000);
      await s3.send(
        new PutObjectCommand({
          Bucket: sandbox.world.backupBucket,
          Key: newestKey,
          Body: bytes,
          Metadata: obj.Metadata,
        }),
      );

      const dataDir = join(work, "restored");
      const ip = "127.0.39.250";
      const restoreArgs = ["snapshot", "restore", "--restore-data-dir", dataDir, "--name", "restored"];
      const restore = await agent(sandbox, endpoint, [...restoreArgs, "--peer-url", `http://${ip}:2380`]);
      expect(restore.code).toBe(0);
      const result = JSON.parse(restore.out);
      expect(result).toMatchObject({ key: goodKey, corrupt: [newestKey] });
      expect(restore.err).toContain("snapshot is corrupt");

      // A real etcd on the restored data: the first 50 keys, not the 50 only the corrupt one had.
      // Started by hand, in plaintext: what is checked is the data, not the cluster's TLS.
      const plain = new Etcd3Cluster({ callTimeoutMs: 2000 });
      const etcd: ChildProcess = spawn(
        "etcd",
        [
          ...["--name", "restored", "--data-dir", dataDir],
          ...["--listen-client-urls", `http://${ip}:2379`, "--advertise-client-urls", `http://${ip}:2379`],
          ...[
            "--listen-peer-urls",
            `http://${ip}:2380`,
            "--initial-advertise-peer-urls",
            `http://${ip}:2380`,
          ],
        ],
        { stdio: "ignore" },
      );
      try {
        await eventually("the restored member", 30_000, async () => {
          // null: etcd is not listening yet, which is not "has a leader".
          const status = await plain.status(`http://${ip}:2379`);
          return status !== null && status.leaderId !== "0" ? true : undefined;
        });
        const client = new Etcd3({ hosts: [`http://${ip}:2379`] });
        const restored = await client.getAll().prefix("/backup-test/").strings();
        client.close();
        expect(Object.keys(restored)).toHaveLength(50);
        expect(restored["/backup-test/0049"]).toBe("v49");
        expect(restored["/backup-test/0050"]).toBeUndefined();
        const members = await plain.memberList([`http://${ip}:2379`]);
        expect(members.members.map((m) => m.name)).toEqual(["restored"]);
      } finally {
        etcd.kill("SIGKILL");
        await plain.close();
      }

      // A second restore into the same (now full) directory is refused by etcd's tool, loudly.
      const again = await agent(sandbox, endpoint, [...restoreArgs, "--peer-url", `http://${ip}:2380`]);
      expect(again.code).not.toBe(0);
    });
  });
});

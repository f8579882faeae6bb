// Disaster recovery in the sandbox: a minority lost is healed with no restore; every instance
// lost (the ASG replaces them with empty disks) brings the cluster back from the newest snapshot,
// exactly once, under a new cluster token. Writes after the snapshot are lost by definition, so
// this scenario checks the snapshot's keys instead of the continuous writer's.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { Etcd3 } from "etcd3";
import { describe, expect, it } from "vitest";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, type WorldInstance, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { operatorAgent } from "../support/operator-cli.js";
import { withSandbox } from "../support/with-sandbox.js";

const urlsOf = (sandbox: Sandbox, instances: WorldInstance[]) =>
  instances.map((i) => sandbox.clientUrl(i.ip));
function logs(sandbox: Sandbox, ids: string[]): string {
  return ids
    .map((id) => {
      try {
        return readFileSync(join(sandbox.stateDir, id, "agent.log"), "utf8");
      } catch {
        return "";
      }
    })
    .join("\n");
}
async function markerToken(sandbox: Sandbox): Promise<string | undefined> {
  const { r53 } = clients(sandbox.world.endpoint);
  const out = await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: sandbox.world.hostedZoneId }));
  const v = out.ResourceRecordSets?.find((r) => r.Type === "TXT")?.ResourceRecords?.[0]?.Value ?? "";
  return /token=(\S+?)"?(\s|$)/.exec(v)?.[1];
}

describe("disaster recovery from S3", () => {
  it("a minority lost: healed, no restore; every member lost: restored once from the snapshot", async () => {
    await withSandbox({ subnet: "127.0.40.0/24", declaresRestore: true }, async (sandbox) => {
      const urls = (instances: WorldInstance[]) => urlsOf(sandbox, instances);
      const seen = new Set<string>();
      const track = async () => {
        const now = await worldInstances(sandbox.world);
        for (const i of now) seen.add(i.instanceId);
        return now;
      };
      const first = await track();
      const clusterId = (await sandbox.probe.memberList(urls(first))).clusterId;
      const tokenBefore = await markerToken(sandbox);
      // The wait for a new token below passes on any token when this one is unknown.
      expect(tokenBefore, "the marker's token before the scenario").toMatch(/\S/);

      const client = new Etcd3({ hosts: urls(first), ...sandbox.etcd3Options() });
      for (let i = 0; i < 100; i++) await client.put(`/dr/${String(i).padStart(3, "0")}`).value(`v${i}`);
      client.close();

      // A minority: one instance crashes; the cluster heals by a join, not a restore.
      const { ec2 } = clients(sandbox.world.endpoint);
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [first[0]?.instanceId as string] }));
      const healed = await eventually("healed after a minority crash", 150_000, async () => {
        const s = await sandbox.settledInstances(3);
        return s && !s.some((i) => i.instanceId === first[0]?.instanceId) ? s : undefined;
      });
      for (const i of healed) seen.add(i.instanceId);
      expect((await sandbox.probe.memberList(urls(healed))).clusterId).toBe(clusterId);

      // A snapshot that holds the 100 keys and names the current members (the operator's; the
      // leader's own schedule is every 15 minutes).
      const saved = await operatorAgent(sandbox, urls(healed)[0] as string, ["snapshot", "save"]);
      expect(saved.code).toBe(0);
      expect(logs(sandbox, [...seen])).not.toContain("restored the cluster from a snapshot");

      // Every instance lost: the ASG replaces all three with empty disks.
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: healed.map((i) => i.instanceId) }));
      const restored = await eventually("the cluster restored on three new instances", 240_000, async () => {
        const s = await sandbox.settledInstances(3);
        return s && !s.some((i) => seen.has(i.instanceId)) ? s : undefined;
      });
      const all = logs(sandbox, [...seen, ...restored.map((i) => i.instanceId)]);
      expect(all.split('"msg":"restored the cluster from a snapshot').length - 1).toBe(1);
      // etcd 3.4's etcdctl cannot bump the revision: said, not silently skipped.
      expect(all).toContain("the restore tool cannot bump the revision");
      // One restore record under events/, which the infrastructure's EventBridge rule alarms on.
      const { s3 } = clients(sandbox.world.endpoint);
      const bucket = sandbox.world.backupBucket;
      const events = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: "backups/etcd-sandbox/events/" }),
      );
      expect(events.Contents?.map((o) => o.Key)).toHaveLength(1);
      const record = JSON.parse(
        (await (
          await s3.send(new GetObjectCommand({ Bucket: bucket, Key: events.Contents?.[0]?.Key }))
        ).Body?.transformToString()) ?? "{}",
      );
      expect(restored.map((i) => i.instanceId)).toContain(record.instanceId);
      expect(record).toMatchObject({
        event: "restore",
        key: expect.stringMatching(/\.db$/),
        bumpRevision: null,
      });
      const after = new Etcd3({ hosts: urls(restored), ...sandbox.etcd3Options() });
      const keys = await after.getAll().prefix("/dr/").strings();
      after.close();
      expect(Object.keys(keys)).toHaveLength(100);
      expect(keys["/dr/099"]).toBe("v99");
      expect((await sandbox.probe.memberList(urls(restored))).clusterId).not.toBe(clusterId);
      await eventually("the marker active under a new token", 60_000, async () => {
        const t = await markerToken(sandbox);
        return t && t !== tokenBefore ? t : undefined;
      });
    });
  });
});

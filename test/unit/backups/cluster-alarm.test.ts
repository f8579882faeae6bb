// The foreign-cluster alarm record: under the events/ prefix the ForeignClusterFound rule watches,
// one key per leader, cluster and marker (a restarted agent does not alarm twice).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { recordForeignClusterEvent } from "../../../agent/backups/cluster-alarm.js";
import type { BackupStore } from "../../../agent/ports/backups.js";
import type { Ports } from "../../../agent/ports/index.js";
import { nodeConfig } from "../../support/etcd-node.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-alarm-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function store() {
  const objects = new Map<string, Buffer>();
  const backups = {
    async put(key: string, body: Buffer) {
      objects.set(key, body);
    },
  } as unknown as BackupStore;
  return { objects, backups };
}

const event = {
  instanceId: "i-00000002",
  clusterId: "77",
  markerToken: "etcd-i-00000001",
  markerCluster: "42",
  reason: "the marker names cluster 42; cluster 77 answered",
};

describe("recordForeignClusterEvent", () => {
  it("writes one record under events/foreign-cluster- naming both clusters, the same key each time", async () => {
    const { objects, backups } = store();
    const ports = { backups, clock: { now: () => new Date("2026-11-22T12:00:00Z") } } as unknown as Ports;
    const config = nodeConfig(root, { backupBucket: "etcd-backups" });

    const first = await recordForeignClusterEvent(ports, config, "etcd", event);
    const second = await recordForeignClusterEvent(ports, config, "etcd", event);

    expect(first).toBe("backups/etcd/events/foreign-cluster-77-42-i-00000002.json");
    expect(second).toBe(first);
    expect(objects.size).toBe(1);
    expect(JSON.parse(objects.get(first as string)?.toString() ?? "{}")).toMatchObject({
      event: "foreign-cluster",
      clusterId: "77",
      markerCluster: "42",
    });
  });

  it("writes nothing and says so (null) when backups are off", async () => {
    const { objects, backups } = store();
    const ports = { backups, clock: { now: () => new Date() } } as unknown as Ports;

    expect(await recordForeignClusterEvent(ports, nodeConfig(root), "etcd", event)).toBeNull();
    expect(objects.size).toBe(0);
  });
});

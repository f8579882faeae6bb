// The leader's storage actions as the loop applies them: a defragmentation runs beside the loop
// and is seen as running (so the planner holds the next one) until it ends; a failed one still
// counts (the gap holds a retry); the NOSPACE alarm record for the topic.
import { describe, expect, it } from "vitest";
import { SystemClock } from "../../../agent/adapters/system-clock.js";
import {
  applyStorage,
  forgetCompaction,
  initialStorageState,
  recordEtcdAlarm,
  storageObservation,
} from "../../../agent/apply/storage.js";
import { parseConfig } from "../../../agent/config/config.js";
import { silentLogger } from "../../../agent/log.js";
import type { EtcdCluster } from "../../../agent/ports/etcd.js";
import type { Ports } from "../../../agent/ports/index.js";
import { Gate, MapStore } from "../../support/fake-node.js";

const defragment = {
  type: "defragment" as const,
  memberId: "2",
  label: "i-00000002",
  clientUrls: ["http://127.0.1.2:2379"],
  role: "follower" as const,
  reason: "test",
};

function portsWith(etcd: Partial<EtcdCluster>, backups: MapStore | null = null): Ports {
  return { clock: new SystemClock(), etcd: etcd as EtcdCluster, backups } as unknown as Ports;
}

describe("applying the storage plan", () => {
  it("a defragmentation runs beside the loop and shows as running until it ends", async () => {
    const gate = new Gate();
    const calls: string[] = [];
    const ports = portsWith({
      defragment: async (endpoint) => {
        calls.push(endpoint);
        await gate.wait();
      },
    });
    const state = initialStorageState();
    const config = parseConfig({ domain: "etcd.internal", hostedZoneId: "Z1" });

    expect(await applyStorage(ports, state, defragment, [], silentLogger)).toBe(true);
    const during = storageObservation(config, state);
    expect(await applyStorage(ports, state, defragment, [], silentLogger)).toBe(false);
    gate.open();
    await state.running?.done;
    const after = storageObservation(config, state);

    expect(calls).toEqual(["http://127.0.1.2:2379"]);
    expect(during.running?.memberId).toBe("2");
    expect(after.running).toBeNull();
    expect(Object.keys(after.defraggedAt)).toEqual(["2"]);
  });

  it("a member that answers no quick read (busy defragmenting for an earlier leader, or past a timed-out call) holds the next one", async () => {
    // etcd answers Status while it defragments; a read waits on the backend it rewrites.
    const calls: string[] = [];
    const probed: string[] = [];
    const ports = portsWith({
      answersRead: async (endpoint) => {
        probed.push(endpoint);
        return endpoint !== "http://127.0.1.3:2379";
      },
      defragment: async (endpoint) => {
        calls.push(endpoint);
      },
    });
    const state = initialStorageState();
    const voters = ["http://127.0.1.1:2379", "http://127.0.1.2:2379", "http://127.0.1.3:2379"];

    expect(await applyStorage(ports, state, defragment, voters, silentLogger)).toBe(false);
    expect(calls).toEqual([]);
    expect(probed).toEqual(voters);
    expect(state.running).toBeNull();
  });

  it("a failed defragmentation ends the run too and counts as done (the gap holds a retry)", async () => {
    const state = initialStorageState();
    const ports = portsWith({
      defragment: async () => {
        throw new Error("context deadline exceeded");
      },
    });
    await applyStorage(ports, state, defragment, [], silentLogger);
    await state.running?.done;
    expect(state.running).toBeNull();
    expect(Object.keys(state.defraggedAt)).toEqual(["2"]);
  });

  it("compaction is remembered for the NOSPACE episode and forgotten once the alarm is gone", async () => {
    const state = initialStorageState();
    const ports = portsWith({ compact: async () => "1234" });
    await applyStorage(ports, state, { type: "compact", reason: "t" }, ["http://a:2379"], silentLogger);
    const during = state.compactedAt;
    forgetCompaction(state, true);
    const kept = state.compactedAt;
    forgetCompaction(state, false);
    expect(during).not.toBeNull();
    expect(kept).toBe(during);
    expect(state.compactedAt).toBeNull();
  });

  it("records an etcd alarm under events/etcd-alarm-* for the alarm topic", async () => {
    const bucket = new MapStore();
    const config = parseConfig({ domain: "etcd.internal", hostedZoneId: "Z1", backupBucket: "etcd-backups" });
    const key = await recordEtcdAlarm(portsWith({}, bucket), config, "etcd", {
      kind: "NOSPACE",
      clusterId: "42",
      instanceId: "i-00000001",
      reason: "full",
    });
    expect(key).toMatch(/^backups\/etcd\/events\/etcd-alarm-nospace-42-\d{4}-\d{2}-\d{2}T\d{9}Z\.json$/);
    expect(JSON.parse(bucket.objects.get(key ?? "")?.body.toString() ?? "{}")).toMatchObject({
      event: "etcd-alarm",
      kind: "NOSPACE",
      clusterId: "42",
    });
  });
});

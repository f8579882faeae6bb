// etcd's tunable settings through the agent: defaults, checks, and the pass-through's allow-list.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../agent/config/config.js";
import { quotaForVolume } from "../../../agent/config/etcd-settings.js";
import type { ConfigError } from "../../../agent/errors.js";
import { EXIT, exitNameFor } from "../../../agent/exit-codes.js";
import { parseEnvFile, renderEtcdEnv } from "../../../agent/planner/etcd-env.js";

const BASE = { domain: "etcd.internal", hostedZoneId: "Z123" };

function envOf(raw: Record<string, unknown>): Record<string, string> {
  const config = parseConfig({ ...BASE, ...raw });
  return parseEnvFile(
    renderEtcdEnv({
      name: "i-1",
      dataDir: "/var/lib/etcd",
      initialCluster: "i-1=http://127.0.1.1:2380",
      initialClusterState: "new",
      initialClusterToken: "t",
      advertisePeerUrl: "http://127.0.1.1:2380",
      advertiseClientUrl: "http://127.0.1.1:2379",
      listenPeerUrl: "http://127.0.1.1:2380",
      listenClientUrls: ["http://127.0.1.1:2379"],
      tls: null,
      settings: config.etcd,
    }),
  );
}

function refusal(raw: Record<string, unknown>): ConfigError {
  try {
    parseConfig({ ...BASE, ...raw });
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error("parseConfig accepted it");
}

describe("etcd's storage settings in its environment file", () => {
  it("has safe defaults: periodic compaction keeping an hour, a 2 GiB quota, 10000 entries a snapshot", () => {
    expect(envOf({})).toMatchObject({
      ETCD_AUTO_COMPACTION_MODE: "periodic",
      ETCD_AUTO_COMPACTION_RETENTION: "1h",
      ETCD_QUOTA_BACKEND_BYTES: String(2 * 1024 ** 3),
      ETCD_SNAPSHOT_COUNT: "10000",
    });
  });

  it("takes the flags (or ETCD_AGENT_* variables) and writes them", () => {
    expect(
      envOf({
        etcdQuotaBackendBytes: "4194304",
        etcdAutoCompactionRetention: "30m",
        etcdSnapshotCount: "5000",
        etcdExtraEnv: "ETCD_HEARTBEAT_INTERVAL=200;ETCD_CIPHER_SUITES=TLS_A,TLS_B",
      }),
    ).toMatchObject({
      ETCD_QUOTA_BACKEND_BYTES: "4194304",
      ETCD_AUTO_COMPACTION_RETENTION: "30m",
      ETCD_SNAPSHOT_COUNT: "5000",
      ETCD_HEARTBEAT_INTERVAL: "200",
      ETCD_CIPHER_SUITES: "TLS_A,TLS_B",
    });
  });

  it("revision mode keeps 10000 revisions unless told", () => {
    expect(envOf({ etcdAutoCompactionMode: "revision" })).toMatchObject({
      ETCD_AUTO_COMPACTION_MODE: "revision",
      ETCD_AUTO_COMPACTION_RETENTION: "10000",
    });
  });

  it.each([
    [
      { etcdQuotaBackendBytes: "9000000000" },
      /etcd-quota-backend-bytes.*from 1048576 to 8589934592, got "9000000000"/,
    ],
    [{ etcdQuotaBackendBytes: "2GiB" }, /etcd-quota-backend-bytes.*got "2GiB"/],
    [{ etcdAutoCompactionRetention: "10s" }, /from 1m to 720h.*got "10s"/],
    [{ etcdAutoCompactionMode: "hourly" }, /periodic or revision, got "hourly"/],
    [{ etcdSnapshotCount: "1" }, /etcd-snapshot-count.*got "1"/],
    [{ defragFreePercent: "150" }, /defrag-free-percent.*from 0 to 100, got "150"/],
  ])("refuses %o naming the value", (raw, message) => {
    expect(refusal(raw).message).toMatch(message);
  });
});

describe("the ETCD_* pass-through", () => {
  it.each([
    ["ETCD_INITIAL_CLUSTER=a=http://x:2380", /cannot set ETCD_INITIAL_CLUSTER .*decides bootstrap, join/],
    ["ETCD_INITIAL_CLUSTER_STATE=new", /cannot set ETCD_INITIAL_CLUSTER_STATE/],
    ["ETCD_NAME=x", /cannot set ETCD_NAME .*names the member/],
    ["ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379", /cannot set ETCD_LISTEN_CLIENT_URLS .*derives every URL/],
    ["ETCD_PEER_CERT_FILE=/x.crt", /cannot set ETCD_PEER_CERT_FILE .*TLS files/],
    ["ETCD_QUOTA_BACKEND_BYTES=1", /use --etcd-quota-backend-bytes/],
    ["ETCD_FORCE_NEW_CLUSTER=true", /cannot set ETCD_FORCE_NEW_CLUSTER/],
    ["ETCD_UNSAFE_NO_FSYNC=true", /ETCD_UNSAFE_NO_FSYNC .*not on the agent's pass-through list/],
    [
      "ETCD_HEARTBEAT_INTERVAL=fast",
      /ETCD_HEARTBEAT_INTERVAL must be a whole number from 10 to 10000, got "fast"/,
    ],
    ["HEARTBEAT=1", /ETCD_NAME=value pairs.*got "HEARTBEAT=1"/],
    ["ETCD_MAX_WALS=1;ETCD_MAX_WALS=2", /sets ETCD_MAX_WALS twice/],
  ])("refuses %s with the value and the fix, exit INVALID_INPUT", (extra, message) => {
    const error = refusal({ etcdExtraEnv: extra });
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/--etcd-extra-env \(ETCD_AGENT_ETCD_EXTRA_ENV\)/);
    expect(EXIT[exitNameFor(error)]).toBe(EXIT.INVALID_INPUT);
  });
});

describe("the quota a data volume holds", () => {
  it.each([
    [8, 3435134976],
    [20, 8 * 1024 ** 3],
    [100, 8 * 1024 ** 3],
  ])("%i GiB: %i bytes (40%%, at most 8 GiB)", (gib, bytes) => {
    expect(quotaForVolume(gib)).toBe(bytes);
  });
});

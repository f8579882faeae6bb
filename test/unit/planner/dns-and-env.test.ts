import { describe, expect, it } from "vitest";
import { desiredRecords, dnsChanges, isManaged } from "../../../agent/planner/dns-plan.js";
import { initialClusterFor, parseEnvFile, renderEtcdEnv } from "../../../agent/planner/etcd-env.js";
import { decodeMarker, encodeMarker } from "../../../agent/planner/marker.js";

const opts = { domain: "etcd.internal", peerPort: 2380, clientPort: 2379, tls: false };

describe("DNS records", () => {
  it("publishes one SRV target per member on the peer and client ports", () => {
    const records = desiredRecords(
      [
        { name: "i-00000002", ip: "127.0.1.2" },
        { name: "i-00000001", ip: "127.0.1.1" },
      ],
      opts,
    );
    expect(records.slice(0, 2)).toEqual([
      {
        name: "_etcd-server._tcp.etcd.internal",
        type: "SRV",
        ttl: 30,
        values: ["0 0 2380 i-00000001.etcd.internal", "0 0 2380 i-00000002.etcd.internal"],
      },
      {
        name: "_etcd-client._tcp.etcd.internal",
        type: "SRV",
        ttl: 30,
        values: ["0 0 2379 i-00000001.etcd.internal", "0 0 2379 i-00000002.etcd.internal"],
      },
    ]);
  });

  it("with TLS, the SRV records are the -ssl ones and the plain ones left from before are deleted", () => {
    const want = desiredRecords([{ name: "i-00000001", ip: "127.0.1.1" }], { ...opts, tls: true });
    expect(want.filter((r) => r.type === "SRV").map((r) => r.name)).toEqual([
      "_etcd-server-ssl._tcp.etcd.internal",
      "_etcd-client-ssl._tcp.etcd.internal",
    ]);
    const plain = desiredRecords([{ name: "i-00000001", ip: "127.0.1.1" }], opts);
    const changes = dnsChanges(plain, want, "etcd.internal");
    expect(changes.map((c) => `${c.action} ${c.record.name}`).sort()).toEqual([
      "DELETE _etcd-client._tcp.etcd.internal",
      "DELETE _etcd-server._tcp.etcd.internal",
      "UPSERT _etcd-client-ssl._tcp.etcd.internal",
      "UPSERT _etcd-server-ssl._tcp.etcd.internal",
    ]);
  });

  it("treats names with a trailing dot and other case as the same record", () => {
    const want = desiredRecords([{ name: "i-00000001", ip: "127.0.1.1" }], opts);
    const have = want.map((r) => ({ ...r, name: `${r.name.toUpperCase()}.` }));
    expect(dnsChanges(have, want, "etcd.internal")).toEqual([]);
  });

  it.each([
    [{ name: "_etcd-server._tcp.etcd.internal", type: "SRV" as const }, true],
    [{ name: "_etcd-client-ssl._tcp.etcd.internal", type: "SRV" as const }, true],
    [{ name: "i-0123456789abcdef0.etcd.internal", type: "A" as const }, true],
    [{ name: "db.etcd.internal", type: "A" as const }, false],
    [{ name: "_etcd-cluster.etcd.internal", type: "TXT" as const }, false],
  ])("owns %o: %s", (r, owned) => {
    expect(isManaged({ ...r, ttl: 30, values: [] }, "etcd.internal")).toBe(owned);
  });
});

const DEFAULT_SETTINGS = {
  quotaBackendBytes: 2147483648,
  autoCompactionMode: "periodic" as const,
  autoCompactionRetention: "1h",
  snapshotCount: 10000,
  extra: [],
};

describe("etcd environment file", () => {
  it("lists started members and the new member, as etcdctl member add does", () => {
    const members = [
      { id: "1", name: "i-1", peerUrls: ["http://127.0.1.1:2380"], clientUrls: [], isLearner: false },
      { id: "2", name: "", peerUrls: ["http://127.0.1.2:2380"], clientUrls: [], isLearner: true },
      { id: "3", name: "", peerUrls: ["http://127.0.1.3:2380"], clientUrls: [], isLearner: true },
    ];
    expect(initialClusterFor(members, { name: "i-3", peerUrl: "http://127.0.1.3:2380" })).toBe(
      "i-1=http://127.0.1.1:2380,i-3=http://127.0.1.3:2380",
    );
  });

  it("round-trips through parseEnvFile with strict reconfig on", () => {
    const text = renderEtcdEnv({
      name: "i-1",
      dataDir: "/var/lib/etcd",
      initialCluster: "i-1=http://127.0.1.1:2380",
      initialClusterState: "new",
      initialClusterToken: "etcd-i-1",
      advertisePeerUrl: "http://127.0.1.1:2380",
      advertiseClientUrl: "http://127.0.1.1:2379",
      listenPeerUrl: "http://127.0.1.1:2380",
      listenClientUrls: ["http://127.0.1.1:2379"],
      tls: null,
      settings: DEFAULT_SETTINGS,
    });
    expect(parseEnvFile(text)).toMatchObject({
      ETCD_NAME: "i-1",
      ETCD_INITIAL_CLUSTER_STATE: "new",
      ETCD_STRICT_RECONFIG_CHECK: "true",
      ETCD_DATA_DIR: "/var/lib/etcd",
    });
  });

  it("with TLS, etcd requires client certificates of the cluster CA on both ports", () => {
    const env = parseEnvFile(
      renderEtcdEnv({
        name: "i-1",
        dataDir: "/var/lib/etcd",
        initialCluster: "i-1=https://127.0.1.1:2380",
        initialClusterState: "new",
        initialClusterToken: "t",
        advertisePeerUrl: "https://127.0.1.1:2380",
        advertiseClientUrl: "https://127.0.1.1:2379",
        listenPeerUrl: "https://127.0.1.1:2380",
        listenClientUrls: ["https://127.0.1.1:2379"],
        tls: { caFile: "/tls/ca.crt", certFile: "/tls/node.crt", keyFile: "/tls/node.key" },
        settings: DEFAULT_SETTINGS,
      }),
    );
    expect(env).toMatchObject({
      ETCD_CERT_FILE: "/tls/node.crt",
      ETCD_KEY_FILE: "/tls/node.key",
      ETCD_TRUSTED_CA_FILE: "/tls/ca.crt",
      ETCD_CLIENT_CERT_AUTH: "true",
      ETCD_PEER_CERT_FILE: "/tls/node.crt",
      ETCD_PEER_KEY_FILE: "/tls/node.key",
      ETCD_PEER_TRUSTED_CA_FILE: "/tls/ca.crt",
      ETCD_PEER_CLIENT_CERT_AUTH: "true",
    });
  });

  it("with TLS, the peer port takes only certificates naming the cluster domain (#16: not the operators')", () => {
    const env = parseEnvFile(
      renderEtcdEnv({
        name: "i-1",
        dataDir: "/var/lib/etcd",
        initialCluster: "i-1=https://127.0.1.1:2380",
        initialClusterState: "new",
        initialClusterToken: "t",
        advertisePeerUrl: "https://127.0.1.1:2380",
        advertiseClientUrl: "https://127.0.1.1:2379",
        listenPeerUrl: "https://127.0.1.1:2380",
        listenClientUrls: ["https://127.0.1.1:2379"],
        tls: { caFile: "/tls/ca.crt", certFile: "/tls/node.crt", keyFile: "/tls/node.key" },
        peerAllowedHostname: "etcd.internal",
        settings: DEFAULT_SETTINGS,
      }),
    );
    expect(env.ETCD_PEER_CERT_ALLOWED_HOSTNAME).toBe("etcd.internal");
  });

  it("refuses a value systemd's EnvironmentFile would split", () => {
    expect(() =>
      renderEtcdEnv({
        name: "bad name",
        dataDir: "/d",
        initialCluster: "x",
        initialClusterState: "new",
        initialClusterToken: "t",
        advertisePeerUrl: "p",
        advertiseClientUrl: "c",
        listenPeerUrl: "p",
        listenClientUrls: ["c"],
        tls: null,
        settings: DEFAULT_SETTINGS,
      }),
    ).toThrow(/ETCD_NAME would contain.*"bad name"/);
  });
});

describe("cluster marker", () => {
  it("round-trips", () => {
    const raw = encodeMarker({ state: "claimed", token: "etcd-i-1", claimant: "i-1" });
    expect(decodeMarker(raw)).toEqual({ state: "claimed", token: "etcd-i-1", claimant: "i-1", raw });
  });

  it.each([
    '"v=spf1 -all"',
    '"etcd-agent-marker v1 state=odd token=t claimant=i-1"',
    '"etcd-agent-marker v1 state=active"',
  ])("is not fooled by %s", (raw) => {
    expect(decodeMarker(raw)).toBeNull();
  });
});

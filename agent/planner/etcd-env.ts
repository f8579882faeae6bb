// etcd's environment file, rendered as text. Pure: writing it is the local adapter's job.
import type { EtcdSettings } from "../config/etcd-settings.js";
import type { Member } from "./observation.js";

export interface EtcdEnv {
  name: string;
  dataDir: string;
  initialCluster: string;
  initialClusterState: "new" | "existing";
  initialClusterToken: string;
  advertisePeerUrl: string;
  advertiseClientUrl: string;
  listenPeerUrl: string;
  listenClientUrls: string[];
  /** TLS for clients and peers, each side presenting a certificate of the cluster CA; null: plaintext. */
  tls: { caFile: string; certFile: string; keyFile: string } | null;
  /**
   * With TLS: the name a peer's certificate must carry to join the peer port (the cluster domain,
   * which every node's certificate names and the operators' does not): not any certificate of the CA.
   */
  peerAllowedHostname?: string;
  /** Storage (quota, compaction, snapshots) and the allow-listed pass-through, validated by the config. */
  settings: EtcdSettings;
}

/**
 * ETCD_INITIAL_CLUSTER as `etcdctl member add` prints it: every started member by name, plus the
 * new member under its own name. Members that were added but never started have no name and
 * are left out, as etcd itself does.
 */
export function initialClusterFor(members: Member[], self: { name: string; peerUrl: string }): string {
  const entries: string[] = [];
  for (const m of members) {
    const isSelf = m.name === self.name || m.peerUrls.includes(self.peerUrl);
    if (isSelf) continue;
    if (m.name === "") continue;
    for (const url of m.peerUrls) entries.push(`${m.name}=${url}`);
  }
  entries.push(`${self.name}=${self.peerUrl}`);
  return entries.join(",");
}

export function renderEtcdEnv(env: EtcdEnv): string {
  const lines: Array<[string, string]> = [
    ["ETCD_NAME", env.name],
    ["ETCD_DATA_DIR", env.dataDir],
    ["ETCD_INITIAL_CLUSTER", env.initialCluster],
    ["ETCD_INITIAL_CLUSTER_STATE", env.initialClusterState],
    ["ETCD_INITIAL_CLUSTER_TOKEN", env.initialClusterToken],
    ["ETCD_INITIAL_ADVERTISE_PEER_URLS", env.advertisePeerUrl],
    ["ETCD_ADVERTISE_CLIENT_URLS", env.advertiseClientUrl],
    ["ETCD_LISTEN_PEER_URLS", env.listenPeerUrl],
    ["ETCD_LISTEN_CLIENT_URLS", env.listenClientUrls.join(",")],
    ["ETCD_STRICT_RECONFIG_CHECK", "true"],
  ];
  if (env.tls) {
    // etcd reads the files again on every TLS handshake: a renewed certificate needs no restart.
    lines.push(
      ["ETCD_CERT_FILE", env.tls.certFile],
      ["ETCD_KEY_FILE", env.tls.keyFile],
      ["ETCD_TRUSTED_CA_FILE", env.tls.caFile],
      ["ETCD_CLIENT_CERT_AUTH", "true"],
      ["ETCD_PEER_CERT_FILE", env.tls.certFile],
      ["ETCD_PEER_KEY_FILE", env.tls.keyFile],
      ["ETCD_PEER_TRUSTED_CA_FILE", env.tls.caFile],
      ["ETCD_PEER_CLIENT_CERT_AUTH", "true"],
    );
    if (env.peerAllowedHostname) lines.push(["ETCD_PEER_CERT_ALLOWED_HOSTNAME", env.peerAllowedHostname]);
  }
  lines.push(
    ["ETCD_QUOTA_BACKEND_BYTES", String(env.settings.quotaBackendBytes)],
    ["ETCD_AUTO_COMPACTION_MODE", env.settings.autoCompactionMode],
    ["ETCD_AUTO_COMPACTION_RETENTION", env.settings.autoCompactionRetention],
    ["ETCD_SNAPSHOT_COUNT", String(env.settings.snapshotCount)],
  );
  // Never one the agent writes itself: the config refuses those, and this keeps a second line out.
  const written = new Set(lines.map(([k]) => k));
  for (const [key, value] of env.settings.extra) {
    if (written.has(key)) throw new Error(`${key} is written by the agent and cannot be passed through`);
    lines.push([key, value]);
  }
  for (const [key, value] of lines) {
    if (/[\s"'\\$`]/.test(value)) {
      throw new Error(
        `${key} would contain a character systemd's EnvironmentFile cannot carry: ${JSON.stringify(value)}`,
      );
    }
  }
  return `# Written by etcd-agent boot. Do not edit: it is rewritten on every boot.\n${lines
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;
}

/** Parses KEY=VALUE lines (comments and blanks skipped), for reading back a written file. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    if (eq <= 0) continue;
    out[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return out;
}

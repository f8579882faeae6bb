// The cluster marker: a TXT record outside etcd that says a cluster was claimed or exists. Pure.
import type { ClusterMarker, DnsRecord } from "./observation.js";

const PREFIX = "etcd-agent-marker v1";

export function encodeMarker(m: Omit<ClusterMarker, "raw">): string {
  return `"${PREFIX} state=${m.state} token=${m.token} claimant=${m.claimant}"`;
}

/** Parses a marker TXT value (as Route53 stores it, quoted); null when it is not a marker. */
export function decodeMarker(raw: string): ClusterMarker | null {
  const text = raw.replace(/^"|"$/g, "");
  if (!text.startsWith(PREFIX)) return null;
  const fields = new Map(
    text
      .slice(PREFIX.length)
      .trim()
      .split(/\s+/)
      .map((kv) => {
        const eq = kv.indexOf("=");
        return [kv.slice(0, eq), kv.slice(eq + 1)] as const;
      }),
  );
  const state = fields.get("state");
  const token = fields.get("token");
  const claimant = fields.get("claimant");
  if ((state !== "claimed" && state !== "active") || !token || !claimant) return null;
  return { state, token, claimant, raw };
}

export function markerRecord(name: string, m: Omit<ClusterMarker, "raw">): DnsRecord {
  return { name, type: "TXT", ttl: 60, values: [encodeMarker(m)] };
}

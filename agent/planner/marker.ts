// The cluster marker: a TXT record outside etcd that says a cluster was claimed, is being restored,
// or exists. Pure.
//
// States:
// - claimed:   an instance won the bootstrap and may be starting a one-member cluster;
// - restoring: an instance took the marker from a lost cluster and is restoring a snapshot into a new
//              one; it stays so until the restored member serves (a takeover restores again, never
//              bootstraps an empty cluster);
// - active:    the cluster exists; only a restore can replace it.
// `cluster` is etcd's cluster ID, once known (written with `active`): joiners join only that cluster.
import type { ClusterMarker, DnsRecord } from "./observation.js";

const PREFIX = "etcd-agent-marker v1";

/** Route53 (like DNS) takes TXT character-strings of at most 255 characters. */
export const TXT_STRING_MAX = 255;

export type MarkerFields = Omit<ClusterMarker, "raw">;

export class MarkerTooLongError extends Error {
  override name = "MarkerTooLongError";
}

export function encodeMarker(m: MarkerFields): string {
  const cluster = m.cluster ? ` cluster=${m.cluster}` : "";
  const text = `${PREFIX} state=${m.state} token=${m.token} claimant=${m.claimant}${cluster}`;
  if (text.length > TXT_STRING_MAX) {
    throw new MarkerTooLongError(
      `the cluster marker would be ${text.length} characters, over the ${TXT_STRING_MAX} a TXT string may hold (token ${m.token}); use a shorter ASG name`,
    );
  }
  return `"${text}"`;
}

const STATES = new Set(["claimed", "active", "restoring"]);

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
  const cluster = fields.get("cluster");
  if (state === undefined || !STATES.has(state) || !token || !claimant) return null;
  return {
    state: state as ClusterMarker["state"],
    token,
    claimant,
    ...(cluster ? { cluster } : {}),
    raw,
  };
}

export function markerRecord(name: string, m: MarkerFields): DnsRecord {
  return { name, type: "TXT", ttl: 60, values: [encodeMarker(m)] };
}

/**
 * The longest ASG name whose markers fit one TXT string: the token embeds the ASG name and an
 * instance ID (`<asg>-<instance>`), and the longest marker is `restoring` with a 17-digit instance
 * ID as claimant and a 20-digit cluster ID.
 */
export const MAX_ASG_NAME_LENGTH = (() => {
  const id = "i-0123456789abcdef0";
  const fixed = `${PREFIX} state=restoring token=-${id} claimant=${id} cluster=18446744073709551615`;
  return TXT_STRING_MAX - fixed.length;
})();

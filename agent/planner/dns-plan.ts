// The DNS records that should exist for a set of voting members, and the changes that get there. Pure.
import { looksLikeInstanceId } from "./membership.js";
import type { DnsRecord } from "./observation.js";

export const DNS_TTL_SECONDS = 30;

/**
 * A member is dropped from DNS after it has been unhealthy this long (and seen so at least twice):
 * one Status timeout never drops it, a dead member stays published for at most this plus a cycle.
 * Equal to the TTL: a resolver may serve a dropped record that long anyway.
 */
export const DNS_SETTLE_SECONDS = DNS_TTL_SECONDS;

/**
 * At most this many record changes a minute, whatever happens: Route53's limit is per account.
 * A settled cluster writes none; a replacement writes two (drop the dead member, add the new one).
 */
export const DNS_WRITES_PER_MINUTE = 4;

export interface DnsMember {
  name: string;
  ip: string;
}

export interface DnsChange {
  action: "UPSERT" | "DELETE";
  record: DnsRecord;
}

export function normalizeName(name: string): string {
  return name.replace(/\.$/, "").toLowerCase();
}

/** etcd's discovery names: `_etcd-server-ssl._tcp` and `_etcd-client-ssl._tcp` with TLS. */
export function serverSrvName(domain: string, tls = false): string {
  return `_etcd-server${tls ? "-ssl" : ""}._tcp.${normalizeName(domain)}`;
}

export function clientSrvName(domain: string, tls = false): string {
  return `_etcd-client${tls ? "-ssl" : ""}._tcp.${normalizeName(domain)}`;
}

export function markerName(domain: string): string {
  return `_etcd-cluster.${normalizeName(domain)}`;
}

export function memberHostName(name: string, domain: string): string {
  return `${name.toLowerCase()}.${normalizeName(domain)}`;
}

/**
 * The records for these members. Only members named after an instance are published: those are the
 * A records `isManaged` recognises, so what is written is what is read back as this agent's (a
 * member called anything else would be written again every cycle, and might overwrite a record the
 * agent does not own).
 */
export function desiredRecords(
  members: DnsMember[],
  opts: { domain: string; peerPort: number; clientPort: number; tls: boolean },
): DnsRecord[] {
  const published = members.filter((m) => looksLikeInstanceId(m.name));
  if (published.length === 0) return [];
  const sorted = [...published].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const srv = (port: number) => sorted.map((m) => `0 0 ${port} ${memberHostName(m.name, opts.domain)}`);
  return [
    {
      name: serverSrvName(opts.domain, opts.tls),
      type: "SRV",
      ttl: DNS_TTL_SECONDS,
      values: srv(opts.peerPort),
    },
    {
      name: clientSrvName(opts.domain, opts.tls),
      type: "SRV",
      ttl: DNS_TTL_SECONDS,
      values: srv(opts.clientPort),
    },
    ...sorted.map(
      (m): DnsRecord => ({
        name: memberHostName(m.name, opts.domain),
        type: "A",
        ttl: DNS_TTL_SECONDS,
        values: [m.ip],
      }),
    ),
  ];
}

/**
 * Records this agent owns in the zone: the SRV records (both kinds: a cluster moved to TLS drops its
 * plain ones, and back) and A records named after instances.
 */
export function isManaged(record: DnsRecord, domain: string): boolean {
  const name = normalizeName(record.name);
  if (record.type === "SRV")
    return [false, true].some(
      (tls) => name === serverSrvName(domain, tls) || name === clientSrvName(domain, tls),
    );
  if (record.type === "A") {
    const suffix = `.${normalizeName(domain)}`;
    return name.endsWith(suffix) && looksLikeInstanceId(name.slice(0, -suffix.length));
  }
  return false;
}

function sameRecord(a: DnsRecord, b: DnsRecord): boolean {
  if (a.ttl !== b.ttl) return false;
  const va = [...a.values].sort();
  const vb = [...b.values].sort();
  return va.length === vb.length && va.every((v, i) => v === vb[i]);
}

/** The changes that make the managed records equal to `desired`; empty when they already are. */
export function dnsChanges(current: DnsRecord[], desired: DnsRecord[], domain: string): DnsChange[] {
  const key = (r: DnsRecord) => `${r.type} ${normalizeName(r.name)}`;
  const managed = new Map(current.filter((r) => isManaged(r, domain)).map((r) => [key(r), r]));
  const changes: DnsChange[] = [];
  for (const want of desired) {
    const have = managed.get(key(want));
    if (have === undefined || !sameRecord(have, want)) changes.push({ action: "UPSERT", record: want });
    managed.delete(key(want));
  }
  for (const stale of managed.values()) changes.push({ action: "DELETE", record: stale });
  return changes;
}

/** The member's A record exists, or an SRV record points at its host name. */
export function isPublished(name: string, records: DnsRecord[], domain: string): boolean {
  const host = memberHostName(name, domain);
  return records.some(
    (r) =>
      isManaged(r, domain) &&
      ((r.type === "A" && normalizeName(r.name) === host) ||
        (r.type === "SRV" && r.values.some((v) => normalizeName(v.split(" ")[3] ?? "") === host))),
  );
}

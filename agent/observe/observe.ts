// Observation: read the outside systems through the ports and turn the answers into the plain
// data the planners take. A read that fails becomes "unknown" (null), never an empty list.
import { EtcdUnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { markerName, normalizeName } from "../planner/dns-plan.js";
import { decodeMarker } from "../planner/marker.js";
import { clientUrlFor, instanceOfMember, urlHost } from "../planner/membership.js";
import type { AsgView, ClusterView, DnsRecord, MarkerRead, MemberView } from "../planner/observation.js";
import type { AutoScaling } from "../ports/autoscaling.js";
import type { Dns } from "../ports/dns.js";
import type { Ec2 } from "../ports/ec2.js";
import type { EtcdCluster } from "../ports/etcd.js";

export async function observeAsg(autoscaling: AutoScaling, ec2: Ec2, name: string): Promise<AsgView> {
  const group = await autoscaling.describeGroup(name);
  const ids = group.instances.map((i) => i.instanceId);
  const facts = ids.length > 0 ? await ec2.describeInstances(ids) : [];
  const byId = new Map(facts.map((f) => [f.instanceId, f]));
  return {
    name: group.name,
    desiredCapacity: group.desiredCapacity,
    instances: group.instances.map((i) => ({
      ...i,
      privateIp: byId.get(i.instanceId)?.privateIp ?? null,
      launchTime: byId.get(i.instanceId)?.launchTime ?? null,
    })),
  };
}

/** Like observeAsg, but a failure is logged and becomes null. */
export async function tryObserveAsg(
  autoscaling: AutoScaling,
  ec2: Ec2,
  name: string,
  log: Logger,
): Promise<AsgView | null> {
  try {
    return await observeAsg(autoscaling, ec2, name);
  } catch (error) {
    log.warn("could not read the Auto Scaling group", { reason: (error as Error).message });
    return null;
  }
}

/** Client URLs to ask: every ASG instance with an address, plus any extra (such as this node). */
export function candidateEndpoints(
  asg: AsgView | null,
  clientPort: number,
  extra: string[] = [],
  scheme: "http" | "https" = "http",
): string[] {
  const urls = new Set(extra);
  for (const i of asg?.instances ?? []) {
    if (i.privateIp !== null) urls.add(clientUrlFor(i.privateIp, clientPort, scheme));
  }
  return [...urls];
}

/**
 * The member list from any endpoint that answers, and each member's own Status. null when no
 * endpoint answers. The leader is the one the answering voters agree on (most votes).
 */
export async function observeCluster(
  etcd: EtcdCluster,
  endpoints: string[],
  asg: AsgView | null,
  clientPort: number,
  scheme: "http" | "https" = "http",
): Promise<ClusterView | null> {
  let list: Awaited<ReturnType<EtcdCluster["memberList"]>>;
  try {
    list = await etcd.memberList(endpoints);
  } catch (error) {
    if (error instanceof EtcdUnavailableError) return null;
    throw error;
  }
  const members: MemberView[] = await Promise.all(
    list.members.map(async (m) => {
      const url =
        m.clientUrls[0] ??
        (() => {
          const host = m.peerUrls.map(urlHost).find((h) => h !== null);
          return host ? clientUrlFor(host, clientPort, scheme) : null;
        })();
      const status = m.name !== "" && url ? await etcd.status(url) : null;
      // A status that answers for another member ID (address reused) is not this member's.
      const own = status !== null && status.memberId === m.id ? status : null;
      return { ...m, status: own, instanceId: asg ? (instanceOfMember(m, asg)?.instanceId ?? null) : null };
    }),
  );
  const votes = new Map<string, number>();
  for (const m of members) {
    const leader = m.status?.leaderId;
    if (leader && leader !== "0") votes.set(leader, (votes.get(leader) ?? 0) + 1);
  }
  const leaderId = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
  return { answeredBy: list.memberId, clusterId: list.clusterId, members, leaderId };
}

export function markerFrom(records: DnsRecord[], domain: string): MarkerRead {
  const name = markerName(domain);
  const txt = records.find((r) => r.type === "TXT" && normalizeName(r.name) === name);
  if (txt === undefined) return { kind: "absent" };
  const marker = txt.values.map(decodeMarker).find((m) => m !== null);
  if (marker === undefined) {
    return {
      kind: "unknown",
      error: `${name} holds a TXT record that is not an etcd-agent marker: ${txt.values.join(" ")}`,
    };
  }
  return { kind: "present", marker };
}

/** The zone's records and the marker among them, or both unknown when the zone cannot be read. */
export async function observeDns(
  dns: Dns,
  domain: string,
  log: Logger,
): Promise<{ records: DnsRecord[] | null; marker: MarkerRead }> {
  try {
    const records = await dns.listRecords(domain);
    return { records, marker: markerFrom(records, domain) };
  } catch (error) {
    const reason = (error as Error).message;
    log.warn("could not read the hosted zone", { reason });
    return { records: null, marker: { kind: "unknown", error: reason } };
  }
}

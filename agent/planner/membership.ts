// Pure helpers over the member list: who is who, who votes, who is healthy.
import type { AsgInstance, AsgView, Member, MemberView } from "./observation.js";
import type { VoterCounts } from "./quorum.js";

/** The host part of a URL such as http://127.0.1.4:2380, or null when it is not a URL. */
export function urlHost(url: string): string | null {
  try {
    return new URL(url).hostname;
  } catch {
    return null;
  }
}

export function peerUrlFor(ip: string, peerPort: number, scheme = "http"): string {
  return `${scheme}://${ip}:${peerPort}`;
}

export function clientUrlFor(ip: string, clientPort: number, scheme = "http"): string {
  return `${scheme}://${ip}:${clientPort}`;
}

/** A member is started once etcd has filled in its name. */
export function isStarted(member: Member): boolean {
  return member.name !== "";
}

/**
 * Healthy: the member answered this agent's Status call and follows a leader. etcd's alarms
 * (NOSPACE, CORRUPT) are not part of it: an alarm is cluster-wide, in every member's status, so it
 * says nothing about one member (see `alarmsOf`; the leader holds destructive actions on CORRUPT).
 */
export function isHealthy(member: MemberView): boolean {
  return member.status !== null && member.status.leaderId !== "0";
}

/**
 * The alarms etcd reports, by kind (NOSPACE, CORRUPT), sorted, once each. etcd 3.4 puts each alarm
 * into Status.errors as `memberID:<id> alarm:<kind> ` beside "etcdserver: no leader", which is not one.
 */
export function alarmsOf(members: MemberView[]): string[] {
  const kinds = new Set<string>();
  for (const m of members) {
    for (const e of m.status?.errors ?? []) {
      const kind = /alarm:\s*([A-Za-z_]+)/.exec(e)?.[1] ?? (/no leader/.test(e) ? null : e.trim());
      if (kind) kinds.add(kind.toUpperCase());
    }
  }
  return [...kinds].sort();
}

export function voterCounts(members: MemberView[]): VoterCounts {
  const voters = members.filter((m) => !m.isLearner);
  return { voters: voters.length, healthyVoters: voters.filter(isHealthy).length };
}

/** Instance IDs look like i-0123456789abcdef0 (8 or 17 hex digits). */
export function looksLikeInstanceId(name: string): boolean {
  return /^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(name);
}

/**
 * The ASG instance a member belongs to: by name (the agent names members after their instance),
 * else, for a member not (yet) named after an instance, by the host of its peer URL. null when
 * neither matches.
 */
export function instanceOfMember(member: Member, asg: AsgView): AsgInstance | null {
  if (member.name !== "") {
    const byName = asg.instances.find((i) => i.instanceId === member.name);
    // A member named after an instance is that instance's, even when a new instance has been
    // given the same address since: the address says nothing more.
    if (byName || looksLikeInstanceId(member.name)) return byName ?? null;
  }
  const hosts = new Set(member.peerUrls.map(urlHost).filter((h): h is string => h !== null));
  return asg.instances.find((i) => i.privateIp !== null && hosts.has(i.privateIp)) ?? null;
}

/** The member that is this instance: by name, else by this instance's peer address. */
export function findSelfMember<M extends Member>(members: M[], instanceId: string, ip: string): M | null {
  const byName = members.find((m) => m.name === instanceId);
  if (byName) return byName;
  return members.find((m) => m.peerUrls.some((u) => urlHost(u) === ip)) ?? null;
}

const GONE_STATES = new Set([
  "Terminating",
  "Terminating:Wait",
  "Terminating:Proceed",
  "Terminated",
  "Detaching",
  "Detached",
  "Warmed:Terminating",
  "Warmed:Terminating:Wait",
  "Warmed:Terminating:Proceed",
  "Warmed:Terminated",
]);

/** The instance is leaving or has left the group. */
export function isLeaving(instance: AsgInstance): boolean {
  return GONE_STATES.has(instance.lifecycleState);
}

const BOOTSTRAP_STATES = new Set(["Pending", "Pending:Wait", "Pending:Proceed", "InService"]);

/** May take part in a bootstrap: launching or in service, healthy, with a known address and launch time. */
export function isEligibleForBootstrap(instance: AsgInstance): boolean {
  return (
    BOOTSTRAP_STATES.has(instance.lifecycleState) &&
    instance.healthStatus === "Healthy" &&
    instance.privateIp !== null &&
    instance.launchTime !== null
  );
}

/**
 * The one instance that may bootstrap: the earliest launch time among eligible instances,
 * ties broken by instance ID. Every node that sees the same ASG computes the same answer, and a
 * later launch can never become earlier, so a new instance never displaces a bootstrapper.
 */
export function designatedBootstrapper(
  asg: AsgView,
  exclude: ReadonlySet<string> = new Set(),
): AsgInstance | null {
  const eligible = asg.instances.filter((i) => isEligibleForBootstrap(i) && !exclude.has(i.instanceId));
  eligible.sort((a, b) => {
    const ta = Date.parse(a.launchTime ?? "");
    const tb = Date.parse(b.launchTime ?? "");
    if (ta !== tb) return ta - tb;
    return a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0;
  });
  return eligible[0] ?? null;
}

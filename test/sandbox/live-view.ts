// `npm start`'s live view, as text: redrawn in place on a terminal (plain blocks of lines when the
// output is not one), the members with their db size against the quota, the newest backup's age,
// and the last actions and holds from the agents' logs as a short event list. The figures come
// from each node's metrics endpoint (the agent's Prometheus text). Pure, but for readTail.
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join } from "node:path";

/** Clears the terminal and puts the cursor home: the next frame replaces the last one. */
export const REDRAW = "\x1b[H\x1b[2J";

export function frame(lines: string[], tty: boolean): string {
  return tty ? `${REDRAW}${lines.join("\n")}\n` : `${lines.join("\n")}\n\n`;
}

/** Prometheus text as `name{labels}` → value (comments and blank lines skipped). */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    if (at > 0) out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

export function bytes(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return "?";
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function age(seconds: number | undefined): string {
  if (seconds === undefined || Number.isNaN(seconds)) return "unknown";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

/** The storage figures of one member, from any node's metrics that name it. */
export function storageOf(member: string, metrics: Array<Map<string, number>>): string {
  const find = (name: string) => {
    for (const m of metrics) {
      const v = m.get(`${name}{member="${member}"}`);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const quota = metrics.map((m) => m.get("etcd_agent_quota_bytes")).find((v) => v !== undefined);
  const db = find("etcd_agent_db_size_bytes");
  const inUse = find("etcd_agent_db_size_in_use_bytes");
  const share = db !== undefined && quota ? ` (${((db / quota) * 100).toFixed(1)}% of ${bytes(quota)})` : "";
  return db === undefined ? "db ?" : `db ${bytes(db)}, in use ${bytes(inUse)}${share}`;
}

/** The newest backup's age, from the leader's metrics. */
export function backupLine(metrics: Array<Map<string, number>>): string {
  const leader = metrics.find((m) => m.get("etcd_agent_is_leader") === 1);
  return `backups: newest snapshot ${age(leader?.get("etcd_agent_backup_age_seconds"))}`;
}

export interface AgentEvent {
  ts: string;
  instanceId: string;
  text: string;
}

/** Routine lines that are not events: heartbeats, the metrics' own, debug. */
const ROUTINE = new Set(["heartbeat-lifecycle", "put-metric-data", "metrics-listen", "metrics"]);

/**
 * The agent's actions and holds from its JSON log lines: each `action` taken (or failed) and each
 * hold when it first appears (the agent logs a hold at info when new, at debug while it lasts).
 */
export function eventsOf(instanceId: string, lines: string[]): AgentEvent[] {
  const out: AgentEvent[] = [];
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (e.level === "debug" || typeof e.ts !== "string") continue;
    const action = typeof e.action === "string" ? e.action : null;
    const rule = typeof e.rule === "string" ? e.rule : null;
    if ((action === null && rule === null) || (action !== null && ROUTINE.has(action))) continue;
    // Followers hold everything but their own steps under leader-only: routine, not an event.
    if (rule === "leader-only") continue;
    const target = [e.target_instance_id, e.member_id].find((v) => typeof v === "string");
    const what = rule !== null && action === null ? `held: ${rule}` : `${e.msg}`;
    out.push({
      ts: e.ts,
      instanceId,
      text: `${what}${target ? ` [${target}]` : ""}${e.reason ? ` (${String(e.reason).slice(0, 90)})` : ""}`,
    });
  }
  return out;
}

/** The newest `n` events of every node, oldest first, one line each. */
export function eventLines(events: AgentEvent[], n: number): string[] {
  return [...events]
    .sort((a, b) => a.ts.localeCompare(b.ts))
    .slice(-n)
    .map((e) => `  ${e.ts.slice(11, 19)} ${e.instanceId}  ${e.text}`);
}

/** The last `maxBytes` of a file as lines (the first, maybe partial, dropped); [] when absent. */
export function readTail(file: string, maxBytes = 64 * 1024): string[] {
  if (!existsSync(file)) return [];
  const size = statSync(file).size;
  const start = Math.max(0, size - maxBytes);
  const buf = Buffer.alloc(size - start);
  const fd = openSync(file, "r");
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString("utf8").split("\n");
  return start > 0 ? lines.slice(1) : lines;
}

/** Every node's agent log under the sandbox's state dir, terminated instances' included. */
export function agentEvents(stateDir: string): AgentEvent[] {
  if (!existsSync(stateDir)) return [];
  return readdirSync(stateDir)
    .filter((d) => /^i-[0-9a-f]+$/.test(d))
    .flatMap((d) => eventsOf(d, readTail(join(stateDir, d, "agent.log"))));
}

/**
 * What to try in another terminal. The region is given as AWS_DEFAULT_REGION, which the AWS CLI v1
 * and v2 and etcd-agent all read (v1 ignores AWS_REGION), and the endpoint as --endpoint-url.
 */
export function tryHint(view: {
  awsEndpoint: string;
  region: string;
  asgName: string;
  domain: string;
  hostedZoneId: string;
  firstInstanceId: string | undefined;
  tls: { ca: string; cert: string; key: string } | null;
}): string {
  return (
    `\nThe cluster is up. Try, in another terminal:\n` +
    `  export AWS_ENDPOINT_URL=${view.awsEndpoint} AWS_DEFAULT_REGION=${view.region} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x\n` +
    `  aws --endpoint-url $AWS_ENDPOINT_URL ec2 terminate-instances --instance-ids ${view.firstInstanceId}\n` +
    `  aws --endpoint-url $AWS_ENDPOINT_URL cloudwatch list-metrics --namespace EtcdAgent\n` +
    `  npx etcd-agent status --asg-name ${view.asgName} --domain ${view.domain} --hosted-zone-id ${view.hostedZoneId}\n` +
    (view.tls
      ? `    with the operators' certificate: ETCD_AGENT_TLS_CA_FILE=${view.tls.ca} ETCD_AGENT_TLS_CERT_FILE=${view.tls.cert} ETCD_AGENT_TLS_KEY_FILE=${view.tls.key}\n`
      : "") +
    `Ctrl-C stops everything.\n\n`
  );
}

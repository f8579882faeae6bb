// The one place where the sandbox fills moto's gaps, as a proxy between the nodes and moto.
// Agents point AWS_ENDPOINT_URL here; everything passes through to moto except:
//
// - Route53 ChangeResourceRecordSets: AWS validates a change batch as a transaction, a CREATE of a
//   record that exists fails and a DELETE must match the stored record exactly (InvalidChangeBatch).
//   moto lets a CREATE overwrite. The proxy checks each batch against moto's records first, one
//   batch at a time, and answers InvalidChangeBatch as Route53 does. The agent's bootstrap claim
//   relies on this (docs/architecture.md).
//
// - Fault injection, for tests: fail a share of the calls to an API with throttling or a 5xx,
//   deterministically (every 1/share-th call), in each service's own error protocol: EC2's XML
//   (RequestLimitExceeded 503), the query services' ErrorResponse (Throttling 400), S3's <Error>
//   (SlowDown 503), and the JSON services' `__type` with `x-amzn-ErrorType` (Secrets Manager:
//   ThrottlingException 400), so the SDK retries what it would retry on AWS.
//
// - The group's terminations and lifecycle hooks: moto has no Pending:Wait or Terminating:Wait,
//   answers CompleteLifecycleAction and RecordLifecycleActionHeartbeat with HTTP 500, and removes
//   instances at once. Every termination the group starts goes through the proxy, which chooses
//   and holds it as AWS does:
//   - TerminateInstanceInAutoScalingGroup;
//   - scale-in (SetDesiredCapacity, UpdateAutoScalingGroup lowering DesiredCapacity): the proxy
//     chooses the victims with AWS's default termination policy (the availability zone with the
//     most instances first, then the oldest launch template version, then the instance closest to
//     its next billing hour, then at random). Approximation: an instance's billing hour starts when
//     the proxy first saw it (moto's LaunchTime has no sub-second precision and the hypervisor sees
//     an instance within a second of its launch); instances launched with a launch configuration
//     do not occur in the sandbox;
//   - SetInstanceHealth Unhealthy (a health replacement), unless the instance is inside the
//     group's health check grace period and the call respects it (ShouldRespectGracePeriod,
//     true by default): AWS ignores such a call, and so does the proxy (`ignoredHealth`). The
//     replacement order is an option: terminate-and-launch (AWS's default: the replacement
//     launches while the old instance terminates, so it waits in Terminating:Wait beside the new
//     one) or launch-before-terminate (an instance maintenance policy with a minimum healthy
//     percentage of 100: the old instance stays InService, Unhealthy, until the new one is
//     InService, then terminates);
//   - a launch ABANDONed (by the agent or by the launch hook's timeout).
//   With a terminate hook the instance waits in Terminating:Wait (its IMDS target lifecycle state
//   becomes Terminated); CompleteLifecycleAction (either result) moves it to Terminating:Proceed
//   and then terminates it in moto. With a launch hook a new instance (reported by the hypervisor)
//   waits in Pending:Wait; CONTINUE moves it to Pending:Proceed and then InService, ABANDON
//   terminates it (through the terminate hook). A heartbeat extends a wait by the hook's heartbeat
//   timeout, never past its global timeout (AWS: 48 h or 100 x the heartbeat timeout, whichever
//   is smaller); a wait that times out takes the hook's default result. The proxy rewrites
//   LifecycleState and DesiredCapacity in DescribeAutoScalingGroups and
//   DescribeAutoScalingInstances answers to match.
//   `timeScale` makes every AWS duration (heartbeat and global timeouts, the grace period, the
//   Proceed states) that many times shorter, so a test can reach them; `globalTimeoutSeconds`
//   replaces the global timeout alone (test-only: the agents cannot see either), so a scenario
//   can reach the cap while the agents heartbeat at their own pace against the hook's heartbeat
//   timeout (100 x that timeout would otherwise always be far away).
//
// - EC2 RebootInstances: moto only answers; the proxy tells the hypervisor, which kills the
//   instance's processes and boots it again from the same disk.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

interface RecordChange {
  action: string;
  name: string;
  type: string;
  ttl: string | null;
  values: string[];
}

const norm = (name: string) => name.replace(/\.$/, "").toLowerCase();

function tag(xml: string, name: string): string | null {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? (m[1] as string) : null;
}

function all(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, "g"))].map((m) => m[1] as string);
}

function unescapeXml(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

function parseChanges(xml: string): RecordChange[] {
  return all(xml, "Change").map((c) => ({
    action: tag(c, "Action") ?? "",
    name: norm(unescapeXml(tag(c, "Name") ?? "")),
    type: tag(c, "Type") ?? "",
    ttl: tag(c, "TTL"),
    values: all(c, "Value").map(unescapeXml).sort(),
  }));
}

function parseRecordSets(xml: string): RecordChange[] {
  return all(xml, "ResourceRecordSet").map((r) => ({
    action: "",
    name: norm(unescapeXml(tag(r, "Name") ?? "")),
    type: tag(r, "Type") ?? "",
    ttl: tag(r, "TTL"),
    values: all(r, "Value").map(unescapeXml).sort(),
  }));
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function invalidChangeBatch(res: ServerResponse, message: string): void {
  res.writeHead(400, { "content-type": "text/xml" });
  res.end(
    `<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>${message
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")}</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>`,
  );
}

/** "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances", "route53:ChangeResourceRecordSets", "secretsmanager:GetSecretValue", or "*". */
export interface FaultRule {
  api: string;
  /** 0..1: the share of matching calls that fail. */
  share: number;
  kind: "throttle" | "5xx";
}

export interface HookConfig {
  name: string;
  heartbeatTimeoutSeconds: number;
  defaultResult: "CONTINUE" | "ABANDON";
}

/** AWS's global timeout of a hook: 48 hours or 100 times the heartbeat timeout, whichever is smaller. */
export function globalTimeoutSeconds(hook: HookConfig): number {
  return Math.min(172_800, 100 * hook.heartbeatTimeoutSeconds);
}

/** Production's hooks and grace period (infra/lib/cluster/nodes.ts HOOKS and healthChecks). */
export const PRODUCTION_GROUP = {
  launch: { name: "etcd-launch", heartbeatTimeoutSeconds: 15 * 60, defaultResult: "ABANDON" },
  terminate: { name: "etcd-terminate", heartbeatTimeoutSeconds: 10 * 60, defaultResult: "CONTINUE" },
  healthCheckGracePeriodSeconds: 5 * 60,
} as const satisfies {
  launch: HookConfig;
  terminate: HookConfig;
  healthCheckGracePeriodSeconds: number;
};

/** How a health replacement is ordered (an instance maintenance policy; AWS's default first). */
export type ReplacementOrder = "terminate-and-launch" | "launch-before-terminate";

export interface GroupBehaviour {
  asgName: string;
  launch: HookConfig | null;
  terminate: HookConfig | null;
  /** The group's HealthCheckGracePeriod (0: none). */
  healthCheckGracePeriodSeconds?: number;
  /** Default terminate-and-launch, as AWS without an instance maintenance policy. */
  replacementOrder?: ReplacementOrder;
  /** Every AWS duration is this many times shorter in the sandbox (default 1). */
  timeScale?: number;
  /**
   * Test-only: every wait's global timeout, in sandbox seconds, instead of AWS's (48 h or 100 x
   * the heartbeat timeout, then scaled). Nothing an agent reads shows it.
   */
  globalTimeoutSeconds?: number;
  /** A new instance may get the address of one that left the group (AWS may; moto never does). */
  reuseAddresses?: boolean;
  /**
   * Eventual consistency: an instance is missing from the DescribeAutoScalingGroups,
   * DescribeAutoScalingInstances and DescribeInstances answers for this many seconds after the
   * group launched it (AWS's describe calls may lag a launch; moto's never do). Not scaled.
   */
  hideNewInstancesSeconds?: number;
}

/** The `<item>` of each instance in an EC2 DescribeInstances answer, as [start, end) ranges by instance. */
function instanceItems(xml: string): Map<string, [number, number]> {
  const ranges: [number, number][] = [];
  const stack: number[] = [];
  for (const m of xml.matchAll(/<\/?item>/g)) {
    if (m[0] === "<item>") stack.push(m.index as number);
    else {
      const start = stack.pop();
      if (start !== undefined) ranges.push([start, (m.index as number) + m[0].length]);
    }
  }
  const out = new Map<string, [number, number]>();
  // An instance's item is the smallest one holding both its instanceId and its instanceState.
  for (const [start, end] of ranges.sort((a, b) => a[1] - a[0] - (b[1] - b[0]))) {
    const inner = xml.slice(start, end);
    const id = /<instanceId>(i-[0-9a-f]+)<\/instanceId>/.exec(inner)?.[1];
    if (id && !out.has(id) && inner.includes("<instanceState>")) out.set(id, [start, end]);
  }
  return out;
}

type LifecycleState = "Pending:Wait" | "Pending:Proceed" | "Terminating:Wait" | "Terminating:Proceed";

interface LifecycleWait {
  state: LifecycleState;
  hook: HookConfig | null;
  /** When the wait times out (heartbeat timeout), or a Proceed state ends. */
  deadline: number;
  /** The global timeout: no heartbeat extends the wait past it. */
  cap: number;
  /** The termination lowers the desired capacity (moto's, which the proxy already shows lower). */
  decrement: boolean;
}

/** An instance of the group as moto describes it. */
interface GroupInstance {
  id: string;
  zone: string;
  lifecycleState: string;
  templateVersion: number;
  protectedFromScaleIn: boolean;
}

interface GroupState {
  desired: number;
  min: number;
  max: number;
  instances: GroupInstance[];
}

export interface AwsGaps {
  url: string;
  /** The group's hooks, grace period and replacement order; the sandbox also registers the hooks in moto. */
  configureHooks(group: GroupBehaviour): void;
  /** The hypervisor reports each instance it sees for the first time. */
  instanceLaunched(instanceId: string): void;
  /** Called when an instance's target lifecycle state changes (for its IMDS). */
  onTargetLifecycleState: ((instanceId: string, state: string) => void) | null;
  /** Lifecycle states the proxy holds instances in, by instance. */
  waits(): Record<string, string>;
  /** Instances replaced after SetInstanceHealth Unhealthy. */
  replaced: string[];
  /** SetInstanceHealth Unhealthy calls ignored inside the grace period, by instance. */
  ignoredHealth: string[];
  /** Instances the proxy chose for a scale-in, in order. */
  scaleInVictims: string[];
  /**
   * The victims a scale-in by `count` would choose now, by the same policy; the next scale-in by
   * that many takes exactly these while they are all still candidates (a test can then arrange
   * its cluster around them, e.g. make one the leader).
   */
  previewScaleIn(count: number): Promise<string[]>;
  /** Every wait that ended and how: "i-... Terminating:Wait CONTINUE (global timeout)". */
  waitLog: string[];
  /** Called after moto accepted RebootInstances, with the instances. */
  onReboot: ((instanceIds: string[]) => void) | null;
  /** How many change batches the proxy refused, for tests and the log. */
  refused: string[];
  /** Calls seen and failed on purpose, by API. */
  calls: Map<string, { seen: number; failed: number }>;
  setFaults(rules: FaultRule[]): void;
  /**
   * The sandbox's address of each instance given moto's (`found`), with the group's current
   * members (`groupIds`): with reuseAddresses, a new member takes the address the last instance
   * that left the group freed; otherwise moto's. The hypervisor and the agents' DescribeInstances
   * answers see the same addresses.
   */
  addresses(groupIds: string[], found: { instanceId: string; ip: string }[]): Map<string, string>;
  /** Instances that got a freed address: "i-new 127.0.1.5 (was i-old's)". */
  reusedAddresses: string[];
  stop(): Promise<void>;
}

/** The API a request calls: the service from the signature's scope, the action from the body, target or path. */
export function apiOf(
  method: string,
  url: string,
  authorization: string | undefined,
  payload: Buffer,
  target?: string,
): string {
  const service = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(authorization ?? "")?.[1] ?? "unknown";
  if (service === "route53") {
    if (/\/rrset\/?$/.test(url.split("?")[0] ?? "")) {
      return `route53:${method === "POST" ? "ChangeResourceRecordSets" : "ListResourceRecordSets"}`;
    }
    return `route53:${method} ${url.split("?")[0]}`;
  }
  // JSON protocols name the operation in X-Amz-Target ("secretsmanager.GetSecretValue").
  if (target) return `${service}:${target.split(".").pop()}`;
  if (service === "s3") return `s3:${method}`;
  const action = new URLSearchParams(payload.toString("utf8")).get("Action");
  return `${service}:${action ?? method}`;
}

/** JSON-protocol services (awsJson1_1): errors are `__type` in a JSON body and `x-amzn-ErrorType`. */
const JSON_SERVICES = new Set(["secretsmanager", "sts", "kms", "ssm", "logs"]);

export function faultResponse(res: ServerResponse, api: string, kind: FaultRule["kind"]): void {
  const service = api.split(":")[0] as string;
  const message = "injected by the sandbox";
  if (service === "ec2") {
    const code = kind === "throttle" ? "RequestLimitExceeded" : "InternalError";
    res.writeHead(kind === "throttle" ? 503 : 500, { "content-type": "text/xml" });
    res.end(
      `<?xml version="1.0"?><Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>sandbox</RequestID></Response>`,
    );
    return;
  }
  if (service === "s3") {
    const code = kind === "throttle" ? "SlowDown" : "InternalError";
    res.writeHead(kind === "throttle" ? 503 : 500, {
      "content-type": "application/xml",
      "x-amz-request-id": "sandbox",
    });
    res.end(
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>sandbox</RequestId></Error>`,
    );
    return;
  }
  if (JSON_SERVICES.has(service)) {
    const code = kind === "throttle" ? "ThrottlingException" : "InternalServiceError";
    res.writeHead(kind === "throttle" ? 400 : 500, {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-errortype": code,
      "x-amzn-requestid": "sandbox",
    });
    res.end(JSON.stringify({ __type: code, message }));
    return;
  }
  const code = kind === "throttle" ? "Throttling" : "InternalFailure";
  res.writeHead(kind === "throttle" ? 400 : 500, { "content-type": "text/xml" });
  res.end(
    `<?xml version="1.0"?><ErrorResponse><Error><Type>${kind === "throttle" ? "Sender" : "Receiver"}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>`,
  );
}

/** A signature moto routes to Auto Scaling by (moto checks no signature). */
const AUTOSCALING_AUTH =
  "AWS4-HMAC-SHA256 Credential=sandbox/20240101/eu-west-1/autoscaling/aws4_request, SignedHeaders=host, Signature=0";

function parseGroup(xml: string): GroupState {
  const group =
    /<AutoScalingGroups>\s*<member>([\s\S]*)<\/member>\s*<\/AutoScalingGroups>/.exec(xml)?.[1] ?? "";
  const instancesXml = /<Instances>([\s\S]*?)<\/Instances>/.exec(group)?.[1] ?? "";
  const instances = [...instancesXml.matchAll(/<member>([\s\S]*?)<\/member>\s*(?=<member>|$)/g)].map((m) => {
    const inner = m[1] as string;
    return {
      id: tag(inner, "InstanceId") ?? "",
      zone: tag(inner, "AvailabilityZone") ?? "",
      lifecycleState: tag(inner, "LifecycleState") ?? "",
      templateVersion: Number(tag(tag(inner, "LaunchTemplate") ?? "", "Version") ?? "0") || 0,
      protectedFromScaleIn: tag(inner, "ProtectedFromScaleIn") === "true",
    };
  });
  const groupOnly = group.replace(/<Instances>[\s\S]*?<\/Instances>/, "");
  return {
    desired: Number(tag(groupOnly, "DesiredCapacity") ?? "0"),
    min: Number(tag(groupOnly, "MinSize") ?? "0"),
    max: Number(tag(groupOnly, "MaxSize") ?? "0"),
    instances: instances.filter((i) => i.id !== ""),
  };
}

/**
 * AWS's default termination policy for one victim among `candidates`: the zone with the most
 * instances of the group (`all`), then the oldest launch template version, then the instance
 * closest to its next billing hour (`seenAt`: when it started), then at random.
 */
export function chooseVictim(
  all: GroupInstance[],
  candidates: GroupInstance[],
  seenAt: (id: string) => number,
  now: number,
  random: () => number = Math.random,
): GroupInstance | undefined {
  if (candidates.length === 0) return undefined;
  const perZone = new Map<string, number>();
  for (const i of all) perZone.set(i.zone, (perZone.get(i.zone) ?? 0) + 1);
  const zonesWithCandidates = [...new Set(candidates.map((c) => c.zone))];
  const most = Math.max(...zonesWithCandidates.map((z) => perZone.get(z) ?? 0));
  let pool = candidates.filter((c) => (perZone.get(c.zone) ?? 0) === most);
  const oldest = Math.min(...pool.map((c) => c.templateVersion));
  pool = pool.filter((c) => c.templateVersion === oldest);
  // Closest to the next billing hour: the most seconds into the current hour (whole seconds).
  const into = (c: GroupInstance) => Math.floor((now - seenAt(c.id)) / 1000) % 3600;
  const closest = Math.max(...pool.map(into));
  pool = pool.filter((c) => into(c) === closest);
  return pool[Math.floor(random() * pool.length)];
}

export async function startAwsGaps(motoUrl: string): Promise<AwsGaps> {
  const refused: string[] = [];
  const calls = new Map<string, { seen: number; failed: number }>();
  let faults: FaultRule[] = [];
  let route53Queue: Promise<unknown> = Promise.resolve();
  let group: GroupBehaviour | null = null;
  const lifecycle = new Map<string, LifecycleWait>();
  /** When the proxy first saw each instance (its billing hour's start, approximately). */
  const seenAt = new Map<string, number>();
  /** When each instance entered InService (the grace period's start). */
  const inServiceAt = new Map<string, number>();
  /** Health replacements launched before terminating: the old instance waits for its new one. */
  const pendingReplacements: { old: string; next: string | null }[] = [];
  const replaced: string[] = [];
  const ignoredHealth: string[] = [];
  const scaleInVictims: string[] = [];
  const waitLog: string[] = [];
  /** The sandbox's address of each instance, moto's of each, addresses free for reuse, and who held them. */
  const addressOf = new Map<string, string>();
  const motoIpOf = new Map<string, string>();
  const released = new Set<string>();
  const freed: { ip: string; from: string }[] = [];
  const reusedAddresses: string[] = [];
  const settleAddresses = (groupIds: string[], found: { instanceId: string; ip: string }[]) => {
    const current = new Set(groupIds);
    for (const [id, ip] of addressOf) {
      if (!current.has(id) && !released.has(id)) {
        released.add(id);
        freed.push({ ip, from: id });
      }
    }
    for (const { instanceId, ip } of found) {
      if (addressOf.has(instanceId)) continue;
      motoIpOf.set(instanceId, ip);
      const reuse = group?.reuseAddresses && current.has(instanceId) ? freed.pop() : undefined;
      addressOf.set(instanceId, reuse?.ip ?? ip);
      if (reuse) reusedAddresses.push(`${instanceId} ${reuse.ip} (was ${reuse.from}'s)`);
    }
    return new Map(found.map((f) => [f.instanceId, addressOf.get(f.instanceId) as string]));
  };
  /** DescribeInstances as the agents see it: each instance with the sandbox's address. */
  const rewriteAddresses = async (xml: string): Promise<string> => {
    if (!group?.reuseAddresses) return xml;
    const found = [
      ...xml.matchAll(
        /<instanceId>(i-[0-9a-f]+)<\/instanceId>[\s\S]*?<privateIpAddress>([0-9.]+)<\/privateIpAddress>/g,
      ),
    ].map((m) => ({ instanceId: m[1] as string, ip: m[2] as string }));
    if (found.some((f) => !addressOf.has(f.instanceId))) {
      const ids = (await describeGroup()).instances.map((i) => i.id);
      settleAddresses(ids, found);
    }
    let out = xml;
    for (const { instanceId } of found) {
      const from = motoIpOf.get(instanceId);
      const to = addressOf.get(instanceId);
      // moto never hands an address out twice, so its address names one instance in the answer.
      if (from && to && from !== to) out = out.split(`>${from}<`).join(`>${to}<`);
    }
    return out;
  };
  /** Whether describe answers leave this instance out yet (hideNewInstancesSeconds). */
  const hidden = (instanceId: string): boolean => {
    const hide = group?.hideNewInstancesSeconds ?? 0;
    const at = seenAt.get(instanceId);
    return hide > 0 && at !== undefined && Date.now() - at < hide * 1000;
  };
  /** DescribeInstances without the instances still hidden. */
  const hideInstances = (xml: string): string => {
    if (!(group?.hideNewInstancesSeconds ?? 0)) return xml;
    const items = [...instanceItems(xml)].filter(([id]) => hidden(id)).map(([, r]) => r);
    let out = xml;
    for (const [start, end] of items.sort((a, b) => b[0] - a[0])) out = out.slice(0, start) + out.slice(end);
    return out;
  };
  /** One group change at a time (scale-in choices, replacements, ends of waits). */
  let groupQueue: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = groupQueue.then(fn);
    groupQueue = run.catch(() => undefined);
    return run;
  };

  const scale = () => group?.timeScale ?? 1;
  /** An AWS duration in seconds as sandbox milliseconds. */
  const ms = (seconds: number) => (seconds * 1000) / scale();
  const PROCEED_SECONDS = 2;
  /** When a wait that starts now reaches its global timeout. */
  const capAt = (now: number, hook: HookConfig) =>
    now +
    (group?.globalTimeoutSeconds !== undefined
      ? group.globalTimeoutSeconds * 1000
      : ms(globalTimeoutSeconds(hook)));

  const querySuccess = (res: ServerResponse, action: string, result = "") => {
    res.writeHead(200, { "content-type": "text/xml" });
    res.end(
      `<?xml version="1.0"?><${action}Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>sandbox</RequestId></ResponseMetadata></${action}Response>`,
    );
  };
  const queryError = (res: ServerResponse, code: string, message: string) => {
    res.writeHead(400, { "content-type": "text/xml" });
    res.end(
      `<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>`,
    );
  };
  /** An Auto Scaling call to moto itself. */
  const motoQuery = async (params: Record<string, string>): Promise<string> => {
    const r = await fetch(`${motoUrl}/`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: AUTOSCALING_AUTH },
      body: new URLSearchParams({ Version: "2011-01-01", ...params }).toString(),
    });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`moto ${params.Action}: HTTP ${r.status}: ${text.slice(0, 300)}`);
    return text;
  };
  const describeGroup = async (): Promise<GroupState> =>
    parseGroup(
      await motoQuery({
        Action: "DescribeAutoScalingGroups",
        "AutoScalingGroupNames.member.1": group?.asgName ?? "",
      }),
    );
  const setMotoDesired = async (desired: number, max: number) => {
    await motoQuery({
      Action: "UpdateAutoScalingGroup",
      AutoScalingGroupName: group?.asgName ?? "",
      DesiredCapacity: String(desired),
      ...(desired > max ? { MaxSize: String(desired) } : {}),
    });
  };
  /** The real termination in moto. */
  const terminateInMoto = async (instanceId: string, decrement: boolean) => {
    await motoQuery({
      Action: "TerminateInstanceInAutoScalingGroup",
      InstanceId: instanceId,
      ShouldDecrementDesiredCapacity: String(decrement),
    });
  };
  /** How many waits will lower moto's desired capacity when they end (the answers show it lower already). */
  const pendingDecrements = () => [...lifecycle.values()].filter((w) => w.decrement).length;

  /** The group starts terminating an instance: through the terminate hook when there is one. */
  const beginTerminate = async (instanceId: string, decrement: boolean) => {
    const w = lifecycle.get(instanceId);
    if (w?.state.startsWith("Terminating")) return;
    gaps.onTargetLifecycleState?.(instanceId, "Terminated");
    inServiceAt.delete(instanceId);
    const hook = group?.terminate ?? null;
    if (!hook) {
      lifecycle.delete(instanceId);
      await terminateInMoto(instanceId, decrement);
      return;
    }
    const now = Date.now();
    lifecycle.set(instanceId, {
      state: "Terminating:Wait",
      hook,
      deadline: now + ms(hook.heartbeatTimeoutSeconds),
      cap: capAt(now, hook),
      decrement,
    });
  };

  /** A new instance is InService: a launch-before-terminate replacement may now terminate the old one. */
  const enteredService = async (instanceId: string) => {
    inServiceAt.set(instanceId, Date.now());
    for (const r of [...pendingReplacements]) {
      if (r.next !== instanceId) continue;
      pendingReplacements.splice(pendingReplacements.indexOf(r), 1);
      await beginTerminate(r.old, true);
    }
  };

  const endWait = async (instanceId: string, result: "CONTINUE" | "ABANDON", why: string) => {
    const w = lifecycle.get(instanceId);
    if (!w) return;
    waitLog.push(`${instanceId} ${w.state} ${result} (${why})`);
    const now = Date.now();
    if (w.state === "Terminating:Wait") {
      lifecycle.set(instanceId, { ...w, state: "Terminating:Proceed", deadline: now + ms(PROCEED_SECONDS) });
    } else if (w.state === "Pending:Wait" && result === "CONTINUE") {
      lifecycle.set(instanceId, { ...w, state: "Pending:Proceed", deadline: now + ms(PROCEED_SECONDS) });
    } else if (w.state === "Pending:Wait") {
      // An abandoned launch terminates, through the terminate hook; moto then launches another.
      lifecycle.delete(instanceId);
      for (const r of pendingReplacements) if (r.next === instanceId) r.next = null;
      await beginTerminate(instanceId, false);
    }
  };

  /** Ends Proceed states and timed-out waits. */
  const tick = async () => {
    const now = Date.now();
    for (const [id, w] of [...lifecycle]) {
      if (w.state === "Pending:Proceed" && w.deadline <= now) {
        lifecycle.delete(id);
        await enteredService(id);
      } else if (w.state === "Terminating:Proceed" && w.deadline <= now) {
        lifecycle.delete(id);
        await terminateInMoto(id, w.decrement);
      } else if ((w.state === "Pending:Wait" || w.state === "Terminating:Wait") && w.hook) {
        if (w.cap <= now) await endWait(id, w.hook.defaultResult, "global timeout");
        else if (w.deadline <= now) await endWait(id, w.hook.defaultResult, "heartbeat timeout");
      }
    }
  };
  let ticking = false;
  const timer = setInterval(() => {
    if (ticking) return;
    ticking = true;
    void serially(tick)
      .catch(() => undefined)
      .finally(() => {
        ticking = false;
      });
  }, 200);

  const forwardQuery = (req: IncomingMessage, payload: Buffer) =>
    fetch(`${motoUrl}/`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: req.headers.authorization ?? "",
      },
      body: new Uint8Array(payload),
    });

  /** Rewrites LifecycleState of instances the proxy holds, and DesiredCapacity by the pending decrements. */
  const rewriteStates = (xml: string) => {
    const decrements = pendingDecrements();
    const out = decrements
      ? xml.replace(
          /<DesiredCapacity>(\d+)<\/DesiredCapacity>/g,
          (_, n: string) => `<DesiredCapacity>${Number(n) - decrements}</DesiredCapacity>`,
        )
      : xml;
    // Innermost <member> blocks only: an instance's entry, never the group around it.
    return out.replace(/<member>((?:(?!<\/?member>)[\s\S])*?)<\/member>/g, (whole, inner: string) => {
      const id = /<InstanceId>(i-[0-9a-f]+)<\/InstanceId>/.exec(inner)?.[1];
      if (id && hidden(id)) return "";
      const w = id ? lifecycle.get(id) : undefined;
      return w
        ? `<member>${inner.replace(/<LifecycleState>[^<]*<\/LifecycleState>/, `<LifecycleState>${w.state}</LifecycleState>`)}</member>`
        : whole;
    });
  };

  /** Scale-in to `desired` (what the group shows): victims by the default termination policy. */
  const scaleTo = async (desired: number): Promise<string | null> => {
    const g = await describeGroup();
    if (!Number.isInteger(desired) || desired > g.max || desired < g.min)
      return `New SetDesiredCapacity value ${desired} is outside the group's min ${g.min} and max ${g.max}.`;
    const visible = g.desired - pendingDecrements();
    if (desired >= visible) {
      await setMotoDesired(desired + pendingDecrements(), g.max);
      return null;
    }
    const pinned = pinnedVictims;
    pinnedVictims = null;
    const chosen = victimsOf(g, visible - desired);
    const candidates = new Set(chosen.candidates);
    const victims =
      pinned && pinned.length === visible - desired && pinned.every((id) => candidates.has(id))
        ? pinned
        : chosen.victims;
    for (const id of victims) {
      scaleInVictims.push(id);
      await beginTerminate(id, true);
    }
    return null;
  };
  let pinnedVictims: string[] | null = null;
  /** `count` victims by the default termination policy, one at a time, and the candidates they came from. */
  const victimsOf = (g: GroupState, count: number) => {
    const now = Date.now();
    const live = g.instances.filter((i) => !lifecycle.get(i.id)?.state.startsWith("Terminating"));
    const candidates = live.filter((i) => !i.protectedFromScaleIn).map((i) => i.id);
    const victims: string[] = [];
    for (let n = count; n > 0; n--) {
      const victim = chooseVictim(
        live,
        live.filter((i) => !i.protectedFromScaleIn),
        (id) => seenAt.get(id) ?? now,
        now,
      );
      if (!victim) break;
      live.splice(live.indexOf(victim), 1);
      victims.push(victim.id);
    }
    return { victims, candidates };
  };

  /** SetInstanceHealth Unhealthy past the grace period: the group replaces the instance. */
  const replaceUnhealthy = async (instanceId: string) => {
    replaced.push(instanceId);
    const g = await describeGroup();
    if (!g.instances.some((i) => i.id === instanceId)) return;
    const before = new Set(g.instances.map((i) => i.id));
    // The replacement launches now in either order: moto's desired capacity goes up by one and
    // comes down when the old instance is terminated (the answers keep showing the old value).
    const order = group?.replacementOrder ?? "terminate-and-launch";
    if (order === "terminate-and-launch") {
      if (!group?.terminate) {
        // No hook to wait in: moto terminates it and launches the replacement itself.
        gaps.onTargetLifecycleState?.(instanceId, "Terminated");
        await terminateInMoto(instanceId, false);
        return;
      }
      await beginTerminate(instanceId, true);
      await setMotoDesired(g.desired + 1, g.max);
      return;
    }
    await setMotoDesired(g.desired + 1, g.max);
    const after = await describeGroup();
    const next = after.instances.find((i) => !before.has(i.id))?.id ?? null;
    pendingReplacements.push({ old: instanceId, next });
    // The old instance counts as leaving capacity already (it goes with a decrement).
    if (next && !group?.launch) await enteredService(next);
  };

  const insideGrace = (instanceId: string): boolean => {
    const grace = group?.healthCheckGracePeriodSeconds ?? 0;
    if (grace <= 0) return false;
    const w = lifecycle.get(instanceId);
    if (w?.state.startsWith("Pending")) return true;
    const since = inServiceAt.get(instanceId);
    return since !== undefined && Date.now() - since < ms(grace);
  };

  /** AutoScaling calls the proxy answers or adjusts; false when it is not one of them. */
  const autoscaling = async (
    req: IncomingMessage,
    res: ServerResponse,
    payload: Buffer,
    action: string,
  ): Promise<boolean> => {
    const params = new URLSearchParams(payload.toString("utf8"));
    const id = params.get("InstanceId") ?? "";
    if (action === "CompleteLifecycleAction" || action === "RecordLifecycleActionHeartbeat") {
      const w = lifecycle.get(id);
      if (
        !w ||
        !w.hook ||
        w.hook.name !== params.get("LifecycleHookName") ||
        (w.state !== "Pending:Wait" && w.state !== "Terminating:Wait")
      ) {
        queryError(res, "ValidationError", `No active Lifecycle Action found with instance ID ${id}`);
        return true;
      }
      if (action === "RecordLifecycleActionHeartbeat")
        w.deadline = Math.min(w.cap, Date.now() + ms(w.hook.heartbeatTimeoutSeconds));
      else
        await serially(() =>
          endWait(id, params.get("LifecycleActionResult") === "ABANDON" ? "ABANDON" : "CONTINUE", action),
        );
      querySuccess(res, action);
      return true;
    }
    if (!group) return false;
    if (action === "TerminateInstanceInAutoScalingGroup" && group.terminate) {
      await serially(() => beginTerminate(id, params.get("ShouldDecrementDesiredCapacity") === "true"));
      querySuccess(
        res,
        action,
        `<Activity><ActivityId>sandbox-${id}</ActivityId><AutoScalingGroupName>${group.asgName}</AutoScalingGroupName><Description>Terminating EC2 instance: ${id}</Description><Cause>the sandbox holds it in Terminating:Wait</Cause><StartTime>${new Date().toISOString()}</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress></Activity>`,
      );
      return true;
    }
    if (action === "SetDesiredCapacity" && params.get("AutoScalingGroupName") === group.asgName) {
      const refusal = await serially(() => scaleTo(Number(params.get("DesiredCapacity"))));
      if (refusal) queryError(res, "ValidationError", refusal);
      else querySuccess(res, action);
      return true;
    }
    if (
      action === "UpdateAutoScalingGroup" &&
      params.get("AutoScalingGroupName") === group.asgName &&
      params.has("DesiredCapacity")
    ) {
      const desired = Number(params.get("DesiredCapacity"));
      params.delete("DesiredCapacity");
      await serially(async () => {
        const upstream = await forwardQuery(req, Buffer.from(params.toString()));
        const text = await upstream.text();
        const refusal = upstream.status === 200 ? await scaleTo(desired) : null;
        if (refusal) {
          queryError(res, "ValidationError", refusal);
          return;
        }
        res.writeHead(upstream.status, { "content-type": "text/xml" });
        res.end(text);
      });
      return true;
    }
    if (action === "SetInstanceHealth" && params.get("HealthStatus") === "Unhealthy") {
      if (params.get("ShouldRespectGracePeriod") !== "false" && insideGrace(id)) {
        // AWS ignores it: the instance stays Healthy and nothing is replaced.
        ignoredHealth.push(id);
        querySuccess(res, action);
        return true;
      }
      await forwardQuery(req, payload);
      await serially(() => replaceUnhealthy(id));
      querySuccess(res, action);
      return true;
    }
    if (action === "DescribeAutoScalingGroups" || action === "DescribeAutoScalingInstances") {
      const upstream = await forwardQuery(req, payload);
      const raw = await upstream.text();
      // An instance the group launched is in its launch hook's wait from the first answer on.
      for (const m of raw.matchAll(/<InstanceId>(i-[0-9a-f]+)<\/InstanceId>/g))
        gaps.instanceLaunched(m[1] as string);
      const text = rewriteStates(raw);
      res.writeHead(upstream.status, { "content-type": "text/xml" });
      res.end(text);
      return true;
    }
    return false;
  };

  /** Counts the call; true when this one is to fail (the n-th call of an API fails when floor(n*share) grows). */
  const injected = (api: string): FaultRule | null => {
    const c = calls.get(api) ?? { seen: 0, failed: 0 };
    c.seen++;
    calls.set(api, c);
    const rule = faults.find((r) => r.api === api || r.api === "*");
    if (!rule || Math.floor(c.seen * rule.share) === Math.floor((c.seen - 1) * rule.share)) return null;
    c.failed++;
    return rule;
  };

  const forward = async (req: IncomingMessage, res: ServerResponse, payload: Buffer) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || k === "host" || k === "content-length" || k === "connection") continue;
      headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    }
    const upstream = await fetch(`${motoUrl}${req.url ?? "/"}`, {
      method: req.method ?? "GET",
      headers,
      ...(req.method === "GET" || req.method === "HEAD" ? {} : { body: new Uint8Array(payload) }),
    });
    const out = Buffer.from(await upstream.arrayBuffer());
    const h: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (k !== "content-encoding" && k !== "transfer-encoding" && k !== "content-length") h[k] = v;
    });
    res.writeHead(upstream.status, h);
    res.end(out);
  };

  /** Route53 change batch: validated against moto's current records, one at a time. */
  const changeBatch = async (
    req: IncomingMessage,
    res: ServerResponse,
    payload: Buffer,
    zonePath: string,
  ) => {
    const changes = parseChanges(payload.toString("utf8"));
    // moto routes a request to a service by its signature's credential scope: reuse the caller's.
    const auth = req.headers.authorization;
    const listing = await fetch(`${motoUrl}${zonePath}/rrset`, {
      headers: auth ? { authorization: auth } : {},
    });
    const current = parseRecordSets(await listing.text());
    // Validated in order against a working copy, as one transaction: a DELETE then a CREATE of
    // the same record is a valid swap.
    const state = new Map(current.map((r) => [`${r.type} ${r.name}`, r]));
    for (const c of changes) {
      const key = `${c.type} ${c.name}`;
      const have = state.get(key);
      if (c.action === "CREATE" && have) {
        const message = `Tried to create resource record set [name='${c.name}.', type='${c.type}'] but it already exists`;
        refused.push(message);
        return invalidChangeBatch(res, message);
      }
      if (c.action === "DELETE") {
        const same = have && have.ttl === c.ttl && JSON.stringify(have.values) === JSON.stringify(c.values);
        if (!same) {
          const message = `Tried to delete resource record set [name='${c.name}.', type='${c.type}'] but ${have ? "the values provided do not match the current values" : "it was not found"}`;
          refused.push(message);
          return invalidChangeBatch(res, message);
        }
        state.delete(key);
      } else state.set(key, c);
    }
    return forward(req, res, payload);
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        const payload = await body(req);
        const target = req.headers["x-amz-target"];
        const api = apiOf(
          req.method ?? "GET",
          req.url ?? "/",
          req.headers.authorization,
          payload,
          typeof target === "string" ? target : undefined,
        );
        const fault = injected(api);
        if (fault) return faultResponse(res, api, fault.kind);
        if (api.startsWith("autoscaling:")) {
          if (await autoscaling(req, res, payload, api.slice("autoscaling:".length))) return;
        }
        const m = /^(\/2013-04-01\/hostedzone\/[^/]+)\/rrset\/?$/.exec(req.url ?? "");
        if (req.method === "POST" && m) {
          const run = route53Queue.then(() => changeBatch(req, res, payload, m[1] as string));
          route53Queue = run.catch(() => undefined);
          await run;
        } else if (
          api === "ec2:DescribeInstances" &&
          (group?.reuseAddresses || group?.hideNewInstancesSeconds)
        ) {
          const upstream = await forwardQuery(req, payload);
          const text = hideInstances(await rewriteAddresses(await upstream.text()));
          res.writeHead(upstream.status, { "content-type": "text/xml" });
          res.end(text);
        } else {
          await forward(req, res, payload);
          if (api === "ec2:RebootInstances" && res.statusCode === 200) {
            const params = new URLSearchParams(payload.toString("utf8"));
            const ids = [...params].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
            gaps.onReboot?.(ids);
          }
        }
      } catch (error) {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end(`sandbox proxy: ${(error as Error).message}`);
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const gaps: AwsGaps = {
    url: `http://127.0.0.1:${port}`,
    refused,
    calls,
    onTargetLifecycleState: null,
    onReboot: null,
    replaced,
    ignoredHealth,
    scaleInVictims,
    waitLog,
    reusedAddresses,
    addresses: settleAddresses,
    previewScaleIn: (count) =>
      serially(async () => {
        pinnedVictims = victimsOf(await describeGroup(), count).victims;
        return pinnedVictims;
      }),
    configureHooks(g) {
      const s = g.timeScale ?? 1;
      if (!(s > 0)) throw new Error(`timeScale must be a positive number, got ${s}`);
      const cap = g.globalTimeoutSeconds;
      if (cap !== undefined && !(cap > 0))
        throw new Error(`globalTimeoutSeconds must be a positive number of seconds, got ${cap}`);
      group = g;
    },
    instanceLaunched(instanceId: string) {
      if (seenAt.has(instanceId)) return;
      const now = Date.now();
      seenAt.set(instanceId, now);
      const waiting = pendingReplacements.find((r) => r.next === null);
      if (waiting) waiting.next = instanceId;
      const hook = group?.launch;
      if (!hook) {
        void serially(() => enteredService(instanceId));
        return;
      }
      lifecycle.set(instanceId, {
        state: "Pending:Wait",
        hook,
        deadline: now + ms(hook.heartbeatTimeoutSeconds),
        cap: capAt(now, hook),
        decrement: false,
      });
    },
    waits() {
      return Object.fromEntries([...lifecycle].map(([id, w]) => [id, w.state]));
    },
    setFaults(rules: FaultRule[]) {
      for (const r of rules) {
        if (!(r.share >= 0 && r.share <= 1))
          throw new Error(`fault share must be from 0 to 1, got ${r.share} for ${r.api}`);
      }
      faults = rules;
    },
    stop: () =>
      new Promise((resolve) => {
        clearInterval(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return gaps;
}

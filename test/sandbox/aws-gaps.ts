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
//   deterministically (every 1/share-th call), in each service's own error format.
//
// - Lifecycle hooks: moto has no Pending:Wait or Terminating:Wait and answers
//   CompleteLifecycleAction and RecordLifecycleActionHeartbeat with HTTP 500. With hooks configured,
//   a new instance (reported by the hypervisor) waits in Pending:Wait, and
//   TerminateInstanceInAutoScalingGroup puts the instance in Terminating:Wait (its target lifecycle
//   state becomes Terminated) instead of terminating it; CompleteLifecycleAction ends the wait (for
//   a terminate hook the termination then reaches moto), a heartbeat extends it, and a wait that
//   times out takes the hook's default result. The proxy rewrites LifecycleState in
//   DescribeAutoScalingGroups and DescribeAutoScalingInstances answers to match.
//
// - SetInstanceHealth Unhealthy: the ASG replaces the instance (moto only records the status);
//   the proxy passes the call on, then terminates the instance in moto without lowering the
//   desired capacity, so moto launches a replacement.
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

/** "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances", "route53:ChangeResourceRecordSets", or "*". */
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

interface LifecycleWait {
  state: "Pending:Wait" | "Terminating:Wait";
  hook: HookConfig;
  deadline: number;
  decrement: boolean;
}

export interface AwsGaps {
  url: string;
  /** Lifecycle hooks the proxy emulates; the sandbox also registers them in moto. */
  configureHooks(hooks: { asgName: string; launch: HookConfig | null; terminate: HookConfig | null }): void;
  /** The hypervisor reports each instance it sees for the first time. */
  instanceLaunched(instanceId: string): void;
  /** Called when an instance's target lifecycle state changes (for its IMDS). */
  onTargetLifecycleState: ((instanceId: string, state: string) => void) | null;
  /** Lifecycle states the proxy holds instances in, by instance. */
  waits(): Record<string, string>;
  /** Instances replaced after SetInstanceHealth Unhealthy. */
  replaced: string[];
  /** Called after moto accepted RebootInstances, with the instances. */
  onReboot: ((instanceIds: string[]) => void) | null;
  /** How many change batches the proxy refused, for tests and the log. */
  refused: string[];
  /** Calls seen and failed on purpose, by API. */
  calls: Map<string, { seen: number; failed: number }>;
  setFaults(rules: FaultRule[]): void;
  stop(): Promise<void>;
}

/** The API a request calls: the service from the signature's scope, the action from the body or path. */
export function apiOf(
  method: string,
  url: string,
  authorization: string | undefined,
  payload: Buffer,
): string {
  const service = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(authorization ?? "")?.[1] ?? "unknown";
  if (service === "route53") {
    if (/\/rrset\/?$/.test(url.split("?")[0] ?? "")) {
      return `route53:${method === "POST" ? "ChangeResourceRecordSets" : "ListResourceRecordSets"}`;
    }
    return `route53:${method} ${url.split("?")[0]}`;
  }
  const action = new URLSearchParams(payload.toString("utf8")).get("Action");
  return `${service}:${action ?? method}`;
}

function faultResponse(res: ServerResponse, api: string, kind: FaultRule["kind"]): void {
  const service = api.split(":")[0];
  if (service === "ec2") {
    const code = kind === "throttle" ? "RequestLimitExceeded" : "InternalError";
    res.writeHead(kind === "throttle" ? 503 : 500, { "content-type": "text/xml" });
    res.end(
      `<?xml version="1.0"?><Response><Errors><Error><Code>${code}</Code><Message>injected by the sandbox</Message></Error></Errors><RequestID>sandbox</RequestID></Response>`,
    );
    return;
  }
  const code = kind === "throttle" ? "Throttling" : "InternalFailure";
  res.writeHead(kind === "throttle" ? 400 : 500, { "content-type": "text/xml" });
  res.end(
    `<?xml version="1.0"?><ErrorResponse><Error><Type>${kind === "throttle" ? "Sender" : "Receiver"}</Type><Code>${code}</Code><Message>injected by the sandbox</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>`,
  );
}

export async function startAwsGaps(motoUrl: string): Promise<AwsGaps> {
  const refused: string[] = [];
  const calls = new Map<string, { seen: number; failed: number }>();
  let faults: FaultRule[] = [];
  let route53Queue: Promise<unknown> = Promise.resolve();
  let hooks: { asgName: string; launch: HookConfig | null; terminate: HookConfig | null } | null = null;
  const lifecycle = new Map<string, LifecycleWait>();
  const seen = new Set<string>();
  let lastAuth = "";

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
  /** Sends the real termination to moto (signed headers reused: moto checks no signature). */
  const terminateInMoto = async (instanceId: string, decrement: boolean) => {
    const form = new URLSearchParams({
      Action: "TerminateInstanceInAutoScalingGroup",
      Version: "2011-01-01",
      InstanceId: instanceId,
      ShouldDecrementDesiredCapacity: String(decrement),
    });
    await fetch(`${motoUrl}/`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: lastAuth },
      body: form.toString(),
    });
  };
  const endWait = async (instanceId: string, result: "CONTINUE" | "ABANDON") => {
    const w = lifecycle.get(instanceId);
    if (!w) return;
    lifecycle.delete(instanceId);
    if (w.state === "Terminating:Wait" || result === "ABANDON") {
      gaps.onTargetLifecycleState?.(instanceId, "Terminated");
      await terminateInMoto(instanceId, w.state === "Terminating:Wait" ? w.decrement : false);
    }
  };
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [id, w] of lifecycle) if (w.deadline <= now) void endWait(id, w.hook.defaultResult);
  }, 1000);

  const forwardQuery = (req: IncomingMessage, payload: Buffer) =>
    fetch(`${motoUrl}/`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: req.headers.authorization ?? "",
      },
      body: new Uint8Array(payload),
    });
  const replaced: string[] = [];

  /** Rewrites LifecycleState of instances the proxy holds in a wait state. */
  const rewriteStates = (xml: string) =>
    // Innermost <member> blocks only: an instance's entry, never the group around it.
    xml.replace(/<member>((?:(?!<\/?member>)[\s\S])*?)<\/member>/g, (whole, inner: string) => {
      const id = /<InstanceId>(i-[0-9a-f]+)<\/InstanceId>/.exec(inner)?.[1];
      const w = id ? lifecycle.get(id) : undefined;
      return w
        ? `<member>${inner.replace(/<LifecycleState>[^<]*<\/LifecycleState>/, `<LifecycleState>${w.state}</LifecycleState>`)}</member>`
        : whole;
    });

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
      if (!w || w.hook.name !== params.get("LifecycleHookName")) {
        queryError(res, "ValidationError", `No active Lifecycle Action found with instance ID ${id}`);
        return true;
      }
      if (action === "RecordLifecycleActionHeartbeat")
        w.deadline = Date.now() + w.hook.heartbeatTimeoutSeconds * 1000;
      else await endWait(id, params.get("LifecycleActionResult") === "ABANDON" ? "ABANDON" : "CONTINUE");
      querySuccess(res, action);
      return true;
    }
    if (action === "TerminateInstanceInAutoScalingGroup" && hooks?.terminate) {
      if (!lifecycle.has(id) || lifecycle.get(id)?.state !== "Terminating:Wait") {
        lifecycle.set(id, {
          state: "Terminating:Wait",
          hook: hooks.terminate,
          deadline: Date.now() + hooks.terminate.heartbeatTimeoutSeconds * 1000,
          decrement: params.get("ShouldDecrementDesiredCapacity") === "true",
        });
        gaps.onTargetLifecycleState?.(id, "Terminated");
      }
      querySuccess(
        res,
        action,
        `<Activity><ActivityId>sandbox-${id}</ActivityId><AutoScalingGroupName>${hooks.asgName}</AutoScalingGroupName><Description>Terminating EC2 instance: ${id}</Description><Cause>the sandbox holds it in Terminating:Wait</Cause><StartTime>${new Date().toISOString()}</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress></Activity>`,
      );
      return true;
    }
    if (action === "SetInstanceHealth" && params.get("HealthStatus") === "Unhealthy") {
      await forwardQuery(req, payload);
      replaced.push(id);
      await terminateInMoto(id, false);
      querySuccess(res, action);
      return true;
    }
    if (
      (action === "DescribeAutoScalingGroups" || action === "DescribeAutoScalingInstances") &&
      lifecycle.size > 0
    ) {
      const upstream = await fetch(`${motoUrl}/`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: req.headers.authorization ?? "",
        },
        body: new Uint8Array(payload),
      });
      const text = rewriteStates(await upstream.text());
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
        const api = apiOf(req.method ?? "GET", req.url ?? "/", req.headers.authorization, payload);
        const fault = injected(api);
        if (fault) return faultResponse(res, api, fault.kind);
        if (api.startsWith("autoscaling:")) {
          lastAuth = req.headers.authorization ?? lastAuth;
          if (await autoscaling(req, res, payload, api.slice("autoscaling:".length))) return;
        }
        const m = /^(\/2013-04-01\/hostedzone\/[^/]+)\/rrset\/?$/.exec(req.url ?? "");
        if (req.method === "POST" && m) {
          const run = route53Queue.then(() => changeBatch(req, res, payload, m[1] as string));
          route53Queue = run.catch(() => undefined);
          await run;
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
    configureHooks(h) {
      hooks = h;
    },
    instanceLaunched(instanceId: string) {
      if (seen.has(instanceId)) return;
      seen.add(instanceId);
      if (!hooks?.launch) return;
      lifecycle.set(instanceId, {
        state: "Pending:Wait",
        hook: hooks.launch,
        deadline: Date.now() + hooks.launch.heartbeatTimeoutSeconds * 1000,
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

// The one place where the sandbox fills moto's gaps, as a proxy between the nodes and moto.
// Agents point AWS_ENDPOINT_URL here; everything passes through to moto except:
//
// - Route53 ChangeResourceRecordSets: AWS validates a change batch as a transaction, a CREATE of a
//   record that exists fails and a DELETE must match the stored record exactly (InvalidChangeBatch).
//   moto lets a CREATE overwrite. The proxy checks each batch against moto's records first, one
//   batch at a time, and answers InvalidChangeBatch as Route53 does. The agent's bootstrap claim
//   relies on this (docs/architecture.md).
//
// Not filled yet (issue #3): lifecycle wait states and CompleteLifecycleAction /
// RecordLifecycleActionHeartbeat, replacing instances marked Unhealthy, fault injection.
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

export interface AwsGaps {
  url: string;
  /** How many change batches the proxy refused, for tests and the log. */
  refused: string[];
  stop(): Promise<void>;
}

export async function startAwsGaps(motoUrl: string): Promise<AwsGaps> {
  const refused: string[] = [];
  let route53Queue: Promise<unknown> = Promise.resolve();

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
        const m = /^(\/2013-04-01\/hostedzone\/[^/]+)\/rrset\/?$/.exec(req.url ?? "");
        if (req.method === "POST" && m) {
          const run = route53Queue.then(() => changeBatch(req, res, payload, m[1] as string));
          route53Queue = run.catch(() => undefined);
          await run;
        } else await forward(req, res, payload);
      } catch (error) {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end(`sandbox proxy: ${(error as Error).message}`);
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    refused,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

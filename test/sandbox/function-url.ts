// A Lambda function URL with AuthType AWS_IAM, emulated on a loopback port: moto has no function
// URLs (and does not check signatures). What it does as AWS does: it checks the request's SigV4
// signature (service "lambda", this region, a known access key, the date within 15 minutes), answers
// 403 {"Message":"Forbidden"} otherwise, and calls the handler with the caller's ARN in
// requestContext.authorizer.iam.userArn (payload format 2.0, the fields the issuer reads), then
// returns the handler's status, headers and body. What it does not: resource policies (every
// known key may call), IAM users' ARNs, base64 bodies, streaming. Used by the issuer's tests
// (test/unit/tls/issuer-client.test.ts) with static test credentials.
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SignatureV4 } from "@smithy/signature-v4";
import { NodeSha256 } from "../../agent/tls/issuer-client.js";
import type { FunctionUrlEvent, FunctionUrlResult } from "../../agent/tls/operator-issuer.js";

export interface Caller {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** The ARN the function URL passes on, e.g. arn:aws:sts::123456789012:assumed-role/Ops/alice. */
  arn: string;
}

export interface FunctionUrl {
  url: string;
  /** Requests refused before the handler (bad or missing signature). */
  refused: number;
  close(): Promise<void>;
}

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** The caller whose signature this request carries, or null. */
async function verify(
  req: IncomingMessage,
  body: string,
  callers: Caller[],
  region: string,
  now: Date,
): Promise<Caller | null> {
  const m = AUTH.exec(String(req.headers.authorization ?? ""));
  if (!m) return null;
  const [, keyId, , scopeRegion, service, signedHeaders, signature] = m;
  const caller = callers.find((c) => c.accessKeyId === keyId);
  if (!caller || scopeRegion !== region || service !== "lambda" || !signature || !signedHeaders) return null;
  const amzDate = String(req.headers["x-amz-date"] ?? "");
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!d) return null;
  const signingDate = new Date(`${d[1]}-${d[2]}-${d[3]}T${d[4]}:${d[5]}:${d[6]}Z`);
  if (Math.abs(signingDate.getTime() - now.getTime()) > 15 * 60_000) return null;
  const headers: Record<string, string> = {};
  for (const h of signedHeaders.split(";")) headers[h] = String(req.headers[h] ?? "");
  if (!("host" in headers)) return null;
  const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signer = new SignatureV4({
    service: "lambda",
    region,
    credentials: {
      accessKeyId: caller.accessKeyId,
      secretAccessKey: caller.secretAccessKey,
      ...(caller.sessionToken ? { sessionToken: caller.sessionToken } : {}),
    },
    sha256: NodeSha256,
  });
  const again = await signer.sign(
    {
      method: req.method ?? "GET",
      protocol: "http:",
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers,
      body,
    },
    { signingDate },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(again.headers.authorization))?.[1] ?? "";
  const ok =
    expected.length === signature.length && timingSafeEqual(Buffer.from(expected), Buffer.from(signature));
  return ok ? caller : null;
}

/** Starts the emulated function URL on 127.0.0.1 (a free port). */
export async function startFunctionUrl(o: {
  handler: (event: FunctionUrlEvent) => Promise<FunctionUrlResult>;
  callers: Caller[];
  region: string;
}): Promise<FunctionUrl> {
  let refused = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const caller = await verify(req, body, o.callers, o.region, new Date());
      if (!caller) {
        refused++;
        res.writeHead(403, { "content-type": "application/json" }).end('{"Message":"Forbidden"}');
        return;
      }
      const out = await o.handler({
        body,
        isBase64Encoded: false,
        requestContext: { authorizer: { iam: { userArn: caller.arn } } },
      });
      res.writeHead(out.statusCode, out.headers).end(out.body);
    })().catch((e: unknown) => {
      res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ Message: String(e) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    get refused() {
      return refused;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

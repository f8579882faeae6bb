// `etcd-agent client-cert --issuer-url URL [--hours N]`: ask the operators' certificate issuer (a
// Lambda function URL with AuthType AWS_IAM, infra/lib/operator-cert-issuer.ts) for a certificate
// in the caller's own name. The request is signed with SigV4 for the service "lambda" with the
// caller's credentials (the SDK's chain: environment, SSO profile, instance role), so the function
// sees who asks; the answer is the certificate, its key and the CA bundle (agent/tls/operator-issuer.ts).
import { createHash, createHmac } from "node:crypto";
import { isIP } from "node:net";
import { SignatureV4 } from "@smithy/signature-v4";
import type {
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  Checksum,
  SourceData,
} from "@smithy/types";
import { AwsApiError, ConfigError } from "../errors.js";
import type { CertBundle } from "../ports/cert-files.js";
import { OPERATOR_CERT_HOURS } from "./operator-issuer.js";

/** Node's SHA-256 and HMAC-SHA-256 in the shape the signer takes. */
export class NodeSha256 implements Checksum {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", toBytes(secret));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    throw new Error("NodeSha256 is used once");
  }
}

function toBytes(d: SourceData): Uint8Array {
  if (typeof d === "string") return Buffer.from(d, "utf8");
  if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return new Uint8Array(d);
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || (isIP(h) === 4 && h.startsWith("127."));
}

export interface IssuerArgs {
  url: URL;
  hours: number;
}

/**
 * --issuer-url and --hours, checked: https (plain http only to a loopback address, the sandbox's
 * emulated function URL), hours a whole number from 1 to 12 (default 8).
 */
export function parseIssuerArgs(url: unknown, hours: unknown): IssuerArgs {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    throw new ConfigError(
      `--issuer-url must be the issuer's function URL (the stack's OperatorCertIssuerUrl output), got ${JSON.stringify(url)}`,
    );
  }
  if (u.protocol !== "https:" && !(u.protocol === "http:" && isLoopback(u.hostname)))
    throw new ConfigError(
      `--issuer-url must be https (plain http only to a loopback address), got ${JSON.stringify(String(url))}`,
    );
  const { min, max } = OPERATOR_CERT_HOURS;
  const h = hours === undefined ? OPERATOR_CERT_HOURS.default : Number(hours);
  if (!Number.isInteger(h) || h < min || h > max || (typeof hours === "string" && !/^\d+$/.test(hours)))
    throw new ConfigError(
      `--hours must be a whole number from ${min} to ${max}, got ${JSON.stringify(hours)}`,
    );
  return { url: u, hours: h };
}

/** The region a function URL names (<id>.lambda-url.<region>.on.aws), else `fallback`. */
export function issuerRegion(url: URL, fallback: string): string {
  return /\.lambda-url\.([a-z0-9-]+)\.on\.aws$/.exec(url.hostname)?.[1] ?? fallback;
}

export interface RequestCertOptions extends IssuerArgs {
  region: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  signal?: AbortSignal;
}

/** Asks the issuer for a certificate; the answer's bundle, certificate and key. */
export async function requestOperatorCert(o: RequestCertOptions): Promise<CertBundle> {
  const body = JSON.stringify({ hours: o.hours });
  const signer = new SignatureV4({
    service: "lambda",
    region: o.region,
    credentials: o.credentials,
    sha256: NodeSha256,
  });
  const query: Record<string, string> = {};
  for (const [k, v] of o.url.searchParams) query[k] = v;
  const signed = await signer.sign({
    method: "POST",
    protocol: o.url.protocol,
    hostname: o.url.hostname,
    port: o.url.port === "" ? undefined : Number(o.url.port),
    path: o.url.pathname,
    query,
    headers: { host: o.url.host, "content-type": "application/json" },
    body,
  });
  let res: Response;
  try {
    res = await fetch(o.url, {
      method: "POST",
      headers: signed.headers,
      body,
      signal: o.signal ?? AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new AwsApiError(
      `the issuer at ${o.url.origin} did not answer: ${String(e)}`,
      "lambda",
      "InvokeFunctionUrl",
      {
        cause: e,
      },
    );
  }
  const text = await res.text();
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: reported below with the status
  }
  if (res.status === 403 && typeof answer.error !== "string")
    throw new ConfigError(
      `the issuer refused the request (403 ${text.slice(0, 200)}): your credentials may not call it (lambda:InvokeFunctionUrl for the role the stack names), or they are for another account or region`,
    );
  if (res.status !== 200) {
    const why = typeof answer.error === "string" ? answer.error : text.slice(0, 200);
    const msg = `the issuer answered ${res.status}: ${why}`;
    if (res.status >= 500) throw new AwsApiError(msg, "lambda", "InvokeFunctionUrl");
    throw new ConfigError(msg);
  }
  const { ca, cert, key } = answer;
  if (typeof ca !== "string" || typeof cert !== "string" || typeof key !== "string")
    throw new AwsApiError(
      `the issuer's answer has no ca, cert and key: ${text.slice(0, 200)}`,
      "lambda",
      "InvokeFunctionUrl",
    );
  return { ca, cert, key };
}

/** client-cert's issuer path: the arguments checked, the caller's credentials from the SDK's chain. */
export async function issueForCaller(
  url: unknown,
  hours: unknown,
  region: string | null,
): Promise<CertBundle> {
  const args = parseIssuerArgs(url, hours);
  const r = issuerRegion(args.url, region ?? "");
  if (r === "")
    throw new ConfigError(
      `--region (ETCD_AGENT_REGION) is required: the issuer URL ${args.url.href} does not name its region`,
    );
  const { defaultProvider } = await import("@aws-sdk/credential-provider-node");
  return requestOperatorCert({ ...args, region: r, credentials: defaultProvider() });
}

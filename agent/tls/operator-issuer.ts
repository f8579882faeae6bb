// The operators' certificate issuer: a Lambda function behind a function URL with AuthType
// AWS_IAM (infra/lib/operator-cert-issuer.ts). Lambda verifies the caller's SigV4 signature and
// passes the caller's ARN in requestContext.authorizer.iam.userArn; this handler names the
// certificate after that ARN's session name (never after anything in the request), caps its
// lifetime, signs it with the CA (the CA secret, read only), logs who got which serial until when,
// and returns the certificate, its key (made here, never stored) and the bundle to trust (both CAs
// during a rotation). No SDK here: the CA secret and the log come in as parameters.
//
// Invariant: every certificate issued names the verified caller's session, lives at most
// MAX_HOURS, is client-only, and is logged with the caller's ARN.
import { RULES } from "../planner/rules.js";
import { parseCaSecret, trustBundle } from "./ca-rotation.js";
import { certFacts, issue } from "./pki.js";

export const OPERATOR_CERT_HOURS = { default: 8, min: 1, max: 12 } as const;

/** What a client sends (JSON body); everything else in the body is ignored. */
export interface IssueRequest {
  hours?: number;
}

/** What the issuer returns (JSON body, status 200). */
export interface IssuedCert {
  /** The trusted CA bundle (both CAs during a rotation), the certificate and its key, PEM. */
  ca: string;
  cert: string;
  key: string;
  cn: string;
  serial: string;
  notAfter: string;
}

/** The part of a function URL's event the issuer reads (payload format 2.0). */
export interface FunctionUrlEvent {
  body?: string | null;
  isBase64Encoded?: boolean;
  requestContext?: { authorizer?: { iam?: { userArn?: string | null } | null } | null } | null;
}

export interface FunctionUrlResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export interface IssuerDeps {
  /** The CA secret's value; null when it does not exist (yet). */
  readCaSecret: () => Promise<string | null>;
  now: () => Date;
  /** One JSON record per line in the function's log group. */
  log: (record: Record<string, unknown>) => void;
}

/** IAM's characters for a role session name (2 to 64 of them). */
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
/** A node's certificate is named after its instance ID; an operator's must not look like one. */
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const ASSUMED_ROLE = /^arn:aws[a-z-]*:sts::\d{12}:assumed-role\/[\w+=,.@-]{1,64}\/([^/]+)$/;
const SKEW_MS = 60_000;

export type CallerName = { ok: true; cn: string } | { ok: false; reason: string };

/**
 * The certificate's CN for a verified caller: the session name of an assumed role (with IAM
 * Identity Center, the person's user name). Anything else is refused: an IAM user's or the
 * account root's ARN names no session, and a session named like a node's instance ID or the shared
 * operators' certificate would pose as one.
 */
export function callerName(arn: string | null | undefined): CallerName {
  const rule = "operator-cert-caller";
  const refuse = (why: string): CallerName => ({
    ok: false,
    reason: `${RULES[rule]} [rule: ${rule}]: caller ${JSON.stringify(arn ?? null)} ${why}`,
  });
  if (typeof arn !== "string" || arn === "")
    return refuse("is missing: the function URL must use AuthType AWS_IAM");
  const m = ASSUMED_ROLE.exec(arn);
  if (!m?.[1])
    return refuse(
      "is not an assumed role's session (arn:aws:sts::<account>:assumed-role/<role>/<session>); sign in with your own role session (aws sso login), not an IAM user or the root",
    );
  const session = m[1];
  if (!SESSION_NAME.test(session)) return refuse(`has a session name IAM would not issue (${session})`);
  if (INSTANCE_ID.test(session) || session === "etcd-operator")
    return refuse(
      `has the session name ${session}, which is a node's or the shared operators' certificate's name; use a session named after the person`,
    );
  return { ok: true, cn: session };
}

export type Lifetime = { ok: true; hours: number } | { ok: false; reason: string };

/** The lifetime asked for: a whole number of hours from 1 to 12; none asked: 8. */
export function lifetimeHours(asked: unknown): Lifetime {
  const { min, max } = OPERATOR_CERT_HOURS;
  if (asked === undefined || asked === null) return { ok: true, hours: OPERATOR_CERT_HOURS.default };
  if (typeof asked !== "number" || !Number.isInteger(asked) || asked < min || asked > max)
    return {
      ok: false,
      reason: `hours must be a whole number from ${min} to ${max}, got ${JSON.stringify(asked)}`,
    };
  return { ok: true, hours: asked };
}

function reply(statusCode: number, body: unknown): FunctionUrlResult {
  return { statusCode, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

function parseBody(event: FunctionUrlEvent): IssueRequest | null {
  const raw = event.body ?? "";
  if (raw === "") return {};
  try {
    const text = event.isBase64Encoded ? Buffer.from(raw, "base64").toString("utf8") : raw;
    const o = JSON.parse(text) as unknown;
    return o !== null && typeof o === "object" && !Array.isArray(o) ? (o as IssueRequest) : null;
  } catch {
    return null;
  }
}

/** The function URL's handler: refuse, or issue and log one certificate. */
export async function handleIssue(event: FunctionUrlEvent, deps: IssuerDeps): Promise<FunctionUrlResult> {
  const arn = event.requestContext?.authorizer?.iam?.userArn ?? null;
  const name = callerName(arn);
  if (!name.ok) {
    deps.log({
      level: "warn",
      msg: "refused an operator certificate",
      action: "operator-cert",
      caller_arn: arn,
      reason: name.reason,
    });
    return reply(403, { error: name.reason });
  }
  const body = parseBody(event);
  if (body === null) return reply(400, { error: 'the body must be a JSON object such as {"hours": 8}' });
  const hours = lifetimeHours(body.hours);
  if (!hours.ok) return reply(400, { error: hours.reason });
  const raw = await deps.readCaSecret();
  const ca = raw === null ? null : parseCaSecret(raw);
  if (ca === null) {
    const error =
      raw === null
        ? "the CA secret does not exist yet: the cluster's first node makes it; try again once the cluster is up"
        : "the CA secret is not what etcd-agent keeps there (cert and key PEM)";
    deps.log({ level: "error", msg: error, action: "operator-cert", caller_arn: arn });
    return reply(503, { error });
  }
  const now = deps.now();
  const leaf = await issue(ca, {
    commonName: name.cn,
    names: [],
    usage: "client",
    notBefore: new Date(now.getTime() - SKEW_MS),
    notAfter: new Date(now.getTime() + hours.hours * 3_600_000),
  });
  const facts = certFacts(leaf.cert);
  const out: IssuedCert = {
    ca: trustBundle(ca),
    cert: leaf.cert,
    key: leaf.key,
    cn: name.cn,
    serial: facts.serial,
    notAfter: facts.notAfter.toISOString(),
  };
  deps.log({
    level: "info",
    msg: "issued an operator certificate",
    action: "operator-cert",
    cn: name.cn,
    caller_arn: arn,
    serial: out.serial,
    not_after: out.notAfter,
  });
  return reply(200, out);
}

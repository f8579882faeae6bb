// The operators' certificate issuer (agent/tls/operator-issuer.ts): the CN from the verified
// caller's session name, never the body; the lifetime capped; callers it cannot name refused with
// the rule; both CAs in the bundle during a rotation; each issuance logged.
import { X509Certificate } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { type CaSecret, nextCaSecret, pemCerts } from "../../../agent/tls/ca-rotation.js";
import {
  callerName,
  type FunctionUrlEvent,
  handleIssue,
  type IssuedCert,
} from "../../../agent/tls/operator-issuer.js";
import { type CertKey, createCa, signedBy } from "../../../agent/tls/pki.js";

const NOW = new Date("2026-11-23T12:00:00Z");
const ALICE =
  "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_EtcdOperators_0123456789abcdef/alice@example.com";

let ca: CertKey;
let next: CertKey;
beforeAll(async () => {
  ca = await createCa("etcd-agent test CA", NOW, 3650);
  next = await createCa("etcd-agent test CA 2", NOW, 3650);
});

function event(arn: string | undefined, body?: unknown): FunctionUrlEvent {
  return {
    body: body === undefined ? "" : JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: arn === undefined ? {} : { authorizer: { iam: { userArn: arn } } },
  };
}

async function call(e: FunctionUrlEvent, secret: CaSecret | null = ca) {
  const logs: Record<string, unknown>[] = [];
  const res = await handleIssue(e, {
    readCaSecret: async () => (secret === null ? null : JSON.stringify(secret)),
    now: () => NOW,
    log: (r) => logs.push(r),
  });
  return { res, body: JSON.parse(res.body) as IssuedCert & { error?: string }, logs };
}

describe("operator certificate issuer", () => {
  it("names the certificate after the caller's session name, not the CN the body asks for", async () => {
    const { res, body } = await call(event(ALICE, { hours: 2, cn: "root", commonName: "etcd-operator" }));
    expect(res.statusCode).toBe(200);
    const cert = new X509Certificate(body.cert);
    expect(cert.subject).toBe("CN=alice@example.com");
    expect(body.cn).toBe("alice@example.com");
    expect(signedBy(body.cert, ca.cert)).toBe(true);
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]); // clientAuth only
    expect(body.key).toContain("BEGIN PRIVATE KEY");
  });

  it.each([
    [undefined, 8],
    [1, 1],
    [12, 12],
  ])("hours %s: valid for %i hours", async (hours, expected) => {
    const { body } = await call(event(ALICE, hours === undefined ? {} : { hours }));
    expect(new Date(body.notAfter).getTime() - NOW.getTime()).toBe(expected * 3_600_000);
  });

  it.each([13, 0, 2.5, "8", 24 * 90])("hours %j: refused with 400, nothing issued", async (hours) => {
    const { res, body, logs } = await call(event(ALICE, { hours }));
    expect(res.statusCode).toBe(400);
    expect(body.error).toBe(`hours must be a whole number from 1 to 12, got ${JSON.stringify(hours)}`);
    expect(logs).toEqual([]);
  });

  it.each([
    ["no caller (AuthType NONE)", undefined, "is missing"],
    ["an IAM user", "arn:aws:iam::123456789012:user/alice", "is not an assumed role's session"],
    ["the account root", "arn:aws:iam::123456789012:root", "is not an assumed role's session"],
    ["a node's role session", "arn:aws:sts::123456789012:assumed-role/Node/i-0123456789abcdef0", "a node's"],
    ["the shared name", "arn:aws:sts::123456789012:assumed-role/Ops/etcd-operator", "a node's or the shared"],
  ])("%s: refused with 403, the ARN and the rule named", async (_what, arn, why) => {
    const { res, body, logs } = await call(event(arn, { hours: 1 }));
    expect(res.statusCode).toBe(403);
    expect(body.error).toContain("[rule: operator-cert-caller]");
    expect(body.error).toContain(JSON.stringify(arn ?? null));
    expect(body.error).toContain(why);
    expect(body.cert).toBeUndefined();
    expect(logs).toMatchObject([{ level: "warn", caller_arn: arn ?? null }]);
  });

  it("during a rotation: the bundle holds both CAs, the certificate is the signer's", async () => {
    const begun = nextCaSecret(ca, "begin", next);
    if (!begun.ok) throw new Error(begun.reason);
    const trustNext = await call(event(ALICE), begun.secret);
    expect(pemCerts(trustNext.body.ca)).toHaveLength(2);
    expect(signedBy(trustNext.body.cert, ca.cert)).toBe(true);
    const promoted = nextCaSecret(begun.secret, "promote");
    if (!promoted.ok) throw new Error(promoted.reason);
    const signNext = await call(event(ALICE), promoted.secret);
    expect(pemCerts(signNext.body.ca)).toHaveLength(2);
    expect(signedBy(signNext.body.cert, next.cert)).toBe(true);
  });

  it("logs the CN, the caller's ARN, the serial and the expiry, never the key", async () => {
    const { body, logs } = await call(event(ALICE, { hours: 3 }));
    expect(logs).toEqual([
      {
        level: "info",
        msg: "issued an operator certificate",
        action: "operator-cert",
        cn: "alice@example.com",
        caller_arn: ALICE,
        serial: body.serial,
        not_after: "2026-11-23T15:00:00.000Z",
      },
    ]);
    expect(JSON.stringify(logs)).not.toContain("PRIVATE KEY");
  });

  it("no CA secret yet: 503 with what to do, nothing issued", async () => {
    const { res, body } = await call(event(ALICE), null);
    expect(res.statusCode).toBe(503);
    expect(body.error).toMatch(/CA secret does not exist yet/);
  });

  it("a body that is not a JSON object: 400", async () => {
    const { res } = await call({ ...event(ALICE), body: "hours=8" });
    expect(res.statusCode).toBe(400);
  });

  it("a GovCloud or China partition session is named too", () => {
    expect(callerName("arn:aws-us-gov:sts::123456789012:assumed-role/Ops/bob")).toEqual({
      ok: true,
      cn: "bob",
    });
  });
});

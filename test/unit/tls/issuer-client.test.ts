// client-cert's issuer path (agent/tls/issuer-client.ts): a SigV4-signed request to the issuer,
// checked by the sandbox's emulated function URL (test/sandbox/function-url.ts) with static test
// credentials, which passes the caller's ARN to the real handler; and the arguments' checks.
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../agent/errors.js";
import { issuerRegion, parseIssuerArgs, requestOperatorCert } from "../../../agent/tls/issuer-client.js";
import { handleIssue } from "../../../agent/tls/operator-issuer.js";
import { type CertKey, createCa, signedBy } from "../../../agent/tls/pki.js";
import { type FunctionUrl, startFunctionUrl } from "../../sandbox/function-url.js";

const ALICE = {
  accessKeyId: "AKIAALICETEST0000000",
  secretAccessKey: "alice-secret-test-key",
  sessionToken: "alice-session-token",
  arn: "arn:aws:sts::123456789012:assumed-role/EtcdOperators/alice",
};
const IAM_USER = {
  accessKeyId: "AKIAUSERTEST00000000",
  secretAccessKey: "user-secret-test-key",
  arn: "arn:aws:iam::123456789012:user/ci",
};

let ca: CertKey;
let fn: FunctionUrl;
beforeAll(async () => {
  ca = await createCa("etcd-agent test CA", new Date(), 30);
  fn = await startFunctionUrl({
    region: "eu-west-1",
    callers: [ALICE, IAM_USER],
    handler: (event) =>
      handleIssue(event, {
        readCaSecret: async () => JSON.stringify(ca),
        now: () => new Date(),
        log: () => {},
      }),
  });
});
afterAll(() => fn.close());

describe("client-cert --issuer-url: the signed request", () => {
  it("signed with the caller's credentials: a certificate in the caller's session name, of the CA", async () => {
    const bundle = await requestOperatorCert({
      ...parseIssuerArgs(fn.url, "2"),
      region: "eu-west-1",
      credentials: ALICE,
    });
    expect(new X509Certificate(bundle.cert).subject).toBe("CN=alice");
    expect(signedBy(bundle.cert, ca.cert)).toBe(true);
    expect(bundle.ca).toBe(ca.cert);
    expect(bundle.key).toContain("BEGIN PRIVATE KEY");
  });

  it("a wrong secret key: the function URL refuses (403) before the handler, a ConfigError", async () => {
    const before = fn.refused;
    const r = requestOperatorCert({
      ...parseIssuerArgs(fn.url, undefined),
      region: "eu-west-1",
      credentials: { ...ALICE, secretAccessKey: "not-alice's" },
    });
    await expect(r).rejects.toThrow(ConfigError);
    await expect(r).rejects.toThrow(/refused the request \(403/);
    expect(fn.refused).toBe(before + 1);
  });

  it("signed for another region: refused", async () => {
    const r = requestOperatorCert({
      ...parseIssuerArgs(fn.url, "1"),
      region: "us-east-1",
      credentials: ALICE,
    });
    await expect(r).rejects.toThrow(/403/);
  });

  it("an IAM user: the handler's refusal, with the rule, reaches the operator", async () => {
    const r = requestOperatorCert({
      ...parseIssuerArgs(fn.url, "1"),
      region: "eu-west-1",
      credentials: IAM_USER,
    });
    await expect(r).rejects.toThrow(/answered 403: .*\[rule: operator-cert-caller\].*user\/ci/);
  });
});

describe("client-cert --issuer-url/--hours: the arguments", () => {
  it.each([
    ["https://abc.lambda-url.eu-west-1.on.aws/", undefined, 8],
    ["http://127.0.0.1:9000/", "12", 12],
    ["http://localhost:9000/", "1", 1],
  ])("%s --hours %s: %i hours", (url, hours, expected) => {
    expect(parseIssuerArgs(url, hours).hours).toBe(expected);
  });

  it.each([
    ["http://abc.lambda-url.eu-west-1.on.aws/", "8", /--issuer-url must be https.*got "http:\/\/abc/],
    ["http://10.0.0.5/", "8", /--issuer-url must be https/],
    ["not a url", "8", /--issuer-url must be the issuer's function URL.*got "not a url"/],
    ["https://x.on.aws/", "13", /--hours must be a whole number from 1 to 12, got "13"/],
    ["https://x.on.aws/", "0", /--hours must be a whole number from 1 to 12, got "0"/],
    ["https://x.on.aws/", "2.5", /--hours must be a whole number from 1 to 12, got "2.5"/],
    ["https://x.on.aws/", "8h", /--hours must be a whole number from 1 to 12, got "8h"/],
  ])("%s --hours %s: a ConfigError naming the value", (url, hours, message) => {
    expect(() => parseIssuerArgs(url, hours)).toThrow(ConfigError);
    expect(() => parseIssuerArgs(url, hours)).toThrow(message);
  });

  it("the region comes from the function URL's host, else the fallback", () => {
    expect(issuerRegion(new URL("https://abc123.lambda-url.ap-southeast-2.on.aws/"), "eu-west-1")).toBe(
      "ap-southeast-2",
    );
    expect(issuerRegion(new URL("http://127.0.0.1:9000/"), "eu-west-1")).toBe("eu-west-1");
  });
});

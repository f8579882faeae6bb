// `etcd-agent ca-rotate`: each step checked against what the members show (a fake probe here; the
// real one in test/e2e/ca-rotation.test.ts), refused with the rule and the members behind, and the
// secret left unchanged by a refusal.
import { beforeAll, describe, expect, it } from "vitest";
import { runCaRotate } from "../../../agent/commands/ca-rotate.js";
import { parseConfig } from "../../../agent/config/config.js";
import { RefusedError } from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";
import { createLogger } from "../../../agent/log.js";
import type { MemberProbe, ProbeCredentials } from "../../../agent/ports/etcd-service.js";
import type { Ports } from "../../../agent/ports/index.js";
import { type CaSecret, caPhase, pemCerts } from "../../../agent/tls/ca-rotation.js";
import { type CertKey, createCa, issue, signedBy } from "../../../agent/tls/pki.js";

const URLS = ["https://127.0.1.5:2379", "https://127.0.1.6:2379", "https://127.0.1.7:2379"];
const config = parseConfig({
  domain: "etcd.test",
  hostedZoneId: "ZTEST",
  asgName: "etcd",
  endpoints: URLS.join(","),
});
const log = createLogger({ write: () => true } as never);

/** Members that trust the CAs in `trusts` and present a certificate of `serves`. */
class FakeMembers implements MemberProbe {
  constructor(
    public trusts: Map<string, string[]>,
    public serves: Map<string, string>,
    public urls: string[] = URLS,
  ) {}
  async members() {
    return this.urls.map((u) => ({ clientUrls: [u], isLearner: false }));
  }
  async accepts(url: string, c: ProbeCredentials) {
    return (this.trusts.get(url) ?? []).some((ca) => signedBy(c.cert, ca));
  }
  async servedCert(url: string) {
    return this.serves.get(url) ?? null;
  }
}

let oldCa: CertKey;
let newCa: CertKey;
const leaf = (ca: CertKey) =>
  issue(ca, {
    commonName: "x",
    names: [],
    usage: "node",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
  });
beforeAll(async () => {
  [oldCa, newCa] = await Promise.all([createCa("old", new Date(), 10), createCa("new", new Date(), 10)]);
});

function ports(secret: CaSecret, operatorCert?: string) {
  const values = new Map<string, string>([["etcd-agent/etcd/ca", JSON.stringify(secret)]]);
  if (operatorCert) values.set("etcd-agent/etcd/operator", JSON.stringify({ cert: operatorCert }));
  const p = {
    secrets: {
      get: async (n: string) => values.get(n) ?? null,
      put: async (n: string, v: string) => void values.set(n, v),
      createIfAbsent: async () => false,
    },
    autoscaling: {
      describeGroup: async () => {
        throw new Error("no AWS here");
      },
    },
    ec2: {},
    clock: { now: () => new Date() },
  } as unknown as Ports;
  return { p, values };
}

const ca = (values: Map<string, string>) =>
  JSON.parse(values.get("etcd-agent/etcd/ca") as string) as CaSecret;

describe("ca-rotate", () => {
  it("begin adds a new CA as next; promote is refused, naming the member whose etcd does not trust it yet", async () => {
    const { p, values } = ports({ ...oldCa });
    const served = (await leaf(oldCa)).cert;
    const members = new FakeMembers(
      new Map(URLS.map((u) => [u, [oldCa.cert]])),
      new Map(URLS.map((u) => [u, served])),
    );
    const begun = await runCaRotate(p, config, log, "begin", members);
    expect(begun.now).toBe("trust-next");
    const next = ca(values).next as CertKey;
    expect(next.cert).not.toBe(oldCa.cert);

    members.trusts.set(URLS[0] as string, [oldCa.cert, next.cert]);
    const refused = await runCaRotate(p, config, log, "promote", members).catch((e) => e);
    expect(refused).toBeInstanceOf(RefusedError);
    expect(refused.message).toContain("[rule: ca-rotation-not-converged]");
    expect(refused.message).toContain(URLS[1]);
    expect(refused.message).not.toContain(URLS[0]);
    expect(caPhase(ca(values))).toBe("trust-next");

    members.trusts.set(URLS[1] as string, [oldCa.cert, next.cert]);
    members.trusts.set(URLS[2] as string, [oldCa.cert, next.cert]);
    const promoted = await runCaRotate(p, config, log, "promote", members);
    expect(promoted.now).toBe("sign-next");
    expect(ca(values).cert).toBe(next.cert);
    expect(JSON.stringify(ca(values))).not.toContain(oldCa.key);
  });

  it("finish is refused until every member and the operators' certificate are of the new CA", async () => {
    const secret: CaSecret = { ...newCa, previous: { cert: oldCa.cert } };
    const { p, values } = ports(secret, (await leaf(oldCa)).cert);
    const both = [oldCa.cert, newCa.cert];
    const members = new FakeMembers(
      new Map(URLS.map((u) => [u, both])),
      new Map([
        [URLS[0] as string, (await leaf(newCa)).cert],
        [URLS[1] as string, (await leaf(oldCa)).cert],
        [URLS[2] as string, (await leaf(newCa)).cert],
      ]),
    );
    const behind = await runCaRotate(p, config, log, "finish", members).catch((e) => e);
    expect(behind.message).toContain(`do not present a certificate of the new CA yet: ${URLS[1]}`);

    members.serves.set(URLS[1] as string, (await leaf(newCa)).cert);
    const operator = await runCaRotate(p, config, log, "finish", members).catch((e) => e);
    expect(operator.message).toContain("the operators' certificate");
    expect(caPhase(ca(values))).toBe("sign-next");

    values.set("etcd-agent/etcd/operator", JSON.stringify({ cert: (await leaf(newCa)).cert }));
    const done = await runCaRotate(p, config, log, "finish", members);
    expect(done.now).toBe("steady");
    expect(pemCerts(ca(values).cert)).toHaveLength(1);
    expect(ca(values).previous).toBeUndefined();
  });

  // F9: with two voters a restart of either loses quorum; the rotation would stop at promote for ever.
  it("begin with two voting members is refused up front (exit 5, rule ca-rotation-too-few-voters) and changes nothing", async () => {
    const { p, values } = ports({ ...oldCa });
    const before = values.get("etcd-agent/etcd/ca");
    const served = (await leaf(oldCa)).cert;
    const members = new FakeMembers(
      new Map(URLS.map((u) => [u, [oldCa.cert]])),
      new Map(URLS.map((u) => [u, served])),
      URLS.slice(0, 2),
    );
    const out = await runCaRotate(p, config, log, "begin", members).catch((e) => e);
    expect(out).toBeInstanceOf(RefusedError);
    expect(exitNameFor(out)).toBe("REFUSED");
    expect(out.message).toContain("[rule: ca-rotation-too-few-voters]");
    expect(out.message).toContain("2 voting members");
    expect(out.message).toContain("scale the group to 3");
    expect(values.get("etcd-agent/etcd/ca")).toBe(before);
  });

  it("a step out of order is refused and changes nothing", async () => {
    const { p, values } = ports({ ...oldCa });
    const before = values.get("etcd-agent/etcd/ca");
    const members = new FakeMembers(
      new Map(URLS.map((u) => [u, [oldCa.cert]])),
      new Map(URLS.map((u) => [u, ""])),
    );
    members.serves = new Map(
      await Promise.all(URLS.map(async (u) => [u, (await leaf(oldCa)).cert] as const)),
    );
    const out = await runCaRotate(p, config, log, "promote", members).catch((e) => e);
    expect(out).toBeInstanceOf(RefusedError);
    expect(out.message).toContain("promote follows begin");
    expect(values.get("etcd-agent/etcd/ca")).toBe(before);
  });
});

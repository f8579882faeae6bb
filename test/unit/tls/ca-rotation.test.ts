// The CA rotation's planner (agent/tls/ca-rotation.ts): the phases the secret can be in, the
// operator's steps between them, and whether a node restarts its etcd. The property: whatever
// sequence of steps an operator tries, each accepted step keeps the two phases compatible (each
// phase's signing CA is trusted by both), at most two CAs are ever trusted, and a restart never
// takes the healthy voters below quorum.
import { fc, test } from "@fast-check/vitest";
import { beforeAll, describe, expect, it } from "vitest";
import { quorumSize } from "../../../agent/planner/quorum.js";
import {
  type CaSecret,
  caPhase,
  nextCaSecret,
  parseCaSecret,
  planCaRestart,
  ROTATION_COMMANDS,
  trustBundle,
  trustSet,
} from "../../../agent/tls/ca-rotation.js";
import { type CertKey, createCa } from "../../../agent/tls/pki.js";

let cas: CertKey[] = [];
beforeAll(async () => {
  cas = await Promise.all([0, 1, 2, 3].map((i) => createCa(`test CA ${i}`, new Date(), 10)));
});
const A = () => cas[0] as CertKey;
const B = () => cas[1] as CertKey;
const fp = (c: CertKey) => trustSet(c.cert)[0] as string;

describe("CA rotation phases", () => {
  it("steady -> trust-next -> sign-next -> steady, each bundle as the phase says", () => {
    const steady: CaSecret = { ...A(), createdAt: "2026-01-01T00:00:00.000Z" };
    const begun = nextCaSecret(steady, "begin", B());
    if (!begun.ok) throw new Error(begun.reason);
    expect(caPhase(begun.secret)).toBe("trust-next");
    expect(begun.secret.cert).toBe(A().cert);
    expect(trustSet(trustBundle(begun.secret))).toEqual([fp(A()), fp(B())].sort());

    const promoted = nextCaSecret(begun.secret, "promote");
    if (!promoted.ok) throw new Error(promoted.reason);
    expect(caPhase(promoted.secret)).toBe("sign-next");
    expect(promoted.secret.cert).toBe(B().cert);
    expect(JSON.stringify(promoted.secret)).not.toContain(A().key);
    expect(trustSet(trustBundle(promoted.secret))).toEqual([fp(A()), fp(B())].sort());

    const finished = nextCaSecret(promoted.secret, "finish");
    if (!finished.ok) throw new Error(finished.reason);
    expect(caPhase(finished.secret)).toBe("steady");
    expect(trustSet(trustBundle(finished.secret))).toEqual([fp(B())]);
  });

  it.each([
    ["promote", "steady", "promote follows begin"],
    ["finish", "steady", "finish follows promote"],
  ] as const)("%s in phase %s is refused: %s", (command, _phase, reason) => {
    const out = nextCaSecret({ ...A() }, command);
    expect(out).toEqual({ ok: false, reason: `${reason}; the phase is steady` });
  });

  it("begin during a rotation is refused", () => {
    const out = nextCaSecret({ ...A(), next: B() }, "begin", cas[2]);
    expect(out.ok).toBe(false);
  });

  it("a secret with both next and previous, or without a key, is not ours", () => {
    expect(parseCaSecret(JSON.stringify({ ...A(), next: B(), previous: { cert: B().cert } }))).toBeNull();
    expect(parseCaSecret(JSON.stringify({ cert: A().cert }))).toBeNull();
    expect(parseCaSecret("hunter2")).toBeNull();
    expect(parseCaSecret(JSON.stringify({ ...A(), createdAt: "x" }))).toEqual({ ...A(), createdAt: "x" });
  });
});

describe("planCaRestart", () => {
  const bundle = () => trustBundle({ ...A(), next: B() });
  it.each([
    ["etcd loaded the bundle already", { loaded: "same", voters: 3, healthy: 3, self: true }, "none"],
    [
      "a changed bundle, every voter healthy",
      { loaded: "old", voters: 3, healthy: 3, self: true },
      "restart",
    ],
    ["a changed bundle, a voter down", { loaded: "old", voters: 3, healthy: 2, self: true }, "hold"],
    [
      "a changed bundle, this member unhealthy",
      { loaded: "old", voters: 3, healthy: 3, self: false },
      "hold",
    ],
    [
      "a one-member cluster (no quorum to keep)",
      { loaded: "old", voters: 1, healthy: 1, self: true },
      "restart",
    ],
    ["nothing recorded", { loaded: null, voters: 3, healthy: 3, self: true }, "restart"],
  ] as const)("%s: %s", (_name, o, action) => {
    const loaded = o.loaded === "same" ? bundle() : o.loaded === "old" ? A().cert : null;
    const d = planCaRestart({
      wanted: bundle(),
      loaded,
      voters: o.voters,
      healthyVoters: o.healthy,
      selfHealthy: o.self,
    });
    expect(d.action).toBe(action);
    if (d.action === "hold") expect(d.rule).toBe("ca-restart-quorum");
  });

  test.prop([fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 7 }), fc.boolean(), fc.boolean()], {
    numRuns: 300,
  })("never a restart that leaves the healthy voters below quorum", (voters, h, self, changed) => {
    const healthy = Math.min(h, voters);
    const d = planCaRestart({
      wanted: bundle(),
      loaded: changed ? A().cert : bundle(),
      voters,
      healthyVoters: healthy,
      selfHealthy: self,
    });
    if (d.action === "restart") {
      expect(changed).toBe(true);
      expect(self).toBe(true);
      if (voters > 1) expect(healthy - 1).toBeGreaterThanOrEqual(quorumSize(voters));
    }
  });
});

describe("any sequence of operator steps", () => {
  test.prop([fc.array(fc.constantFrom(...ROTATION_COMMANDS), { maxLength: 12 })], { numRuns: 100 })(
    "keeps consecutive phases compatible and at most two CAs trusted",
    (commands) => {
      let s: CaSecret = { ...A() };
      let made = 1;
      for (const c of commands) {
        const out = nextCaSecret(s, c, cas[made % cas.length]);
        if (!out.ok) continue;
        if (c === "begin") made++;
        const before = trustSet(trustBundle(s));
        const after = trustSet(trustBundle(out.secret));
        // Each phase's signer is trusted by a node of either phase: no node presents a
        // certificate a peer of the other phase refuses.
        for (const signer of [s.cert, out.secret.cert]) {
          expect(before).toContain(trustSet(signer)[0]);
          expect(after).toContain(trustSet(signer)[0]);
        }
        expect(after.length).toBeLessThanOrEqual(2);
        expect(parseCaSecret(JSON.stringify(out.secret))).not.toBeNull();
        s = out.secret;
      }
      if (caPhase(s) === "steady") expect(trustSet(trustBundle(s))).toHaveLength(1);
    },
  );
});

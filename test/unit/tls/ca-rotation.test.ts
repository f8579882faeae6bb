// The CA rotation's planner (agent/tls/ca-rotation.ts): the phases the secret can be in, the
// operator's steps between them, and whether a node restarts its etcd. The property: whatever
// sequence of steps an operator tries, each accepted step keeps the two phases compatible (each
// phase's signing CA is trusted by both), at most two CAs are ever trusted, and a restart never
// takes the healthy voters below quorum.
import { fc, test } from "@fast-check/vitest";
import { beforeAll, describe, expect, it } from "vitest";
import { quorumSize } from "../../../agent/planner/quorum.js";
import {
  CA_RESTART_MAX_LAG,
  type CaSecret,
  caPhase,
  nextCaSecret,
  parseCaSecret,
  planCaRestart,
  planRotationBegin,
  ROTATION_COMMANDS,
  staleCaSecret,
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
      applied: [{ member: "i-0def", applied: "100" }],
      leaderApplied: "100",
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
      applied: [],
      leaderApplied: "1",
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

// F7: a member counts as healthy once it names a leader, before it has caught up; restarting the
// next one then would leave the commits waiting on the member still replaying.
describe("planCaRestart waits until every voter has caught up with the leader", () => {
  const observe = (applied: string | null, leaderApplied: string | null) =>
    planCaRestart({
      wanted: trustBundle({ ...A(), next: B() }),
      loaded: A().cert,
      voters: 3,
      healthyVoters: 3,
      selfHealthy: true,
      applied: [
        { member: "i-0def", applied: leaderApplied ?? "5000" },
        { member: "i-0fed", applied },
      ],
      leaderApplied,
    });

  it("a voter far behind the leader's applied index: hold, rule ca-restart-catching-up, naming it", () => {
    const d = observe("10", "5000");
    expect(d).toMatchObject({ action: "hold", rule: "ca-restart-catching-up" });
    if (d.action === "hold") expect(d.detail).toContain("i-0fed at applied index 10 of the leader's 5000");
  });

  it("an applied index unknown (or the leader's): hold, the same rule", () => {
    expect(observe(null, "5000")).toMatchObject({ action: "hold", rule: "ca-restart-catching-up" });
    expect(observe("5000", null)).toMatchObject({ action: "hold", rule: "ca-restart-catching-up" });
  });

  test.prop([fc.nat(100_000), fc.nat(3_000)], { numRuns: 100 })(
    "restarts only with every voter within CA_RESTART_MAX_LAG of the leader",
    (leader, behind) => {
      const d = observe(String(Math.max(0, leader - behind)), String(leader));
      expect(d.action).toBe(leader - Math.max(0, leader - behind) <= CA_RESTART_MAX_LAG ? "restart" : "hold");
    },
  );
});

// F9: with two voters a restart of either loses quorum, so a rotation begun would stop at promote
// for ever. begin is refused up front where the restarts could never all happen.
describe("planRotationBegin: voter counts 1..5", () => {
  /** An independent model: n voters, all healthy and caught up, restart one at a time. */
  function everyMemberRestarts(n: number): boolean {
    let restarted = 0;
    for (let i = 0; i < n; i++) {
      const d = planCaRestart({
        wanted: trustBundle({ ...A(), next: B() }),
        loaded: A().cert,
        voters: n,
        healthyVoters: n,
        selfHealthy: true,
        applied: [],
        leaderApplied: "1",
      });
      if (d.action !== "restart") return false;
      // While it restarts n-1 answer: a quorum must remain unless it is alone.
      if (n > 1 && n - 1 < quorumSize(n)) return false;
      restarted++;
    }
    return restarted === n;
  }

  test.prop([fc.integer({ min: 1, max: 5 })], { numRuns: 20 })(
    "begin is refused exactly when the rotation could not restart every member",
    (n) => {
      const out = planRotationBegin(n);
      expect(out.ok).toBe(everyMemberRestarts(n));
      if (!out.ok) {
        expect(out.rule).toBe("ca-rotation-too-few-voters");
        expect(out.detail).toContain(`${n} voting member`);
        expect(out.detail).toContain("scale the group to 3");
      }
    },
  );

  it.each([
    [1, true],
    [2, false],
    [3, true],
    [4, true],
    [5, true],
  ] as const)("%i voters: begin allowed %s", (n, ok) => {
    expect(planRotationBegin(n).ok).toBe(ok);
  });
});

// F8: a stale read of the CA secret (an eventually consistent read, a cache) must not move a node's
// trusted set back past what it has already followed: two phases back it would trust only a CA its
// peers no longer present.
describe("staleCaSecret: the generation a node followed only goes forward", () => {
  const followed = (generation: number, s: CaSecret) => ({
    generation,
    phase: caPhase(s),
    trust: trustSet(trustBundle(s)),
  });

  it("each operator step raises the generation by one", () => {
    const s0: CaSecret = { ...A() };
    const s1 = nextCaSecret(s0, "begin", B());
    if (!s1.ok) throw new Error(s1.reason);
    const s2 = nextCaSecret(s1.secret, "promote");
    if (!s2.ok) throw new Error(s2.reason);
    const s3 = nextCaSecret(s2.secret, "finish");
    if (!s3.ok) throw new Error(s3.reason);
    expect([s1, s2, s3].map((o) => o.ok && o.secret.generation)).toEqual([1, 2, 3]);
    expect(parseCaSecret(JSON.stringify(s2.secret))?.generation).toBe(2);
  });

  it("two phases back (steady A read after sign-next B was followed): stale, rule ca-secret-stale", () => {
    const signNext: CaSecret = { ...B(), previous: { cert: A().cert }, generation: 2 };
    const out = staleCaSecret(followed(2, signNext), { ...A() });
    expect(out).toMatchObject({ rule: "ca-secret-stale" });
    expect(out?.detail).toContain("generation 0");
    expect(out?.detail).toContain("followed generation 2");
  });

  it("one phase back, the same generation, a later one, a first look: not stale", () => {
    const trustNext: CaSecret = { ...A(), next: B(), generation: 1 };
    const signNext: CaSecret = { ...B(), previous: { cert: A().cert }, generation: 2 };
    expect(staleCaSecret(null, { ...A() })).toBeNull();
    expect(staleCaSecret(followed(1, trustNext), trustNext)).toBeNull();
    expect(staleCaSecret(followed(1, trustNext), signNext)).toBeNull();
    // An operator's step back is put with a higher generation (docs/security.md).
    expect(staleCaSecret(followed(2, signNext), { ...trustNext, generation: 3 })).toBeNull();
  });

  it("a new CA sharing nothing with what was followed (a replaced secret) is not stale", () => {
    const signNext: CaSecret = { ...B(), previous: { cert: A().cert }, generation: 2 };
    expect(staleCaSecret(followed(2, signNext), { ...(cas[2] as CertKey) })).toBeNull();
  });

  test.prop([fc.array(fc.constantFrom(...ROTATION_COMMANDS), { minLength: 1, maxLength: 10 }), fc.nat(20)], {
    numRuns: 50,
  })(
    "a node reading any earlier secret of the same rotation history after a later one ignores it",
    (commands, pick) => {
      const history: CaSecret[] = [{ ...A() }];
      let made = 1;
      for (const c of commands) {
        const out = nextCaSecret(history.at(-1) as CaSecret, c, cas[made % cas.length]);
        if (!out.ok) continue;
        if (c === "begin") made++;
        history.push(out.secret);
      }
      const latest = history.length - 1;
      const seen = history[latest] as CaSecret;
      const earlier = history[pick % (latest + 1)] as CaSecret;
      const stale = staleCaSecret(followed(seen.generation ?? 0, seen), earlier);
      const sharesCa = trustSet(trustBundle(earlier)).some((f) => trustSet(trustBundle(seen)).includes(f));
      expect(stale !== null).toBe((earlier.generation ?? 0) < (seen.generation ?? 0) && sharesCa);
    },
  );
});

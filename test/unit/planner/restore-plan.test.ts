// decideBoot under a lost cluster (#13): a restore in progress (marker `restoring`) is done again
// or taken over, never bootstrapped over (defect 1); the candidates and the former members come
// from the lost cluster itself (defect 6); the unreachable clock across boots (defect 3).
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import type { MarkerRead } from "../../../agent/planner/boot-plan.js";
import { type BootDecision, decideBoot, type Recovery } from "../../../agent/planner/boot-plan.js";
import { observeUnreachable, parseMemory, UNREACHABLE_GAP_SECONDS } from "../../../agent/planner/memory.js";
import { ago, asg, bootObs, iid, instance, marker, NOW } from "../../support/fixtures.js";

function kind(d: BootDecision): string {
  return d.kind === "wait" || d.kind === "refuse" ? `${d.kind}:${d.hold.rule}` : d.kind;
}

const OLD = `etcd-${iid(1)}`;
const SNAP = `backups/etcd/2026-11-22T11-00-00-000Z_r9_${OLD}.db`;
// The lost cluster's members were instances 7, 8, 9; the ASG now holds fresh instances 4, 5, 6.
const fresh = asg([instance(4), instance(5), instance(6)]);

function restoring(claimant: string, token = `etcd-${claimant}`): MarkerRead {
  return {
    kind: "present",
    marker: {
      state: "restoring",
      token,
      claimant,
      raw: `"etcd-agent-marker v1 state=restoring token=${token} claimant=${claimant}"`,
    },
  };
}

const recovery = (over: Partial<Recovery> = {}): Recovery => ({
  formerToken: OLD,
  newest: { key: SNAP, takenAt: "2026-11-22T11:00:00.000Z" },
  formerMembers: [iid(7), iid(8), iid(9)],
  unreachableSince: ago(400),
  restoreAfterSeconds: 300,
  ...over,
});

describe("decideBoot: a restore in progress (marker restoring), no member answers", () => {
  it("the restorer whose restore was interrupted restores again, under the same token, without a swap", () => {
    const d = decideBoot(bootObs(4, { asg: fresh, marker: restoring(iid(4)), recovery: recovery() }));
    expect(d).toMatchObject({
      kind: "restore",
      claim: "own",
      clusterToken: `etcd-${iid(4)}`,
      formerToken: OLD,
      snapshotKey: SNAP,
      moveDataAside: false,
    });
  });

  it("partial data of the interrupted restore is moved aside first", () => {
    const d = decideBoot(
      bootObs(4, {
        asg: fresh,
        marker: restoring(iid(4)),
        recovery: recovery(),
        local: { hasData: true, state: null },
      }),
    );
    expect(d).toMatchObject({ kind: "restore", claim: "own", moveDataAside: true });
  });

  it("the restorer whose data is the restored one (state token = marker token) starts on it", () => {
    const d = decideBoot(
      bootObs(4, {
        asg: fresh,
        marker: restoring(iid(4)),
        recovery: recovery(),
        local: {
          hasData: true,
          state: { clusterToken: `etcd-${iid(4)}`, memberId: null, name: iid(4), updatedAt: NOW },
        },
      }),
    );
    expect(d.kind).toBe("rejoin");
  });

  it("another instance waits while the restorer is alive", () => {
    const d = decideBoot(bootObs(5, { asg: fresh, marker: restoring(iid(4)), recovery: recovery() }));
    expect(kind(d)).toBe("wait:restore-in-progress");
  });

  it("when the restorer is gone, the next designated instance takes it over under its own token", () => {
    const withoutRestorer = asg([instance(5), instance(6)]);
    // Gone: not listed and EC2 says terminated (claimantGone).
    const ec2States = { [iid(4)]: "terminated" };
    const d = decideBoot(
      bootObs(5, { asg: withoutRestorer, marker: restoring(iid(4)), recovery: recovery(), ec2States }),
    );
    expect(d).toMatchObject({
      kind: "restore",
      claim: "swap",
      clusterToken: `etcd-${iid(5)}`,
      formerToken: OLD,
    });
    expect(
      kind(
        decideBoot(
          bootObs(6, { asg: withoutRestorer, marker: restoring(iid(4)), recovery: recovery(), ec2States }),
        ),
      ),
    ).toBe("wait:not-bootstrapper");
  });

  it("a restorer missing from the listing that EC2 does not confirm terminated is not gone", () => {
    const withoutRestorer = asg([instance(5), instance(6)]);
    for (const ec2States of [{}, { [iid(4)]: "running" }, { [iid(4)]: "shutting-down" }]) {
      expect(
        kind(
          decideBoot(
            bootObs(5, { asg: withoutRestorer, marker: restoring(iid(4)), recovery: recovery(), ec2States }),
          ),
        ),
      ).toBe("wait:restore-in-progress");
    }
  });

  it("a restorer that is terminating is not gone: its etcd may still start on the restored data", () => {
    const leaving = asg([instance(4, { lifecycleState: "Terminating:Wait" }), instance(5), instance(6)]);
    const d = decideBoot(bootObs(5, { asg: leaving, marker: restoring(iid(4)), recovery: recovery() }));
    expect(kind(d)).toBe("wait:restore-in-progress");
  });

  it("waits when the backups or the lost cluster's token cannot be read", () => {
    expect(kind(decideBoot(bootObs(4, { asg: fresh, marker: restoring(iid(4)), recovery: null })))).toBe(
      "wait:partial-information",
    );
    expect(
      kind(
        decideBoot(
          bootObs(4, { asg: fresh, marker: restoring(iid(4)), recovery: recovery({ formerToken: null }) }),
        ),
      ),
    ).toBe("wait:partial-information");
  });

  test.prop([
    fc.record({
      self: fc.integer({ min: 4, max: 6 }),
      claimant: fc.integer({ min: 1, max: 9 }),
      present: fc.subarray([4, 5, 6, 7, 8, 9]),
      leaving: fc.subarray([4, 5, 6, 7, 8, 9]),
      hasData: fc.boolean(),
      stateToken: fc.option(fc.constantFrom(OLD, `etcd-${iid(4)}`, `etcd-${iid(5)}`, "other"), { nil: null }),
      recovery: fc.option(
        fc.record({
          formerToken: fc.option(fc.constant(OLD), { nil: null }),
          newest: fc.option(fc.constant({ key: SNAP, takenAt: "2026-11-22T11:00:00.000Z" }), { nil: null }),
          waited: fc.integer({ min: 0, max: 1000 }),
        }),
        { nil: null },
      ),
    }),
  ])(
    "under a restoring marker: never a bootstrap, and a restore only of the lost cluster's own snapshot",
    (g) => {
      const instances = [...new Set([g.self, ...g.present])].map((n) =>
        instance(n, g.leaving.includes(n) && n !== g.self ? { lifecycleState: "Terminating" } : {}),
      );
      const d = decideBoot(
        bootObs(g.self, {
          asg: asg(instances),
          marker: restoring(iid(g.claimant)),
          local: {
            hasData: g.hasData,
            state:
              g.stateToken === null
                ? null
                : { clusterToken: g.stateToken, memberId: null, name: iid(g.self), updatedAt: NOW },
          },
          recovery:
            g.recovery === null
              ? null
              : recovery({ ...g.recovery, unreachableSince: ago(g.recovery.waited) }),
        }),
      );
      expect(d.kind).not.toBe("bootstrap");
      if (d.kind === "restore") {
        expect(d.formerToken).toBe(OLD);
        expect(d.snapshotKey).toBe(SNAP);
        expect(d.moveDataAside).toBe(g.hasData);
      }
      if (d.kind === "rejoin") expect(g.hasData && g.stateToken === `etcd-${iid(g.claimant)}`).toBe(true);
    },
  );
});

describe("decideBoot: restore eligibility from the lost cluster itself (#13 defect 6)", () => {
  const ec2States = Object.fromEntries([5, 6, 7, 8, 9].map((n) => [iid(n), "terminated"]));
  const obs = (over: Partial<Recovery> = {}, group = fresh) =>
    bootObs(4, { asg: group, marker: marker("active"), recovery: recovery(over), ec2States });

  it("restores the marker's cluster's newest snapshot when every former member is gone", () => {
    expect(decideBoot(obs())).toMatchObject({
      kind: "restore",
      snapshotKey: SNAP,
      formerToken: OLD,
      claim: "swap",
    });
  });

  it("a newest snapshot of another cluster is never taken: no-snapshot names what was found", () => {
    const d = decideBoot(
      obs({
        newest: null,
        otherNewest: { key: "backups/etcd/x_r1_etcd-other.db", clusterToken: "etcd-other" },
      }),
    );
    expect(kind(d)).toBe("refuse:no-snapshot");
    expect(d.kind === "refuse" && d.hold.detail).toMatch(/x_r1_etcd-other\.db.*etcd-other.*never restored/);
  });

  it("an instance in the member registry but not in the snapshot (joined since) holds the restore", () => {
    // formerMembers is the snapshot's members with the registry's: 5 joined after the snapshot.
    const d = decideBoot(obs({ formerMembers: [iid(5), iid(7), iid(8), iid(9)] }));
    expect(kind(d)).toBe("wait:former-member-present");
    expect(d.kind === "wait" && d.hold.detail).toContain(iid(5));
  });

  it("a stale registry entry (member removed, instance still in the ASG) holds it too: conservative", () => {
    expect(kind(decideBoot(obs({ formerMembers: [iid(6)] })))).toBe("wait:former-member-present");
  });

  it("no snapshot members and no registry entries: refuses, none can be ruled out", () => {
    expect(kind(decideBoot(obs({ formerMembers: [] })))).toBe("refuse:former-member-present");
  });

  it("the bound counts from the persisted first sighting", () => {
    expect(kind(decideBoot(obs({ unreachableSince: ago(299) })))).toBe("wait:restore-wait");
    expect(decideBoot(obs({ unreachableSince: ago(300) })).kind).toBe("restore");
  });
});

describe("the unreachable clock across boots (#13 defect 3)", () => {
  const at = (s: number) => new Date(Date.parse(NOW) + s * 1000).toISOString();
  const empty = parseMemory(null);

  it("continues across observations closer than the gap bound, and stops when a member answers", () => {
    let m = observeUnreachable(empty, false, at(0));
    m = observeUnreachable(m, false, at(100));
    m = observeUnreachable(m, false, at(100 + UNREACHABLE_GAP_SECONDS));
    expect(m.unreachableSince).toBe(at(0));
    expect(observeUnreachable(m, true, at(300)).unreachableSince).toBeNull();
  });

  it("restarts after a gap longer than the bound, or a clock that went back", () => {
    const m = observeUnreachable(empty, false, at(0));
    expect(observeUnreachable(m, false, at(UNREACHABLE_GAP_SECONDS + 1)).unreachableSince).toBe(
      at(UNREACHABLE_GAP_SECONDS + 1),
    );
    expect(observeUnreachable(m, false, at(-5)).unreachableSince).toBe(at(-5));
  });

  it("survives the round trip through the state dir; half a clock is no clock", () => {
    const m = observeUnreachable(empty, false, at(0));
    expect(parseMemory(JSON.parse(JSON.stringify(m)))).toMatchObject({
      unreachableSince: at(0),
      unreachableConfirmedAt: at(0),
    });
    expect(parseMemory({ unreachableSince: at(0) }).unreachableSince).toBeNull();
    expect(
      parseMemory({ unreachableSince: "soon", unreachableConfirmedAt: at(0) }).unreachableSince,
    ).toBeNull();
  });
});

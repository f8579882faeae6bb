import { describe, expect, it } from "vitest";
import { type BootDecision, decideBoot } from "../../../agent/planner/boot-plan.js";
import {
  ABSENT,
  ago,
  asg,
  bootObs,
  cluster,
  iid,
  instance,
  marker,
  member,
  NOW,
} from "../../support/fixtures.js";

function kind(d: BootDecision): string {
  return d.kind === "wait" || d.kind === "refuse" ? `${d.kind}:${d.hold.rule}` : d.kind;
}

describe("decideBoot: no member answers", () => {
  it.each([
    ["the earliest launched instance bootstraps", 1, {}, "bootstrap"],
    ["a later instance waits for the bootstrapper", 2, {}, "wait:not-bootstrapper"],
    [
      "an active marker refuses a new empty cluster",
      1,
      { marker: marker("active") },
      "refuse:cluster-existed",
    ],
    [
      "an unreadable marker waits",
      1,
      { marker: { kind: "unknown", error: "throttled" } },
      "wait:marker-unknown",
    ],
    ["an unreadable ASG waits", 1, { asg: null }, "wait:partial-information"],
    ["its own earlier claim resumes", 1, { marker: marker("claimed", iid(1)) }, "bootstrap"],
    ["a live claimant's claim waits", 2, { marker: marker("claimed", iid(1)) }, "wait:bootstrap-claimed"],
  ] as const)("%s", (_name, self, over, expected) => {
    expect(kind(decideBoot(bootObs(self, over as never)))).toBe(expected);
  });

  it("waits instead of refusing when the ASG could not be read: no peer was asked", () => {
    expect(kind(decideBoot(bootObs(1, { asg: null, marker: marker("active") })))).toBe(
      "wait:partial-information",
    );
  });

  it("names the designated bootstrapper when it waits", () => {
    const d = decideBoot(bootObs(3));
    expect(d.kind === "wait" && d.hold.detail).toContain(iid(1));
  });

  it("breaks a launch-time tie by instance ID, the same on every node", () => {
    const same = "2026-11-22T10:00:00.000Z";
    const group = asg([
      instance(3, { launchTime: same }),
      instance(2, { launchTime: same }),
      instance(1, { launchTime: same }),
    ]);
    const decisions = [1, 2, 3].map((n) => kind(decideBoot(bootObs(n, { asg: group }))));
    expect(decisions).toEqual(["bootstrap", "wait:not-bootstrapper", "wait:not-bootstrapper"]);
  });

  it("ignores instances that are leaving when it picks the bootstrapper", () => {
    const group = asg([instance(1, { lifecycleState: "Terminating:Wait" }), instance(2), instance(3)]);
    expect(kind(decideBoot(bootObs(2, { asg: group })))).toBe("bootstrap");
  });

  it("does not bootstrap from an instance that is not eligible itself", () => {
    const group = asg([instance(1, { healthStatus: "Unhealthy" }), instance(2)]);
    expect(kind(decideBoot(bootObs(1, { asg: group })))).toBe("wait:self-not-eligible");
  });

  it("takes over a claim whose claimant left before anyone joined", () => {
    const group = asg([instance(2), instance(3)]);
    const ec2States = { [iid(1)]: "terminated" };
    const d = decideBoot(bootObs(2, { asg: group, marker: marker("claimed", iid(1)), ec2States }));
    expect(d).toMatchObject({ kind: "bootstrap", claim: "takeover" });
  });

  it("lets only the next designated instance take over a dead claim", () => {
    const group = asg([instance(2), instance(3)]);
    const ec2States = { [iid(1)]: "terminated" };
    expect(kind(decideBoot(bootObs(3, { asg: group, marker: marker("claimed", iid(1)), ec2States })))).toBe(
      "wait:not-bootstrapper",
    );
  });

  it("rejoins on its own data for the marked cluster so a cluster that lost quorum comes back", () => {
    const local = {
      hasData: true,
      state: { clusterToken: "etcd-i-00000001", memberId: "2", name: iid(2), updatedAt: "" },
    };
    expect(decideBoot(bootObs(2, { marker: marker("active"), local }))).toMatchObject({
      kind: "rejoin",
      memberId: "2",
    });
  });

  it("does not rejoin on data from another cluster and refuses to seed over the marked one", () => {
    const local = {
      hasData: true,
      state: { clusterToken: "old-token", memberId: "2", name: iid(2), updatedAt: "" },
    };
    expect(kind(decideBoot(bootObs(2, { marker: marker("active"), local })))).toBe("refuse:cluster-existed");
  });

  it("moves stale data aside when it bootstraps", () => {
    const local = { hasData: true, state: null };
    expect(decideBoot(bootObs(1, { local }))).toMatchObject({ kind: "bootstrap", moveDataAside: true });
  });

  it("waits while this instance is terminating", () => {
    const self = { instanceId: iid(1), privateIp: "127.0.1.1", targetLifecycleState: "Terminated" };
    expect(kind(decideBoot(bootObs(1, { self })))).toBe("wait:self-terminating");
  });
});

describe("decideBoot: the cluster answers", () => {
  const healthy3 = cluster([member(1), member(2), member(3)]);

  it("rejoins when its member is in the cluster and it holds the data", () => {
    const local = { hasData: true, state: { clusterToken: "t", memberId: "2", name: iid(2), updatedAt: "" } };
    expect(decideBoot(bootObs(2, { cluster: healthy3, local }))).toMatchObject({
      kind: "rejoin",
      memberId: "2",
    });
  });

  it("rejoins when the bootstrapper's state has no member ID yet", () => {
    const local = {
      hasData: true,
      state: { clusterToken: "t", memberId: null, name: iid(1), updatedAt: "" },
    };
    expect(decideBoot(bootObs(1, { cluster: healthy3, local }))).toMatchObject({ kind: "rejoin" });
  });

  it("removes its own started member when its data is gone, then joins again", () => {
    const d = decideBoot(bootObs(3, { cluster: healthy3 }));
    expect(d).toMatchObject({ kind: "join", removeFirst: { memberId: "3" } });
  });

  it("joins as a learner when it is not a member and the cluster is healthy", () => {
    const c = cluster([member(1), member(2)]);
    const d = decideBoot(bootObs(3, { cluster: c, marker: marker("active") }));
    expect(d).toMatchObject({ kind: "join", removeFirst: null, resumeMemberId: null, moveDataAside: false });
  });

  it("moves the data aside of a node whose member was removed", () => {
    const c = cluster([member(1), member(2)]);
    const local = { hasData: true, state: { clusterToken: "t", memberId: "3", name: iid(3), updatedAt: "" } };
    expect(decideBoot(bootObs(3, { cluster: c, local }))).toMatchObject({
      kind: "join",
      moveDataAside: true,
    });
  });

  it("resumes a member that was added for it and never started, adding nothing", () => {
    const c = cluster([member(1), member(2), member(3, { started: false, learner: true })]);
    expect(decideBoot(bootObs(3, { cluster: c }))).toMatchObject({
      kind: "join",
      resumeMemberId: "3",
      removeFirst: null,
    });
  });

  it("activates a claimed marker before adding anyone", () => {
    const c = cluster([member(1)]);
    const group = asg([instance(1), instance(2)]);
    const d = decideBoot(bootObs(2, { cluster: c, asg: group, marker: marker("claimed") }));
    expect(d).toMatchObject({ kind: "join", activateMarker: true });
  });

  it("removes a dead voter whose instance has left the ASG to make room", () => {
    const c = cluster([member(1), member(2), member(9, { healthy: false })]);
    const d = decideBoot(bootObs(3, { cluster: c }));
    expect(d).toMatchObject({ kind: "join", removeFirst: { memberId: "9" } });
  });

  it("waits for a new leader when the members still name a dead one (no change during an election)", () => {
    // Member 9's instance has left the ASG; it was the leader.
    const c = cluster([member(9, { healthy: false }), member(2), member(3)], "9");
    expect(kind(decideBoot(bootObs(4, { cluster: c })))).toBe("wait:no-leader");
    const leaderless = cluster([member(2), member(3)], null);
    expect(kind(decideBoot(bootObs(4, { cluster: leaderless })))).toBe("wait:no-leader");
    const elected = cluster([member(9, { healthy: false }), member(2), member(3)], "2");
    expect(decideBoot(bootObs(4, { cluster: elected }))).toMatchObject({
      kind: "join",
      removeFirst: { memberId: "9" },
    });
  });

  it("waits for a dead voter whose instance is still in the ASG", () => {
    const c = cluster([member(1), member(2), member(3, { healthy: false })]);
    const group = asg([instance(1), instance(2), instance(3), instance(4)]);
    expect(kind(decideBoot(bootObs(4, { cluster: c, asg: group })))).toBe("wait:dead-member-blocks-join");
  });

  it("removes a never-started member whose instance is gone", () => {
    const c = cluster([member(1), member(2), member(9, { started: false, learner: true })]);
    expect(decideBoot(bootObs(3, { cluster: c }))).toMatchObject({
      kind: "join",
      removeFirst: { memberId: "9" },
    });
  });

  it("waits within the startup grace for a never-started member of a live instance", () => {
    const c = cluster([member(1), member(2), member(4, { started: false, learner: true })]);
    const group = asg([instance(1), instance(2), instance(3), instance(4)]);
    const d = decideBoot(bootObs(3, { cluster: c, asg: group, firstSeen: { "4": ago(10) } }));
    expect(kind(d)).toBe("wait:learner-in-progress");
  });

  it("removes a never-started member of a live instance after the startup grace", () => {
    const c = cluster([member(1), member(2), member(4, { started: false, learner: true })]);
    const group = asg([instance(1), instance(2), instance(3), instance(4)]);
    const d = decideBoot(bootObs(3, { cluster: c, asg: group, firstSeen: { "4": ago(301) } }));
    expect(d).toMatchObject({ kind: "join", removeFirst: { memberId: "4" } });
  });

  it("waits while another learner catches up (etcd allows one)", () => {
    const c = cluster([member(1), member(2), member(4, { learner: true })]);
    const group = asg([instance(1), instance(2), instance(3), instance(4)]);
    expect(kind(decideBoot(bootObs(3, { cluster: c, asg: group })))).toBe("wait:learner-in-progress");
  });

  it("waits when the cluster has no quorum", () => {
    const c = cluster([member(1), member(2, { healthy: false }), member(9, { healthy: false })], null);
    expect(kind(decideBoot(bootObs(3, { cluster: c })))).toBe("wait:cluster-has-no-quorum");
  });

  it("refuses to remove a dead member when the ASG cannot be read", () => {
    const c = cluster([member(1), member(2), member(9, { healthy: false })]);
    expect(kind(decideBoot(bootObs(3, { cluster: c, asg: null })))).toBe("wait:partial-information");
  });

  it("waits rather than remove its own member when that would break quorum", () => {
    // 2 voters, both down, this instance's member among them: removing it leaves 0 healthy of 1.
    const c = cluster([member(1, { healthy: false }), member(2, { healthy: false })], null);
    const group = asg([instance(1), instance(2)]);
    expect(kind(decideBoot(bootObs(2, { cluster: c, asg: group, marker: ABSENT })))).toBe(
      "wait:quorum-after-removal",
    );
  });
});

describe("decideBoot: disaster recovery (the cluster existed, no member answers)", () => {
  // The lost cluster's members were instances 7, 8, 9; the ASG now holds fresh instances 4, 5, 6.
  const fresh = asg([instance(4), instance(5), instance(6)]);
  const recovery = (over: object = {}) => ({
    newest: { key: "backups/g/2026-11-22T11-00-00-000Z_r9_etcd-x.db", takenAt: "2026-11-22T11:00:00.000Z" },
    formerMembers: [iid(7), iid(8), iid(9)],
    unreachableSince: ago(400),
    restoreAfterSeconds: 300,
    ...over,
  });
  // EC2 confirms the lost members terminated (claimantGone: not listed and EC2 says so).
  const ec2States = { [iid(7)]: "terminated", [iid(8)]: "terminated", [iid(9)]: "not-found" };
  const obs = (self: number, over: object = {}) =>
    bootObs(self, { asg: fresh, marker: marker("active"), recovery: recovery(over), ec2States });

  it("no restore while a lost member is unlisted but EC2 does not confirm it terminated", () => {
    for (const state of [undefined, "running", "stopping", "shutting-down"]) {
      const states: Record<string, string> = { ...ec2States };
      if (state === undefined) delete states[iid(8)];
      else states[iid(8)] = state;
      const d = decideBoot(
        bootObs(4, { asg: fresh, marker: marker("active"), recovery: recovery(), ec2States: states }),
      );
      expect(kind(d)).toBe("wait:former-member-present");
    }
  });

  it("no restore while a lost member is listed in any state, Terminating:Wait included", () => {
    for (const lifecycleState of ["Terminating:Wait", "Terminating:Proceed", "Detached", "Standby"]) {
      const listed = asg([instance(4), instance(5), instance(8, { lifecycleState })]);
      const d = decideBoot(
        bootObs(4, { asg: listed, marker: marker("active"), recovery: recovery(), ec2States }),
      );
      expect(kind(d)).toBe("wait:former-member-present");
    }
  });

  it("the earliest-launched instance restores the newest snapshot with a new token", () => {
    const d = decideBoot(obs(4));
    expect(d).toMatchObject({
      kind: "restore",
      snapshotKey: "backups/g/2026-11-22T11-00-00-000Z_r9_etcd-x.db",
      formerToken: `etcd-${iid(1)}`,
    });
    expect((d as { clusterToken: string }).clusterToken).not.toBe(`etcd-${iid(1)}`);
  });

  it("the others wait to join it", () => {
    expect(kind(decideBoot(obs(5)))).toBe("wait:not-bootstrapper");
  });

  it("no restore while an instance of the lost cluster is still in the ASG", () => {
    const withOld = bootObs(4, {
      asg: asg([instance(4), instance(5), instance(9)]),
      marker: marker("active"),
      recovery: recovery(),
    });
    expect(kind(decideBoot(withOld))).toBe("wait:former-member-present");
  });

  it("no restore before the bound has passed", () => {
    expect(kind(decideBoot(obs(4, { unreachableSince: ago(120) })))).toBe("wait:restore-wait");
  });

  it("refuses with no snapshot, with a snapshot that names no members, and with backups off", () => {
    expect(kind(decideBoot(obs(4, { newest: null })))).toBe("refuse:no-snapshot");
    expect(kind(decideBoot(obs(4, { formerMembers: [] })))).toBe("refuse:former-member-present");
    expect(kind(decideBoot(bootObs(4, { asg: fresh, marker: marker("active"), recovery: null })))).toBe(
      "refuse:cluster-existed",
    );
  });

  it("a node with its own data still rejoins on it instead (never a restore over data)", () => {
    const d = decideBoot(
      bootObs(4, {
        asg: fresh,
        marker: marker("active"),
        recovery: recovery(),
        local: {
          hasData: true,
          state: { clusterToken: `etcd-${iid(1)}`, memberId: "4", name: iid(4), updatedAt: NOW },
        },
      }),
    );
    expect(d.kind).toBe("rejoin");
  });
});

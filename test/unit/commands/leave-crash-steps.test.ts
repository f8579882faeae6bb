// A graceful leave survives a crash after every step: the leaving leader's agent dies right after
// it handed leadership away, after it left etcd, or after it completed the terminate hook, and a
// new process carries on from what etcd, AWS and the persisted clocks say. Two agents run (the
// leaving leader and the next one, which drops the leaver from DNS); etcd is an in-memory model of
// one cluster, AWS the in-process fake.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryLocalNode } from "../../../agent/adapters/memory-local.js";
import { type AfterStep, SimulatedCrashError } from "../../../agent/apply/steps.js";
import { initialLoopState, LEAVE_STEPS, type LoopState, reconcileOnce } from "../../../agent/commands/run.js";
import { silentLogger } from "../../../agent/log.js";
import { desiredRecords } from "../../../agent/planner/dns-plan.js";
import type { Member, MemberStatus } from "../../../agent/planner/observation.js";
import type { EtcdCluster } from "../../../agent/ports/etcd.js";
import type { Ports } from "../../../agent/ports/index.js";
import { FakeAws } from "../../fakes/fake-aws.js";
import { nodeConfig } from "../../support/etcd-node.js";

const ipOf = (n: number) => `127.0.24.${n}`;
const idOf = (n: number) => `i-${n.toString(16).padStart(8, "0")}`;
const T0 = Date.parse("2026-11-22T12:00:00.000Z");

/** One etcd cluster in memory: members, a leader, and what happened in order. */
class EtcdModel {
  members: Member[] = [1, 2, 3].map((n) => ({
    id: String(n),
    name: idOf(n),
    peerUrls: [`http://${ipOf(n)}:2380`],
    clientUrls: [`http://${ipOf(n)}:2379`],
    isLearner: false,
  }));
  leader = "1";
  readonly events: string[] = [];

  port(): EtcdCluster {
    const byUrl = (url: string) => this.members.find((x) => x.clientUrls.includes(url.replace(/\/$/, "")));
    return {
      memberList: async () => ({
        clusterId: "42",
        memberId: this.leader,
        members: structuredClone(this.members),
      }),
      status: async (url: string): Promise<MemberStatus | null> => {
        const x = byUrl(url);
        if (!x) return null;
        return {
          memberId: x.id,
          leaderId: this.leader,
          raftIndex: "100",
          raftTerm: "2",
          dbSize: 20480,
          isLearner: false,
          version: "3.4.23",
          errors: [],
        };
      },
      moveLeader: async (_url: string, to: string) => {
        this.leader = to;
        this.events.push(`leader ${to}`);
      },
      memberRemove: async (_endpoints: string[], id: string) => {
        if (!this.members.some((x) => x.id === id)) return false;
        // etcd itself refuses to lose quorum: a removal the members could not commit never happens.
        expect(this.members.length - 1, "voters left after a removal").toBeGreaterThanOrEqual(2);
        this.members = this.members.filter((x) => x.id !== id);
        this.events.push(`removed ${id} (leader ${this.leader})`);
        if (this.leader === id) this.leader = this.members[0]?.id ?? "0";
        return true;
      },
      close: async () => {},
    } as unknown as EtcdCluster;
  }
}

/** The leaving node's ports, dead after `crashAfter` has been applied once (every later call throws). */
function mortal(ports: Ports, crashAfter: string | null, onCrash: () => void): Ports {
  let dead = false;
  const kill = (step: string) => {
    dead = true;
    onCrash();
    throw new SimulatedCrashError(step);
  };
  const guard = <T extends object>(target: T, steps: Record<string, string>): T =>
    new Proxy(target, {
      get(t, prop, recv) {
        const v = Reflect.get(t, prop, recv);
        if (typeof v !== "function") return v;
        return async (...args: unknown[]) => {
          if (dead) throw new Error("the process is dead");
          const out = await (v as (...a: unknown[]) => unknown).apply(t, args);
          const step = steps[String(prop)];
          if (step !== undefined && step === crashAfter) kill(step);
          return out;
        };
      },
    });
  return {
    ...ports,
    etcd: guard(ports.etcd, { moveLeader: "leave:move-leader", memberRemove: "leave:remove-self" }),
    autoscaling: guard(ports.autoscaling, { completeLifecycleAction: "leave:complete-hook" }),
    dns: guard(ports.dns, {}),
    local: guard(ports.local, {}),
  };
}

describe("a graceful leave killed after each of its steps", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-agent-leave-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = nodeConfig(dir, { intervalSeconds: 10 });

  // The same leave, killed by the run loop's applier right after each action it carried out
  // (agent/apply/reconcile.ts, the `reconcile:<type>` steps) instead of by a port.
  const viaPorts = [...Object.keys(LEAVE_STEPS), null].map((at) => ({ at, via: "port" as const }));
  const viaSteps = Object.values(LEAVE_STEPS).map((type) => ({
    at: `reconcile:${type}`,
    via: "step" as const,
  }));
  it.each([
    ...viaPorts,
    ...viaSteps,
  ])("crash after $at ($via): the member leaves etcd once, after the hand-over and the drain, then the hook completes once", async ({
    at: crashAfter,
    via,
  }) => {
    const aws = new FakeAws();
    for (const n of [1, 2, 3]) aws.launch(n, ipOf(n));
    aws.hooks = { launch: null, terminate: "term" };
    const leaving = aws.instances.get(idOf(1));
    if (leaving)
      Object.assign(leaving, { lifecycleState: "Terminating:Wait", targetLifecycleState: "Terminated" });
    const etcd = new EtcdModel();
    const records = desiredRecords(
      [1, 2, 3].map((n) => ({ name: idOf(n), ip: ipOf(n) })),
      { domain: config.domain, peerPort: config.peerPort, clientPort: config.clientPort, tls: false },
    );
    for (const r of records) aws.records.set(`${r.type} ${r.name}`, r);
    let now = T0;
    const clock = { now: () => new Date(now), sleep: async () => {} };
    const agent = (n: number) => {
      const local = new MemoryLocalNode();
      return {
        local,
        ports: {
          metadata: aws.metadata(idOf(n)),
          autoscaling: aws.autoscaling(),
          ec2: aws.ec2(),
          dns: aws.dns(),
          etcd: etcd.port(),
          clock,
          local,
          serviceManager: {
            ready: async () => {},
            status: async () => {},
            watchdog: async () => {},
            stopping: async () => {},
          },
        } as unknown as Ports,
        ctx: {
          identity: { instanceId: idOf(n), privateIp: ipOf(n), region: "r", availabilityZone: "a" },
          asgName: "etcd",
        },
      };
    };
    const one = agent(1);
    const two = agent(2);
    let crashes = 0;
    let oneState: LoopState = initialLoopState();
    const twoState = initialLoopState();
    let onePorts = via === "port" ? mortal(one.ports, crashAfter, () => crashes++) : one.ports;
    let afterStep: AfterStep | undefined =
      via === "step"
        ? (step) => {
            if (step !== crashAfter) return;
            crashes++;
            throw new SimulatedCrashError(step);
          }
        : undefined;
    const published = () => [...aws.records.values()].some((r) => r.values.some((v) => v.includes(idOf(1))));
    const removedWhilePublished: boolean[] = [];

    for (let cycle = 0; cycle < 60 && aws.instances.has(idOf(1)); cycle++) {
      now += 10_000;
      const before = etcd.members.length;
      const wasPublished = published();
      await reconcileOnce(onePorts, config, one.ctx, oneState, silentLogger, afterStep).catch(
        () => undefined,
      );
      if (etcd.members.length < before) removedWhilePublished.push(wasPublished);
      if (crashes > 0 && (onePorts !== one.ports || afterStep !== undefined)) {
        // The process died: systemd starts a new one on the same disk, with no fault left.
        oneState = initialLoopState();
        onePorts = one.ports;
        afterStep = undefined;
      }
      await reconcileOnce(two.ports, config, two.ctx, twoState, silentLogger);
    }

    expect(crashes, "the crash fired").toBe(crashAfter === null ? 0 : 1);
    expect(etcd.members.map((m) => m.id)).toEqual(["2", "3"]);
    // Leadership was handed away before the leaver left etcd, and it left once.
    expect(etcd.events.filter((e) => e.startsWith("removed"))).toEqual([
      expect.stringMatching(/^removed 1 \(leader [23]\)$/),
    ]);
    expect(etcd.events[0]).toMatch(/^leader [23]$/);
    // Drained: no record named it when it left etcd.
    expect(removedWhilePublished).toEqual([false]);
    // The hook completed once, after the removal, and the instance went.
    expect(aws.completed.filter((c) => c.instanceId === idOf(1))).toEqual([
      { instanceId: idOf(1), hookName: "term", result: "CONTINUE" },
    ]);
    expect(aws.instances.has(idOf(1))).toBe(false);
  });
});

// Lifecycle hooks in the sandbox (emulated by the gap filler): launch hooks complete only once the
// member is a healthy voter; a graceful termination hands leadership away and removes the member
// before the instance goes, with a snapshot saved first.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AutoScalingClient, TerminateInstanceInAutoScalingGroupCommand } from "@aws-sdk/client-auto-scaling";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sandbox } from "../sandbox/sandbox.js";
import { worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { expectEveryWriteReadable, openScenario, type Scenario } from "../support/with-sandbox.js";

describe("lifecycle hooks in the sandbox", () => {
  let sandbox: Sandbox;
  let scenario: Scenario | undefined;
  let root = "";
  beforeAll(async () => {
    // Production's hooks (the sandbox's default): launch ABANDON after 15 min, terminate CONTINUE after 10 min.
    scenario = await openScenario({ subnet: "127.0.34.0/24" });
    sandbox = scenario.sandbox;
    root = scenario.root;
  });

  afterAll(async () => {
    await scenario?.close();
    await sandbox.probe.close();
  });

  it("each instance waits in Pending:Wait until its agent completes the launch hook as a healthy voter", async () => {
    await eventually("no instance left waiting", 60_000, async () =>
      Object.keys(sandbox.gaps.waits()).length === 0 ? true : undefined,
    );
    const instances = await worldInstances(sandbox.world);
    for (const i of instances) {
      const log = readFileSync(join(root, i.instanceId, "agent.log"), "utf8");
      expect(log).toContain('"msg":"completed the launch lifecycle action"');
      expect(log).toContain('"reason":"member ');
    }
    expect(sandbox.gaps.calls.get("autoscaling:CompleteLifecycleAction")?.seen).toBeGreaterThanOrEqual(3);
  });

  it("a graceful termination of the leader: leadership handed away, member removed, then the instance goes", async () => {
    const before = await worldInstances(sandbox.world);
    const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
    const leaderId = (await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string)))?.leaderId;
    const leaving = list.members.find((m) => m.id === leaderId)?.name as string;
    const asg = new AutoScalingClient({
      endpoint: sandbox.gaps.url,
      region: sandbox.world.region,
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });

    const askedAt = new Date().toISOString();
    await asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: leaving,
        ShouldDecrementDesiredCapacity: false,
      }),
    );

    expect(sandbox.gaps.waits()[leaving]).toBe("Terminating:Wait");
    // Watched from outside, every 100 ms: when the leader changed, when the member left etcd, when
    // the instance left the group. (Which agent logs what depends on timing; these do not.)
    const others = before.filter((i) => i.instanceId !== leaving).map((i) => sandbox.clientUrl(i.ip));
    const at: { handedOver?: number; removed?: number; gone?: number } = {};
    for (let i = 0; i < 900 && at.gone === undefined; i++) {
      const now = Date.now();
      const status = await Promise.all(others.map((u) => sandbox.probe.status(u)));
      const leaders = status.map((st) => st?.leaderId).filter((x) => x && x !== "0");
      if (at.handedOver === undefined && leaders.length > 0 && leaders.every((x) => x !== leaderId))
        at.handedOver = now;
      const names = (await sandbox.probe.memberList(others).catch(() => null))?.members.map((m) => m.name);
      if (at.removed === undefined && names && !names.includes(leaving)) at.removed = now;
      if (!(await worldInstances(sandbox.world)).some((x) => x.instanceId === leaving)) at.gone = now;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(at.handedOver).toBeDefined();
    expect(at.removed).toBeDefined();
    expect(at.gone).toBeDefined();
    expect(at.handedOver as number).toBeLessThan(at.removed as number);
    expect(at.removed as number).toBeLessThanOrEqual(at.gone as number);
    // The leaving agent's own account, where it got the answers: handover, then removal, then the hook.
    const log = readFileSync(join(root, leaving, "agent.log"), "utf8");
    expect(log).toContain('"msg":"completed the terminate lifecycle action"');
    // Backups are on in the sandbox: a snapshot was saved after the request and before the handover.
    const saved = log
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { ts: string; msg: string })
      .filter(
        (l) =>
          l.msg === "saved a snapshot" && l.ts >= askedAt && Date.parse(l.ts) <= (at.handedOver as number),
      );
    expect(saved.length).toBeGreaterThanOrEqual(1);
    await eventually("three voters again", 150_000, () => sandbox.settledInstances(3));
  });

  it("every write acknowledged while this ran is readable", async () => {
    if (!scenario?.writer) throw new Error("the writer did not start");
    await expectEveryWriteReadable(scenario.writer);
  });
});

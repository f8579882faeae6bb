// A health report inside the group's grace period (#15): AWS ignores SetInstanceHealth for an
// instance that entered InService less than HealthCheckGracePeriod ago. A voter frozen right after
// the cluster formed is reported about 30 s later (the sandbox's unhealthy deadline), inside a
// 75 s grace period, so the gap filler drops the report as AWS would; the agent sends it again
// once the report is a deadline old and the group still shows the instance Healthy, and the
// voter is replaced. Production's hooks; the continuous writer runs through it.
import { describe, expect, it } from "vitest";
import { worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

describe("a health report inside the grace period", () => {
  it("is dropped as AWS drops it, sent again later, and the frozen voter is replaced", async () => {
    await withSandbox({ subnet: "127.0.59.0/24", healthCheckGracePeriodSeconds: 75 }, async (sandbox) => {
      const before = await worldInstances(sandbox.world);
      const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
      const leaderId = (await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string)))?.leaderId;
      const victim = list.members.find((m) => m.id !== leaderId)?.name as string;

      sandbox.node(victim)?.etcd?.kill("SIGSTOP");

      await eventually("the report dropped inside the grace period", 90_000, async () =>
        sandbox.gaps.ignoredHealth.includes(victim) ? true : undefined,
      );
      expect(sandbox.gaps.replaced).not.toContain(victim);
      await eventually("the report sent again and the instance replaced", 120_000, async () =>
        sandbox.gaps.replaced.includes(victim) ? true : undefined,
      );
      const healed = await eventually("3 voters without the frozen one", 150_000, () =>
        sandbox.settledInstances(3),
      );
      expect(healed.map((i) => i.instanceId)).not.toContain(victim);
    });
  }, 420_000);
});

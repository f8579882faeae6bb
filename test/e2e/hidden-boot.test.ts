// Eventual consistency at a simultaneous boot (#15): on AWS an instance launched seconds ago can
// be missing from DescribeAutoScalingGroups and DescribeInstances. Here every new instance is
// hidden from the agents' describe answers for its first 8 s while three nodes boot at once (the
// hypervisor still starts them): exactly one cluster still forms, bootstrapped once.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Sandbox } from "../sandbox/sandbox.js";
import { worldInstances } from "../sandbox/world.js";

describe("a simultaneous boot with instances hidden from describe calls at first", () => {
  it("forms exactly one cluster, bootstrapped once", async () => {
    const root = mkdtempSync(join(tmpdir(), "etcd-agent-hidden-"));
    const sandbox = await Sandbox.create({
      nodes: 3,
      stateDir: root,
      subnetCidr: "127.0.62.0/24",
      bootJitterMs: 3000,
      hideNewInstancesSeconds: 8,
    });
    try {
      sandbox.startHypervisor();
      await sandbox.waitHealthy(180_000);
      const instances = await worldInstances(sandbox.world);
      const answers = await Promise.all(
        instances.map((i) => sandbox.probe.memberList([sandbox.clientUrl(i.ip)])),
      );
      expect(new Set(answers.map((a) => a.clusterId)).size).toBe(1);
      expect(answers[0]?.members).toHaveLength(3);
      const bootstraps = instances.filter((i) =>
        readFileSync(join(root, i.instanceId, "agent.log"), "utf8").includes(
          '"msg":"boot decision: bootstrap"',
        ),
      );
      expect(bootstraps).toHaveLength(1);
    } finally {
      await sandbox.stop();
      await sandbox.probe.close();
      if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
    }
  }, 240_000);
});

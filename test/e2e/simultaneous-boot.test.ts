// Simultaneous boot in the sandbox: N nodes from the binary boot at once, with random start
// jitter, on moto behind the gap filler. Exactly one cluster must form every time.
// ETCD_SANDBOX_BOOT_RUNS sets the runs per size (default 1: the interleavings are explored by the
// one-cluster-per-marker model in the unit tests, and hidden-boot.test.ts boots 3 more at once; 20 for a soak).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import { describe, expect, it } from "vitest";
import { Sandbox } from "../sandbox/sandbox.js";
import { clients, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { expectClusterInvariants } from "../support/with-sandbox.js";

const RUNS = Number(process.env.ETCD_SANDBOX_BOOT_RUNS ?? "1");
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) {
  throw new Error(
    `ETCD_SANDBOX_BOOT_RUNS must be a whole number from 1 to 50, got ${process.env.ETCD_SANDBOX_BOOT_RUNS}`,
  );
}

const cases = [3, 5].flatMap((nodes) =>
  Array.from({ length: RUNS }, (_, run) => ({ nodes, run, label: `${run + 1} of ${RUNS}` })),
);

describe("simultaneous boot", () => {
  it.each(
    cases,
  )("$nodes nodes, run $label: exactly one cluster, all voters, DNS equal to the members", async ({
    nodes,
    run,
  }) => {
    const root = mkdtempSync(join(tmpdir(), "etcd-agent-boot-"));
    const subnet = nodes === 3 ? `127.0.${80 + run}.0/24` : `127.0.${120 + run}.0/24`;
    const sandbox = await Sandbox.create({ nodes, stateDir: root, subnetCidr: subnet, bootJitterMs: 3000 });
    try {
      sandbox.startHypervisor();
      await sandbox.waitHealthy(180_000);
      const instances = await worldInstances(sandbox.world);
      const endpoints = instances.map((i) => sandbox.clientUrl(i.ip));

      const answers = await Promise.all(endpoints.map((e) => sandbox.probe.memberList([e])));
      const clusterIds = new Set(answers.map((a) => a.clusterId));
      const members = answers[0]?.members ?? [];
      const bootstraps = instances.filter((i) =>
        readFileSync(join(root, i.instanceId, "agent.log"), "utf8").includes(
          '"msg":"boot decision: bootstrap"',
        ),
      );
      const { r53 } = clients(sandbox.world.endpoint);
      const want = instances.map((i) => `0 0 2379 ${i.instanceId}.${sandbox.world.domain}`).sort();
      await eventually("DNS equal to the members", 60_000, async () => {
        const out = await r53.send(
          new ListResourceRecordSetsCommand({ HostedZoneId: sandbox.world.hostedZoneId }),
        );
        const srv = out.ResourceRecordSets?.find(
          (r) => r.Name?.replace(/\.$/, "") === `${sandbox.clientSrvPrefix()}.${sandbox.world.domain}`,
        );
        const values = (srv?.ResourceRecords ?? []).map((r) => r.Value as string).sort();
        return JSON.stringify(values) === JSON.stringify(want) ? true : undefined;
      });

      expect(clusterIds.size).toBe(1);
      expect(members).toHaveLength(nodes);
      expect(members.every((m) => !m.isLearner && m.name !== "")).toBe(true);
      expect(bootstraps).toHaveLength(1);
      // Not a withSandbox scenario (it watches the first boot): the frame's invariants.
      await expectClusterInvariants(sandbox);
    } finally {
      await sandbox.stop();
      await sandbox.probe.close();
      if (!process.env.KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
    }
  });
});

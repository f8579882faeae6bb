// A join interrupted at each of its steps, then IMDS down at boot: each time a replacement for a
// crashed instance converges with no orphan member and no second MemberAdd for it. The continuous
// writer runs throughout. How each interruption is made is in test/sandbox/node-process.ts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import type { NodeFaults } from "../sandbox/node-process.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, type WorldInstance, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { withSandbox } from "../support/with-sandbox.js";

const count = (text: string, needle: string) => text.split(needle).length - 1;

/** Crashes a non-leader instance with the next node's faults set; returns the healed instances and the replacement. */
async function replaceWith(
  sandbox: Sandbox,
  faults: NodeFaults,
): Promise<{ after: WorldInstance[]; added: string }> {
  const before = await worldInstances(sandbox.world);
  const list = await sandbox.probe.memberList(before.map((i) => sandbox.clientUrl(i.ip)));
  const leaderId = (await sandbox.probe.status(sandbox.clientUrl(before[0]?.ip as string)))?.leaderId;
  const victim = list.members.find((m) => m.id !== leaderId)?.name as string;
  sandbox.injectNextNode(faults);
  await clients(sandbox.world.endpoint).ec2.send(new TerminateInstancesCommand({ InstanceIds: [victim] }));
  const after = await eventually("three voters without the crashed instance", 180_000, async () => {
    const settled = await sandbox.settledInstances(3);
    return settled && !settled.some((i) => i.instanceId === victim) ? settled : undefined;
  });
  const added = after.find((i) => !before.some((b) => b.instanceId === i.instanceId))?.instanceId as string;
  // One MemberAdd for the replacement: every boot of it names the member it has now.
  const now = await sandbox.probe.memberList(after.map((i) => sandbox.clientUrl(i.ip)));
  const memberId = now.members.find((m) => m.name === added)?.id;
  const log = readFileSync(join(sandbox.stateDir, added, "agent.log"), "utf8");
  const joined = [...log.matchAll(/"msg":"joined as a learner; etcd may start".*?"member_id":"(\d+)"/g)].map(
    (m) => m[1],
  );
  expect(joined.length).toBeGreaterThan(0);
  expect(new Set(joined)).toEqual(new Set([memberId]));
  return { after, added };
}

describe("a join interrupted at each step", () => {
  it("converges after each interruption with no orphan member, and boots through an IMDS outage", async () => {
    await withSandbox({ subnet: "127.0.38.0/24" }, async (sandbox) => {
      const logOf = (id: string) => readFileSync(join(sandbox.stateDir, id, "agent.log"), "utf8");
      const resumed = "was added for this instance and never started; resuming the join";

      // Died after MemberAdd, nothing written locally: found again by its peer URL.
      let r = await replaceWith(sandbox, { join: "after-member-add" });
      expect(logOf(r.added)).toMatch(/operation not permitted/i);
      expect(logOf(r.added)).toContain(resumed);

      // Died after the state file, before the env file: resumes the member it recorded.
      r = await replaceWith(sandbox, { join: "after-state-file" });
      expect(logOf(r.added)).toMatch(/EISDIR|illegal operation on a directory/i);
      expect(logOf(r.added)).toContain(resumed);

      // Killed once the env file was written, before etcd started: the next boot resumes, and
      // etcd's unit boots once more before it starts etcd (ExecStartPre), resuming again.
      r = await replaceWith(sandbox, { join: "after-env-file" });
      expect(count(logOf(r.added), "etcd may start")).toBe(3);
      expect(logOf(r.added)).toContain(resumed);

      // etcd started as a learner, the agent killed before promoting it: promoted after restart.
      r = await replaceWith(sandbox, { join: "before-promote" });
      expect(sandbox.node(r.added)?.runStarts).toBeGreaterThanOrEqual(2);
      expect(logOf(r.added)).toContain('"msg":"promoted this learner to a voting member"');

      // IMDS refusing tokens for 40 s: boot gives up after its deadline (exit 2), is restarted,
      // and joins once IMDS answers; nobody acts on the unknown node meanwhile.
      r = await replaceWith(sandbox, { imdsDownMs: 40_000 });
      expect(logOf(r.added)).toContain("instance metadata did not answer");
      // Once from the boot unit, once from etcd's ExecStartPre (a resume of the same member).
      expect(count(logOf(r.added), "etcd may start")).toBe(2);
    });
  });
});

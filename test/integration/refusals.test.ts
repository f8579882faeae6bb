// Boot refusals with nothing answering on 127.0.23.x: no new cluster over an old one's marker.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RefusedError, WaitingError } from "../../agent/errors.js";
import { markerRecord } from "../../agent/planner/marker.js";
import { FakeAws } from "../fakes/fake-aws.js";
import { boot, makeNode } from "../support/etcd-node.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-refuse-"));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("boot refuses or waits instead of seeding a second cluster", () => {
  it("refuses when the marker says a cluster existed and no member answers, writing no env file", async () => {
    const aws = new FakeAws();
    aws.records.set(
      "TXT _etcd-cluster.etcd.test",
      markerRecord("_etcd-cluster.etcd.test", { state: "active", token: "old", claimant: "i-000000aa" }),
    );
    const node = makeNode(aws, root, 1, "127.0.23.1");

    const attempt = boot(node);

    await expect(attempt).rejects.toBeInstanceOf(RefusedError);
    await expect(attempt).rejects.toThrow(/\[rule: cluster-existed\].*cluster old is marked active/);
    expect(existsSync(node.config.envFile)).toBe(false);
  });

  it("waits, then gives up with the rule, while another live instance holds the bootstrap claim", async () => {
    const aws = new FakeAws();
    const claimant = aws.launch(1, "127.0.23.11");
    aws.records.set(
      "TXT _etcd-cluster.etcd.test",
      markerRecord("_etcd-cluster.etcd.test", {
        state: "claimed",
        token: "t",
        claimant: claimant.instanceId,
      }),
    );
    const node = makeNode(aws, root, 2, "127.0.23.12", { config: { bootTimeoutSeconds: 4 } });

    const attempt = boot(node);

    await expect(attempt).rejects.toBeInstanceOf(WaitingError);
    await expect(attempt).rejects.toThrow(/\[rule: bootstrap-claimed\]/);
    expect(existsSync(node.config.envFile)).toBe(false);
  });

  it("a node that is not the designated bootstrapper waits for it and names it", async () => {
    const aws = new FakeAws();
    const first = aws.launch(1, "127.0.23.21");
    const node = makeNode(aws, root, 2, "127.0.23.22", { config: { bootTimeoutSeconds: 4 } });

    await expect(boot(node)).rejects.toThrow(new RegExp(`\\[rule: not-bootstrapper\\]: ${first.instanceId}`));
    expect(aws.record("_etcd-cluster.etcd.test", "TXT")).toBeUndefined();
  });

  it("join never bootstraps, even on the designated instance", async () => {
    const aws = new FakeAws();
    const node = makeNode(aws, root, 1, "127.0.23.31");

    await expect(boot(node, "join")).rejects.toThrow(/join never bootstraps/);
    expect(aws.record("_etcd-cluster.etcd.test", "TXT")).toBeUndefined();
  });
});

// The restore behind its port: the arguments, messages and exits, with a fake tool (no process).
import { describe, expect, it } from "vitest";
import { plannedBump, restoreVerified } from "../../../agent/backups/restore.js";
import { ConfigError } from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";
import { createLogger } from "../../../agent/log.js";
import { FakeRestoreTool } from "../../fakes/fake-restore-tool.js";

const log = createLogger({ write: () => true } as never, { level: "error" });
const verified = {
  ref: { key: "backups/a/snap.db", takenAt: "", revision: "42", clusterToken: "t" },
  body: Buffer.from("db"),
  corrupt: [],
};
const target = {
  dataDir: "/var/lib/etcd/new",
  name: "i-1",
  peerUrl: "https://127.0.0.1:2380",
  tool: "etcdutl",
};

describe("the restore tool behind its port", () => {
  it("runs the tool once with etcd's restore arguments on the snapshot's file beside the data dir", () => {
    const tool = new FakeRestoreTool(() => ({ status: 0, stdout: "", stderr: "" }));
    const result = restoreVerified(verified, log, { ...target, clusterToken: "tok" }, 7, tool);
    expect(result).toEqual({
      key: verified.ref.key,
      revision: "42",
      dataDir: target.dataDir,
      corrupt: [],
      bumpRevision: 7,
    });
    expect(tool.files).toEqual([{ dataDir: target.dataDir, body: verified.body }]);
    expect(tool.runs).toEqual([
      {
        tool: "etcdutl",
        args: [
          "snapshot",
          "restore",
          "/fake/snapshot.db",
          "--data-dir",
          target.dataDir,
          "--name",
          "i-1",
          "--initial-cluster",
          `i-1=${target.peerUrl}`,
          "--initial-advertise-peer-urls",
          target.peerUrl,
          "--initial-cluster-token",
          "tok",
          "--bump-revision",
          "7",
          "--mark-compacted",
        ],
      },
    ]);
  });

  it("a tool that cannot run is an input error naming --restore-tool; a failing one names its exit", () => {
    const missing = new FakeRestoreTool(() => ({
      error: new Error("spawnSync etcdutl ENOENT"),
      status: null,
      stdout: "",
      stderr: "",
    }));
    const e1 = (() => {
      try {
        restoreVerified(verified, log, target, null, missing);
      } catch (error) {
        return error;
      }
    })();
    expect(e1).toBeInstanceOf(ConfigError);
    expect(exitNameFor(e1)).toBe("INVALID_INPUT");
    expect((e1 as Error).message).toBe(
      "cannot run etcdutl (spawnSync etcdutl ENOENT); give --restore-tool the path of etcdctl (3.4) or etcdutl (3.5+)",
    );
    const failing = new FakeRestoreTool(() => ({ status: 2, stdout: "", stderr: "  bad snapshot \n" }));
    expect(() => restoreVerified(verified, log, target, null, failing)).toThrow(
      "etcdutl snapshot restore of backups/a/snap.db failed (exit 2): bad snapshot",
    );
  });

  it("asks the tool's help whether it bumps the revision", () => {
    const config = { backup: { restoreBumpRevision: 1000 } } as never;
    const modern = new FakeRestoreTool(() => ({
      status: 0,
      stdout: "--bump-revision n\n--mark-compacted\n",
      stderr: "",
    }));
    expect(plannedBump(config, "etcdutl", log, modern)).toBe(1000);
    expect(modern.runs).toEqual([{ tool: "etcdutl", args: ["snapshot", "restore", "--help"] }]);
    const old = new FakeRestoreTool(() => ({
      status: 0,
      stdout: "",
      stderr: "Usage: etcdctl snapshot restore",
    }));
    expect(plannedBump(config, "etcdctl", log, old)).toBeNull();
  });
});

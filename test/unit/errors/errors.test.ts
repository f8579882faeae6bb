import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { LocalDisk } from "../../../agent/adapters/local-disk.js";
import { SecretsManagerStore } from "../../../agent/adapters/secrets-manager.js";
import { restoreVerified } from "../../../agent/backups/restore.js";
import { type BootContext, runBoot } from "../../../agent/commands/boot.js";
import { parseConfig } from "../../../agent/config/config.js";
import {
  BackupsOffError,
  ConfigError,
  InterruptedError,
  NoGoodSnapshotError,
  RestoreFailedError,
} from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";
import { createLogger } from "../../../agent/log.js";
import type { Ports } from "../../../agent/ports/index.js";
import { FakeRestoreTool } from "../../fakes/fake-restore-tool.js";

describe("errors and their exits", () => {
  it("BackupsOffError names itself and exits as the input error it is", () => {
    const error = new BackupsOffError();
    expect(error.name).toBe("BackupsOffError");
    expect(error).toBeInstanceOf(ConfigError);
    expect(exitNameFor(error)).toBe("INVALID_INPUT");
  });

  it("a restore without a good snapshot is matched by its class, not by a name string", () => {
    expect(exitNameFor(new NoGoodSnapshotError("none verified"))).toBe("REFUSED");
    const lookalike = Object.assign(new Error("not ours"), { name: "NoGoodSnapshotError" });
    expect(exitNameFor(lookalike)).toBe("ERROR");
  });
});

describe("an interrupted boot", () => {
  it("stops before its next round with InterruptedError (exit INTERRUPTED, 130), having asked nothing but the clock", async () => {
    const controller = new AbortController();
    controller.abort();
    const untouched = new Proxy({} as Ports, {
      get: (_t, prop) => {
        if (prop === "clock") return { now: () => new Date(), sleep: async () => {} };
        throw new Error(`port ${String(prop)} used`);
      },
    });
    const error = await runBoot(
      untouched,
      parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST" }),
      { identity: { instanceId: "i-0abc", privateIp: "127.0.1.5" }, asgName: "etcd" } as BootContext,
      createLogger({ write: () => true } as never),
      { signal: controller.signal },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterruptedError);
    expect(exitNameFor(error)).toBe("INTERRUPTED");
    expect((error as Error).message).toMatch(/boot interrupted/);
  });
});

describe("expected failures carry their class", () => {
  it("a state file that is not the agent's is an input error naming the file and the fix", async () => {
    const dir = mkdtempSync(join(tmpdir(), "etcd-agent-errors-"));
    try {
      mkdirSync(join(dir, "state"));
      writeFileSync(join(dir, "state", "state.json"), "{}\n");
      const disk = new LocalDisk({
        dataDir: join(dir, "data"),
        stateDir: join(dir, "state"),
        envFile: join(dir, "etcd.env"),
        clock: { now: () => new Date(), sleep: async () => {} },
      });
      const error = await disk.readState().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        `${join(dir, "state", "state.json")} is not an etcd-agent state file; move it aside and boot again`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a restore tool that fails is a RestoreFailedError (exit ERROR, as before)", () => {
    const tool = new FakeRestoreTool(() => ({ status: 1, stdout: "", stderr: "no" }));
    const verified = {
      ref: { key: "k.db", takenAt: "", revision: "1", clusterToken: "t" },
      body: Buffer.from("x"),
      corrupt: [],
    };
    const target = { dataDir: "/d/new", name: "n", peerUrl: "http://127.0.0.1:2380", tool: "etcdctl" };
    const log = createLogger({ write: () => true } as never, { level: "error" });
    const error = (() => {
      try {
        restoreVerified(verified, log, target, null, tool);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RestoreFailedError);
    expect(exitNameFor(error)).toBe("ERROR");
  });
});

describe("a secret that is not one of ours", () => {
  it("a binary secret under the agent's name is an input error, not a crash", async () => {
    const sm = mockClient(SecretsManagerClient);
    try {
      sm.on(GetSecretValueCommand).resolves({ SecretBinary: new Uint8Array([1]) });
      const store = new SecretsManagerStore(new SecretsManagerClient({ region: "eu-west-1" }));
      const error = await store.get("etcd-agent/e/ca").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        "secret etcd-agent/e/ca has no string value (a binary secret is not one of ours)",
      );
    } finally {
      sm.restore();
    }
  });
});

// `npm start` shows the cluster: the sandbox's own process does not print the runtime warnings a
// newcomer cannot act on (the SDK's NodeVersionSupportWarning for the harness's Node, DEP0123),
// and still prints every other warning.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const QUIET = new URL("../../../test/sandbox/bin/quiet-warnings.ts", import.meta.url).pathname;
const BIN = new URL("../../../test/sandbox/bin/etcd-sandbox.js", import.meta.url).pathname;

describe("the sandbox's warnings", () => {
  it("the SDK's Node version warning and DEP0123 are not printed, other warnings are", () => {
    const script = `
      await import(${JSON.stringify(QUIET)});
      const { emitWarningIfUnsupportedVersion } = await import("@aws-sdk/core/client");
      emitWarningIfUnsupportedVersion("v20.0.0");
      process.emitWarning("tls servername for an IP", { code: "DEP0123", type: "DeprecationWarning" });
      process.emitWarning("an operator needs this one");
      await new Promise((r) => setTimeout(r, 50));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "" },
    });
    expect(r.stderr).toContain("an operator needs this one");
    expect(r.stderr).not.toContain("NodeVersionSupportWarning");
    expect(r.stderr).not.toContain("DEP0123");
    expect(r.status).toBe(0);
  });

  it("the sandbox's entry point loads it before anything else", () => {
    const bin = readFileSync(BIN, "utf8");
    expect(bin.indexOf("quiet-warnings")).toBeGreaterThan(0);
    expect(bin.indexOf("quiet-warnings")).toBeLessThan(bin.indexOf("../cli.ts"));
  });
});

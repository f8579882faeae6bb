// The Node runtime inside the binary is checked at build time against a sha256 kept in the repo
// (issue #16): a changed registry package or cache fails the build with both hashes and the fix.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkNodeBinary, SEA_NODE_SHA256 } from "../../../agent/build/node-version.js";

const work = mkdtempSync(join(tmpdir(), "node-pin-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the Node binary's pin", () => {
  it("holds a sha256 for each architecture the build makes", () => {
    expect(Object.keys(SEA_NODE_SHA256).sort()).toEqual(["arm64", "x64"]);
    for (const v of Object.values(SEA_NODE_SHA256)) expect(v).toMatch(/^[0-9a-f]{64}$/);
  });

  it("passes the pinned binary and refuses any other, naming both hashes", () => {
    const file = join(work, "node");
    writeFileSync(file, "a node binary");
    const sha = createHash("sha256").update("a node binary").digest("hex");

    expect(() => checkNodeBinary(file, "x64", { x64: sha, arm64: sha })).not.toThrow();
    writeFileSync(file, "a node binary, changed");
    expect(() => checkNodeBinary(file, "x64", { x64: sha, arm64: sha })).toThrow(
      new RegExp(`is not Node .* for x64 as pinned: sha256 [0-9a-f]{64}, expected ${sha}`),
    );
  });
});

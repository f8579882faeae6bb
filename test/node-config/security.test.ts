// The agent's units under `systemd-analyze security --offline=true` (#14 defect 4): both at "OK"
// or better, for each OS, as rendered. systemd prints the exposure from 0.0 (PERFECT) to 10.0
// (UNSAFE): below 1 SAFE, below 5 OK, below 7.5 MEDIUM, below 9 EXPOSED. Before #14 the boot unit
// scored 8.0 EXPOSED (root, every capability) and the daemon 3.6 OK.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type NodeOs, renderUnits } from "../../ignition/render.js";

const work = mkdtempSync(join(tmpdir(), "unit-security-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The overall exposure and level `systemd-analyze security` prints for one unit file. */
function security(os: NodeOs, name: string): { exposure: number; level: string } {
  const dir = mkdtempSync(join(work, `${os}-`));
  const contents = renderUnits(os).find((u) => u.name === name)?.contents;
  if (contents === undefined) throw new Error(`no unit ${name} for ${os}`);
  writeFileSync(join(dir, name), contents);
  const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", join(dir, name)], {
    encoding: "utf8",
  });
  // "→ Overall exposure level for etcd-agent.service: 3.6 OK 🙂"
  const m = /Overall exposure level for \S+: (\d+\.\d) (\w+)/.exec(r.stdout);
  if (m === null) throw new Error(`no overall level in systemd-analyze's output:\n${r.stdout}${r.stderr}`);
  return { exposure: Number(m[1]), level: m[2] as string };
}

const OK_OR_BETTER = ["PERFECT", "SAFE", "OK"];

describe.each(["flatcar", "fcos"] as const)("%s", (os) => {
  it.each(["etcd-agent-boot.service", "etcd-agent.service"])("%s is OK or better", (name) => {
    const { exposure, level } = security(os, name);
    expect({ name, level: OK_OR_BETTER.includes(level) ? "OK or better" : level }).toEqual({
      name,
      level: "OK or better",
    });
    expect(exposure).toBeLessThan(5);
  });
});

describe("the measure itself", () => {
  it("a root unit with no hardening is reported as such", () => {
    writeFileSync(join(work, "bare.service"), "[Service]\nExecStart=/bin/true\n");
    const r = spawnSync(
      "systemd-analyze",
      ["security", "--offline=true", "--no-pager", join(work, "bare.service")],
      {
        encoding: "utf8",
      },
    );
    expect(r.stdout).toMatch(/Overall exposure level for bare.service: 9\.\d UNSAFE/);
  });
});

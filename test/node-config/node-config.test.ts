// The node definition checked by the real tools: ignition-validate (Debian's ignition) on every
// rendered config, systemd-analyze verify on every unit, in a root that has what the units run.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  type IgnitionConfig,
  NODE_PATHS,
  type NodeArch,
  type NodeOs,
  renderNodeConfig,
  renderPointerConfig,
  serialize,
} from "../../ignition/render.js";

const SHA = "ab".repeat(64);
const work = mkdtempSync(join(tmpdir(), "node-config-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const combos: Array<[NodeOs, NodeArch]> = [
  ["flatcar", "x64"],
  ["flatcar", "arm64"],
  ["fcos", "x64"],
  ["fcos", "arm64"],
];

function render(os: NodeOs, arch: NodeArch): IgnitionConfig {
  return renderNodeConfig({
    os,
    arch,
    binaryUrl: `s3://etcd-assets/etcd-agent-linux-${arch}`,
    binarySha512: SHA,
    agent: { domain: "etcd.internal", hostedZoneId: "Z0123456789ABC", backupBucket: "etcd-backups" },
    sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests operator"],
    // The data volume as the CDK construct gives it: its mount unit is verified with the rest.
    dataDevice: "/dev/xvdb",
  });
}

function validate(config: string): { code: number | null; output: string } {
  const file = join(work, `config-${Math.random().toString(16).slice(2)}.ign`);
  writeFileSync(file, config);
  const r = spawnSync("ignition-validate", [file], { encoding: "utf8" });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * A root holding the host's systemd units, the rendered units, and stand-ins for the programs the
 * OS ships that the units run (so verify checks every Exec path against what the OS provides).
 */
function unitRoot(os: NodeOs, config: IgnitionConfig): string {
  const root = mkdtempSync(join(work, `root-${os}-`));
  cpSync("/lib/systemd/system", join(root, "usr/lib/systemd/system"), {
    recursive: true,
    dereference: false,
  });
  const etc = join(root, "etc/systemd/system");
  mkdirSync(etc, { recursive: true });
  const units = (
    config.systemd as {
      units: Array<{ name: string; contents?: string; dropins?: Array<{ name: string; contents: string }> }>;
    }
  ).units;
  for (const u of units) {
    if (u.contents) writeFileSync(join(etc, u.name), u.contents);
    for (const d of u.dropins ?? []) {
      mkdirSync(join(etc, `${u.name}.d`), { recursive: true });
      writeFileSync(join(etc, `${u.name}.d`, d.name), d.contents);
    }
  }
  // The etcd unit's ExecStartPre runs boot through /bin/sh, which both OSes ship.
  const executables = [`${NODE_PATHS.binDir[os]}/etcd-agent`, "/bin/sh"];
  if (os === "flatcar") {
    cpSync(
      new URL("../fixtures/flatcar/etcd-member.service", import.meta.url).pathname,
      join(root, "usr/lib/systemd/system/etcd-member.service"),
    );
    executables.push("/usr/lib/flatcar/etcd-wrapper");
  } else executables.push("/usr/bin/podman", "/usr/bin/mkdir", "/usr/bin/chmod");
  for (const exe of executables) {
    mkdirSync(dirname(join(root, exe)), { recursive: true });
    writeFileSync(join(root, exe), "#!/bin/sh\n");
    chmodSync(join(root, exe), 0o755);
  }
  return root;
}

function verify(root: string, units: string[]): { code: number | null; stderr: string } {
  const r = spawnSync("systemd-analyze", ["verify", `--root=${root}`, ...units], { encoding: "utf8" });
  return { code: r.status, stderr: r.stderr.trim() };
}

describe.each(combos)("%s %s", (os, arch) => {
  const config = render(os, arch);

  it("passes ignition-validate", () => {
    expect(validate(serialize(config))).toEqual({ code: 0, output: "" });
  });

  it("fits EC2's 16 KB user-data limit", () => {
    expect(Buffer.byteLength(serialize(config))).toBeLessThan(16 * 1024);
  });

  it("every unit passes systemd-analyze verify with no warning", () => {
    const root = unitRoot(os, config);
    const names = [
      "var-lib-etcd.mount",
      "etcd-agent-boot.service",
      "etcd-member.service",
      "etcd-agent.service",
    ];
    expect(verify(root, names)).toEqual({
      code: 0,
      stderr: "",
    });
  });
});

describe("the tools catch what they should", () => {
  it("ignition-validate rejects a config with a bad hash", () => {
    const bad = serialize(render("flatcar", "x64")).replace(`sha512-${SHA}`, "sha512-zz");
    expect(validate(bad).code).not.toBe(0);
  });

  it("systemd-analyze verify reports a unit whose program is missing", () => {
    const config = render("flatcar", "x64");
    const root = unitRoot("flatcar", config);
    rmSync(join(root, "opt/bin/etcd-agent"));
    const r = verify(root, ["etcd-agent-boot.service"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("/opt/bin/etcd-agent is not executable");
  });

  it("the pointer config passes ignition-validate", () => {
    expect(validate(serialize(renderPointerConfig("s3://etcd-assets/node.ign", SHA))).code).toBe(0);
  });
});

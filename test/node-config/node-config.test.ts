// biome-ignore-all lint/suspicious/noExplicitAny: rendered Ignition JSON is untyped
// The node definition checked by the real tools: ignition-validate (Debian's ignition) on every
// rendered config, systemd-analyze verify on every unit, in a root that has what the units run.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  DATA_VOLUME_SCRIPT,
  dataVolumeScript,
  type IgnitionConfig,
  NODE_PATHS,
  type NodeArch,
  type NodeOs,
  RESTART_ETCD_SCRIPT,
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
  const executables = [
    `${NODE_PATHS.binDir[os]}/etcd-agent`,
    `${NODE_PATHS.binDir[os]}/${DATA_VOLUME_SCRIPT}`,
    `${NODE_PATHS.binDir[os]}/${RESTART_ETCD_SCRIPT}`,
    "/bin/sh",
  ];
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
      "etcd-data-volume.service",
      "var-lib-etcd.mount",
      "etcd-agent-boot.service",
      "etcd-member.service",
      "etcd-agent.service",
      "etcd-agent-restart-etcd.path",
      "etcd-agent-restart-etcd.service",
    ];
    expect(verify(root, names)).toEqual({
      code: 0,
      stderr: "",
    });
  });
});

describe.each(["flatcar", "fcos"] as const)("%s: the data volume and the restore", (os) => {
  const config = render(os, "x64") as any;
  const file = (path: string) =>
    decodeURIComponent(
      config.storage.files.find((f: any) => f.path === path).contents.source.replace(/^data:,/, ""),
    );

  it("Ignition does not wait for a device name: etcd-data-volume finds the volume on the node", () => {
    expect(config.storage.filesystems).toBeUndefined();
    expect(file(`${NODE_PATHS.binDir[os]}/${DATA_VOLUME_SCRIPT}`)).toBe(dataVolumeScript("/dev/xvdb"));
    const mount = config.systemd.units.find((u: any) => u.name === "var-lib-etcd.mount");
    expect(mount.contents).toContain("What=/dev/disk/by-label/etcd-data");
    expect(mount.contents).toMatch(/Requires=etcd-data-volume.service\nAfter=etcd-data-volume.service/);
  });

  it(
    os === "fcos"
      ? "podman relabels the data dir for SELinux (:Z, as etcd-member does)"
      : "docker mounts the data dir",
    () => {
      const wrapper = file(`${NODE_PATHS.binDir[os]}/etcd-restore`);
      const volume = / -v (\S+) /.exec(wrapper)?.[1];
      expect(volume).toBe(os === "fcos" ? "/var/lib/etcd:/var/lib/etcd:Z" : "/var/lib/etcd:/var/lib/etcd");
      if (os === "fcos") {
        const member = readFileSync(
          new URL("../../systemd/fcos/etcd-member.service", import.meta.url),
          "utf8",
        );
        expect(member).toContain("--volume /var/lib/etcd:/var/lib/etcd:Z");
      }
    },
  );
});

/**
 * etcd-data-volume run by bash against a fake /sys/block and /dev, with blkid, mkfs.ext4 and
 * udevadm stubbed: which device it picks on Nitro (NVMe) and Xen, and that it never wipes.
 */
describe("etcd-data-volume on a node", () => {
  const EBS = "Amazon Elastic Block Store              ";
  interface Disk {
    name: string;
    model: string;
    partitions?: number;
    blkid?: string;
  }
  function run(disks: Disk[], opts: { xvdb?: "symlink" | "device"; labelled?: boolean } = {}) {
    const t = mkdtempSync(join(work, "vol-"));
    const [sys, dev, bin] = ["sys", "dev", "bin"].map((d) => join(t, d)) as [string, string, string];
    for (const d of [sys, dev, bin, join(dev, "disk/by-label")]) mkdirSync(d, { recursive: true });
    for (const d of disks) {
      mkdirSync(join(sys, d.name, "device"), { recursive: true });
      writeFileSync(join(sys, d.name, "device/model"), `${d.model}\n`);
      for (let i = 1; i <= (d.partitions ?? 0); i++) mkdirSync(join(sys, d.name, `${d.name}p${i}`));
      writeFileSync(join(dev, d.name), "");
      if (d.blkid) writeFileSync(join(t, `blkid-${d.name}`), `${d.blkid}\n`);
    }
    if (opts.xvdb === "symlink") symlinkSync(join(dev, "nvme1n1"), join(dev, "xvdb"));
    if (opts.xvdb === "device") writeFileSync(join(dev, "xvdb"), "");
    if (opts.labelled) writeFileSync(join(dev, "disk/by-label/etcd-data"), "");
    const stub = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    stub(
      "blkid",
      `for a; do last=$a; done; f="${t}/blkid-$(basename "$last")"; [ -e "$f" ] || exit 2; cat "$f"`,
    );
    stub("mkfs.ext4", `echo "$@" >> "${t}/mkfs.log"`);
    stub("udevadm", "exit 0");
    writeFileSync(join(t, "script"), dataVolumeScript("/dev/xvdb"));
    const r = spawnSync("bash", [join(t, "script")], {
      encoding: "utf8",
      env: { PATH: `${bin}:${process.env.PATH}`, ETCD_DATA_SYS: sys, ETCD_DATA_DEV: dev },
    });
    const mkfs = existsSync(join(t, "mkfs.log")) ? readFileSync(join(t, "mkfs.log"), "utf8").trim() : null;
    return { code: r.status, out: `${r.stdout}${r.stderr}`, mkfs, dev };
  }
  const root = { name: "nvme0n1", model: EBS, partitions: 4 };

  it("Nitro, no /dev/xvdb (Fedora CoreOS): the EBS disk without partitions, formatted once", () => {
    const r = run([
      root,
      { name: "nvme1n1", model: EBS },
      { name: "nvme2n1", model: "Amazon EC2 NVMe Instance Storage" },
    ]);
    expect(r).toMatchObject({ code: 0, mkfs: `-q -L etcd-data ${r.dev}/nvme1n1` });
  });

  it("Nitro with Flatcar's /dev/xvdb symlink, and Xen's /dev/xvdb device: that one", () => {
    const a = run([root, { name: "nvme1n1", model: EBS }], { xvdb: "symlink" });
    expect(a).toMatchObject({ code: 0, mkfs: `-q -L etcd-data ${a.dev}/nvme1n1` });
    const b = run([], { xvdb: "device" });
    expect(b).toMatchObject({ code: 0, mkfs: `-q -L etcd-data ${b.dev}/xvdb` });
  });

  it("already formatted (a reboot, or udev late with the label): kept", () => {
    expect(run([root, { name: "nvme1n1", model: EBS }], { labelled: true })).toMatchObject({
      code: 0,
      mkfs: null,
    });
    const r = run([
      root,
      { name: "nvme1n1", model: EBS, blkid: "DEVNAME=/dev/nvme1n1\nLABEL=etcd-data\nTYPE=ext4" },
    ]);
    expect(r).toMatchObject({ code: 0, mkfs: null });
    expect(r.out).toContain("is etcd-data");
  });

  it("refuses, never wipes: something else on the volume, two candidates, none", () => {
    const other = run([root, { name: "nvme1n1", model: EBS, blkid: "TYPE=xfs" }]);
    expect(other).toMatchObject({ code: 1, mkfs: null });
    expect(other.out).toContain("holds something else (TYPE=xfs )");
    const two = run([root, { name: "nvme1n1", model: EBS }, { name: "nvme2n1", model: EBS }]);
    expect(two).toMatchObject({ code: 1, mkfs: null });
    expect(two.out).toContain("more than one EBS disk without partitions");
    const none = run([root]);
    expect(none).toMatchObject({ code: 1, mkfs: null });
    expect(none.out).toContain("neither");
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

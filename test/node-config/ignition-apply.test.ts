// The sandbox's Ignition applier (machine mode) on the config a node gets: ignition-validate
// accepts the config, then the applier writes what Ignition's files stage would into a root
// directory: the users and groups, the binary checked by its sha512, owners and modes, the units
// and drop-ins, enabled. What it does not implement, or a binary whose sha512 differs, it refuses.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NODE_PATHS, renderNodeConfig } from "../../ignition/render.js";
import { applyIgnition } from "../../test/sandbox/ignition-apply.js";

const work = mkdtempSync(join(tmpdir(), "ignition-apply-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const BINARY = Buffer.from("#!/bin/sh\necho etcd-agent\n");
const SHA = createHash("sha512").update(BINARY).digest("hex");

function config(sha = SHA) {
  return renderNodeConfig({
    os: "flatcar",
    arch: "x64",
    binaryUrl: "s3://bucket/etcd-agent-linux-x64",
    binarySha512: sha,
    agent: { domain: "etcd.internal", hostedZoneId: "Z0123" },
  });
}

/** A root with what Flatcar has before Ignition: /etc's account files (with etcd 232), its etcd-member unit. */
function flatcarRoot(name: string): string {
  const root = join(work, name);
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\netcd:x:232:232::/var/lib/etcd:/sbin/nologin\n",
  );
  writeFileSync(join(root, "etc/group"), "root:x:0:\netcd:x:232:\n");
  writeFileSync(join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\netcd:!:19000::::::\n", { mode: 0o600 });
  writeFileSync(join(root, "etc/gshadow"), "root:*::\netcd:!::\n", { mode: 0o600 });
  mkdirSync(join(root, "usr/lib/systemd/system"), { recursive: true });
  cpSync(
    new URL("../sandbox/flatcar/etcd-member.service", import.meta.url).pathname,
    join(root, "usr/lib/systemd/system/etcd-member.service"),
  );
  return root;
}

const fetchBinary = async (url: string) => {
  expect(url).toBe("s3://bucket/etcd-agent-linux-x64");
  return BINARY;
};

describe("the sandbox's Ignition applier", () => {
  it("applies the node's config, which ignition-validate accepts, as Ignition's files stage would", async () => {
    const file = join(work, "node.ign");
    writeFileSync(file, JSON.stringify(config()));
    const validate = spawnSync("ignition-validate", [file], { encoding: "utf8" });
    expect(validate.status, validate.stderr).toBe(0);
    const root = flatcarRoot("ok");

    await applyIgnition(config(), root, fetchBinary);

    expect(readFileSync(join(root, "opt/bin/etcd-agent"))).toEqual(BINARY);
    expect(statSync(join(root, "opt/bin/etcd-agent")).mode & 0o777).toBe(0o755);
    const agentUser = readFileSync(join(root, "etc/passwd"), "utf8").match(/^etcd-agent:x:(\d+):/m);
    expect(agentUser).not.toBeNull();
    const tls = statSync(join(root, NODE_PATHS.tlsDir));
    expect([tls.uid, tls.gid]).toEqual([Number(agentUser?.[1]), 232]);
    expect(statSync(join(root, NODE_PATHS.dataDir)).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(root, NODE_PATHS.agentEnv), "utf8")).toContain(
      "ETCD_AGENT_DOMAIN=etcd.internal",
    );
    expect(existsSync(join(root, "etc/systemd/system/etcd-member.service.d/10-etcd-agent.conf"))).toBe(true);
    for (const unit of ["etcd-agent-boot.service", "etcd-member.service", "etcd-agent.service"])
      expect(lstatSync(join(root, "etc/systemd/system/multi-user.target.wants", unit)).isSymbolicLink()).toBe(
        true,
      );
  });

  it("refuses a binary whose sha512 is not the config's, and a field it does not implement", async () => {
    await expect(applyIgnition(config("00".repeat(64)), flatcarRoot("bad-sha"), fetchBinary)).rejects.toThrow(
      /opt\/bin\/etcd-agent: sha512 of s3:\/\/bucket\/etcd-agent-linux-x64 is [0-9a-f]{16}\.\.\., the config says 0000/,
    );
    const withLinks = { ...config(), storage: { links: [{ path: "/x", target: "/y" }] } };
    await expect(applyIgnition(withLinks, flatcarRoot("links"), fetchBinary)).rejects.toThrow(
      /storage: field "links" is not implemented by the sandbox's applier/,
    );
  });
});

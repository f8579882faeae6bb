import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULTS, parseConfig } from "../../../agent/config/config.js";
import { parseEnvFile } from "../../../agent/planner/etcd-env.js";
import { ETCD_IMAGE } from "../../../ignition/etcd-image.js";
import {
  NODE_PATHS,
  type NodeOs,
  renderAgentEnv,
  renderNodeConfig,
  renderUnits,
} from "../../../ignition/render.js";

const SHA = "cd".repeat(64);
const base = {
  os: "flatcar" as NodeOs,
  arch: "x64" as const,
  binaryUrl: "s3://b/etcd-agent-linux-x64",
  binarySha512: SHA,
  agent: { domain: "etcd.internal", hostedZoneId: "Z0123456789ABC" },
};

function unit(os: NodeOs, name: string): string {
  const u = renderUnits(os).find((x) => x.name === name);
  return u?.contents ?? u?.dropins?.map((d) => d.contents).join("\n") ?? "";
}

function directive(text: string, key: string): string[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe("units and the agent agree", () => {
  it("the agent's defaults are the node's paths", () => {
    expect({ dataDir: DEFAULTS.dataDir, stateDir: DEFAULTS.stateDir, envFile: DEFAULTS.envFile }).toEqual({
      dataDir: NODE_PATHS.dataDir,
      stateDir: NODE_PATHS.stateDir,
      envFile: NODE_PATHS.etcdEnv,
    });
  });

  it.each([
    "flatcar",
    "fcos",
  ] as const)("%s: etcd reads the file boot writes; the agent reads the file Ignition writes", (os) => {
    const etcd = unit(os, "etcd-member.service");
    // Flatcar's unit passes its environment into the container; the podman unit hands the file over.
    if (os === "flatcar") expect(directive(etcd, "EnvironmentFile")).toContain(NODE_PATHS.etcdEnv);
    else expect(etcd).toContain(`--env-file ${NODE_PATHS.etcdEnv}`);
    expect(directive(unit(os, "etcd-agent-boot.service"), "EnvironmentFile")).toEqual([NODE_PATHS.agentEnv]);
    expect(directive(unit(os, "etcd-agent.service"), "EnvironmentFile")).toEqual([NODE_PATHS.agentEnv]);
  });

  it.each(["flatcar", "fcos"] as const)("%s: boot runs before etcd, the daemon after it", (os) => {
    const boot = unit(os, "etcd-agent-boot.service");
    const etcd = unit(os, "etcd-member.service");
    const run = unit(os, "etcd-agent.service");
    expect(directive(boot, "Before")).toContain("etcd-member.service");
    expect(directive(boot, "After")).toContain("network-online.target");
    expect(directive(etcd, "Requires")).toContain("etcd-agent-boot.service");
    expect(directive(etcd, "After").join(" ")).toContain("etcd-agent-boot.service");
    expect(directive(run, "After").join(" ")).toContain("etcd-member.service");
    expect(directive(boot, "ExecStart")).toEqual([`${NODE_PATHS.binDir[os]}/etcd-agent boot`]);
    expect(directive(run, "ExecStart")).toEqual([`${NODE_PATHS.binDir[os]}/etcd-agent run`]);
  });

  it.each([
    "flatcar",
    "fcos",
  ] as const)("%s: etcd's unit runs boot before every start, with the agent's settings kept out of etcd's environment", (os) => {
    const etcd = unit(os, "etcd-member.service");
    const pre = directive(etcd, "ExecStartPre").filter((line) => line.includes("etcd-agent boot"));
    expect(pre).toEqual([
      `/bin/sh -c 'set -a && . ${NODE_PATHS.agentEnv} && exec ${NODE_PATHS.binDir[os]}/etcd-agent boot'`,
    ]);
    expect(directive(etcd, "EnvironmentFile")).not.toContain(NODE_PATHS.agentEnv);
  });

  it("boot may write where the agent writes: data dir, state dir, env file dir", () => {
    const boot = unit("flatcar", "etcd-agent-boot.service");
    expect(directive(boot, "ReadWritePaths").join(" ").split(" ")).toEqual(
      expect.arrayContaining([NODE_PATHS.dataDir, NODE_PATHS.stateDir, "/etc/etcd-agent"]),
    );
    // The state dir is the agent user's: a root unit's StateDirectory= would take it back (node-access.test.ts).
    expect(directive(boot, "StateDirectory")).toEqual([]);
  });

  it("the daemon is hardened, notifies systemd from a child process, and has a watchdog", () => {
    const run = unit("fcos", "etcd-agent.service");
    for (const d of [
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "User=etcd-agent",
      "Type=notify",
      "NotifyAccess=all",
      "Restart=always",
    ]) {
      expect(run).toContain(d);
    }
    expect(directive(run, "WatchdogSec")).toHaveLength(1);
  });

  it("the etcd image is pinned in one place and used by both OSes", () => {
    expect(unit("flatcar", "etcd-member.service")).toContain(`ETCD_IMAGE_TAG=${ETCD_IMAGE.tag}`);
    expect(unit("fcos", "etcd-member.service")).toContain(`${ETCD_IMAGE.repository}:${ETCD_IMAGE.tag}`);
  });

  it("no placeholder is left unfilled", () => {
    for (const os of ["flatcar", "fcos"] as const) {
      for (const u of renderUnits(os)) expect(JSON.stringify(u)).not.toMatch(/@[A-Z_]+@/);
    }
  });

  it("the agent env file holds settings the agent itself accepts", () => {
    const env = parseEnvFile(renderAgentEnv(base.agent));
    expect(env).toMatchObject({
      ETCD_AGENT_DOMAIN: "etcd.internal",
      ETCD_AGENT_HOSTED_ZONE_ID: "Z0123456789ABC",
      ETCD_AGENT_DATA_DIR: "/var/lib/etcd",
    });
    const raw = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [
        k
          .replace(/^ETCD_AGENT_/, "")
          .toLowerCase()
          .replace(/_(.)/g, (_m, c: string) => c.toUpperCase()),
        v,
      ]),
    );
    expect(parseConfig(raw).envFile).toBe(NODE_PATHS.etcdEnv);
  });
});

describe("TLS on the node", () => {
  const agentEnvOf = (os: NodeOs, agent: Record<string, string> = {}) => {
    const cfg = renderNodeConfig({ ...base, os, agent: { ...base.agent, ...agent } } as never) as {
      storage: { files: Array<{ path: string; contents: { source: string } }> };
    };
    const file = cfg.storage.files.find((f) => f.path === NODE_PATHS.agentEnv);
    const text = decodeURIComponent((file?.contents.source ?? "").replace(/^data:[^,]*,/, ""));
    return parseEnvFile(text);
  };

  it("the agent's TLS directory is the node's, and each OS's etcd sees it", () => {
    expect(DEFAULTS.tlsDir).toBe(NODE_PATHS.tlsDir);
    // Flatcar's etcd-wrapper mounts ETCD_SSL_DIR at /etc/ssl/certs and runs etcd as the etcd user.
    expect(unit("flatcar", "etcd-member.service")).toContain(`ETCD_SSL_DIR=${NODE_PATHS.tlsDir}`);
    expect(agentEnvOf("flatcar")).toMatchObject({
      ETCD_AGENT_TLS_ETCD_DIR: "/etc/ssl/certs",
      ETCD_AGENT_TLS_GROUP: "etcd",
      ETCD_AGENT_FILE_OWNER: "etcd-agent",
    });
    // FCOS: our podman unit mounts it at the same path; etcd runs as root in the container.
    expect(unit("fcos", "etcd-member.service")).toContain(
      `--volume ${NODE_PATHS.tlsDir}:${NODE_PATHS.tlsDir}:ro`,
    );
    expect(agentEnvOf("fcos").ETCD_AGENT_TLS_ETCD_DIR).toBeUndefined();
    expect(agentEnvOf("flatcar", { plaintext: "true" }).ETCD_AGENT_TLS_GROUP).toBeUndefined();
  });
});

describe("the etcd image is pinned by digest (#16)", () => {
  const pinned = `${ETCD_IMAGE.repository}:${ETCD_IMAGE.tag}@${ETCD_IMAGE.digest}`;
  const files = (cfg: unknown) => JSON.stringify(cfg);

  it("both OSes' units and the restore wrapper name the image by its digest", () => {
    expect(ETCD_IMAGE.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(unit("flatcar", "etcd-member.service")).toContain(
      `ETCD_IMAGE_TAG=${ETCD_IMAGE.tag}@${ETCD_IMAGE.digest}`,
    );
    expect(unit("fcos", "etcd-member.service")).toContain(pinned);
    for (const os of ["flatcar", "fcos"] as const) {
      const cfg = renderNodeConfig({ ...base, os } as never) as {
        storage: { files: Array<{ path: string; contents: { source: string } }> };
      };
      const wrapper = cfg.storage.files.find((f) => f.path.endsWith("/etcd-restore"));
      const text = decodeURIComponent((wrapper?.contents.source ?? "").replace(/^data:[^,]*,/, ""));
      expect(text).toContain(pinned);
    }
  });

  it("another tag runs only with its digest, which the units then pull", () => {
    const digest = `sha256:${"a".repeat(64)}`;
    const cfg = renderNodeConfig({ ...base, etcdImageTag: "v3.5.18", etcdImageDigest: digest } as never);
    expect(files(cfg)).toContain(`v3.5.18@${digest}`);
    expect(files(cfg)).not.toContain(ETCD_IMAGE.digest);
  });
});

describe("renderNodeConfig refuses bad input with the value and the fix", () => {
  it.each([
    [{ binarySha512: "abc" }, /--binary-sha512 must be 128 lowercase hex digits.*"abc" \(3 characters\)/],
    [{ binaryUrl: "ftp://x/y" }, /--binary-url must be an s3:\/\/ or https:\/\/ URL, got "ftp:\/\/x\/y"/],
    [{ binaryUrl: "s3://b/etcd-agent-linux-arm64" }, /names the arm64 binary but --arch is x64/],
    [{ os: "ubuntu" }, /--os must be flatcar or fcos, got "ubuntu"/],
    [
      { agent: { domain: "bad domain", hostedZoneId: "Z1" } },
      /must be a DNS name such as etcd.internal, got "bad domain"/,
    ],
    [{ sshAuthorizedKeys: ["not a key"] }, /--ssh-key is not an OpenSSH public key/],
    [
      { etcdImageTag: "v3.5.18" },
      /quay.io\/coreos\/etcd:v3.5.18 has no digest.*crane digest quay.io\/coreos\/etcd:v3.5.18/,
    ],
    [
      { etcdImageTag: "v3.5.18", etcdImageDigest: "sha256:abc" },
      /digest must be sha256: and 64 lowercase hex digits, got "sha256:abc"/,
    ],
  ])("%o", (over, message) => {
    expect(() => renderNodeConfig({ ...base, ...(over as object) } as never)).toThrow(message);
  });
});

describe("npm run ignition", () => {
  const dir = mkdtempSync(join(tmpdir(), "ign-cli-"));
  const tsx = new URL("../../../node_modules/.bin/tsx", import.meta.url).pathname;
  const cli = new URL("../../../ignition/cli.ts", import.meta.url).pathname;
  const run = (args: string[]) => spawnSync(tsx, [cli, ...args], { encoding: "utf8" });

  it("writes a config file", () => {
    const out = join(dir, "node.ign");
    const r = run([
      "--os",
      "fcos",
      "--arch",
      "arm64",
      "--binary-url",
      "s3://b/etcd-agent-linux-arm64",
      "--binary-sha512",
      SHA,
      "--domain",
      "etcd.internal",
      "--hosted-zone-id",
      "Z1",
      "--out",
      out,
    ]);
    expect(r.status).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8")).ignition.version).toBe("3.3.0");
  });

  it("exits 3 naming a missing argument", () => {
    const r = run(["--os", "flatcar", "--out", join(dir, "x.ign")]);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain("binary-url");
  });
});

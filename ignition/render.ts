// Renders a node's Ignition config (spec 3.3.0, accepted by Flatcar and Fedora CoreOS): the agent
// binary fetched from S3 and verified by sha512, the agent's configuration, the units and
// drop-ins from systemd/, the etcd-agent system user and optional SSH keys.
import { readFileSync } from "node:fs";
import { parseConfig } from "../agent/config/config.js";
import { ConfigError } from "../agent/errors.js";
import { ETCD_IMAGE } from "./etcd-image.js";

/** EC2 refuses user data above 16 KB (before base64). */
export const USER_DATA_LIMIT = 16 * 1024;

export type NodeOs = "flatcar" | "fcos";
export type NodeArch = "x64" | "arm64";

export interface NodeConfigOptions {
  os: NodeOs;
  arch: NodeArch;
  /** s3://bucket/key (or https://) of the etcd-agent binary for this architecture. */
  binaryUrl: string;
  /** sha512 of the binary, 128 hex digits. */
  binarySha512: string;
  /** The agent's settings, as ETCD_AGENT_* names without the prefix (domain, hostedZoneId, ...). */
  agent: { domain: string; hostedZoneId: string; [key: string]: string | number | undefined };
  sshAuthorizedKeys?: string[];
  /** etcd's image tag (default ETCD_IMAGE.tag), such as v3.5.17. */
  etcdImageTag?: string;
  /**
   * A block device for etcd's data (an EBS volume), formatted ext4 once (never wiped) and mounted
   * at the data dir before the agent and etcd start. Without it the data lives on the root disk.
   */
  dataDevice?: string;
}

/** The label the data volume's file system gets; the mount unit finds it by this. */
export const DATA_LABEL = "etcd-data";

/** Paths the units, the renderer and `etcd-agent boot` agree on; tests check they do. */
export const NODE_PATHS = {
  agentEnv: "/etc/etcd-agent/agent.env",
  etcdEnv: "/etc/etcd-agent/etcd.env",
  dataDir: "/var/lib/etcd",
  stateDir: "/var/lib/etcd-agent",
  tlsDir: "/etc/etcd-agent/tls",
  binDir: { flatcar: "/opt/bin", fcos: "/usr/local/bin" } satisfies Record<NodeOs, string>,
} as const;

const UNIT_DIR = new URL("../systemd/", import.meta.url);

function template(path: string, os: NodeOs, imageTag: string = ETCD_IMAGE.tag): string {
  return readFileSync(new URL(path, UNIT_DIR), "utf8")
    .replaceAll("@BIN_DIR@", NODE_PATHS.binDir[os])
    .replaceAll("@ETCD_IMAGE_REPOSITORY@", ETCD_IMAGE.repository)
    .replaceAll("@ETCD_IMAGE_TAG@", imageTag);
}

/** The units a node runs, rendered for its OS: name, contents, drop-ins. */
export function renderUnits(
  os: NodeOs,
  imageTag: string = ETCD_IMAGE.tag,
): Array<{ name: string; contents?: string; dropins?: Array<{ name: string; contents: string }> }> {
  const etcd =
    os === "flatcar"
      ? {
          name: "etcd-member.service",
          dropins: [
            { name: "10-etcd-agent.conf", contents: template("flatcar/10-etcd-agent.conf", os, imageTag) },
          ],
        }
      : { name: "etcd-member.service", contents: template("fcos/etcd-member.service", os, imageTag) };
  return [
    { name: "etcd-agent-boot.service", contents: template("etcd-agent-boot.service", os) },
    etcd,
    { name: "etcd-agent.service", contents: template("etcd-agent.service", os) },
  ];
}

const ENV_NAME = (key: string) => `ETCD_AGENT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** The agent's environment file, validated with the agent's own configuration rules. */
export function renderAgentEnv(agent: NodeConfigOptions["agent"]): string {
  const settings: Record<string, string | number | undefined> = {
    ...agent,
    dataDir: NODE_PATHS.dataDir,
    stateDir: NODE_PATHS.stateDir,
    envFile: NODE_PATHS.etcdEnv,
  };
  parseConfig(settings);
  const lines = Object.entries(settings)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => {
      const value = String(v);
      if (/[\s"'\\$`]/.test(value))
        throw new ConfigError(`agent setting ${k} cannot carry ${JSON.stringify(value)} in an env file`);
      return `${ENV_NAME(k)}=${value}`;
    });
  return `# etcd-agent settings, written by Ignition.\n${lines.join("\n")}\n`;
}

function dataUrl(text: string): string {
  return `data:,${encodeURIComponent(text)}`;
}

function validate(o: NodeConfigOptions): void {
  if (o.os !== "flatcar" && o.os !== "fcos")
    throw new ConfigError(`--os must be flatcar or fcos, got ${JSON.stringify(o.os)}`);
  if (o.arch !== "x64" && o.arch !== "arm64")
    throw new ConfigError(`--arch must be x64 or arm64, got ${JSON.stringify(o.arch)}`);
  if (!/^(s3|https):\/\/[^\s]+$/.test(o.binaryUrl)) {
    throw new ConfigError(
      `--binary-url must be an s3:// or https:// URL, got ${JSON.stringify(o.binaryUrl)}`,
    );
  }
  const other = o.arch === "x64" ? "arm64" : "x64";
  if (o.binaryUrl.endsWith(`-${other}`)) {
    throw new ConfigError(`--binary-url names the ${other} binary but --arch is ${o.arch}: ${o.binaryUrl}`);
  }
  if (!/^[0-9a-f]{128}$/.test(o.binarySha512)) {
    throw new ConfigError(
      `--binary-sha512 must be 128 lowercase hex digits (sha512sum of the binary), got ${JSON.stringify(o.binarySha512.slice(0, 20))}${o.binarySha512.length > 20 ? "..." : ""} (${o.binarySha512.length} characters)`,
    );
  }
  if (o.etcdImageTag !== undefined && !/^v3\.(4|5|6)\.\d+$/.test(o.etcdImageTag)) {
    throw new ConfigError(
      `etcd version must look like v3.5.17 (3.4, 3.5 or 3.6), got ${JSON.stringify(o.etcdImageTag)}`,
    );
  }
  if (o.dataDevice !== undefined && !/^\/dev\/[A-Za-z0-9/_.-]+$/.test(o.dataDevice)) {
    throw new ConfigError(
      `the data device must be a /dev/ path such as /dev/xvdb, got ${JSON.stringify(o.dataDevice)}`,
    );
  }
  for (const key of o.sshAuthorizedKeys ?? []) {
    if (!/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/.test(key)) {
      throw new ConfigError(`--ssh-key is not an OpenSSH public key: ${JSON.stringify(key.slice(0, 40))}`);
    }
  }
}

export interface IgnitionConfig {
  ignition: {
    version: "3.3.0";
    config?: { merge: Array<{ source: string; verification?: { hash: string } }> };
  };
  passwd?: unknown;
  storage?: unknown;
  systemd?: unknown;
}

export function renderNodeConfig(o: NodeConfigOptions): IgnitionConfig {
  validate(o);
  const bin = `${NODE_PATHS.binDir[o.os]}/etcd-agent`;
  return {
    ignition: { version: "3.3.0" },
    passwd: {
      users: [
        ...(o.sshAuthorizedKeys?.length ? [{ name: "core", sshAuthorizedKeys: o.sshAuthorizedKeys }] : []),
        {
          name: "etcd-agent",
          system: true,
          noCreateHome: true,
          homeDir: NODE_PATHS.stateDir,
          shell: "/sbin/nologin",
        },
      ],
    },
    storage: {
      ...(o.dataDevice
        ? {
            filesystems: [{ device: o.dataDevice, format: "ext4", label: DATA_LABEL, wipeFilesystem: false }],
          }
        : {}),
      directories: [
        { path: NODE_PATHS.dataDir, mode: 0o700 },
        { path: "/etc/etcd-agent", mode: 0o755 },
      ],
      files: [
        {
          path: bin,
          mode: 0o755,
          overwrite: true,
          contents: { source: o.binaryUrl, verification: { hash: `sha512-${o.binarySha512}` } },
        },
        {
          // etcd's restore tool from the pinned etcd image (the OS ships none), for recovery.
          path: `${NODE_PATHS.binDir[o.os]}/etcd-restore`,
          mode: 0o755,
          overwrite: true,
          contents: { source: dataUrl(restoreWrapper(o.os, o.etcdImageTag ?? ETCD_IMAGE.tag)) },
        },
        {
          path: NODE_PATHS.agentEnv,
          mode: 0o644,
          overwrite: true,
          contents: {
            source: dataUrl(
              renderAgentEnv({
                ...o.agent,
                // Recovery restores with the wrapper above unless told otherwise.
                ...(o.agent.backupBucket && !o.agent.restoreTool
                  ? { restoreTool: `${NODE_PATHS.binDir[o.os]}/etcd-restore` }
                  : {}),
                // Flatcar's etcd-member runs etcd as the etcd user with ETCD_SSL_DIR mounted at
                // /etc/ssl/certs; FCOS's unit (ours) mounts the directory at the same path as root.
                ...(o.os === "flatcar" && o.agent.plaintext !== "true"
                  ? { tlsEtcdDir: "/etc/ssl/certs", tlsKeyOwner: "etcd" }
                  : {}),
              }),
            ),
          },
        },
      ],
    },
    systemd: {
      units: [
        ...(o.dataDevice ? [dataMountUnit()] : []),
        ...renderUnits(o.os, o.etcdImageTag).map((u) => ({ ...u, enabled: true })),
      ],
    },
  };
}

/**
 * etcd-restore: runs etcd's own restore tool (etcdutl on 3.5+, etcdctl on 3.4) from the pinned
 * image, with the data dir mounted, no network. The agent passes the snapshot restore arguments.
 */
function restoreWrapper(os: NodeOs, tag: string): string {
  const runtime = os === "flatcar" ? "docker" : "podman";
  const tool = /^v3\.4\./.test(tag) ? "etcdctl" : "etcdutl";
  return [
    "#!/bin/sh",
    "# etcd's restore tool from the pinned etcd image; written by Ignition for etcd-agent's recovery.",
    "set -eu",
    `exec ${runtime} run --rm --network none -e ETCDCTL_API=3 -v ${NODE_PATHS.dataDir}:${NODE_PATHS.dataDir} ${ETCD_IMAGE.repository}:${tag} ${tool} "$@"`,
    "",
  ].join("\n");
}

/** var-lib-etcd.mount: the data volume at the data dir; etcd-agent-boot requires it (RequiresMountsFor). */
function dataMountUnit(): { name: string; enabled: boolean; contents: string } {
  return {
    name: "var-lib-etcd.mount",
    enabled: true,
    contents: [
      "[Unit]",
      "Description=etcd data volume",
      "Before=etcd-agent-boot.service",
      "",
      "[Mount]",
      `What=/dev/disk/by-label/${DATA_LABEL}`,
      `Where=${NODE_PATHS.dataDir}`,
      "Type=ext4",
      "Options=noatime",
      "",
      "[Install]",
      "WantedBy=local-fs.target",
      "",
    ].join("\n"),
  };
}

/** A small config that merges the full one from S3: for configs above the user-data limit. */
export function renderPointerConfig(url: string, sha512: string): IgnitionConfig {
  if (!/^(s3|https):\/\/\S+$/.test(url))
    throw new ConfigError(`--pointer-url must be an s3:// or https:// URL, got ${JSON.stringify(url)}`);
  return {
    ignition: {
      version: "3.3.0",
      config: { merge: [{ source: url, verification: { hash: `sha512-${sha512}` } }] },
    },
  };
}

export function serialize(config: IgnitionConfig): string {
  return JSON.stringify(config);
}

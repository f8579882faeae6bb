// Renders a node's Ignition config (spec 3.3.0, accepted by Flatcar and Fedora CoreOS): the agent
// binary fetched from S3 and verified by sha512, the agent's configuration, the units and
// drop-ins from systemd/, the etcd-agent system user and optional SSH keys.
import { readFileSync } from "node:fs";
import { RESTART_REQUEST_PATHS } from "../agent/adapters/etcd-service.js";
import { CERT_MODES } from "../agent/adapters/local-disk.js";
import { parseConfig } from "../agent/config/config.js";
import { envName, OPTIONS, type OptionRow } from "../agent/config/options.js";
import { ConfigError } from "../agent/errors.js";
import { DIGEST_RE, ETCD_IMAGE, pinnedTag } from "./etcd-image.js";

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
  /** The tag's image digest (sha256:...); required with any tag but ETCD_IMAGE's own. */
  etcdImageDigest?: string;
  /**
   * etcd's data volume (an EBS volume) by its block device mapping name, such as /dev/xvdb: found
   * on the node by etcd-data-volume.service (the name where the OS makes it, otherwise the one
   * EBS disk without partitions), formatted ext4 once (never wiped) and mounted at the data dir
   * before the agent and etcd start. Without it the data lives on the root disk.
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
  /** The agent asks for etcd's restart here; root's oneshot answers there (a CA rotation). */
  restartRequest: RESTART_REQUEST_PATHS.request,
  restartOutcome: RESTART_REQUEST_PATHS.outcome,
} as const;

/** Root's program that restarts etcd for the agent's request (etcd-agent-restart-etcd.service). */
export const RESTART_ETCD_SCRIPT = "etcd-agent-restart-etcd";

/**
 * The restart program as the node gets it: systemd/'s, without its comment lines (the user data is
 * small; the comments stay in the repository).
 */
export function restartEtcdScript(): string {
  return readFileSync(new URL(RESTART_ETCD_SCRIPT, UNIT_DIR), "utf8")
    .split("\n")
    .filter((line, i) => i === 0 || !/^\s*#/.test(line))
    .join("\n");
}

/**
 * The node's accounts: the agent's user (runs `etcd-agent run`, owns the agent's state and the
 * node's certificates) and etcd's group (reads the certificates). Flatcar ships the etcd user and
 * group (232) and its etcd-wrapper runs etcd as `-u $(id -u etcd):$(id -g etcd)`, with no other
 * group: so the group that may read the key must be etcd's own primary group, not a new one.
 */
export const NODE_ACCOUNTS = { agentUser: "etcd-agent", etcdGroup: "etcd" } as const;

const UNIT_DIR = new URL("../systemd/", import.meta.url);

const DEFAULT_PINNED = pinnedTag(ETCD_IMAGE.tag, ETCD_IMAGE.digest);

function template(path: string, os: NodeOs, imageTag: string = DEFAULT_PINNED): string {
  return readFileSync(new URL(path, UNIT_DIR), "utf8")
    .replaceAll("@BIN_DIR@", NODE_PATHS.binDir[os])
    .replaceAll("@ETCD_IMAGE_REPOSITORY@", ETCD_IMAGE.repository)
    .replaceAll("@ETCD_IMAGE_TAG@", imageTag);
}

/** The units a node runs, rendered for its OS: name, contents, drop-ins. */
export function renderUnits(
  os: NodeOs,
  imageTag: string = DEFAULT_PINNED,
): Array<{
  name: string;
  contents?: string;
  dropins?: Array<{ name: string; contents: string }>;
  enabled?: boolean;
}> {
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
    // etcd's restart for a CA rotation: the agent asks, root restarts (docs/security.md).
    { name: "etcd-agent-restart-etcd.path", contents: template("etcd-agent-restart-etcd.path", os) },
    // Started by the path unit only (no [Install]).
    {
      name: "etcd-agent-restart-etcd.service",
      contents: template("etcd-agent-restart-etcd.service", os),
      enabled: false,
    },
  ];
}

/** A setting's variable, from the agent's option table; a key that is no option is refused. */
function ENV_NAME(key: string): string {
  const row = (OPTIONS as Record<string, OptionRow | undefined>)[key];
  if (!row)
    throw new ConfigError(`agent setting ${key} is not an etcd-agent option (agent/config/options.ts)`);
  return envName(row.flag);
}

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

/** Checks the options; returns the etcd image pinned as `tag@digest`. */
function validate(o: NodeConfigOptions): string {
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
  const digest =
    o.etcdImageDigest ??
    (o.etcdImageTag === undefined || o.etcdImageTag === ETCD_IMAGE.tag ? ETCD_IMAGE.digest : undefined);
  const tag = o.etcdImageTag ?? ETCD_IMAGE.tag;
  if (digest === undefined) {
    throw new ConfigError(
      `etcd image ${ETCD_IMAGE.repository}:${tag} has no digest: nodes run images pinned by digest; give its digest (sha256:<64 hex>) from \`crane digest ${ETCD_IMAGE.repository}:${tag}\` (docs/security.md, "Supply chain")`,
    );
  }
  if (!DIGEST_RE.test(digest)) {
    throw new ConfigError(
      `etcd image digest must be sha256: and 64 lowercase hex digits, got ${JSON.stringify(digest)}`,
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
  return pinnedTag(tag, digest);
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
  const pinned = validate(o);
  const bin = `${NODE_PATHS.binDir[o.os]}/etcd-agent`;
  return {
    ignition: { version: "3.3.0" },
    passwd: {
      // Flatcar ships the etcd group (232, with the etcd user); Fedora CoreOS has none.
      ...(o.os === "fcos" ? { groups: [{ name: NODE_ACCOUNTS.etcdGroup, system: true }] } : {}),
      users: [
        ...(o.sshAuthorizedKeys?.length ? [{ name: "core", sshAuthorizedKeys: o.sshAuthorizedKeys }] : []),
        {
          name: NODE_ACCOUNTS.agentUser,
          system: true,
          noCreateHome: true,
          homeDir: NODE_PATHS.stateDir,
          shell: "/sbin/nologin",
        },
      ],
    },
    storage: {
      // Who owns what (docs/node.md): the units' ReadWritePaths= need these to exist; the agent
      // sets the same owner and mode on the certificate directory whenever it writes there.
      directories: [
        { path: NODE_PATHS.dataDir, mode: 0o700 },
        { path: "/etc/etcd-agent", mode: 0o755 },
        {
          path: NODE_PATHS.tlsDir,
          mode: CERT_MODES.shared.dir,
          user: { name: NODE_ACCOUNTS.agentUser },
          group: { name: NODE_ACCOUNTS.etcdGroup },
        },
        {
          path: NODE_PATHS.stateDir,
          mode: 0o700,
          user: { name: NODE_ACCOUNTS.agentUser },
          group: { name: NODE_ACCOUNTS.agentUser },
        },
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
          contents: { source: dataUrl(restoreWrapper(o.os, pinned)) },
        },
        {
          path: `${NODE_PATHS.binDir[o.os]}/${RESTART_ETCD_SCRIPT}`,
          mode: 0o755,
          overwrite: true,
          // base64: about half the size of the percent-encoded text.
          contents: { source: `data:;base64,${Buffer.from(restartEtcdScript()).toString("base64")}` },
        },
        ...(o.dataDevice
          ? [
              {
                path: `${NODE_PATHS.binDir[o.os]}/${DATA_VOLUME_SCRIPT}`,
                mode: 0o755,
                overwrite: true,
                contents: { source: dataUrl(dataVolumeScript(o.dataDevice)) },
              },
            ]
          : []),
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
                // The agent's files belong to the user run runs as; boot (root) gives them to it.
                fileOwner: NODE_ACCOUNTS.agentUser,
                // The certificates are read by etcd's group (docs/node.md, "Who owns what").
                ...(o.agent.plaintext !== "true" ? { tlsGroup: NODE_ACCOUNTS.etcdGroup } : {}),
                // Flatcar's etcd-member runs etcd as the etcd user with ETCD_SSL_DIR mounted at
                // /etc/ssl/certs; FCOS's unit (ours) mounts the directory at the same path as root.
                ...(o.os === "flatcar" && o.agent.plaintext !== "true"
                  ? { tlsEtcdDir: "/etc/ssl/certs" }
                  : {}),
              }),
            ),
          },
        },
      ],
    },
    systemd: {
      units: [
        ...(o.dataDevice ? [dataVolumeUnit(o.os), dataMountUnit()] : []),
        ...renderUnits(o.os, pinned).map((u) => ({ ...u, enabled: u.enabled ?? true })),
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
  // The restore runs from etcd-agent-boot.service, whose hardening refuses what podman needs (a
  // mount namespace, a writable /var/lib/containers): on FCOS systemd runs the container in a
  // transient unit of its own, the output and exit code passed back. docker is only a client of
  // dockerd (a socket), which the hardening allows.
  const launch = os === "fcos" ? "systemd-run --quiet --wait --pipe --collect " : "";
  return [
    "#!/bin/sh",
    "# etcd's restore tool from the pinned etcd image; written by Ignition for etcd-agent's recovery.",
    "set -eu",
    `exec ${launch}${runtime} run --rm --network none -e ETCDCTL_API=3 -v ${NODE_PATHS.dataDir}:${NODE_PATHS.dataDir}${os === "fcos" ? FCOS_DATA_DIR_LABEL : ""} ${ETCD_IMAGE.repository}:${tag} ${tool} "$@"`,
    "",
  ].join("\n");
}

/**
 * Fedora CoreOS enforces SELinux: a container reaches a host path only if the volume is relabelled.
 * `:Z` (private to the container), as etcd-member.service mounts the same directory: each container
 * relabels it when it starts, and the restore runs while etcd is stopped.
 */
export const FCOS_DATA_DIR_LABEL = ":Z";

/** The program that finds and formats the data volume, in the OS's bin dir. */
export const DATA_VOLUME_SCRIPT = "etcd-data-volume";

/**
 * Finds etcd's data volume and formats it once. On Nitro instances an EBS volume is an NVMe device
 * (/dev/nvme1n1, numbered in the order the kernel found it); its mapping name (/dev/xvdb) exists
 * only where the OS has udev rules for EBS (Flatcar's 90-cloud-storage.rules; Fedora CoreOS has
 * none: coreos/fedora-coreos-tracker#104, #1122), and the by-id name carries the volume ID, which
 * a launch template cannot know. What does not change: the data volume is the one EBS disk with
 * no partition table (the root volume has partitions), or the mapping name where it exists (Xen
 * instances, Flatcar). Anything already on the volume is kept: a file system labelled etcd-data is
 * used, anything else stops the unit (never wiped). ETCD_DATA_SYS and ETCD_DATA_DEV are for tests.
 */
export function dataVolumeScript(mappingName: string): string {
  return `#!/bin/bash
# Finds etcd's data volume and formats it once (never wipes): written by Ignition for etcd-agent.
set -euo pipefail
SYS=\${ETCD_DATA_SYS:-/sys/block}
DEV=\${ETCD_DATA_DEV:-/dev}
MAPPING=\${DEV}${mappingName.replace(/^\/dev/, "")}
LABEL=${DATA_LABEL}
udevadm settle --timeout=30 || true
if [ -e "$DEV/disk/by-label/$LABEL" ]; then echo "data volume: $LABEL is there"; exit 0; fi
dev=""
if [ -e "$MAPPING" ]; then
  dev=$(readlink -f "$MAPPING")
else
  for d in "$SYS"/nvme*n*; do
    [ -e "$d/device/model" ] || continue
    model=$(sed 's/ *$//' "$d/device/model")
    [ "$model" = "Amazon Elastic Block Store" ] || continue
    name=\${d##*/}
    if compgen -G "$d/\${name}p*" >/dev/null; then continue; fi
    if [ -n "$dev" ]; then
      echo "data volume: more than one EBS disk without partitions ($dev, $DEV/$name); expected only $MAPPING" >&2
      exit 1
    fi
    dev=$DEV/$name
  done
fi
if [ -z "$dev" ]; then
  echo "data volume: neither $MAPPING nor an EBS disk without partitions is attached" >&2
  exit 1
fi
found=$(blkid -p -o export "$dev" || true)
if [ -z "$found" ]; then
  echo "data volume: formatting $dev (empty) as ext4 $LABEL"
  mkfs.ext4 -q -L "$LABEL" "$dev"
  udevadm settle --timeout=30 || true
elif grep -qx "LABEL=$LABEL" <<<"$found"; then
  echo "data volume: $dev is $LABEL"
else
  echo "data volume: $dev holds something else ($(tr '\\n' ' ' <<<"$found")); not formatting it" >&2
  exit 1
fi
`;
}

/** etcd-data-volume.service: runs the script above once per boot, before the mount. */
function dataVolumeUnit(os: NodeOs): { name: string; enabled: boolean; contents: string } {
  return {
    name: "etcd-data-volume.service",
    enabled: true,
    contents: [
      "[Unit]",
      "Description=etcd data volume: find it, format it once",
      // Before local-fs (the mount is part of it), after the file systems its program lives on
      // (Fedora CoreOS: /usr/local is /var/usrlocal).
      "DefaultDependencies=no",
      "After=local-fs-pre.target systemd-udevd.service systemd-udev-trigger.service",
      `RequiresMountsFor=/var ${NODE_PATHS.binDir[os]}`,
      "Before=var-lib-etcd.mount local-fs.target",
      "StartLimitIntervalSec=300",
      "StartLimitBurst=10",
      "",
      "[Service]",
      "Type=oneshot",
      "RemainAfterExit=yes",
      `ExecStart=${NODE_PATHS.binDir[os]}/${DATA_VOLUME_SCRIPT}`,
      "Restart=on-failure",
      "RestartSec=5s",
      "",
      "[Install]",
      "WantedBy=local-fs.target",
      "",
    ].join("\n"),
  };
}

/** var-lib-etcd.mount: the data volume at the data dir; etcd-agent-boot requires it (RequiresMountsFor). */
function dataMountUnit(): { name: string; enabled: boolean; contents: string } {
  return {
    name: "var-lib-etcd.mount",
    enabled: true,
    contents: [
      "[Unit]",
      "Description=etcd data volume",
      "Requires=etcd-data-volume.service",
      "After=etcd-data-volume.service",
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

// biome-ignore-all lint/suspicious/noExplicitAny: rendered Ignition JSON is untyped
// Who may read and write what on a node (#14): for each process a node runs (the two agent units
// as their unit files say, etcd as each OS runs it), every path it reads or writes is checked
// against the modes and owners the rendered Ignition config creates and the agent writes with,
// under the unit's own User=, groups, capabilities and ProtectSystem=strict. One model of Unix
// permissions, the node's files from the config: a unit and the config that disagree fail here.
import { describe, expect, it } from "vitest";
import { CERT_MODES } from "../../../agent/adapters/local-disk.js";
import { parseEnvFile } from "../../../agent/planner/etcd-env.js";
import { NODE_PATHS, type NodeOs, renderNodeConfig } from "../../../ignition/render.js";

const base = {
  arch: "x64" as const,
  binaryUrl: "s3://b/etcd-agent-linux-x64",
  binarySha512: "cd".repeat(64),
  agent: { domain: "etcd.internal", hostedZoneId: "Z0123456789ABC" },
};

interface Node {
  user: string;
  group: string;
  mode: number;
}
interface Proc {
  user: string;
  groups: Set<string>;
  caps: Set<string>;
  /** ProtectSystem=strict: only these trees are writable (null: all). */
  writable: string[] | null;
  /** StateDirectory=: systemd gives these to the unit's user when it starts. */
  owns?: string[];
  stateDirMode?: number;
}

/** A group chown(2) leaves as it is (-1). */
const KEEP = "(unchanged)";

const ALL_CAPS = new Set(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER"]);

function unitText(config: any, name: string): string {
  const u = config.systemd.units.find((x: any) => x.name === name);
  return u?.contents ?? "";
}

function directives(text: string, key: string): string[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${key}=`))
    .flatMap((l) => l.slice(key.length + 1).split(/\s+/))
    .filter((v) => v !== "");
}

/** A unit's process as systemd starts it: user, groups, capabilities, writable trees. */
function procOf(unit: string): Proc {
  const user = directives(unit, "User")[0] ?? "root";
  const group = directives(unit, "Group")[0] ?? user;
  const bounding = unit.split("\n").some((l) => l.startsWith("CapabilityBoundingSet="))
    ? new Set(directives(unit, "CapabilityBoundingSet"))
    : ALL_CAPS;
  const strict = directives(unit, "ProtectSystem")[0] === "strict";
  const stateDirs = directives(unit, "StateDirectory").map((d) => `/var/lib/${d}`);
  return {
    owns: stateDirs,
    stateDirMode: Number.parseInt(directives(unit, "StateDirectoryMode")[0] ?? "0755", 8),
    user,
    groups: new Set([group, ...directives(unit, "SupplementaryGroups")]),
    // Root's capabilities are its bounding set; another user has none (no AmbientCapabilities).
    caps: user === "root" ? bounding : new Set(directives(unit, "AmbientCapabilities")),
    writable: strict
      ? [...directives(unit, "ReadWritePaths").map((p) => p.replace(/^-/, "")), ...stateDirs]
      : null,
  };
}

/** The node's file system after Ignition and a boot: what the config creates, what the agent writes. */
function nodeFiles(os: NodeOs, config: any, env: Record<string, string>): Map<string, Node> {
  const files = new Map<string, Node>();
  const owner = (x: any, fallback = "root") => ({
    user: x.user?.name ?? fallback,
    group: x.group?.name ?? fallback,
  });
  for (const d of config.storage.directories) files.set(d.path, { ...owner(d), mode: d.mode });
  for (const f of config.storage.files) files.set(f.path, { ...owner(f), mode: f.mode });
  // Flatcar's etcd-wrapper chowns the data dir to etcd at every start; FCOS leaves it to root.
  if (os === "flatcar") files.set(NODE_PATHS.dataDir, { user: "etcd", group: "etcd", mode: 0o700 });
  // What the agent writes: etcd's environment (root, boot), its state and the node's certificates.
  const agentUser = env.ETCD_AGENT_FILE_OWNER ?? "root";
  const tlsGroup = env.ETCD_AGENT_TLS_GROUP;
  const modes = tlsGroup ? CERT_MODES.shared : CERT_MODES.private;
  files.set(NODE_PATHS.etcdEnv, { user: "root", group: "root", mode: 0o644 });
  // The state files are given to the agent's user; their group stays the writer's (gid -1), mode 0600.
  for (const f of ["state.json", "memory.json"])
    files.set(`${NODE_PATHS.stateDir}/${f}`, { user: agentUser, group: KEEP, mode: 0o600 });
  const tls = { user: agentUser, group: tlsGroup ?? "root" };
  if (!files.has(NODE_PATHS.tlsDir)) files.set(NODE_PATHS.tlsDir, { ...tls, mode: modes.dir });
  files.set(`${NODE_PATHS.tlsDir}/node.key`, { ...tls, mode: modes.key });
  files.set(`${NODE_PATHS.tlsDir}/node.crt`, { ...tls, mode: modes.cert });
  files.set(`${NODE_PATHS.tlsDir}/ca.crt`, { ...tls, mode: modes.cert });
  return files;
}

function allowed(p: Proc, n: Node, bit: 4 | 2 | 1): boolean {
  const who = p.user === n.user ? 6 : p.groups.has(n.group) ? 3 : 0;
  return ((n.mode >> who) & bit) !== 0;
}

function nodeAt(files: Map<string, Node>, path: string, p?: Proc): Node {
  // StateDirectory=: systemd makes it the unit's user's (StateDirectoryMode= 0755) at each start.
  if (p?.owns?.includes(path))
    return { user: p.user, group: [...p.groups][0] as string, mode: p.stateDirMode ?? 0o755 };
  // A directory the config does not create is the OS's: root 0755.
  return files.get(path) ?? { user: "root", group: "root", mode: 0o755 };
}

function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join("/")}`);
}

/** Why `p` cannot read `path`, or null. */
function cannotRead(p: Proc, files: Map<string, Node>, path: string): string | null {
  if (p.caps.has("CAP_DAC_OVERRIDE")) return null;
  for (const dir of ancestors(path)) if (!allowed(p, nodeAt(files, dir, p), 1)) return `cannot enter ${dir}`;
  return allowed(p, nodeAt(files, path, p), 4) ? null : `cannot read ${path}`;
}

/**
 * Why `p` cannot replace `path` atomically (a temporary file in its directory, renamed over it)
 * and give it to `give` (the owner the agent sets), or null.
 */
function cannotWrite(p: Proc, files: Map<string, Node>, path: string, give?: Node): string | null {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (p.writable !== null && !p.writable.some((w) => path === w || path.startsWith(`${w}/`)))
    return `${path} is read-only under ProtectSystem=strict`;
  if (!p.caps.has("CAP_DAC_OVERRIDE")) {
    for (const d of ancestors(path)) if (!allowed(p, nodeAt(files, d, p), 1)) return `cannot enter ${d}`;
    if (!allowed(p, nodeAt(files, dir, p), 2)) return `cannot create files in ${dir}`;
  }
  if (give) {
    const chownable =
      p.caps.has("CAP_CHOWN") || (give.user === p.user && (give.group === KEEP || p.groups.has(give.group)));
    if (!chownable) return `cannot give ${path} to ${give.user}:${give.group}`;
    if (give.user !== p.user && !p.caps.has("CAP_FOWNER")) return `cannot set the mode of ${path}`;
  }
  return null;
}

const tlsFiles = ["ca.crt", "node.crt", "node.key"].map((f) => `${NODE_PATHS.tlsDir}/${f}`);
const stateFiles = ["state.json", "memory.json"].map((f) => `${NODE_PATHS.stateDir}/${f}`);

describe.each(["flatcar", "fcos"] as const)("%s: every process can do what it must", (os) => {
  const config = renderNodeConfig({ ...base, os }) as any;
  const envFile = config.storage.files.find((f: any) => f.path === NODE_PATHS.agentEnv);
  const env = parseEnvFile(decodeURIComponent(envFile.contents.source.replace(/^data:,/, "")));
  const files = nodeFiles(os, config, env);
  const boot = procOf(unitText(config, "etcd-agent-boot.service"));
  const run = procOf(unitText(config, "etcd-agent.service"));
  // Flatcar: docker run -u $(id -u etcd):$(id -g etcd), no supplementary groups, no capabilities.
  // FCOS: our podman unit runs etcd as root in the container (podman's default capabilities).
  const etcd: Proc =
    os === "flatcar"
      ? { user: "etcd", groups: new Set(["etcd"]), caps: new Set(), writable: null }
      : { user: "root", groups: new Set(["root"]), caps: ALL_CAPS, writable: null };
  const give = (path: string) => files.get(path);

  it.each([
    [
      "etcd-agent boot",
      boot,
      [NODE_PATHS.agentEnv, ...stateFiles, ...tlsFiles, `${NODE_PATHS.dataDir}/member`],
    ],
    ["etcd-agent run", run, [NODE_PATHS.agentEnv, ...stateFiles, ...tlsFiles]],
    ["etcd", etcd, tlsFiles],
  ] as const)("%s reads what it needs", (_who, proc, paths) => {
    expect(paths.map((p) => cannotRead(proc, files, p)).filter((x) => x !== null)).toEqual([]);
  });

  it.each([
    // boot: etcd's environment, stale data moved aside, the state, the certificate at first boot.
    [
      "etcd-agent boot",
      boot,
      [NODE_PATHS.etcdEnv, `${NODE_PATHS.dataDir}/member`, ...stateFiles, ...tlsFiles],
    ],
    // run: the member ID and the safety clocks, snapshots in the state dir, a renewed certificate.
    ["etcd-agent run", run, [...stateFiles, `${NODE_PATHS.stateDir}/snapshots`, ...tlsFiles]],
    ["etcd", etcd, [`${NODE_PATHS.dataDir}/member`]],
  ] as const)("%s writes what it must, and gives it to the agent's user", (_who, proc, paths) => {
    expect(paths.map((p) => cannotWrite(proc, files, p, give(p))).filter((x) => x !== null)).toEqual([]);
  });

  it("the directories the units name exist before they start (Ignition makes them)", () => {
    for (const w of [...(boot.writable ?? []), ...(run.writable ?? [])]) {
      const made = config.storage.directories.some((d: any) => d.path === w);
      expect({ w, made }).toEqual({ w, made: true });
    }
  });

  it("the state dir has one owner: only the unit that runs as the agent's user declares StateDirectory=", () => {
    // StateDirectory= on a root unit would give the tree back to root at each of its starts.
    expect({ boot: boot.owns, run: run.owns }).toEqual({ boot: [], run: [NODE_PATHS.stateDir] });
    expect(run.user).toBe(env.ETCD_AGENT_FILE_OWNER);
    expect(files.get(NODE_PATHS.stateDir)).toEqual({ user: "etcd-agent", group: "etcd-agent", mode: 0o700 });
  });

  it("the key is read by nobody but the agent's user and etcd's group", () => {
    const key = files.get(`${NODE_PATHS.tlsDir}/node.key`) as Node;
    expect(key.mode & 0o007).toBe(0);
    expect(key).toMatchObject({ user: "etcd-agent", group: "etcd" });
    const dir = files.get(NODE_PATHS.tlsDir) as Node;
    expect(dir).toEqual({ user: "etcd-agent", group: "etcd", mode: 0o750 });
  });

  it("the check itself: a process outside etcd's group cannot read the key", () => {
    const other: Proc = { user: "core", groups: new Set(["core"]), caps: new Set(), writable: null };
    expect(cannotRead(other, files, `${NODE_PATHS.tlsDir}/node.key`)).toBe(
      `cannot enter ${NODE_PATHS.tlsDir}`,
    );
  });
});

// This node's disk: etcd's data dir, the agent's state file and etcd's environment file.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, chown, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError } from "../errors.js";
import type { LocalState } from "../planner/observation.js";
import type { CertBundle, CertFile, CertFiles } from "../ports/cert-files.js";
import type { Clock } from "../ports/clock.js";
import type { LocalNode } from "../ports/local-node.js";

export interface LocalDiskOptions {
  dataDir: string;
  stateDir: string;
  envFile: string;
  clock: Clock;
  /**
   * Who the state files belong to: the user `run` runs as. `boot` runs as root and gives what it
   * writes to that user, so `run` can read and replace it. Absent: whoever writes them.
   */
  owner?: FileOwner;
}

/** A file's owner by numbers (-1 leaves one as it is, as chown(2) does). */
export interface FileOwner {
  uid: number;
  gid: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** Writes a file so that readers see the old or the new content, never a part: temp, fsync, rename. */
export async function writeFileAtomic(
  path: string,
  content: string,
  mode = 0o644,
  owner?: FileOwner,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${randomBytes(4).toString("hex")}`;
  // "wx": O_CREAT|O_EXCL, so a link planted at the name is never followed (root writes in
  // directories the agent's user owns).
  const handle = await open(tmp, "wx", mode);
  try {
    // Owner and mode before content: the key is never readable by anyone else, even for a moment.
    // The mode is set, not left to the umask (the units' UMask=0027 would take the certificates' o+r).
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export class LocalDisk implements LocalNode {
  constructor(private readonly options: LocalDiskOptions) {}

  private get statePath(): string {
    return join(this.options.stateDir, "state.json");
  }

  private get memoryPath(): string {
    return join(this.options.stateDir, "memory.json");
  }

  async hasData(): Promise<boolean> {
    return exists(join(this.options.dataDir, "member"));
  }

  async readState(): Promise<LocalState | null> {
    let text: string;
    try {
      text = await readFile(this.statePath, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    const parsed = JSON.parse(text) as Partial<LocalState>;
    if (typeof parsed.clusterToken !== "string" || typeof parsed.name !== "string") {
      throw new ConfigError(
        `${this.statePath} is not an etcd-agent state file; move it aside and boot again`,
      );
    }
    return {
      clusterToken: parsed.clusterToken,
      memberId: typeof parsed.memberId === "string" ? parsed.memberId : null,
      name: parsed.name,
      updatedAt: typeof parsed.updatedAt === "string" ? parsed.updatedAt : "",
    };
  }

  async writeState(state: LocalState): Promise<void> {
    await writeFileAtomic(this.statePath, `${JSON.stringify(state, null, 2)}\n`, 0o600, this.options.owner);
  }

  async moveDataAside(reason: string): Promise<string | null> {
    // The data dir itself may be a mount point, so its member/ directory moves into a dated
    // folder beside it, on the same file system. Nothing is deleted: an operator can move it back.
    const member = join(this.options.dataDir, "member");
    if (!(await exists(member))) return null;
    const stamp = this.options.clock.now().toISOString().replace(/[:.]/g, "-");
    const target = join(this.options.dataDir, `stale-${stamp}`);
    await mkdir(target, { recursive: true });
    await rename(member, join(target, "member"));
    await writeFileAtomic(join(target, "ETCD_AGENT_MOVED_ASIDE"), `${reason}\n`);
    return target;
  }

  async adoptRestored(staging: string): Promise<void> {
    const target = join(this.options.dataDir, "member");
    if (await exists(target)) throw new Error(`${target} exists; refusing to put a restored member over it`);
    await rename(join(staging, "member"), target);
    await rm(staging, { recursive: true, force: true });
  }

  async writeEnvFile(content: string): Promise<void> {
    await writeFileAtomic(this.options.envFile, content, 0o644);
  }

  async readEnvFile(): Promise<string | null> {
    try {
      return await readFile(this.options.envFile, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  async readMemory(): Promise<unknown | null> {
    let text: string;
    try {
      text = await readFile(this.memoryPath, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // A torn or foreign file: the clocks start again (later, never earlier: the safe direction).
      return null;
    }
  }

  async writeMemory(memory: unknown): Promise<void> {
    await writeFileAtomic(this.memoryPath, `${JSON.stringify(memory)}\n`, 0o600, this.options.owner);
  }
}

/**
 * Where users and groups are: /etc first, then the OS's read-only defaults (Flatcar keeps its
 * system users, etcd among them, in /usr/share/baselayout; Fedora CoreOS in /usr/lib). Node has no
 * getpwnam; the files' format is fixed.
 */
export const ID_FILES = {
  user: ["/etc/passwd", "/usr/share/baselayout/passwd", "/usr/lib/passwd"],
  group: ["/etc/group", "/usr/share/baselayout/group", "/usr/lib/group"],
} as const;

/** A user's uid or a group's gid, by name (or a number, as it is); `option` names the setting. */
export function lookupId(
  kind: "user" | "group",
  value: string,
  option: string,
  files: readonly string[] = ID_FILES[kind],
): number {
  if (/^\d+$/.test(value)) return Number(value);
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    const id = text
      .split("\n")
      .map((l) => l.split(":"))
      .find((f) => f[0] === value)?.[2];
    if (id !== undefined && /^\d+$/.test(id)) return Number(id);
  }
  throw new ConfigError(
    `${option} ${JSON.stringify(value)} is not a ${kind} in ${files.join(", ")}; give an existing ${kind} (or its number)${option === "--tls-group" ? ": the group etcd runs as" : ": the user etcd-agent run runs as"}`,
  );
}

/** The modes of the certificate files: private to their owner, or shared with one group (etcd's). */
export const CERT_MODES = {
  private: { dir: 0o700, key: 0o600, cert: 0o644 },
  shared: { dir: 0o750, key: 0o640, cert: 0o644 },
} as const;

/**
 * The node's certificate files (ca.crt, node.crt, node.key), as etcd and the agent read them.
 * With `group` (etcd's), the directory is 0750 and the key 0640 in that group, so etcd reads
 * them as itself; with `owner` (the agent's user), boot (root) gives them to the user that renews
 * them in `run`. Every write also sets the directory's mode and owner, so a directory an older
 * agent made root 0700 is put right by the next issue or renewal.
 */
export class LocalCertFiles implements CertFiles {
  private readonly modes: (typeof CERT_MODES)[keyof typeof CERT_MODES];
  private readonly owner: FileOwner | undefined;

  constructor(
    private readonly files: { caFile: string; certFile: string; keyFile: string },
    access: { owner?: number | null; group?: number | null } = {},
  ) {
    const group = access.group ?? null;
    const owner = access.owner ?? null;
    this.modes = group === null ? CERT_MODES.private : CERT_MODES.shared;
    this.owner = group === null && owner === null ? undefined : { uid: owner ?? -1, gid: group ?? -1 };
  }
  async read(): Promise<CertBundle | null> {
    try {
      const [ca, cert, key] = await Promise.all(
        [this.files.caFile, this.files.certFile, this.files.keyFile].map((f) => readFile(f, "utf8")),
      );
      return { ca: ca as string, cert: cert as string, key: key as string };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  async write(bundle: CertBundle, afterFile?: (file: CertFile) => Promise<void>): Promise<void> {
    for (const dir of new Set([this.files.caFile, this.files.certFile, this.files.keyFile].map(dirname))) {
      await mkdir(dir, { recursive: true, mode: this.modes.dir });
      if (this.owner) await chown(dir, this.owner.uid, this.owner.gid);
      await chmod(dir, this.modes.dir);
    }
    // etcd reads the pair on each handshake: one that falls between these renames (microseconds)
    // sees a new key with the old certificate and fails; the client retries on its next dial.
    // A crash between them leaves a key that does not match the certificate: the next
    // ensureNodeCert sees the mismatch and issues a new pair.
    await writeFileAtomic(this.files.caFile, bundle.ca, this.modes.cert, this.owner);
    await afterFile?.("ca");
    await writeFileAtomic(this.files.keyFile, bundle.key, this.modes.key, this.owner);
    await afterFile?.("key");
    await writeFileAtomic(this.files.certFile, bundle.cert, this.modes.cert, this.owner);
    await afterFile?.("cert");
  }
}

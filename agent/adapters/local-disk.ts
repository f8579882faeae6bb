// This node's disk: etcd's data dir, the agent's state file and etcd's environment file.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
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
  owner?: { uid: number; gid: number },
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${randomBytes(4).toString("hex")}`;
  const handle = await open(tmp, "w", mode);
  try {
    // Owner before content: the key is never readable by anyone else, even for a moment.
    if (owner) await handle.chown(owner.uid, owner.gid);
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
      throw new Error(`${this.statePath} is not an etcd-agent state file; move it aside and boot again`);
    }
    return {
      clusterToken: parsed.clusterToken,
      memberId: typeof parsed.memberId === "string" ? parsed.memberId : null,
      name: parsed.name,
      updatedAt: typeof parsed.updatedAt === "string" ? parsed.updatedAt : "",
    };
  }

  async writeState(state: LocalState): Promise<void> {
    await writeFileAtomic(this.statePath, `${JSON.stringify(state, null, 2)}\n`, 0o600);
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
    await writeFileAtomic(this.memoryPath, `${JSON.stringify(memory)}\n`, 0o600);
  }
}

/** The node's certificate files (ca.crt, node.crt, node.key), as etcd and the agent read them. */
/** A user's uid and gid from /etc/passwd (Node has no getpwnam; the file's format is fixed). */
export function lookupUser(name: string, passwd = "/etc/passwd"): { uid: number; gid: number } {
  const line = readFileSync(passwd, "utf8")
    .split("\n")
    .find((l) => l.split(":")[0] === name);
  const [, , uid, gid] = line?.split(":") ?? [];
  if (line === undefined || !/^\d+$/.test(uid ?? "") || !/^\d+$/.test(gid ?? ""))
    throw new ConfigError(
      `--tls-key-owner ${JSON.stringify(name)} is not a user in ${passwd}; give the user etcd runs as`,
    );
  return { uid: Number(uid), gid: Number(gid) };
}

export class LocalCertFiles implements CertFiles {
  constructor(
    private readonly files: { caFile: string; certFile: string; keyFile: string },
    /** Who else reads the key (etcd's user), by name; null: root only. */
    private readonly keyOwner: string | null = null,
  ) {}

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
    for (const f of [this.files.caFile, this.files.certFile, this.files.keyFile]) {
      await mkdir(dirname(f), { recursive: true, mode: 0o700 });
    }
    // etcd reads the pair on each handshake: one that falls between these renames (microseconds)
    // sees a new key with the old certificate and fails; the client retries on its next dial.
    // A crash between them leaves a key that does not match the certificate: the next
    // ensureNodeCert sees the mismatch and issues a new pair.
    await writeFileAtomic(this.files.caFile, bundle.ca, 0o644);
    await afterFile?.("ca");
    await writeFileAtomic(
      this.files.keyFile,
      bundle.key,
      0o600,
      this.keyOwner === null ? undefined : lookupUser(this.keyOwner),
    );
    await afterFile?.("key");
    await writeFileAtomic(this.files.certFile, bundle.cert, 0o644);
    await afterFile?.("cert");
  }
}

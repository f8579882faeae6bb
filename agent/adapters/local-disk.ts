// This node's disk: etcd's data dir, the agent's state file and etcd's environment file.
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { LocalState } from "../planner/observation.js";
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
export async function writeFileAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${randomBytes(4).toString("hex")}`;
  const handle = await open(tmp, "w", mode);
  try {
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
}

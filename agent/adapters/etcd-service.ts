// etcd's service on the node: restarted by a shell command (systemctl restart etcd-member.service
// by default; the sandbox sends its stand-in a signal), and the bundle boot recorded before etcd's
// last start, in the agent's state directory.
import { execFile } from "node:child_process";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { EtcdService } from "../ports/etcd-service.js";

export class ShellEtcdService implements EtcdService {
  constructor(
    private readonly command: string,
    private readonly stateDir: string,
  ) {}

  private get file(): string {
    return join(this.stateDir, "etcd-loaded-ca.pem");
  }

  restart(): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile("/bin/sh", ["-c", this.command], { timeout: 120_000 }, (error, _out, err) => {
        if (error)
          reject(
            new Error(
              `restarting etcd with ${JSON.stringify(this.command)} failed: ${err.trim() || error.message}`,
            ),
          );
        else resolve();
      });
    });
  }

  async loadedTrust(): Promise<string | null> {
    try {
      return await readFile(this.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  async recordLoadedTrust(bundle: string): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, bundle, { mode: 0o644 });
    await rename(tmp, this.file);
  }
}

// The real restore tool: a child process (spawnSync) and files beside the data dir.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RestoreTool, RestoreToolRun } from "../ports/restore-tool.js";

export class ProcessRestoreTool implements RestoreTool {
  run(tool: string, args: string[], options: { timeoutMs?: number } = {}): RestoreToolRun {
    const r = spawnSync(tool, args, {
      encoding: "utf8",
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      env: { ...process.env, ETCDCTL_API: "3" },
    });
    return {
      ...(r.error ? { error: r.error } : {}),
      status: r.status,
      stdout: r.stdout ?? "",
      stderr: r.stderr ?? "",
    };
  }

  withSnapshotFile<T>(dataDir: string, body: Buffer, use: (file: string) => T): T {
    mkdirSync(dirname(dataDir), { recursive: true });
    // Beside the target, not in /tmp: on a node the restore tool runs in etcd's container, which
    // sees the data dir's file system (and the boot unit has a private /tmp).
    const work = mkdtempSync(join(dirname(dataDir), ".etcd-agent-restore-"));
    try {
      const file = join(work, "snapshot.db");
      writeFileSync(file, body, { mode: 0o600 });
      return use(file);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

/** What one run of the restore tool (etcdctl 3.4, etcdutl 3.5+) returned. */
export interface RestoreToolRun {
  /** Set when the tool could not be run at all (not found, not executable). */
  error?: Error;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** etcd's snapshot-restore tool and the files it works on; tests pass a fake. */
export interface RestoreTool {
  /** Runs `tool args` with ETCDCTL_API=3 in the agent's environment; waits for it to end. */
  run(tool: string, args: string[], options?: { timeoutMs?: number }): RestoreToolRun;
  /**
   * Writes `body` (mode 0600) to a new private directory beside `dataDir` (its parent made when
   * missing), calls `use` with the file's path, and removes the directory whatever `use` does.
   */
  withSnapshotFile<T>(dataDir: string, body: Buffer, use: (file: string) => T): T;
}

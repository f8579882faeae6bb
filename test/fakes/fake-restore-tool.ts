import type { RestoreTool, RestoreToolRun } from "../../agent/ports/restore-tool.js";

/** A restore tool that answers from a script and records every call; no process, no file. */
export class FakeRestoreTool implements RestoreTool {
  readonly runs: { tool: string; args: string[] }[] = [];
  readonly files: { dataDir: string; body: Buffer }[] = [];
  constructor(private readonly answer: (args: string[]) => RestoreToolRun) {}

  run(tool: string, args: string[]): RestoreToolRun {
    this.runs.push({ tool, args });
    return this.answer(args);
  }

  withSnapshotFile<T>(dataDir: string, body: Buffer, use: (file: string) => T): T {
    this.files.push({ dataDir, body });
    return use("/fake/snapshot.db");
  }
}

import type { LocalState } from "../planner/observation.js";

/** This node's disk: etcd's data dir, the agent's state and etcd's environment file. */
export interface LocalNode {
  hasData(): Promise<boolean>;
  readState(): Promise<LocalState | null>;
  writeState(state: LocalState): Promise<void>;
  /** Renames the data dir aside (never deletes it); returns the new path, or null if there was none. */
  moveDataAside(reason: string): Promise<string | null>;
  /** Moves member/ of a restored data dir (`staging`, inside the data dir) into the data dir, then removes `staging`. */
  adoptRestored(staging: string): Promise<void>;
  /** Writes etcd's environment file atomically (temp file, fsync, rename). */
  writeEnvFile(content: string): Promise<void>;
  readEnvFile(): Promise<string | null>;
  /**
   * The agent's safety clocks (when it first saw a member unstarted, unhealthy or unreachable, ...),
   * kept beside its state so that a restart of the agent does not start them again. The value is
   * the planner's `Memory` as JSON; `parseMemory` reads it back, tolerating older files.
   */
  readMemory(): Promise<unknown | null>;
  writeMemory(memory: unknown): Promise<void>;
}

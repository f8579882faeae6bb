// A LocalNode that keeps everything in memory: for `etcd-agent join --instance-id` run from the
// bastion, where the joining node's disk is not here. The env file is printed instead.
import type { LocalState } from "../planner/observation.js";
import type { LocalNode } from "../ports/local-node.js";

export class MemoryLocalNode implements LocalNode {
  state: LocalState | null = null;
  envFile: string | null = null;
  memory: unknown | null = null;

  constructor(private data = false) {}

  async hasData(): Promise<boolean> {
    return this.data;
  }
  async readState(): Promise<LocalState | null> {
    return this.state;
  }
  async writeState(state: LocalState): Promise<void> {
    this.state = state;
  }
  async moveDataAside(): Promise<string | null> {
    const had = this.data;
    this.data = false;
    return had ? "(memory)" : null;
  }
  async adoptRestored(): Promise<void> {
    this.data = true;
  }
  async writeEnvFile(content: string): Promise<void> {
    this.envFile = content;
  }
  async readEnvFile(): Promise<string | null> {
    return this.envFile;
  }
  async readMemory(): Promise<unknown | null> {
    return this.memory === null ? null : structuredClone(this.memory);
  }
  async writeMemory(memory: unknown): Promise<void> {
    this.memory = structuredClone(memory);
  }
}

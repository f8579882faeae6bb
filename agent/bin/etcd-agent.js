#!/usr/bin/env -S node --
// Runs the agent from its TypeScript sources (development and tests). Nodes run the single binary.
// The `--` ends Node's own options: without it Node reads --env-file anywhere in the arguments,
// the agent's --env-file too (a missing file exits 9 before the agent runs).
import { register } from "tsx/esm/api";

register();
await import("../main.ts");

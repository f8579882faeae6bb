#!/usr/bin/env node
// Runs the agent from its TypeScript sources (development and tests). Nodes run the single binary.
import { register } from "tsx/esm/api";

register();
await import("../main.ts");

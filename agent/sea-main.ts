// The entry point of the single executable: main.ts without top-level await, which a CommonJS
// bundle (what Node's single executable applications run) cannot have.
import "./process-warnings.js";
import { runCli } from "./cli.js";
import { onInterrupt } from "./signals.js";

const signal = onInterrupt();

runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal,
}).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`etcd-agent: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);

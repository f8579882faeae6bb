// The entry point: the only place that exits the process.
import "./process-warnings.js";
import { runCli } from "./cli.js";
import { onInterrupt } from "./signals.js";

const signal = onInterrupt();

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal,
});
process.exit(code);

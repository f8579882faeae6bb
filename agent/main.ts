// The entry point: the only place that exits the process.
import "./process-warnings.js";
import { runCli } from "./cli.js";

const controller = new AbortController();
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  });
}

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
process.exit(code);

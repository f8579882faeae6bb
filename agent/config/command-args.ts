// The checks on what a command is given beside the option table's rows: a command's own arguments
// and the region once it is known. Each refusal names the value and the fix, exit 3 (ConfigError).
import { ConfigError } from "../errors.js";

/** run's --max-cycles and snapshot restore's arguments, checked before the command starts. */
export function checkCommandArgs(
  command: "run" | "snapshot restore",
  args: Record<string, unknown>,
): { maxCycles?: number } {
  if (command === "run") {
    const raw = args.maxCycles as string | undefined;
    if (raw === undefined) return {};
    const maxCycles = Number(raw);
    if (!Number.isInteger(maxCycles) || maxCycles < 1)
      throw new ConfigError(`--max-cycles must be a whole number of at least 1, got ${JSON.stringify(raw)}`);
    return { maxCycles };
  }
  for (const k of ["restoreDataDir", "name", "peerUrl"] as const) {
    if (typeof args[k] !== "string" || args[k] === "")
      throw new ConfigError(`snapshot restore needs --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  return {};
}

/** The region the AWS clients use: from --region, the environment or instance metadata. */
export function checkRegion(region: string): string {
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    throw new ConfigError(
      `--region (ETCD_AGENT_REGION) must be an AWS region such as eu-west-1, got ${JSON.stringify(region)}`,
    );
  }
  return region;
}

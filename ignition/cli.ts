// npm run ignition -- --os flatcar --arch x64 --binary-url s3://B/K --binary-sha512 HEX \
//   --domain etcd.internal --hosted-zone-id Z... --out FILE
// Writes a node's Ignition config. A config above EC2's user-data limit is refused unless
// --pointer-url names where the full config will be uploaded; then --out gets a small config
// that merges it, and --full-out the full one.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import yargs from "yargs";
import { ConfigError } from "../agent/errors.js";
import { EXIT } from "../agent/exit-codes.js";
import {
  type NodeArch,
  type NodeOs,
  renderNodeConfig,
  renderPointerConfig,
  serialize,
  USER_DATA_LIMIT,
} from "./render.js";

export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.SUCCESS;
  try {
    const args = await yargs(argv)
      .scriptName("npm run ignition --")
      .option("os", { choices: ["flatcar", "fcos"], default: "flatcar" })
      .option("arch", { choices: ["x64", "arm64"], default: "x64" })
      .option("binary-url", {
        type: "string",
        demandOption: true,
        describe: "s3:// URL of the etcd-agent binary",
      })
      .option("binary-sha512", { type: "string", demandOption: true, describe: "sha512 of the binary (hex)" })
      .option("domain", { type: "string", demandOption: true })
      .option("hosted-zone-id", { type: "string", demandOption: true })
      .option("ssh-key", { type: "string", array: true, default: [] as string[] })
      .option("out", {
        type: "string",
        demandOption: true,
        describe: "file to write the config (user data) to",
      })
      .option("pointer-url", {
        type: "string",
        describe: "where the full config will live when it is too large",
      })
      .option("full-out", { type: "string", describe: "with --pointer-url: file for the full config" })
      .strict()
      .exitProcess(false)
      .fail((msg, err) => {
        throw new ConfigError(msg ?? err?.message ?? "bad arguments");
      })
      .parseAsync();
    const full = serialize(
      renderNodeConfig({
        os: args.os as NodeOs,
        arch: args.arch as NodeArch,
        binaryUrl: args.binaryUrl,
        binarySha512: args.binarySha512,
        agent: { domain: args.domain, hostedZoneId: args.hostedZoneId },
        sshAuthorizedKeys: args.sshKey,
      }),
    );
    if (Buffer.byteLength(full) <= USER_DATA_LIMIT && !args.pointerUrl) {
      writeFileSync(args.out, full);
      process.stdout.write(
        `wrote ${args.out} (${Buffer.byteLength(full)} bytes, limit ${USER_DATA_LIMIT})\n`,
      );
    } else if (!args.pointerUrl || !args.fullOut) {
      throw new ConfigError(
        `the config is ${Buffer.byteLength(full)} bytes, above EC2's ${USER_DATA_LIMIT}-byte user-data limit; ` +
          "pass --pointer-url s3://BUCKET/KEY and --full-out FILE, and upload FILE there",
      );
    } else {
      const sha = createHash("sha512").update(full).digest("hex");
      writeFileSync(args.fullOut, full);
      writeFileSync(args.out, serialize(renderPointerConfig(args.pointerUrl, sha)));
      process.stdout.write(`wrote ${args.out} (merges ${args.pointerUrl}) and ${args.fullOut}\n`);
    }
  } catch (error) {
    process.stderr.write(`ignition: ${(error as Error).message}\n`);
    code = error instanceof ConfigError ? EXIT.INVALID_INPUT : EXIT.ERROR;
  }
  return code;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}

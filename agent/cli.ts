// The command line: parse, validate, call the command, return an exit code. Only main exits.
// Each command's module is loaded when that command runs: --help and --version load none of them,
// and status does not load what boot needs (the x509 library among it).
import type { Writable } from "node:stream";
import yargs, { type Argv } from "yargs";
import { checkCommandArgs, checkRegion } from "./config/command-args.js";
import { type AgentConfig, checkUnitSettings, DEFAULTS, parseConfig } from "./config/config.js";
import { envName, helpOf, OPTIONS, type OptionRow } from "./config/options.js";
import { EXIT, exitNameFor } from "./exit-codes.js";
import { createLogger, type Logger } from "./log.js";
import type { Ports } from "./ports/index.js";
import { withIssuerOptions } from "./tls/issuer-options.js";
import { VERSION } from "./version.js";

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Builds the adapters; tests replace it. */
  ports?: (config: AgentConfig, region: string, log: Logger) => Ports;
}

type Args = Record<string, unknown>;

/** The agent's options, one yargs option per row of the table (agent/config/options.ts). */
function withCommon(y: Argv): Argv {
  for (const row of Object.values(OPTIONS) as OptionRow[]) {
    y.option(row.flag, {
      // Numbers and choices reach parseConfig as the strings given: its messages name the value.
      ...(row.type === "boolean"
        ? { type: "boolean" }
        : row.type === "string" || row.type === "path"
          ? { type: "string" }
          : {}),
      ...(row.type === "number" || row.requiresArg ? { requiresArg: true } : {}),
      describe: helpOf(row),
    });
  }
  return y.option("json", { type: "boolean", default: false, describe: "print the result as JSON" });
}

/**
 * yargs reads a boolean variable as true only when it is "true", anything else as false: a boolean
 * variable that is neither true nor false goes to parseConfig as given, which refuses it.
 */
function withBooleanVariables(args: Args, argv: string[], env: NodeJS.ProcessEnv): Args {
  const out = { ...args };
  for (const [key, row] of Object.entries(OPTIONS) as Array<[string, OptionRow]>) {
    if (row.type !== "boolean") continue;
    const given = argv.some((a) =>
      [row.flag, key, `no-${row.flag}`].some((f) => a === `--${f}` || a.startsWith(`--${f}=`)),
    );
    const v = env[envName(row.flag)];
    if (!given && v !== undefined && v !== "true" && v !== "false" && v !== "") out[key] = v;
  }
  return out;
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let exitCode: number = EXIT.SUCCESS;
  const print = (text: string) => io.stdout.write(text);
  const fail = (error: unknown, log: Logger | null) => {
    const name = exitNameFor(error);
    const message = error instanceof Error ? error.message : String(error);
    log?.error(message, { error: (error as Error)?.name, exit: name });
    io.stderr.write(`etcd-agent: ${message}\n`);
    exitCode = EXIT[name];
  };

  // Every command but --help/--version goes through here: config, logger, ports, then the body.
  const command =
    (
      logTo: "stdout" | "stderr",
      body: (ctx: { config: AgentConfig; log: Logger; ports: Ports; args: Args }) => Promise<number>,
    ) =>
    async (args: Args) => {
      let log: Logger | null = null;
      try {
        const config = parseConfig(withBooleanVariables(args, argv, io.env));
        log = createLogger(logTo === "stdout" ? io.stdout : io.stderr, { level: config.logLevel });
        const ports = await buildPorts(config, io, log);
        try {
          exitCode = await body({ config, log, ports, args });
        } finally {
          await ports.etcd.close();
        }
      } catch (error) {
        fail(error, log);
      }
    };

  const parser = withCommon(yargs(argv))
    .scriptName("etcd-agent")
    .env("ETCD_AGENT")
    .parserConfiguration({ "parse-numbers": false })
    .usage(
      "$0 <command> [options]\n\nSelf-healing etcd on an AWS Auto Scaling group. Every option can also be set as ETCD_AGENT_<OPTION>.",
    )
    .command(
      "boot",
      "before etcd starts: rejoin, join as a learner, bootstrap, or refuse; writes etcd's environment file",
      (y) =>
        y.option("dry-run", {
          type: "boolean",
          default: false,
          describe: "observe once, print the decision and the steps it would take; change nothing",
        }),
      command("stdout", async ({ config, log, ports, args }) => {
        const { dryRunBoot, formatDryRun, resolveContext, runBoot } = await import("./commands/boot.js");
        if (args.dryRun) {
          // The plan alone on stdout; what the observation logs goes to stderr.
          const toStderr = createLogger(io.stderr, { level: config.logLevel });
          const plan = await dryRunBoot(
            ports,
            config,
            await resolveContext(ports, config, toStderr),
            toStderr,
          );
          print(args.json ? `${JSON.stringify(plan)}\n` : formatDryRun(plan));
          return EXIT.SUCCESS;
        }
        const ctx = await resolveContext(ports, config, log);
        // Before anything talks to etcd: with TLS every call presents this node's certificate.
        if (config.tls)
          await (await import("./tls/rotate-node.js")).bootCertificates(ports, config, ctx, log);
        const result = await runBoot(ports, config, ctx, log, { signal: io.signal });
        if (args.json) print(`${JSON.stringify(result)}\n`);
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "run",
      "the daemon after etcd starts: promote, remove stale members, DNS, lifecycle hooks, health",
      (y) =>
        y.option("max-cycles", {
          type: "string",
          requiresArg: true,
          describe: "stop after this many cycles (default: until SIGTERM)",
        }),
      command("stdout", async ({ config, log, ports, args }) => {
        const { maxCycles } = checkCommandArgs("run", args);
        // Before anything else: settings the unit's watchdog cannot honour are refused here.
        const { watchdogMs } = checkUnitSettings(config, io.env);
        const { resolveContext } = await import("./commands/boot.js");
        const { runLoop } = await import("./commands/run.js");
        const ctx = await resolveContext(ports, config, log);
        await runLoop(ports, config, ctx, log.child({ instance_id: ctx.identity.instanceId }), {
          signal: io.signal,
          watchdogMs,
          ...(maxCycles !== undefined ? { maxCycles } : {}),
        });
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "status",
      "members, instances, DNS and drift; exits non-zero when the cluster is not healthy",
      (y) => y,
      command("stderr", async ({ config, log, ports, args }) => {
        const { assertHealthy, formatStatus, runStatus } = await import("./commands/status.js");
        const report = await runStatus(ports, config, log);
        print(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
        assertHealthy(report);
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "plan",
      "what run on the leader would do next and why; changes nothing",
      (y) => y,
      command("stderr", async ({ config, log, ports, args }) => {
        const { formatPlan, runPlan } = await import("./commands/plan.js");
        const report = await runPlan(ports, config, log);
        print(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatPlan(report));
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "join",
      "the join path by hand (idempotent): on a node, or from the bastion with --instance-id",
      (y) => y.option("instance-id", { type: "string", describe: "join this instance (from the bastion)" }),
      command("stderr", async ({ config, log, ports, args }) => {
        const { runJoin } = await import("./commands/join.js");
        const result = await runJoin(ports, config, log, {
          instanceId: (args.instanceId as string | undefined) ?? null,
          signal: io.signal,
        });
        if (args.json) print(`${JSON.stringify(result, null, 2)}\n`);
        else {
          print(`${result.decision}: ${result.reason}\nnext: ${result.nextStep}\n`);
          if (result.envFileContent) print(result.envFileContent);
        }
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "ca-rotate <step>",
      "an administrator's CA rotation, one step at a time: begin, promote, finish (each checks the cluster followed the last), or status",
      (y) =>
        y.positional("step", {
          type: "string",
          choices: ["begin", "promote", "finish", "status"] as const,
          demandOption: true,
        }),
      command("stderr", async ({ config, log, ports, args }) => {
        const { runCaRotate, formatCaRotate } = await import("./commands/ca-rotate.js");
        const { EtcdTlsProbe } = await import("./adapters/tls-probe.js");
        const step = args.step as "begin" | "promote" | "finish" | "status";
        const report = await runCaRotate(ports, config, log, step, new EtcdTlsProbe());
        print(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatCaRotate(report));
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "client-cert",
      "on the bastion: fetch the operators' client certificate (kept by the leader) into --out",
      (y) =>
        withIssuerOptions(y).option("out", {
          type: "string",
          requiresArg: true,
          describe: "directory for ca.crt, client.crt, client.key (default ~/.etcd-agent/tls)",
        }),
      command("stdout", async ({ config, ports, args }) => {
        const { clientCertDir, formatClientCert, runClientCert } = await import("./commands/client-cert.js");
        const out = clientCertDir(args.out, io.env.HOME);
        const issuer = args.issuerUrl
          ? { url: args.issuerUrl, hours: args.hours, region: config.region ?? io.env.AWS_REGION ?? null }
          : undefined;
        const files = await runClientCert(ports, config, out, issuer);
        print(args.json ? `${JSON.stringify(files)}\n` : formatClientCert(out, files));
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "remove-member <target>",
      "remove a member by member ID (decimal or hex) or instance ID, with the quorum check",
      (y) =>
        y
          .positional("target", { type: "string", demandOption: true })
          .option("force", { type: "boolean", default: false, describe: "override the quorum check (loud)" })
          .option("dry-run", {
            type: "boolean",
            default: false,
            describe: "check and print; change nothing",
          }),
      command("stderr", async ({ config, log, ports, args }) => {
        const { runRemoveMember } = await import("./commands/remove-member.js");
        const result = await runRemoveMember(ports, config, log, String(args.target), {
          force: Boolean(args.force),
          dryRun: Boolean(args.dryRun),
        });
        print(
          args.json
            ? `${JSON.stringify(result)}\n`
            : `${result.dryRun ? "would remove" : "removed"} member ${result.memberId} (${result.name || "not started"})${result.forced ? " FORCED past the quorum rule" : ""}\n`,
        );
        return EXIT.SUCCESS;
      }),
    )
    .command(
      "snapshot <action>",
      "backups in S3: save one now, list them, or restore the newest good one into an empty data dir",
      (y) =>
        y
          .positional("action", { choices: ["save", "list", "restore"] as const, demandOption: true })
          .option("key", {
            type: "string",
            describe: "restore: this snapshot instead of the newest good one",
          })
          .option("restore-data-dir", {
            type: "string",
            describe: "restore: an empty directory for the new member's data",
          })
          .option("name", { type: "string", describe: "restore: the member's name (its instance ID)" })
          .option("peer-url", {
            type: "string",
            describe: "restore: the member's peer URL, http://<its IP>:2380",
          }),
      command("stderr", async ({ config, log, ports, args }) => {
        const { runSnapshotList, runSnapshotRestore, runSnapshotSave, formatSnapshots } = await import(
          "./commands/snapshot.js"
        );
        if (args.action === "save") {
          const saved = await runSnapshotSave(ports, config, log);
          print(
            args.json
              ? `${JSON.stringify(saved)}\n`
              : `saved ${saved.key} (revision ${saved.revision}, ${saved.bytes} bytes)\n`,
          );
        } else if (args.action === "list") {
          const refs = await runSnapshotList(ports, config);
          print(args.json ? `${JSON.stringify(refs)}\n` : formatSnapshots(refs));
        } else {
          checkCommandArgs("snapshot restore", args);
          const result = await runSnapshotRestore(ports, config, log, {
            ...(typeof args.key === "string" ? { key: args.key } : {}),
            dataDir: String(args.restoreDataDir),
            name: String(args.name),
            peerUrl: String(args.peerUrl),
            tool: config.backup?.restoreTool ?? DEFAULTS.restoreTool,
          });
          print(
            args.json
              ? `${JSON.stringify(result)}\n`
              : `restored ${result.key} (revision ${result.revision}) into ${result.dataDir}${result.corrupt.length ? `; skipped corrupt: ${result.corrupt.join(", ")}` : ""}${result.bumpRevision ? `; revision bumped by ${result.bumpRevision} and marked compacted` : ""}\n`,
          );
        }
        return EXIT.SUCCESS;
      }),
    )
    .demandCommand(
      1,
      "name a command: boot, run, status, plan, join, remove-member, snapshot, client-cert or ca-rotate",
    )
    .strict()
    .version(VERSION.text)
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .exitProcess(false)
    .fail((msg, err) => {
      io.stderr.write(
        `etcd-agent: ${msg ?? err?.message}\nRun etcd-agent --help for the commands and options.\n`,
      );
      exitCode = EXIT.BAD_ARGS;
      throw new UsageError();
    });

  try {
    await parser.parseAsync(argv, {}, (_err, _argv, output) => {
      if (output) print(`${output}\n`);
    });
  } catch (error) {
    if (!(error instanceof UsageError)) fail(error, null);
  }
  return exitCode;
}

class UsageError extends Error {
  override name = "UsageError";
}

async function buildPorts(config: AgentConfig, io: CliIo, log: Logger): Promise<Ports> {
  // Loaded on first use: the AWS SDK and gRPC take most of the start-up time, and --help and
  // --version need neither.
  const { createMetadata, createPorts } = await import("./adapters/create.js");
  const { SystemClock } = await import("./adapters/system-clock.js");
  const clock = new SystemClock();
  const metadata = createMetadata(config, clock);
  let region = config.region ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION ?? null;
  if (region === null) region = (await metadata.identity()).region;
  checkRegion(region);
  return io.ports ? io.ports(config, region, log) : createPorts(config, region, log, metadata);
}

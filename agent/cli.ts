// The command line: parse, validate, call the command, return an exit code. Only main exits.
import type { Writable } from "node:stream";
import yargs, { type Argv } from "yargs";
import { resolveContext, runBoot } from "./commands/boot.js";
import { runJoin } from "./commands/join.js";
import { formatPlan, runPlan } from "./commands/plan.js";
import { runRemoveMember } from "./commands/remove-member.js";
import { runLoop } from "./commands/run.js";
import { assertHealthy, formatStatus, runStatus } from "./commands/status.js";
import {
  type AgentConfig,
  checkUnitSettings,
  DEFAULTS,
  MAX_INTERVAL_SECONDS,
  parseConfig,
} from "./config/config.js";
import { ETCD_DEFAULTS } from "./config/etcd-settings.js";
import { ConfigError } from "./errors.js";
import { EXIT, exitNameFor } from "./exit-codes.js";
import { createLogger, type Logger } from "./log.js";
import type { Ports } from "./ports/index.js";
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

function withCommon(y: Argv): Argv {
  return y
    .option("domain", { type: "string", describe: "DNS domain of the cluster's records, e.g. etcd.internal" })
    .option("hosted-zone-id", { type: "string", describe: "Route53 private hosted zone ID" })
    .option("asg-name", { type: "string", describe: "Auto Scaling group; default: this instance's own" })
    .option("region", { type: "string", describe: "AWS region; default: AWS_REGION, else instance metadata" })
    .option("endpoints", {
      type: "string",
      requiresArg: true,
      describe: "etcd client URLs to ask as well, comma-separated (when the ASG cannot be read)",
    })
    .option("data-dir", { type: "string", describe: `etcd data dir (default ${DEFAULTS.dataDir})` })
    .option("state-dir", { type: "string", describe: `the agent's state dir (default ${DEFAULTS.stateDir})` })
    .option("file-owner", {
      type: "string",
      describe:
        "the user the agent's state and the node's certificates belong to: the user run runs as (a node: etcd-agent; default: whoever writes them)",
    })
    .option("env-file", { type: "string", describe: `etcd's environment file (default ${DEFAULTS.envFile})` })
    .option("client-port", {
      type: "string",
      requiresArg: true,
      describe: `etcd client port (default ${DEFAULTS.clientPort})`,
    })
    .option("peer-port", {
      type: "string",
      requiresArg: true,
      describe: `etcd peer port (default ${DEFAULTS.peerPort})`,
    })
    .option("interval-seconds", {
      type: "string",
      requiresArg: true,
      describe: `run: seconds between cycles, 1 to ${MAX_INTERVAL_SECONDS} and at most half the unit's WatchdogSec (default ${DEFAULTS.intervalSeconds})`,
    })
    .option("startup-grace-seconds", {
      type: "string",
      requiresArg: true,
      describe: `seconds an added member may take to start (default ${DEFAULTS.startupGraceSeconds})`,
    })
    .option("unhealthy-deadline-seconds", {
      type: "string",
      requiresArg: true,
      describe: `seconds before an unhealthy member's instance is reported (default ${DEFAULTS.unhealthyDeadlineSeconds})`,
    })
    .option("boot-timeout-seconds", {
      type: "string",
      requiresArg: true,
      describe: `boot: give up after (default ${DEFAULTS.bootTimeoutSeconds})`,
    })
    .option("metadata-timeout-seconds", {
      type: "string",
      requiresArg: true,
      describe: `give up on instance metadata after (default ${DEFAULTS.metadataTimeoutSeconds})`,
    })
    .option("backup-bucket", {
      type: "string",
      describe: "S3 bucket for snapshots; without it backups are off",
    })
    .option("backup-prefix", {
      type: "string",
      describe: "key prefix ending in / (default backups/<asg name>/)",
    })
    .option("backup-interval-minutes", {
      type: "string",
      requiresArg: true,
      describe: `run: minutes between the leader's snapshots (default ${DEFAULTS.backupIntervalMinutes})`,
    })
    .option("backup-hourly-hours", {
      type: "string",
      requiresArg: true,
      describe: `keep the newest snapshot of each hour this long (default ${DEFAULTS.backupHourlyHours})`,
    })
    .option("backup-daily-days", {
      type: "string",
      requiresArg: true,
      describe: `keep the newest snapshot of each day this long (default ${DEFAULTS.backupDailyDays})`,
    })
    .option("backup-s3-path-style", {
      type: "string",
      describe: "true for path-style S3 addressing (S3-compatible endpoints)",
    })
    .option("restore-after-seconds", {
      type: "string",
      requiresArg: true,
      describe: `boot: restore from the newest snapshot after no member answered this long, every former member gone (default ${DEFAULTS.restoreAfterSeconds})`,
    })
    .option("restore-tool", {
      type: "string",
      describe: `etcd's restore program: etcdctl (3.4) or etcdutl (3.5+), or a wrapper (default ${DEFAULTS.restoreTool})`,
    })
    .option("plaintext", {
      type: "string",
      describe:
        "true: talk to etcd without TLS (the sandbox, migrations); default TLS with client certificates",
    })
    .option("tls-dir", {
      type: "string",
      describe: `where a node's CA, certificate and key live (default ${DEFAULTS.tlsDir})`,
    })
    .option("tls-etcd-dir", {
      type: "string",
      describe:
        "the TLS directory as etcd sees it in its container (Flatcar: /etc/ssl/certs; default the same)",
    })
    .option("tls-group", {
      type: "string",
      describe:
        "the group etcd runs as, which reads the node's certificates and key (a node: etcd; default: private to the owner)",
    })
    .option("tls-extra-names", {
      type: "string",
      describe:
        "more IPs or DNS names for a node's certificate, comma-separated (beside its IP, A record, domain)",
    })
    .option("tls-ca-file", {
      type: "string",
      describe: "the cluster CA's certificate (default <tls-dir>/ca.crt)",
    })
    .option("tls-cert-file", {
      type: "string",
      describe: "the client certificate to present (default <tls-dir>/node.crt)",
    })
    .option("tls-key-file", { type: "string", describe: "its private key (default <tls-dir>/node.key)" })
    .option("tls-ca-secret", {
      type: "string",
      describe: "Secrets Manager secret of the cluster CA (default etcd-agent/<asg name>/ca)",
    })
    .option("tls-operator-secret", {
      type: "string",
      describe:
        "Secrets Manager secret of the operators' client certificate (default etcd-agent/<asg name>/operator)",
    })
    .option("tls-secrets-kms-key", {
      type: "string",
      describe:
        "KMS key (ID, ARN or alias) the agent creates both TLS secrets under (default Secrets Manager's aws/secretsmanager)",
    })
    .option("tls-cert-lifetime-seconds", {
      type: "string",
      requiresArg: true,
      describe: `lifetime of the certificates the agent issues, renewed with a third left (default ${DEFAULTS.tlsCertLifetimeSeconds})`,
    })
    .option("tls-ca-check-seconds", {
      type: "string",
      requiresArg: true,
      describe: `how often run reads the CA secret for a rotation (every cycle during one; default ${DEFAULTS.tlsCaCheckSeconds})`,
    })
    .option("etcd-restart-command", {
      type: "string",
      describe:
        "what restarts etcd to load a rotated CA bundle, run by /bin/sh (default: ask root's etcd-agent-restart-etcd.path through /run/etcd-agent/restart-etcd.request)",
    })
    .option("restore-bump-revision", {
      type: "string",
      requiresArg: true,
      describe: `restore: add this to the snapshot's revision and mark it compacted, so watchers resync (etcdutl 3.5.10+; 0 off; default ${DEFAULTS.restoreBumpRevision})`,
    })
    .option("metrics-namespace", {
      type: "string",
      requiresArg: true,
      describe:
        "run: the CloudWatch namespace the leader publishes the cluster's metrics to (default: none, not published)",
    })
    .option("metrics-period-seconds", {
      type: "string",
      requiresArg: true,
      describe: `run: seconds between the leader's PutMetricData calls, 10 to 3600 (default ${DEFAULTS.metricsPeriodSeconds})`,
    })
    .option("metrics-listen", {
      type: "string",
      requiresArg: true,
      describe: `run: address:port of this node's Prometheus endpoint, GET /metrics, or off (default ${DEFAULTS.metricsListen})`,
    })
    .option("etcd-quota-backend-bytes", {
      type: "string",
      requiresArg: true,
      describe: `boot: etcd's quota; NOSPACE and no writes above it (default ${ETCD_DEFAULTS.quotaBackendBytes}, at most 8 GiB and 40% of the data volume)`,
    })
    .option("etcd-auto-compaction-mode", {
      type: "string",
      describe: `boot: periodic or revision (default ${ETCD_DEFAULTS.autoCompactionMode})`,
    })
    .option("etcd-auto-compaction-retention", {
      type: "string",
      describe: `boot: history etcd keeps, 1m to 720h periodic or a revision count, 0 off (default ${ETCD_DEFAULTS.autoCompactionRetention})`,
    })
    .option("etcd-snapshot-count", {
      type: "string",
      requiresArg: true,
      describe: `boot: committed entries between etcd's raft snapshots (default ${ETCD_DEFAULTS.snapshotCount})`,
    })
    .option("etcd-extra-env", {
      type: "string",
      describe:
        "boot: more etcd variables from an allow-list, KEY=VALUE;KEY=VALUE (e.g. ETCD_HEARTBEAT_INTERVAL=200;ETCD_ELECTION_TIMEOUT=2000)",
    })
    .option("defrag-free-percent", {
      type: "string",
      requiresArg: true,
      describe: `run: the leader defragments a member whose free space is this share of its db, 0 off (default ${ETCD_DEFAULTS.defragFreePercent})`,
    })
    .option("defrag-quota-percent", {
      type: "string",
      requiresArg: true,
      describe: `run: ... or whose db is this share of the quota, 0 off (default ${ETCD_DEFAULTS.defragQuotaPercent})`,
    })
    .option("log-level", { type: "string", describe: "debug, info, warn or error (default info)" })
    .option("json", { type: "boolean", default: false, describe: "print the result as JSON" });
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
        const config = parseConfig(args);
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
    .usage(
      "$0 <command> [options]\n\nSelf-healing etcd on an AWS Auto Scaling group. Every option can also be set as ETCD_AGENT_<OPTION>.",
    )
    .command(
      "boot",
      "before etcd starts: rejoin, join as a learner, bootstrap, or refuse; writes etcd's environment file",
      (y) => y,
      command("stdout", async ({ config, log, ports, args }) => {
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
        const raw = args.maxCycles as string | undefined;
        const maxCycles = raw === undefined ? undefined : Number(raw);
        if (maxCycles !== undefined && (!Number.isInteger(maxCycles) || maxCycles < 1)) {
          throw new ConfigError(
            `--max-cycles must be a whole number of at least 1, got ${JSON.stringify(raw)}`,
          );
        }
        // Before anything else: settings the unit's watchdog cannot honour are refused here.
        const { watchdogMs } = checkUnitSettings(config, io.env);
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
        y.option("out", {
          type: "string",
          requiresArg: true,
          describe: "directory for ca.crt, client.crt, client.key (default ~/.etcd-agent/tls)",
        }),
      command("stdout", async ({ config, ports, args }) => {
        const { clientCertDir, formatClientCert, runClientCert } = await import("./commands/client-cert.js");
        const out = clientCertDir(args.out, io.env.HOME);
        const files = await runClientCert(ports, config, out);
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
          for (const k of ["restoreDataDir", "name", "peerUrl"] as const) {
            if (typeof args[k] !== "string" || args[k] === "")
              throw new ConfigError(
                `snapshot restore needs --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
              );
          }
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
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    throw new ConfigError(
      `--region (ETCD_AGENT_REGION) must be an AWS region such as eu-west-1, got ${JSON.stringify(region)}`,
    );
  }
  return io.ports ? io.ports(config, region, log) : createPorts(config, region, log, metadata);
}

// The options as yargs reads them (agent/config/options.ts): the command line's types and --help.
import { PassThrough } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { runCli } from "../../../agent/cli.js";
import { checkCommandArgs, checkRegion } from "../../../agent/config/command-args.js";

/** Runs the command line; the endpoints' scheme shows whether it took TLS or plaintext. */
async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> {
  const stderr = new PassThrough();
  let err = "";
  stderr.on("data", (d) => {
    err += String(d);
  });
  const code = await runCli(argv, {
    stdout: new PassThrough(),
    stderr,
    env,
    signal: new AbortController().signal,
    ports: () => {
      throw new Error("the test stops before the ports");
    },
  });
  return { code, stderr: err };
}

async function help(): Promise<string> {
  const stdout = new PassThrough();
  let out = "";
  stdout.on("data", (d) => {
    out += String(d);
  });
  await runCli(["--help"], {
    stdout,
    stderr: new PassThrough(),
    env: {},
    signal: new AbortController().signal,
  });
  return out;
}

const BASE = [
  "--domain",
  "etcd.test",
  "--hosted-zone-id",
  "ZTEST",
  "--region",
  "eu-west-1",
  "--asg-name",
  "etcd",
];

describe("boolean options", () => {
  const PLAIN = "but the agent runs in plaintext (--plaintext)";
  const TLS = "but the agent runs with TLS";

  it("status --plaintext alone runs in plaintext", async () => {
    const r = await cli(["status", ...BASE, "--plaintext", "--endpoints", "https://127.0.0.1:1"]);
    expect(r.stderr).toContain(PLAIN);
    expect(r.code).toBe(3);
  });

  it("--plaintext true, --plaintext false and the variable still work", async () => {
    expect(
      (await cli(["status", ...BASE, "--plaintext", "true", "--endpoints", "https://h:1"])).stderr,
    ).toContain(PLAIN);
    expect(
      (await cli(["status", ...BASE, "--plaintext", "false", "--endpoints", "http://h:1"])).stderr,
    ).toContain(TLS);
    vi.stubEnv("ETCD_AGENT_PLAINTEXT", "true");
    try {
      const env = { ETCD_AGENT_PLAINTEXT: "true" };
      expect((await cli(["status", ...BASE, "--endpoints", "https://h:1"], env)).stderr).toContain(PLAIN);
      vi.stubEnv("ETCD_AGENT_PLAINTEXT", "yes");
      const bad = await cli(["status", ...BASE], { ETCD_AGENT_PLAINTEXT: "yes" });
      expect(bad.stderr).toContain('--plaintext (ETCD_AGENT_PLAINTEXT) must be true or false, got "yes"');
      expect(bad.code).toBe(3);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe("--help", () => {
  it("shows each option's real type", async () => {
    const text = await help();
    // An option's entry: its line and the wrapped ones under it, up to the next option.
    const line = (flag: string) => {
      const lines = text.split("\n");
      const i = lines.findIndex((l) => l.trimStart().startsWith(`--${flag} `));
      const next = lines.findIndex((l, j) => j > i && l.trimStart().startsWith("--"));
      return i < 0
        ? ""
        : lines
            .slice(i, next < 0 ? undefined : next)
            .join(" ")
            .replace(/\s+/g, " ");
    };
    expect(line("plaintext")).toContain("[boolean]");
    expect(line("backup-s3-path-style")).toContain("[boolean]");
    expect(line("client-port")).toContain("[number]");
    expect(line("domain")).toContain("[string]");
    expect(line("log-level")).toMatch(/\[choices: "?debug"?, "?info"?, "?warn"?, "?error"?\]/);
  });
});

describe("a command's own arguments", () => {
  it("run's --max-cycles, snapshot restore's arguments and the region: the same refusals as before", () => {
    expect(checkCommandArgs("run", {})).toEqual({});
    expect(checkCommandArgs("run", { maxCycles: "3" })).toEqual({ maxCycles: 3 });
    expect(() => checkCommandArgs("run", { maxCycles: "0" })).toThrow(
      '--max-cycles must be a whole number of at least 1, got "0"',
    );
    expect(() => checkCommandArgs("snapshot restore", { restoreDataDir: "/d", name: "i-1" })).toThrow(
      "snapshot restore needs --peer-url",
    );
    expect(checkRegion("eu-west-1")).toBe("eu-west-1");
    expect(() => checkRegion("mars-1")).toThrow(
      '--region (ETCD_AGENT_REGION) must be an AWS region such as eu-west-1, got "mars-1"',
    );
  });
});

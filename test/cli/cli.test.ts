// The command line as an operator meets it: the real entry point in a child process.
import { spawn, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { handleIssue } from "../../agent/tls/operator-issuer.js";
import { createCa } from "../../agent/tls/pki.js";
import { startFunctionUrl } from "../sandbox/function-url.js";

// What ships is what is tested: the x64 single executable (test/install.sh builds it), or the
// TypeScript sources when ETCD_AGENT_TEST_SOURCES=1, started as npm's bin starts them (its #! line).
const SOURCES = new URL("../../agent/bin/etcd-agent.js", import.meta.url).pathname;
const BINARY = new URL("../../dist/etcd-agent-linux-x64", import.meta.url).pathname;
const command = process.env.ETCD_AGENT_TEST_SOURCES === "1" ? [SOURCES] : [BINARY];

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

function run(args: string[], env: Record<string, string> = {}, timeout = 90_000, exeOf = command) {
  const started = Date.now();
  const [exe, ...pre] = exeOf as [string, ...string[]];
  const out = spawnSync(exe, [...pre, ...args], {
    encoding: "utf8",
    timeout,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      AWS_ENDPOINT_URL: "http://127.0.0.1:9",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      ...env,
    },
  });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr, ms: Date.now() - started };
}

const CONFIG = { ETCD_AGENT_DOMAIN: "etcd.test", ETCD_AGENT_HOSTED_ZONE_ID: "ZTEST" };

describe("etcd-agent command line", () => {
  it("--help lists the six commands", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    for (const cmd of ["boot", "run", "status", "plan", "join", "remove-member"]) {
      expect(r.stdout).toMatch(new RegExp(`etcd-agent ${cmd}\\b`));
    }
  });

  it("--version prints the package version, the commit and the Node version", () => {
    const r = run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^etcd-agent \d+\.\d+\.\d+ \(commit \S+, node v\d+/);
  });

  it("an unknown command exits 64 and points at --help", () => {
    const r = run(["frobnicate"]);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain("--help");
  });

  it("a missing required setting exits 3 naming the flag and the variable", () => {
    const r = run(["status"], { ETCD_AGENT_HOSTED_ZONE_ID: "ZTEST" });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("--domain (ETCD_AGENT_DOMAIN) is required");
  });

  it.each([
    [
      { ETCD_AGENT_CLIENT_PORT: "abc" },
      '--client-port (ETCD_AGENT_CLIENT_PORT) must be a whole number from 1 to 65535, got "abc"',
    ],
    [{ ETCD_AGENT_DOMAIN: "not a domain" }, 'must be a DNS name such as etcd.internal, got "not a domain"'],
    [
      { ETCD_AGENT_HOSTED_ZONE_ID: "zone-1" },
      'must be a Route53 zone ID such as Z0123456789ABC, got "zone-1"',
    ],
    [
      { ETCD_AGENT_DATA_DIR: "relative/dir" },
      '--data-dir (ETCD_AGENT_DATA_DIR) must be an absolute path, got "relative/dir"',
    ],
    [{ AWS_REGION: "mars-1" }, 'must be an AWS region such as eu-west-1, got "mars-1"'],
  ])("bad input %o exits 3 with the value and the fix", (env, message) => {
    const r = run(["status", "--asg-name", "etcd"], { AWS_REGION: "eu-west-1", ...CONFIG, ...env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(message);
  });

  it.each([
    ["the binary", [BINARY]],
    ["npm's bin", [SOURCES]],
  ])("--env-file is the agent's in %s: a relative path is refused by the agent (3), not read by Node (9)", (_what, exe) => {
    const r = run(
      ["status", "--asg-name", "etcd", "--env-file", "missing/etcd.env"],
      { AWS_REGION: "eu-west-1", ...CONFIG },
      90_000,
      exe,
    );
    expect(r.stderr).toContain(
      '--env-file (ETCD_AGENT_ENV_FILE) must be an absolute path, got "missing/etcd.env"',
    );
    expect(r.code).toBe(3);
  });

  it("remove-member refuses a target that is neither a member ID nor an instance ID", () => {
    const r = run(["remove-member", "--asg-name", "etcd", "not/an-id"], {
      AWS_REGION: "eu-west-1",
      ...CONFIG,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('takes a member ID (decimal or hex) or an instance ID, got "not/an-id"');
  });

  it("boot with no reachable instance metadata exits 2 within 60 s and says so", async () => {
    const port = await closedPort();
    const r = run(["boot"], { ...CONFIG, AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("instance metadata did not answer");
    expect(r.ms).toBeLessThan(60_000);
  });
});

describe("etcd-agent client-cert --issuer-url (#16)", () => {
  it.each([
    ["http://issuer.example.invalid/", "8", /--issuer-url must be https/],
  ])("--issuer-url %s (plain http, not loopback): exit 3 naming the value; the hours and the rest in test/unit/tls/issuer-client.test.ts", (url, hours, message) => {
    const r = run(["client-cert", "--issuer-url", url, "--hours", hours], {
      ...CONFIG,
      AWS_REGION: "eu-west-1",
    });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(3);
  });

  it("signs with the caller's credentials and writes the certificate named after the session", async () => {
    const ca = await createCa("etcd-agent cli test CA", new Date(), 1);
    const fn = await startFunctionUrl({
      region: "eu-west-1",
      // run() gives the child the static test credentials.
      callers: [
        {
          accessKeyId: "test",
          secretAccessKey: "test",
          arn: "arn:aws:sts::123456789012:assumed-role/Ops/carol",
        },
      ],
      handler: (event) =>
        handleIssue(event, {
          readCaSecret: async () => JSON.stringify(ca),
          now: () => new Date(),
          log: () => {},
        }),
    });
    const out = mkdtempSync(join(tmpdir(), "client-cert-"));
    try {
      const [exe, ...pre] = command as [string, ...string[]];
      const child = spawn(
        exe,
        [...pre, "client-cert", "--issuer-url", fn.url, "--hours", "2", "--out", out],
        {
          env: {
            PATH: process.env.PATH ?? "",
            HOME: out,
            AWS_ENDPOINT_URL: "http://127.0.0.1:9",
            AWS_ACCESS_KEY_ID: "test",
            AWS_SECRET_ACCESS_KEY: "test",
            AWS_REGION: "eu-west-1",
            ...CONFIG,
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
        child.on("exit", (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      expect(code, stderr).toBe(0);
      const cert = new X509Certificate(readFileSync(join(out, "client.crt")));
      expect(cert.subject).toBe("CN=carol");
      expect(readFileSync(join(out, "ca.crt"), "utf8")).toBe(ca.cert);
      expect(statSync(join(out, "client.key")).mode & 0o077).toBe(0);
    } finally {
      await fn.close();
      rmSync(out, { recursive: true, force: true });
    }
  });
});

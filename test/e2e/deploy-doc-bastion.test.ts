// docs/deploy.md's bastion block, run as an operator on the bastion runs it: the shipped binary in a
// login shell with the profile the CDK construct installs (bastionProfile), against the sandbox
// (moto + real etcd with TLS) on 127.0.57.x. Every `etcd-agent` line of the block runs verbatim and
// must succeed; the etcdctl lines need the VPC's DNS for the SRV record, so they are checked by
// test/infra/deploy-doc.test.ts against etcdctl's flags instead.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bastionProfile } from "../../infra/lib/etcd-cluster.js";
import { AGENT_BINARY } from "../sandbox/node-process.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { operatorAwsEnv } from "../support/operator-cli.js";
import { openScenario, type Scenario } from "../support/with-sandbox.js";

const DOC = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");
const block = /^ *```sh bastion\n([\s\S]*?)^ *```$/m.exec(DOC)?.[1] ?? "";
const agentLines = block
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l.startsWith("etcd-agent "));

/** One line in a login-like shell: the profile sourced, the binary on PATH as etcd-agent. */
function bastionShell(line: string, home: string, env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn("bash", ["-c", `set -eu; . "${home}/profile.sh"; ${line}`], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...env, HOME: home, PATH: `${home}/bin:/usr/bin:/bin` },
    });
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe("docs/deploy.md on the bastion, against the sandbox", () => {
  let scenario: Scenario | undefined;
  let sandbox: Sandbox;
  let home: string;
  let awsEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    scenario = await openScenario({ subnet: "127.0.57.0/24" });
    sandbox = scenario.sandbox;
    home = join(scenario.root, "ssm-user");
    mkdirSync(join(home, "bin"), { recursive: true });
    const aws = operatorAwsEnv(sandbox);
    const profile = bastionProfile({
      domain: sandbox.world.domain,
      hostedZoneId: sandbox.world.hostedZoneId,
      asgName: sandbox.world.asgName,
      region: sandbox.world.region,
    });
    writeFileSync(join(home, "profile.sh"), `${profile.join("\n")}\n`);
    writeFileSync(join(home, "bin/etcd-agent"), `#!/bin/sh\nexec "${AGENT_BINARY}" "$@"\n`, { mode: 0o755 });
    // Only what the instance role gives on the bastion: the sandbox's AWS endpoint and credentials.
    awsEnv = {
      AWS_ENDPOINT_URL: aws.AWS_ENDPOINT_URL,
      AWS_ACCESS_KEY_ID: aws.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: aws.AWS_SECRET_ACCESS_KEY,
    };
  }, 240_000);

  afterAll(async () => {
    await scenario?.close();
    await sandbox?.probe.close();
  });

  it("the block has the commands the doc promises", () => {
    expect(agentLines).toEqual(["etcd-agent client-cert", "etcd-agent status", "etcd-agent plan"]);
  });

  it("client-cert, then status and plan with the certificate it fetched, each exit 0", async () => {
    const results: string[] = [];
    for (const line of agentLines) {
      const r = await bastionShell(line, home, awsEnv);
      results.push(`${line}: exit ${r.code}${r.code === 0 ? "" : `\n${r.out}`}`);
    }
    expect(results).toEqual(agentLines.map((l) => `${l}: exit 0`));
    // The certificate went where the profile points both etcd-agent and etcdctl.
    expect(readFileSync(join(home, ".etcd-agent/tls/client.crt"), "utf8")).toContain("BEGIN CERTIFICATE");
  }, 300_000);
});

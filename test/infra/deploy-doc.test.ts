// docs/deploy.md, run: its `sh offline` blocks run as written (the synth, the Ignition render), the
// output keys and context keys it names are the stack's and the app's, and every command of its
// `sh bastion` block is one the shipped binary and etcdctl accept, so the doc cannot drift from the
// code. What needs an account (cdk deploy, the SSM session) is checked by name only.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const DOC = readFileSync(join(ROOT, "docs/deploy.md"), "utf8");
const work = mkdtempSync(join(tmpdir(), "deploy-doc-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Fenced blocks with their info string, list indentation removed. */
function blocks(): Array<{ info: string; body: string }> {
  const out: Array<{ info: string; body: string }> = [];
  for (const m of DOC.matchAll(/^( *)```([^\n]*)\n([\s\S]*?)^\1```$/gm)) {
    const indent = (m[1] ?? "").length;
    const body = (m[3] ?? "")
      .split("\n")
      .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
      .join("\n");
    out.push({ info: (m[2] ?? "").trim(), body });
  }
  return out;
}

/** The environment of someone with no AWS account configured. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(AWS_|CDK_DEFAULT_)/.test(k)),
  ) as NodeJS.ProcessEnv;
  return {
    ...env,
    TMPDIR: work,
    AWS_CONFIG_FILE: "/nonexistent",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
  };
}

function sh(script: string) {
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
    cwd: ROOT,
    encoding: "utf8",
    env: offlineEnv(),
    timeout: 110_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const offline = blocks().filter((b) => b.info === "sh offline");
const bastion = blocks().filter((b) => b.info === "sh bastion");

describe("docs/deploy.md, run", () => {
  it("has offline blocks (the synth and the Ignition render) and one bastion block", () => {
    expect(offline.map((b) => b.body.split(" ").slice(0, 3).join(" "))).toEqual([
      "npm run synth",
      "npm run -s",
    ]);
    expect(bastion).toHaveLength(1);
  });

  it.each(offline.map((b) => [b.body.trim().split("\n")[0], b.body]))("runs: %s", (_, body) => {
    const r = sh(body as string);
    expect(r.out).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
  });

  it("every output key it names is one the synthesized stack has, and it names them all", () => {
    const template = JSON.parse(readFileSync(join(ROOT, "cdk.out/EtcdCluster.template.json"), "utf8"));
    const keys = Object.keys(template.Outputs).filter((k) => !/^EtcdBastionBastionHostId/.test(k));
    const named = new Set([...DOC.matchAll(/\b(Etcd[A-Z][A-Za-z]+)\b/g)].map((m) => m[1] as string));
    named.delete("EtcdCluster");
    expect([...named].filter((k) => !keys.includes(k))).toEqual([]);
    expect(keys.filter((k) => !named.has(k))).toEqual([]);
    // The commands read them with the `out` helper, by these keys.
    const used = [...DOC.matchAll(/\$\(out (\w+)\)/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(2);
    expect(used.every((k) => keys.includes(k as string))).toBe(true);
  });

  it("its context-key table is exactly the keys the app reads", () => {
    const app = readFileSync(join(ROOT, "infra/bin/app.ts"), "utf8");
    const read = new Set([...app.matchAll(/\b(?:str|num|json<.*?>)\("(\w+)"\)/g)].map((m) => m[1]));
    const table = new Set([...DOC.matchAll(/^\| `etcd:(\w+)` \|/gm)].map((m) => m[1]));
    expect([...table].sort()).toEqual([...read].sort());
  });

  it("every bastion command is one etcd-agent and etcdctl accept; the bastion's user data installs both", () => {
    const lines = (bastion[0]?.body ?? "").split("\n").filter((l) => l.trim() !== "" && l !== "bash -l");
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) {
      const [cmd, ...args] = line.trim().split(/\s+/);
      const exe =
        cmd === "etcd-agent" ? join(ROOT, "dist/etcd-agent-linux-x64") : cmd === "etcdctl" ? "etcdctl" : "";
      expect(exe, line).not.toBe("");
      const r = spawnSync(exe, [...args, "--help"], { encoding: "utf8", env: offlineEnv(), timeout: 30_000 });
      expect(`${line}: ${r.status}`).toBe(`${line}: 0`);
    }
    const template = readFileSync(join(ROOT, "cdk.out/EtcdCluster.template.json"), "utf8");
    for (const s of [
      "/usr/local/bin/etcd-agent",
      "/usr/local/bin/etcdctl",
      "ETCDCTL_DISCOVERY_SRV=etcd.internal",
    ]) {
      expect(template).toContain(s);
    }
  });

  it("the bastion's profile names what client-cert writes and flags etcdctl has", () => {
    const template = readFileSync(join(ROOT, "cdk.out/EtcdCluster.template.json"), "utf8");
    for (const [name, file] of [
      ["CA", "ca.crt"],
      ["CERT", "client.crt"],
      ["KEY", "client.key"],
    ]) {
      expect(template).toContain(`export ETCD_AGENT_TLS_${name}_FILE=\\"$HOME/.etcd-agent/tls/${file}\\"`);
    }
    const help = spawnSync(join(ROOT, "dist/etcd-agent-linux-x64"), ["client-cert", "--help"], {
      encoding: "utf8",
    });
    expect(help.stdout.replace(/\s+/g, " ")).toContain(
      "directory for ca.crt, client.crt, client.key (default ~/.etcd-agent/tls)",
    );
    const etcdctlHelp = spawnSync("etcdctl", ["--help"], { encoding: "utf8" }).stdout;
    const vars = [...template.matchAll(/export ETCDCTL_(\w+)=/g)].map((m) => m[1] as string);
    expect(vars.sort()).toEqual(["API", "CACERT", "CERT", "DISCOVERY_SRV", "KEY"]);
    for (const v of vars.filter((x) => x !== "API")) {
      expect(etcdctlHelp).toContain(`--${v.toLowerCase().replaceAll("_", "-")}`);
    }
  });

  it("a region missing from etcd:amis, and a lookup with no account: exit 3's message, no stack trace", () => {
    const amis = `-c etcd:amis='{"eu-west-1":"ami-0123456789abcdef0"}'`;
    const region = sh(`npm run -s synth -- -c etcd:region=us-east-1 ${amis} -o ${work}/out1`);
    expect(region.code).not.toBe(0);
    expect(region.out).toContain("etcd-asg-agent infra: amis has no image for us-east-1 (it has eu-west-1)");
    expect(region.out).toContain("Subprocess exited with error 3");
    expect(region.out).not.toMatch(/\n\s+at /);
    const account = sh(`npm run -s synth -- -o ${work}/out2`);
    expect(account.out).toContain("and the stack has no account: run cdk with credentials");
    expect(account.out).toContain("Subprocess exited with error 3");
  });
});

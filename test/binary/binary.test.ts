// What ships: the single executables built by `npm run build:binary` (test/install.sh builds them
// before the tests run).
import { spawnSync } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SEA_NODE_VERSION } from "../../agent/build/node-version.js";
import pkg from "../../package.json" with { type: "json" };
import { type SingleEtcd, startSingleEtcd } from "../support/etcd-process.js";

const DIST = new URL("../../dist/", import.meta.url).pathname;
const FUSE_FLIPPED = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1";

function elfHeader(path: string): Buffer {
  const fd = openSync(path, "r");
  const buf = Buffer.alloc(20);
  readSync(fd, buf, 0, 20, 0);
  closeSync(fd);
  return buf;
}

describe("the x64 binary, alone in an empty directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-agent-bin-"));
  const bin = join(dir, "etcd-agent");
  let etcd: SingleEtcd;

  beforeAll(async () => {
    copyFileSync(join(DIST, "etcd-agent-linux-x64"), bin);
    spawnSync("chmod", ["+x", bin]);
    etcd = await startSingleEtcd("127.0.24.1", { tls: true });
  });

  afterAll(async () => {
    await etcd?.stop();
  });

  const run = (args: string[]) =>
    spawnSync(bin, args, {
      cwd: dir,
      encoding: "utf8",
      timeout: 60_000,
      // No PATH to node, no node_modules: only what the binary carries.
      env: {
        PATH: "/usr/bin:/bin",
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        AWS_ENDPOINT_URL: "http://127.0.0.1:9",
        AWS_MAX_ATTEMPTS: "1",
        ETCD_AGENT_DOMAIN: "etcd.test",
        ETCD_AGENT_HOSTED_ZONE_ID: "ZTEST",
      },
    });

  it("is the only file there", () => {
    expect(readdirSync(dir)).toEqual(["etcd-agent"]);
  });

  it("--version prints the package version, the commit and the Node it embeds", () => {
    const r = run(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(
      new RegExp(
        `^etcd-agent ${pkg.version} \\(commit ([0-9a-f]{7,}|unknown), node v${SEA_NODE_VERSION}\\)$`,
      ),
    );
    expect(r.stdout).toContain(`node v${SEA_NODE_VERSION}`);
  });

  it("leaves --env-file to the agent: Node neither reads the file nor fails on a missing one", () => {
    // Node reads --env-file anywhere before a `--`, also in a single executable (sea-config's
    // execArgv ["--"] stops it): a NODE_OPTIONS it cannot take would exit 9 before the agent ran.
    const file = join(mkdtempSync(join(tmpdir(), "etcd-agent-envfile-")), "etcd.env");
    writeFileSync(file, "NODE_OPTIONS=--no-such-flag\n");
    const present = run(["status", "--env-file", file, "--client-port", "abc"]);
    expect(present.stderr).toContain(
      '--client-port (ETCD_AGENT_CLIENT_PORT) must be a whole number from 1 to 65535, got "abc"',
    );
    expect(present.status).toBe(3);
    const missing = run(["status", "--env-file", "missing/etcd.env"]);
    expect(missing.stderr).toContain(
      '--env-file (ETCD_AGENT_ENV_FILE) must be an absolute path, got "missing/etcd.env"',
    );
    expect(missing.status).toBe(3);
  });

  it("talks to a real etcd over gRPC and TLS with the protos it carries: member list and status", () => {
    const tls = etcd.clientTls as NonNullable<SingleEtcd["clientTls"]>;
    const r = run([
      "status",
      "--json",
      "--asg-name",
      "etcd",
      "--endpoints",
      etcd.clientUrl,
      ...["--tls-ca-file", tls.caFile, "--tls-cert-file", tls.certFile, "--tls-key-file", tls.keyFile],
    ]);
    const report = JSON.parse(r.stdout);
    expect(report.members).toHaveLength(1);
    expect(report.members[0]).toMatchObject({
      name: "solo",
      started: true,
      healthy: true,
      leader: true,
      version: "3.4.23",
    });
    expect(Number(report.members[0].dbSize)).toBeGreaterThan(0);
    expect(r.status).toBe(0);
    // gRPC's TLS server name for an IP host is not worth a warning on every connection.
    expect(r.stderr).not.toContain("DEP0123");
  });
});

describe("the arm64 binary", () => {
  const path = join(DIST, "etcd-agent-linux-arm64");

  it("is a 64-bit little-endian aarch64 ELF executable", () => {
    const h = elfHeader(path);
    expect(h.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(h[4]).toBe(2); // ELFCLASS64
    expect(h[5]).toBe(1); // little endian
    expect(h.readUInt16LE(16)).toBe(2); // ET_EXEC
    expect(h.readUInt16LE(18)).toBe(183); // EM_AARCH64
  });

  it("carries the agent: the single-executable fuse is flipped and the bundle is inside", () => {
    const bytes = readFileSync(path);
    expect(bytes.includes(FUSE_FLIPPED)).toBe(true);
    expect(bytes.includes("Self-healing etcd on an AWS Auto Scaling group")).toBe(true);
  });
});

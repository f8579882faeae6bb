// etcd's restart on a node (#16): the agent (unprivileged) asks with a nonce in a request file;
// root's oneshot (systemd/etcd-agent-restart-etcd, run here by sh with systemctl stubbed, as
// etcd-agent-restart-etcd.path would start it) restarts etcd once per nonce and answers with it.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RESTART_REQUEST_PATHS, RestartRequestEtcdService } from "../../../agent/adapters/etcd-service.js";
import { renderNodeConfig, restartEtcdScript } from "../../../ignition/render.js";

const work = mkdtempSync(join(tmpdir(), "etcd-restart-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// The program as Ignition writes it on the node.
const SCRIPT = join(work, "etcd-agent-restart-etcd");
writeFileSync(SCRIPT, restartEtcdScript());

/** A node's two runtime directories, and a systemctl that logs its arguments and exits `code`. */
function node(code = 0) {
  const t = mkdtempSync(join(work, "node-"));
  for (const d of ["run-agent", "run-restart", "bin", "state"]) mkdirSync(join(t, d));
  const paths = {
    request: join(t, "run-agent/restart-etcd.request"),
    outcome: join(t, "run-restart/outcome"),
  };
  writeFileSync(join(t, "bin/systemctl"), `#!/bin/sh\necho "$@" >> "${t}/systemctl.log"\nexit ${code}\n`);
  chmodSync(join(t, "bin/systemctl"), 0o755);
  /** The path unit's oneshot, once. */
  const oneshot = () =>
    spawnSync("sh", [SCRIPT], {
      encoding: "utf8",
      env: {
        PATH: `${join(t, "bin")}:${process.env.PATH}`,
        ETCD_RESTART_REQUEST: paths.request,
        ETCD_RESTART_OUTCOME: paths.outcome,
      },
    });
  const restarts = () =>
    existsSync(join(t, "systemctl.log"))
      ? readFileSync(join(t, "systemctl.log"), "utf8").trim().split("\n")
      : [];
  return { t, paths, oneshot, restarts };
}

/** The agent's adapter, whose every wait for the answer runs the oneshot once (the path unit's trigger). */
function agent(n: ReturnType<typeof node>, nonce: string, onWait = () => void n.oneshot()) {
  return new RestartRequestEtcdService(join(n.t, "state"), n.paths, {
    nonce: () => nonce,
    timeoutMs: 2000,
    pollMs: 500,
    sleep: async () => onWait(),
  });
}

const A = "0123456789abcdef0123456789abcdef";
const B = "fedcba9876543210fedcba9876543210";

describe("RestartRequestEtcdService with root's oneshot", () => {
  it("the agent and the program on the node name the same request and outcome files", () => {
    const text = restartEtcdScript();
    expect(text).toContain(`REQUEST=\${ETCD_RESTART_REQUEST:-${RESTART_REQUEST_PATHS.request}}`);
    expect(text).toContain(`OUTCOME=\${ETCD_RESTART_OUTCOME:-${RESTART_REQUEST_PATHS.outcome}}`);
    const config = renderNodeConfig({
      os: "flatcar",
      arch: "x64",
      binaryUrl: "s3://b/etcd-agent-linux-x64",
      binarySha512: "cd".repeat(64),
      agent: { domain: "etcd.internal", hostedZoneId: "Z0123456789ABC" },
    }) as { storage: { files: Array<{ path: string; mode: number; contents: { source: string } }> } };
    const file = config.storage.files.find((f) => f.path === "/opt/bin/etcd-agent-restart-etcd");
    expect(file?.mode).toBe(0o755);
    const source = file?.contents.source ?? "";
    expect(Buffer.from(source.replace(/^data:;base64,/, ""), "base64").toString()).toBe(text);
  });

  it("a request restarts etcd's unit once and the agent sees its own nonce answered ok", async () => {
    const n = node();
    await agent(n, A).restart();
    expect(n.restarts()).toEqual(["restart etcd-member.service"]);
    expect(readFileSync(n.paths.outcome, "utf8")).toBe(`${A} ok\n`);
    expect(readFileSync(n.paths.request, "utf8")).toBe(`${A}\n`);
  });

  it("a request cannot be replayed: the same nonce again, a deleted request, or no change restart nothing", () => {
    const n = node();
    writeFileSync(n.paths.request, `${A}\n`);
    expect(n.oneshot().status).toBe(0);
    expect(n.oneshot().status).toBe(0);
    rmSync(n.paths.request);
    expect(n.oneshot().status).toBe(0);
    expect(n.restarts()).toEqual(["restart etcd-member.service"]);
    writeFileSync(n.paths.request, `${B}\n`);
    n.oneshot();
    expect(n.restarts()).toHaveLength(2);
  });

  it("a request that is not a nonce is refused, and etcd is not restarted", () => {
    const n = node();
    for (const bad of ["", "x; reboot", `${A}0`, A.toUpperCase()]) {
      writeFileSync(n.paths.request, `${bad}\n`);
      const r = n.oneshot();
      expect({ bad, code: r.status, err: r.stderr }).toEqual({
        bad,
        code: 1,
        err: expect.stringContaining("does not hold a nonce of 32 hex digits"),
      });
    }
    expect(n.restarts()).toEqual([]);
  });

  it("a request that is a link (the agent's user pointing root at another file) is refused, and etcd is not restarted", () => {
    const n = node();
    const elsewhere = join(work, `elsewhere-${Math.random().toString(16).slice(2)}`);
    writeFileSync(elsewhere, `${A}\n`);
    symlinkSync(elsewhere, n.paths.request);
    const r = n.oneshot();
    expect({ code: r.status, err: r.stderr }).toEqual({
      code: 1,
      err: expect.stringContaining("is a symbolic link"),
    });
    expect(n.restarts()).toEqual([]);
  });

  it("a failed restart is answered as failed, with systemctl's exit code, and the agent says where to look", async () => {
    const n = node(5);
    await expect(agent(n, A).restart()).rejects.toThrow(
      /etcd's restart failed \(.*outcome: 0123456789abcdef0123456789abcdef failed 5\); see journalctl -u etcd-agent-restart-etcd.service/,
    );
  });

  it("an answer to another nonce is not this request's: no answer within the time is an error naming the units", async () => {
    const n = node();
    writeFileSync(n.paths.outcome, `${B} ok\n`);
    await expect(agent(n, A, () => undefined).restart()).rejects.toThrow(
      /did not answer it within 2 s .*systemctl status etcd-agent-restart-etcd.path etcd-agent-restart-etcd.service/,
    );
    expect(n.restarts()).toEqual([]);
  });

  it("a request directory it cannot write is an error naming the unit's RuntimeDirectory=", async () => {
    const n = node();
    const service = new RestartRequestEtcdService(join(n.t, "state"), {
      request: join(n.t, "missing/restart-etcd.request"),
      outcome: n.paths.outcome,
    });
    await expect(service.restart()).rejects.toThrow(/RuntimeDirectory=etcd-agent/);
  });
});

// A review (#14/#16): boot records what etcd loaded as root, in the agent user's own state
// directory, from ca.crt, which that user owns. Neither a link it plants nor text it adds to
// ca.crt may reach a file root owns.
describe("the record of etcd's loaded trust, written by root in the agent's directory", () => {
  it("follows no link the agent's user planted and records certificates only, re-encoded", async () => {
    const { ShellEtcdService } = await import("../../../agent/adapters/etcd-service.js");
    const { createCa } = await import("../../../agent/tls/pki.js");
    const t = mkdtempSync(join(work, "trust-"));
    const victim = join(t, "agent.env");
    writeFileSync(victim, "ETCD_AGENT_DOMAIN=etcd.internal\n");
    mkdirSync(join(t, "state"));
    // Links at the names a fixed temporary file would use.
    for (const name of ["etcd-loaded-ca.pem.tmp", "etcd-loaded-ca.pem.tmp-00000000"])
      symlinkSync(victim, join(t, "state", name));
    const ca = await createCa("etcd-agent test CA", new Date(), 1);
    const planted = `${ca.cert.trimEnd()}\nsh -c 'id > /tmp/pwned'\n`;

    await new ShellEtcdService("true", join(t, "state")).recordLoadedTrust(planted);

    expect(readFileSync(victim, "utf8")).toBe("ETCD_AGENT_DOMAIN=etcd.internal\n");
    const recorded = readFileSync(join(t, "state", "etcd-loaded-ca.pem"), "utf8");
    expect(recorded).not.toContain("pwned");
    expect(recorded).toMatch(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/);
  });
});

// What the agent followed of the CA secret (F8): read back as written; a file that is not that
// record reads as nothing followed (the next look records it again), never as a generation.
describe("the record of the CA secret's generation this node followed", () => {
  it("round-trips, and reads an unreadable record as null", async () => {
    const { ShellEtcdService } = await import("../../../agent/adapters/etcd-service.js");
    const t = mkdtempSync(join(work, "followed-"));
    const service = new ShellEtcdService("true", t);
    expect(await service.followedCa()).toBeNull();
    const followed = { generation: 2, phase: "sign-next", trust: ["aa", "bb"] };
    await service.recordFollowedCa(followed);
    expect(await service.followedCa()).toEqual(followed);
    writeFileSync(join(t, "ca-followed.json"), '{"generation":"2"}');
    expect(await service.followedCa()).toBeNull();
  });
});

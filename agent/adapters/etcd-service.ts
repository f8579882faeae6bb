// etcd's service on the node: restarted for a CA rotation, and the bundle boot recorded before
// etcd's last start, in the agent's state directory. Two ways to restart it:
// - on a node (the default), RestartRequestEtcdService: the agent (an unprivileged user) writes a
//   request carrying a fresh nonce; root's etcd-agent-restart-etcd.path sees it and starts the
//   oneshot etcd-agent-restart-etcd.service, which restarts etcd's unit once for that nonce and
//   echoes the nonce with the outcome (systemd/etcd-agent-restart-etcd);
// - ShellEtcdService, a shell command (--etcd-restart-command): the sandbox sends its stand-in a signal.
import { execFile } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { EtcdService, FollowedCa } from "../ports/etcd-service.js";
import { pemCerts } from "../tls/ca-rotation.js";
import { writeFileAtomic } from "./local-disk.js";

/**
 * Where the agent asks for a restart and where root answers (the units and the script in systemd/
 * name the same paths; test/unit/ignition checks they agree). The request directory is the agent
 * unit's RuntimeDirectory=, the outcome's the oneshot's: each file has one writer.
 */
export const RESTART_REQUEST_PATHS = {
  request: "/run/etcd-agent/restart-etcd.request",
  outcome: "/run/etcd-agent-restart-etcd/outcome",
} as const;

/** How long a restart may take, from the request to the outcome (the oneshot's TimeoutStartSec is less). */
const RESTART_TIMEOUT_MS = 120_000;

/** The trusted bundle etcd loaded at its last start, kept in the state directory. */
class LoadedTrustFile {
  constructor(private readonly stateDir: string) {}

  private get file(): string {
    return join(this.stateDir, "etcd-loaded-ca.pem");
  }

  async loadedTrust(): Promise<string | null> {
    try {
      return await readFile(this.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  /**
   * Boot writes this as root into the agent user's own directory, from ca.crt, which that user
   * owns: a fresh temporary file that follows no link (writeFileAtomic), and only the bundle's
   * certificates, re-encoded from their DER, never the file's other text.
   */
  async recordLoadedTrust(bundle: string): Promise<void> {
    const certs = pemCerts(bundle).map((pem) => new X509Certificate(pem).toString());
    await writeFileAtomic(this.file, certs.map((c) => (c.endsWith("\n") ? c : `${c}\n`)).join(""), 0o644);
  }

  /** What the agent followed of the CA secret (rotate-node.ts), JSON beside the record; unreadable: null. */
  async followedCa(): Promise<FollowedCa | null> {
    let raw: string;
    try {
      raw = await readFile(join(this.stateDir, "ca-followed.json"), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    try {
      const o = JSON.parse(raw) as FollowedCa;
      const ok =
        Number.isSafeInteger(o.generation) &&
        typeof o.phase === "string" &&
        Array.isArray(o.trust) &&
        o.trust.every((f) => typeof f === "string");
      return ok ? { generation: o.generation, phase: o.phase, trust: o.trust } : null;
    } catch {
      return null;
    }
  }

  async recordFollowedCa(followed: FollowedCa): Promise<void> {
    await writeFileAtomic(join(this.stateDir, "ca-followed.json"), `${JSON.stringify(followed)}\n`, 0o644);
  }
}

export class ShellEtcdService extends LoadedTrustFile implements EtcdService {
  constructor(
    private readonly command: string,
    stateDir: string,
  ) {
    super(stateDir);
  }

  restart(): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile("/bin/sh", ["-c", this.command], { timeout: RESTART_TIMEOUT_MS }, (error, _out, err) => {
        if (error)
          reject(
            new Error(
              `restarting etcd with ${JSON.stringify(this.command)} failed: ${err.trim() || error.message}`,
            ),
          );
        else resolve();
      });
    });
  }
}

export class EtcdRestartError extends Error {
  override name = "EtcdRestartError";
}

/**
 * The node's way: a request file with a nonce, answered by root's oneshot with the same nonce.
 * A request is acted on once (the oneshot skips a nonce it has answered), so neither a replayed
 * nor a stale request restarts etcd again; an answer to another nonce is not this request's.
 */
export class RestartRequestEtcdService extends LoadedTrustFile implements EtcdService {
  constructor(
    stateDir: string,
    private readonly paths: { request: string; outcome: string } = RESTART_REQUEST_PATHS,
    private readonly options: {
      timeoutMs?: number;
      pollMs?: number;
      sleep?: (ms: number) => Promise<void>;
      nonce?: () => string;
    } = {},
  ) {
    super(stateDir);
  }

  async restart(): Promise<void> {
    const nonce = (this.options.nonce ?? (() => randomBytes(16).toString("hex")))();
    const tmp = `${this.paths.request}.tmp`;
    try {
      await writeFile(tmp, `${nonce}\n`, { mode: 0o644 });
      await rename(tmp, this.paths.request);
    } catch (error) {
      throw new EtcdRestartError(
        `could not ask for etcd's restart: writing ${this.paths.request} failed (${(error as Error).message}); the agent's unit must have RuntimeDirectory=etcd-agent (systemd/etcd-agent.service)`,
        { cause: error },
      );
    }
    const timeoutMs = this.options.timeoutMs ?? RESTART_TIMEOUT_MS;
    const pollMs = this.options.pollMs ?? 500;
    const sleep = this.options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    let last = "no answer";
    for (let waited = 0; waited <= timeoutMs; waited += pollMs) {
      const answer = await readFile(this.paths.outcome, "utf8").catch(() => null);
      const [echoed, state, ...detail] = (answer ?? "").trim().split(" ");
      if (echoed === nonce) {
        if (state === "ok") return;
        if (state === "failed")
          throw new EtcdRestartError(
            `etcd's restart failed (${this.paths.outcome}: ${answer?.trim()}); see journalctl -u etcd-agent-restart-etcd.service -u etcd-member.service`,
          );
        last = `${state ?? ""} ${detail.join(" ")}`.trim();
      }
      await sleep(pollMs);
    }
    throw new EtcdRestartError(
      `etcd's restart was asked for (${this.paths.request}, nonce ${nonce}) but ${this.paths.outcome} did not answer it within ${timeoutMs / 1000} s (last: ${last}); check systemctl status etcd-agent-restart-etcd.path etcd-agent-restart-etcd.service`,
    );
  }
}

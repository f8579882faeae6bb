// sd_notify through systemd-notify(1) to a real unix datagram socket (bound by python3, since
// Node cannot bind one).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SystemdNotify } from "../../../agent/adapters/systemd-notify.js";
import { createLogger, silentLogger } from "../../../agent/log.js";

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
s.settimeout(10)
for _ in range(int(sys.argv[2])):
    print(repr(s.recv(4096).decode()), flush=True)
`;

let receiver: ChildProcess | null = null;
const dir = mkdtempSync(join(tmpdir(), "notify-"));

afterEach(() => {
  receiver?.kill();
  receiver = null;
});

async function listen(path: string, count: number): Promise<() => Promise<string[]>> {
  const child = spawn("python3", ["-c", RECEIVER, path, String(count)]);
  receiver = child;
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  const done = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  for (let i = 0; i < 100 && !out.includes("bound"); i++) await new Promise((r) => setTimeout(r, 50));
  return async () => {
    await done;
    // systemd-notify follows each message with BARRIER=1 (it waits until the manager has read it).
    return out.split("\n").filter((l) => l.startsWith("'") && l !== "'BARRIER=1'");
  };
}

describe("SystemdNotify", () => {
  it("sends READY with the status line, then STATUS, WATCHDOG and STOPPING", async () => {
    const socket = join(dir, "notify.sock");
    const received = await listen(socket, 8);
    const sm = new SystemdNotify({ ...process.env, NOTIFY_SOCKET: socket }, silentLogger);

    await sm.ready("leader | 3/3 voters healthy");
    await sm.status("leader | 2/3 voters healthy");
    await sm.watchdog();
    await sm.stopping();

    const messages = await received();
    expect(messages[0]).toContain("READY=1");
    expect(messages[0]).toContain("STATUS=leader | 3/3 voters healthy");
    expect(messages[1]).toContain("STATUS=leader | 2/3 voters healthy");
    expect(messages[2]).toContain("WATCHDOG=1");
    expect(messages[3]).toContain("STOPPING=1");
    rmSync(dir, { recursive: true, force: true });
  });

  it("does nothing without NOTIFY_SOCKET, and warns once when systemd-notify is missing", async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l: string) => lines.push(l) } as never, { level: "debug" });
    await new SystemdNotify({}, log, "/nonexistent/systemd-notify").ready("x");
    expect(lines).toEqual([]);

    const broken = new SystemdNotify(
      { NOTIFY_SOCKET: "/nonexistent.sock" },
      log,
      "/nonexistent/systemd-notify",
    );
    await broken.status("a");
    await broken.status("b");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("systemd-notify failed");
  });
});

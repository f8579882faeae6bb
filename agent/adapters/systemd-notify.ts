// The sd_notify protocol through systemd-notify(1): Node has no unix datagram sockets. The unit
// must say NotifyAccess=all, because the messages come from a child process. Without
// NOTIFY_SOCKET (not run by systemd, or run by hand) every call does nothing.
import { execFile } from "node:child_process";
import type { Logger } from "../log.js";
import type { ServiceManager } from "../ports/service-manager.js";

export class SystemdNotify implements ServiceManager {
  private warned = false;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: Logger,
    private readonly command = "systemd-notify",
  ) {}

  private send(args: string[]): Promise<void> {
    if (!this.env.NOTIFY_SOCKET) return Promise.resolve();
    return new Promise((resolve) => {
      execFile(this.command, [`--pid=${process.pid}`, ...args], { env: this.env, timeout: 5000 }, (error) => {
        if (error && !this.warned) {
          this.warned = true;
          this.log.warn("systemd-notify failed; status and watchdog messages are not reaching systemd", {
            reason: error.message,
          });
        }
        resolve();
      });
    });
  }

  ready(status: string): Promise<void> {
    return this.send(["--ready", `--status=${status}`]);
  }

  status(status: string): Promise<void> {
    return this.send([`--status=${status}`]);
  }

  watchdog(): Promise<void> {
    return this.send(["WATCHDOG=1"]);
  }

  stopping(): Promise<void> {
    return this.send(["STOPPING=1", "--status=stopping"]);
  }
}

export const noServiceManager: ServiceManager = {
  ready: async () => {},
  status: async () => {},
  watchdog: async () => {},
  stopping: async () => {},
};

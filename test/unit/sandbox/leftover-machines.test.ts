// A vitest worker killed by SIGKILL cannot stop its machines: their systemd-nspawn processes keep
// running and keep the subnet's addresses. The next sandbox on that subnet ends them first, by
// the machine-name prefix of its own subnet only (machineNamePrefix), bounded.
import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { killLeftoverMachines, machineNamePrefix } from "../../sandbox/machine.js";

const started: ChildProcess[] = [];

/** A process whose command line reads as a machine's systemd-nspawn (argv0 and -M). */
function fakeNspawn(name: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)", "--", "-M", name, "-b"], {
    argv0: "systemd-nspawn",
    stdio: "ignore",
  });
  started.push(child);
  return new Promise((resolve) => child.once("spawn", () => resolve(child)));
}

afterEach(() => {
  for (const c of started.splice(0)) c.kill("SIGKILL");
});

describe("leftover machines", () => {
  it("ends the machines named with this subnet's prefix, not another subnet's", async () => {
    const mine = await fakeNspawn(`${machineNamePrefix("127.0.231.0/24")}i-0123456789abcdef0`);
    const other = await fakeNspawn(`${machineNamePrefix("127.0.232.0/24")}i-0123456789abcdef0`);
    const exited = new Promise((r) => mine.once("exit", (_code, signal) => r(signal)));

    const killed = await killLeftoverMachines(machineNamePrefix("127.0.231.0/24"), 5000);

    expect(killed).toEqual([mine.pid]);
    expect(await exited).toBe("SIGKILL");
    expect(other.exitCode).toBeNull();
    expect(other.signalCode).toBeNull();
  });
});

// Settings checked together at start (#13 defect 3): the restore bound is counted across boots,
// so it must pass before systemd stops restarting the boot unit.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BOOT_UNIT, bootUnitGivesUpAfter, parseConfig } from "../../../agent/config/config.js";
import { ConfigError } from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";

const base = { domain: "etcd.test", hostedZoneId: "Z1", backupBucket: "etcd-backups" };

describe("the restore bound against the boot unit's start limit", () => {
  it("the unit file's retry settings are the ones the check assumes", () => {
    const unit = readFileSync(new URL("../../../systemd/etcd-agent-boot.service", import.meta.url), "utf8");
    const value = (k: string) => Number(new RegExp(`^${k}=(\\d+)s?$`, "m").exec(unit)?.[1]);
    expect({
      restartSec: value("RestartSec"),
      startLimitBurst: value("StartLimitBurst"),
      startLimitIntervalSec: value("StartLimitIntervalSec"),
    }).toEqual(BOOT_UNIT);
  });

  it("the shipped defaults pass: boots 135 s apart never trip 20 starts in 1800 s", () => {
    const config = parseConfig(base);
    expect(config.bootTimeoutSeconds).toBe(120);
    expect(config.backup?.restoreAfterSeconds).toBe(300);
    expect(bootUnitGivesUpAfter(120)).toBeNull();
  });

  it("a bound the unit gives up before is refused, naming both values and the fix", () => {
    let error: unknown;
    try {
      parseConfig({ ...base, bootTimeoutSeconds: 5, restoreAfterSeconds: 900 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(exitNameFor(error)).toBe("INVALID_INPUT");
    expect((error as Error).message).toMatch(
      /restore-after-seconds.* is 900, but with .*boot-timeout-seconds.* 5 the boot unit .*gives up after about 385s.*lower --restore-after-seconds to at most 380 or raise --boot-timeout-seconds to at least 80/,
    );
  });

  it("without backups there is no automatic restore, so nothing to check", () => {
    expect(() =>
      parseConfig({ domain: "etcd.test", hostedZoneId: "Z1", bootTimeoutSeconds: 5 }),
    ).not.toThrow();
  });
});

// Settings the systemd unit cannot honour are refused at start (issue #13, defect 10): the watchdog
// systemd gives the agent (WATCHDOG_USEC) against the settings that bound a cycle.
import { describe, expect, it } from "vitest";
import { checkUnitSettings, parseConfig } from "../../../agent/config/config.js";
import { ConfigError } from "../../../agent/errors.js";
import { EXIT, exitNameFor } from "../../../agent/exit-codes.js";

const base = { domain: "etcd.test", hostedZoneId: "ZTEST", plaintext: true };

describe("settings checked against the unit's watchdog", () => {
  it("refuses an interval the 120 s watchdog cannot cover, naming both values and the fix", () => {
    const config = parseConfig({ ...base, intervalSeconds: 100 });
    let error: unknown = null;
    try {
      checkUnitSettings(config, { WATCHDOG_USEC: "120000000" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(EXIT[exitNameFor(error)]).toBe(EXIT.INVALID_INPUT);
    const message = (error as Error).message;
    expect(message).toContain("--interval-seconds (ETCD_AGENT_INTERVAL_SECONDS) is 100");
    expect(message).toContain("WatchdogSec");
    expect(message).toContain("120 s");
    expect(message).toContain("at most 60");
  });

  it("refuses a metadata timeout that one cycle would spend past the watchdog", () => {
    const config = parseConfig({ ...base, metadataTimeoutSeconds: 90 });
    expect(() => checkUnitSettings(config, { WATCHDOG_USEC: "120000000" })).toThrow(
      /--metadata-timeout-seconds \(ETCD_AGENT_METADATA_TIMEOUT_SECONDS\) is 90.*WatchdogSec.*120 s/,
    );
  });

  it("accepts the defaults under the shipped unit, and anything without a watchdog (run by hand)", () => {
    expect(() => checkUnitSettings(parseConfig(base), { WATCHDOG_USEC: "120000000" })).not.toThrow();
    expect(() => checkUnitSettings(parseConfig({ ...base, intervalSeconds: 300 }), {})).not.toThrow();
  });

  it("refuses a WATCHDOG_USEC that is not a number of microseconds", () => {
    expect(() => checkUnitSettings(parseConfig(base), { WATCHDOG_USEC: "2min" })).toThrow(
      /WATCHDOG_USEC.*"2min"/,
    );
  });

  it("caps --interval-seconds at 300 (the default startup grace): a longer one never sees the deadlines", () => {
    expect(() => parseConfig({ ...base, intervalSeconds: 3600 })).toThrow(
      /--interval-seconds \(ETCD_AGENT_INTERVAL_SECONDS\) must be a whole number from 1 to 300, got 3600/,
    );
  });
});

// The option table (agent/config/options.ts): each row's names agree with what yargs, the messages
// and Ignition make of them.
import { describe, expect, it } from "vitest";
import { DEFAULTS, parseConfig } from "../../../agent/config/config.js";
import { envName, OPTIONS, type OptionRow } from "../../../agent/config/options.js";
import { renderAgentEnv } from "../../../ignition/render.js";

const rows = Object.entries(OPTIONS) as Array<[string, OptionRow]>;
/** How Ignition named a setting before the table: its key, camelCase to CAPITALS with _. */
const oldIgnitionName = (key: string) => `ETCD_AGENT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

describe("the option table", () => {
  it.each(
    rows,
  )("%s: the key is the flag in camelCase, and its variable is the one Ignition wrote", (key, row) => {
    // yargs gives --a-b and ETCD_AGENT_A_B the key aB: parseConfig reads the row's key.
    expect(row.flag.replace(/-(.)/g, (_m, c: string) => c.toUpperCase())).toBe(key);
    expect(envName(row.flag)).toBe(oldIgnitionName(key));
    expect(envName(row.flag)).toBe(`ETCD_AGENT_${row.flag.replace(/-/g, "_").toUpperCase()}`);
  });

  it.each(
    rows.filter(([, r]) => r.type === "number"),
  )("%s: a number with its default in range", (_k, row) => {
    expect(row.min).toBeLessThanOrEqual(row.default as number);
    expect(row.max).toBeGreaterThanOrEqual(row.default as number);
  });

  it("the defaults are what parseConfig fills in", () => {
    const c = parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST" });
    expect(c).toMatchObject({
      dataDir: DEFAULTS.dataDir,
      clientPort: DEFAULTS.clientPort,
      intervalSeconds: DEFAULTS.intervalSeconds,
      logLevel: DEFAULTS.logLevel,
    });
    expect(c.tls?.dir).toBe(DEFAULTS.tlsDir);
  });

  it("Ignition writes each setting under its row's variable, and refuses a key that is no option", () => {
    const settings = Object.fromEntries(
      rows.flatMap(([k, r]) => (r.default === undefined ? [] : [[k, r.default]])),
    ) as Record<string, string | number>;
    const text = renderAgentEnv({ ...settings, domain: "etcd.internal", hostedZoneId: "Z0123456789ABC" });
    for (const [k, r] of rows) {
      if (k in settings) expect(text).toContain(`\n${envName(r.flag)}=`);
    }
    expect(() =>
      renderAgentEnv({ domain: "etcd.internal", hostedZoneId: "Z0123456789ABC", clientport: 1 }),
    ).toThrow(/agent setting clientport is not an etcd-agent option/);
  });
});

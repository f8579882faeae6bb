// The metrics settings (issue #18): a CloudWatch namespace (off unless set) and this node's
// Prometheus address (loopback by default, or off); a bad value names itself and the fix.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../agent/config/config.js";

const base = { domain: "etcd.test", hostedZoneId: "ZTEST", plaintext: true };

describe("metrics settings", () => {
  it("default: no CloudWatch namespace, Prometheus on loopback port 9379", () => {
    expect(parseConfig(base).metrics).toEqual({
      namespace: null,
      periodSeconds: 60,
      listen: { host: "127.0.0.1", port: 9379 },
    });
  });

  it.each([
    [
      { metricsNamespace: "EtcdAgent", metricsListen: "127.0.1.5:9100" },
      { namespace: "EtcdAgent", periodSeconds: 60, listen: { host: "127.0.1.5", port: 9100 } },
    ],
    [{ metricsListen: "off" }, { namespace: null, periodSeconds: 60, listen: null }],
  ])("%j is taken", (over, metrics) => {
    expect(parseConfig({ ...base, ...over }).metrics).toEqual(metrics);
  });

  it.each([
    [
      { metricsNamespace: "AWS/Etcd" },
      /--metrics-namespace \(ETCD_AGENT_METRICS_NAMESPACE\) must be a CloudWatch namespace.*got "AWS\/Etcd"/,
    ],
    [{ metricsNamespace: "etcd agent" }, /must be a CloudWatch namespace.*got "etcd agent"/],
    [
      { metricsListen: "9379" },
      /--metrics-listen \(ETCD_AGENT_METRICS_LISTEN\) must be an IPv4 address and port.*got "9379"/,
    ],
    [{ metricsListen: "localhost:9379" }, /or off, got "localhost:9379"/],
    [{ metricsListen: "127.0.0.1:70000" }, /got "127.0.0.1:70000"/],
    [
      { metricsPeriodSeconds: "5" },
      /--metrics-period-seconds \(ETCD_AGENT_METRICS_PERIOD_SECONDS\) must be a whole number from 10 to 3600, got "5"/,
    ],
  ])("%j is refused", (over, message) => {
    expect(() => parseConfig({ ...base, ...over })).toThrow(message);
  });
});

import { afterEach, describe, expect, it } from "vitest";
import { ImdsMetadata } from "../../../agent/adapters/imds.js";
import { SystemClock } from "../../../agent/adapters/system-clock.js";
import { MetadataUnavailableError } from "../../../agent/errors.js";
import { type ImdsBehaviour, type ImdsServer, NODE_METADATA, startImds } from "../../support/imds-server.js";

let server: ImdsServer | null = null;

afterEach(async () => {
  await server?.close();
  server = null;
});

async function imds(behaviour: Partial<ImdsBehaviour> = {}, deadlineMs = 3000, requestTimeoutMs = 500) {
  server = await startImds({ metadata: { ...NODE_METADATA }, ...behaviour });
  return new ImdsMetadata({ endpoint: server.url, deadlineMs, requestTimeoutMs, clock: new SystemClock() });
}

describe("ImdsMetadata over a real IMDSv2 endpoint", () => {
  it("reads the identity with a session token", async () => {
    const md = await imds();
    expect(await md.identity()).toEqual({
      instanceId: "i-0123456789abcdef0",
      privateIp: "127.0.1.4",
      region: "eu-west-1",
      availabilityZone: "eu-west-1a",
    });
    expect(server?.requests.filter((r) => r.startsWith("PUT /latest/api/token")).length).toBeGreaterThan(0);
  });

  it("answers null for the target lifecycle state when the instance has none (404)", async () => {
    const md = await imds();
    expect(await md.targetLifecycleState()).toBeNull();
  });

  it("reads the target lifecycle state when there is one", async () => {
    const md = await imds({
      metadata: { ...NODE_METADATA, "autoscaling/target-lifecycle-state": "Terminated" },
    });
    expect(await md.targetLifecycleState()).toBe("Terminated");
  });

  it("retries a 500 and succeeds", async () => {
    const md = await imds({ faults: { "instance-id": { status: 500, times: 2 } } });
    expect((await md.identity()).instanceId).toBe("i-0123456789abcdef0");
    expect(server?.requests.filter((r) => r === "GET /latest/meta-data/instance-id")).toHaveLength(3);
  });

  it("retries a 401 (expired token) with a new token and succeeds", async () => {
    const md = await imds({ faults: { "local-ipv4": { status: 401, times: 1 } } });
    expect((await md.identity()).privateIp).toBe("127.0.1.4");
  });

  it("gives up after its deadline when the token endpoint fails, naming the path", async () => {
    const md = await imds({ tokenStatus: 500 }, 1500);
    await expect(md.identity()).rejects.toThrow(MetadataUnavailableError);
    await expect(md.identity()).rejects.toThrow(/did not answer instance-id within 2s/);
  });

  it("fails at once, naming the fix, when a required path is missing (404)", async () => {
    const md = await imds({ metadata: { "instance-id": "i-0123456789abcdef0" } });
    await expect(md.identity()).rejects.toThrow(/no local-ipv4 \(HTTP 404\)/);
  });

  it("gives up on a slow endpoint after its deadline", async () => {
    const md = await imds({ delayMs: 2000 }, 1200, 300);
    const started = Date.now();
    await expect(md.identity()).rejects.toThrow(MetadataUnavailableError);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("refuses an answer that is not an instance ID", async () => {
    const md = await imds({ metadata: { ...NODE_METADATA, "instance-id": "<html>captive portal</html>" } });
    await expect(md.identity()).rejects.toThrow(/unexpected instance-id: "<html>captive portal<\/html>"/);
  });
});

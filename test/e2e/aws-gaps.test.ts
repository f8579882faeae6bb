// The sandbox's gap filler in front of moto: Route53 change batches behave as on AWS, so the
// agent's compare-and-swap of the cluster marker can be relied on in the sandbox.
import { CreateHostedZoneCommand, Route53Client } from "@aws-sdk/client-route-53";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Route53Dns } from "../../agent/adapters/route53.js";
import { MarkerConflictError } from "../../agent/errors.js";
import type { DnsRecord } from "../../agent/planner/observation.js";
import { type AwsGaps, startAwsGaps } from "../sandbox/aws-gaps.js";
import { type MotoServer, startMoto } from "../sandbox/moto-server.js";

const NAME = "_etcd-cluster.gaps.test";
const txt = (v: string): DnsRecord => ({ name: NAME, type: "TXT", ttl: 60, values: [`"${v}"`] });

describe("Route53 through the sandbox's gap filler", () => {
  let moto: MotoServer;
  let gaps: AwsGaps;
  let dns: Route53Dns;

  beforeAll(async () => {
    moto = await startMoto();
    gaps = await startAwsGaps(moto.url);
    const client = new Route53Client({
      endpoint: gaps.url,
      region: "eu-west-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });
    const zone = await client.send(
      new CreateHostedZoneCommand({
        Name: "gaps.test",
        CallerReference: String(Date.now()),
        HostedZoneConfig: { PrivateZone: true },
      }),
    );
    dns = new Route53Dns(client, (zone.HostedZone?.Id ?? "").replace("/hostedzone/", ""));
  });

  afterAll(async () => {
    await gaps?.stop();
    await moto?.stop();
  });

  it("creates a record that is absent", async () => {
    await dns.swapTxt(NAME, null, txt("a"));
    expect((await dns.listRecords("gaps.test")).find((r) => r.type === "TXT")?.values).toEqual(['"a"']);
  });

  it("refuses a CREATE of a record that exists, as Route53 does, and keeps the old value", async () => {
    await expect(dns.swapTxt(NAME, null, txt("b"))).rejects.toBeInstanceOf(MarkerConflictError);
    expect((await dns.listRecords("gaps.test")).find((r) => r.type === "TXT")?.values).toEqual(['"a"']);
  });

  it("refuses a swap whose DELETE does not match the stored value", async () => {
    await expect(dns.swapTxt(NAME, txt("not-a"), txt("c"))).rejects.toBeInstanceOf(MarkerConflictError);
    expect((await dns.listRecords("gaps.test")).find((r) => r.type === "TXT")?.values).toEqual(['"a"']);
  });

  it("swaps when the DELETE matches", async () => {
    await dns.swapTxt(NAME, txt("a"), txt("d"));
    expect((await dns.listRecords("gaps.test")).find((r) => r.type === "TXT")?.values).toEqual(['"d"']);
  });

  it("lets exactly one of many concurrent creators win", async () => {
    await dns.swapTxt(NAME, txt("d"), txt("d2"));
    const other = "_etcd-cluster2.gaps.test";
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => dns.swapTxt(other, null, { ...txt(`claim-${i}`), name: other })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(
      results
        .filter((r) => r.status === "rejected")
        .every((r) => (r as PromiseRejectedResult).reason instanceof MarkerConflictError),
    ).toBe(true);
  });
});

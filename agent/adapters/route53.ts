import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  type ResourceRecordSet,
  type Route53Client,
} from "@aws-sdk/client-route-53";
import { MarkerConflictError } from "../errors.js";
import { type DnsChange, normalizeName } from "../planner/dns-plan.js";
import type { DnsRecord } from "../planner/observation.js";
import type { Dns } from "../ports/dns.js";
import { awsCall, errorName } from "./aws-error.js";

const S = "Route53";
const TYPES = new Set(["A", "SRV", "TXT"]);

function toRecordSet(r: DnsRecord): ResourceRecordSet {
  return { Name: r.name, Type: r.type, TTL: r.ttl, ResourceRecords: r.values.map((Value) => ({ Value })) };
}

export class Route53Dns implements Dns {
  constructor(
    private readonly client: Route53Client,
    private readonly hostedZoneId: string,
  ) {}

  async listRecords(domain: string): Promise<DnsRecord[]> {
    const suffix = normalizeName(domain);
    const records: DnsRecord[] = [];
    let start: { name?: string; type?: string } = {};
    for (let page = 0; page < 1000; page++) {
      const out = await awsCall(S, "ListResourceRecordSets", () =>
        this.client.send(
          new ListResourceRecordSetsCommand({
            HostedZoneId: this.hostedZoneId,
            ...(start.name ? { StartRecordName: start.name } : {}),
            ...(start.type ? { StartRecordType: start.type as "A" } : {}),
          }),
        ),
      );
      for (const rs of out.ResourceRecordSets ?? []) {
        const name = normalizeName(rs.Name ?? "");
        if (!TYPES.has(rs.Type ?? "")) continue;
        if (name !== suffix && !name.endsWith(`.${suffix}`)) continue;
        records.push({
          name,
          type: rs.Type as DnsRecord["type"],
          ttl: rs.TTL ?? 0,
          values: (rs.ResourceRecords ?? []).map((v) => v.Value ?? ""),
        });
      }
      if (!out.IsTruncated) break;
      start = { name: out.NextRecordName, type: out.NextRecordType };
    }
    return records;
  }

  async change(changes: DnsChange[]): Promise<void> {
    if (changes.length === 0) return;
    await awsCall(S, "ChangeResourceRecordSets", () =>
      this.client.send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: this.hostedZoneId,
          ChangeBatch: {
            Comment: "etcd-agent: records equal to the healthy voting members",
            Changes: changes.map((c) => ({ Action: c.action, ResourceRecordSet: toRecordSet(c.record) })),
          },
        }),
      ),
    );
  }

  async swapTxt(name: string, expected: DnsRecord | null, next: DnsRecord): Promise<void> {
    // One change batch is one transaction: a DELETE must match the stored record exactly and a
    // CREATE fails when the record exists, so this is compare-and-swap.
    const changes = [
      ...(expected ? [{ Action: "DELETE" as const, ResourceRecordSet: toRecordSet(expected) }] : []),
      { Action: "CREATE" as const, ResourceRecordSet: toRecordSet(next) },
    ];
    try {
      await awsCall(S, "ChangeResourceRecordSets", () =>
        this.client.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: this.hostedZoneId,
            ChangeBatch: { Comment: `etcd-agent: cluster marker ${name}`, Changes: changes },
          }),
        ),
      );
    } catch (error) {
      if (errorName(error) === "InvalidChangeBatch") {
        throw new MarkerConflictError(
          `the marker ${name} changed underneath this agent (${(error as Error).message})`,
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  }
}

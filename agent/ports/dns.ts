import type { DnsChange } from "../planner/dns-plan.js";
import type { DnsRecord } from "../planner/observation.js";

/** A private hosted zone (Route53). */
export interface Dns {
  /** Every record at or below `domain` in the zone. */
  listRecords(domain: string): Promise<DnsRecord[]>;
  /** Applies the changes as one transaction: all or none. */
  change(changes: DnsChange[]): Promise<void>;
  /**
   * Compare-and-swap of one TXT record: create it when `expected` is null, else replace exactly
   * `expected`. Throws MarkerConflictError when the record is not as expected.
   */
  swapTxt(name: string, expected: DnsRecord | null, next: DnsRecord): Promise<void>;
}

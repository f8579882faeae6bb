// A continuous writer for the failure suite: puts one key after another into the cluster while a
// scenario runs, remembers every put etcd acknowledged, and afterwards reads them all back. A put
// that failed or timed out may or may not have been applied, so only acknowledged ones are owed.
// It follows the ASG: the client's endpoints are the running instances, refreshed every second.
import { randomBytes } from "node:crypto";
import { Etcd3, type IOptions } from "etcd3";

export interface WriterReport {
  /** Puts acknowledged by etcd. */
  acknowledged: number;
  /** Puts that failed or timed out (not owed). */
  failed: number;
  /** Acknowledged keys missing on read-back. */
  missing: string[];
  /** Acknowledged keys whose value is not the one written. */
  wrong: string[];
}

export class ContinuousWriter {
  private readonly acked = new Map<string, string>();
  private failed = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private client: Etcd3 | null = null;
  private hosts = "";
  /** What stopAndVerify found, once it ran (the frame asserts it without reading back again). */
  report: WriterReport | null = null;
  readonly prefix = `/etcd-sandbox-writer/${randomBytes(4).toString("hex")}/`;

  constructor(
    private readonly endpoints: () => Promise<string[]>,
    private readonly options: {
      intervalMs?: number;
      maxMinutes?: number;
      /** The client certificate to present (TLS): read at each reconnect. */
      clientOptions?: () => Pick<IOptions, "credentials">;
    } = {},
  ) {}

  private async connect(): Promise<Etcd3 | null> {
    const hosts = (await this.endpoints().catch(() => [])).sort();
    if (hosts.length === 0) return this.client;
    if (hosts.join(",") !== this.hosts) {
      const old = this.client;
      this.client = new Etcd3({
        hosts,
        ...(this.options.clientOptions?.() ?? {}),
        dialTimeout: 1000,
        defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 2000 }),
      });
      this.hosts = hosts.join(",");
      old?.close();
    }
    return this.client;
  }

  start(): void {
    const deadline = Date.now() + (this.options.maxMinutes ?? 20) * 60_000;
    const interval = this.options.intervalMs ?? 100;
    this.loop = (async () => {
      let seq = 0;
      let refreshed = 0;
      while (!this.stopped && Date.now() < deadline) {
        const now = Date.now();
        if (now - refreshed >= 1000) {
          await this.connect();
          refreshed = now;
        }
        const client = this.client;
        if (client) {
          seq++;
          const key = `${this.prefix}${String(seq).padStart(7, "0")}`;
          const value = `${seq}:${randomBytes(6).toString("hex")}`;
          try {
            await client.put(key).value(value);
            this.acked.set(key, value);
          } catch {
            this.failed++;
          }
        }
        await new Promise((r) => setTimeout(r, interval));
      }
    })();
  }

  /** The next put connects anew, reading the client certificate again (after the harness renewed it). */
  reconnect(): void {
    this.hosts = "";
  }

  /** Stops writing without checking (for cleanup after a failed scenario). */
  async close(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.client?.close();
    this.client = null;
  }

  /** Stops writing and reads every acknowledged key back from the cluster as it is now. */
  async stopAndVerify(): Promise<WriterReport> {
    this.stopped = true;
    await this.loop;
    this.hosts = "";
    const client = await this.connect();
    if (!client) throw new Error("the writer found no endpoint to read back from");
    const stored = await client.getAll().prefix(this.prefix).strings();
    client.close();
    this.client = null;
    const missing: string[] = [];
    const wrong: string[] = [];
    for (const [key, value] of this.acked) {
      if (!(key in stored)) missing.push(key);
      else if (stored[key] !== value) wrong.push(key);
    }
    this.report = { acknowledged: this.acked.size, failed: this.failed, missing, wrong };
    return this.report;
  }
}

// An in-memory backup bucket (the BackupStore port) with failures on demand: an S3 outage for
// reads or writes, or under one key prefix only.
import { readFileSync } from "node:fs";
import { parseSnapshotKey, type StoredObject } from "../../agent/planner/backup-plan.js";
import type { BackupStore, SnapshotFile } from "../../agent/ports/backups.js";

export class FakeBackups implements BackupStore {
  readonly objects = new Map<string, { body: Buffer; meta: Record<string, string> }>();
  /** When set, get fails with this message (an S3 503 on downloads). */
  failGet: string | null = null;
  /** When set, put fails with this message for keys containing `failPutOn` (or every key when null). */
  failPut: string | null = null;
  failPutOn: string | null = null;

  async put(key: string, body: Buffer | SnapshotFile, meta: Record<string, string>): Promise<void> {
    if (this.failPut !== null && (this.failPutOn === null || key.includes(this.failPutOn)))
      throw new Error(this.failPut);
    const bytes = Buffer.isBuffer(body) ? Buffer.from(body) : readFileSync(body.file);
    this.objects.set(key, { body: bytes, meta: { ...meta } });
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  /** As S3 records it: an honest writer's LastModified (the time in a snapshot's name), one version. */
  async listStored(prefix: string): Promise<StoredObject[]> {
    return (await this.list(prefix)).map((key) => ({
      key,
      lastModified: parseSnapshotKey(key)?.takenAt ?? new Date(0).toISOString(),
      versions: 1,
    }));
  }
  async get(key: string): Promise<{ body: Buffer; meta: Record<string, string> }> {
    if (this.failGet !== null) throw new Error(this.failGet);
    const o = this.objects.get(key);
    if (!o) throw new Error(`NoSuchKey: ${key}`);
    return { body: Buffer.from(o.body), meta: { ...o.meta } };
  }
  async head(key: string): Promise<Record<string, string>> {
    const o = this.objects.get(key);
    if (!o) throw new Error(`NotFound: ${key}`);
    return { ...o.meta };
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
  keys(contains: string): string[] {
    return [...this.objects.keys()].filter((k) => k.includes(contains)).sort();
  }
}

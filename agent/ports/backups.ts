/** Where snapshots go: an S3 bucket under a prefix. */
export interface BackupStore {
  /** Stores a snapshot with its sha256 (hex) as object metadata. */
  put(key: string, body: Buffer, sha256: string): Promise<void>;
  /** Every key under the prefix. */
  list(prefix: string): Promise<string[]>;
  /** The body and the sha256 recorded when it was stored (null when missing). */
  get(key: string): Promise<{ body: Buffer; sha256: string | null }>;
  delete(key: string): Promise<void>;
}

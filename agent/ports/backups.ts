/** A transfer (put, get) finishes or fails within this: adapters must hold to it. */
export const BACKUP_TRANSFER_TIMEOUT_MS = 600_000;

/** Where snapshots go: an S3 bucket under a prefix. */
export interface BackupStore {
  /** Stores a snapshot with metadata: sha256 (hex) always, members (instance IDs, comma-separated). */
  put(key: string, body: Buffer, meta: Record<string, string>): Promise<void>;
  /** Every key under the prefix. */
  list(prefix: string): Promise<string[]>;
  /** The body and the metadata recorded when it was stored. */
  get(key: string): Promise<{ body: Buffer; meta: Record<string, string> }>;
  /** Only the metadata. */
  head(key: string): Promise<Record<string, string>>;
  delete(key: string): Promise<void>;
}

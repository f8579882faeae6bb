import type { StoredObject } from "../planner/backup-plan.js";

/** A transfer (put, get) finishes or fails within this: adapters must hold to it. */
export const BACKUP_TRANSFER_TIMEOUT_MS = 600_000;

/** A snapshot on local disk, uploaded from the file (streamed, multipart past a part's size). */
export interface SnapshotFile {
  file: string;
  bytes: number;
}

/** Where snapshots go: an S3 bucket under a prefix. */
export interface BackupStore {
  /**
   * Stores an object with metadata: sha256 (hex) always, members (instance IDs, comma-separated).
   * A snapshot comes as a file and is streamed; small records as a buffer. The object appears
   * whole or not at all (S3 shows a multipart upload only once it is completed).
   */
  put(
    key: string,
    body: Buffer | SnapshotFile,
    meta: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Every key under the prefix. */
  list(prefix: string): Promise<string[]>;
  /**
   * Every key under the prefix whose newest version is not a delete marker, with S3's LastModified
   * and how many versions it has (ListObjectVersions): what the store, not the writer, recorded.
   */
  listStored(prefix: string): Promise<StoredObject[]>;
  /**
   * The body and the metadata recorded when it was stored. The store verifies its own checksum
   * of the body (S3: SHA256 given at upload, ChecksumMode ENABLED) and fails on a mismatch.
   */
  get(key: string): Promise<{ body: Buffer; meta: Record<string, string> }>;
  /** Only the metadata. */
  head(key: string): Promise<Record<string, string>>;
  delete(key: string): Promise<void>;
}

// Snapshots in S3 (@aws-sdk/client-s3). The sha256 the agent computed goes in the object's
// metadata and is checked again on every read.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { BACKUP_TRANSFER_TIMEOUT_MS, type BackupStore } from "../ports/backups.js";

export class S3Backups implements BackupStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, body: Buffer, meta: Record<string, string>): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: "application/octet-stream",
        Metadata: meta,
      }),
      { abortSignal: AbortSignal.timeout(BACKUP_TRANSFER_TIMEOUT_MS) },
    );
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    // Bounded: 1,000 pages of 1,000 keys, far beyond any retention policy.
    for (let page = 0; page < 1000; page++) {
      const out = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
      if (!out.IsTruncated || !out.NextContinuationToken) break;
      token = out.NextContinuationToken;
    }
    return keys;
  }

  async get(key: string): Promise<{ body: Buffer; meta: Record<string, string> }> {
    const signal = AbortSignal.timeout(BACKUP_TRANSFER_TIMEOUT_MS);
    const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      abortSignal: signal,
    });
    const bytes = await out.Body?.transformToByteArray();
    return { body: Buffer.from(bytes ?? []), meta: out.Metadata ?? {} };
  }

  async head(key: string): Promise<Record<string, string>> {
    const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    return out.Metadata ?? {};
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }
}

// Snapshots in S3 (@aws-sdk/client-s3). The sha256 the agent computed goes in the object's
// metadata and is checked again on every read; S3 keeps its own SHA256 checksum of what it
// received (ChecksumAlgorithm on upload), checked by the SDK on download (ChecksumMode ENABLED). A snapshot is uploaded from its file with the SDK's
// own multipart uploader (@aws-sdk/lib-storage): a few parts in memory at a time, no 5 GiB cap.
import { createReadStream } from "node:fs";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { StoredObject } from "../planner/backup-plan.js";
import { BACKUP_TRANSFER_TIMEOUT_MS, type BackupStore, type SnapshotFile } from "../ports/backups.js";

/** 8 MiB parts, two in flight: about 16 MiB of memory; 10,000 parts cover 78 GiB (etcd's cap is 8). */
export const PART_BYTES = 8 * 1024 * 1024;
export const PARTS_IN_FLIGHT = 2;

export class S3Backups implements BackupStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async put(
    key: string,
    body: Buffer | SnapshotFile,
    meta: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<void> {
    const deadline = AbortSignal.timeout(BACKUP_TRANSFER_TIMEOUT_MS);
    const abortSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
    if (!Buffer.isBuffer(body)) {
      // A failed or aborted upload is aborted at S3 too (leavePartsOnError false): no object, no parts.
      const abortController = new AbortController();
      const onAbort = () => abortController.abort();
      abortSignal.addEventListener("abort", onAbort, { once: true });
      try {
        await new Upload({
          client: this.s3,
          params: {
            Bucket: this.bucket,
            Key: key,
            Body: createReadStream(body.file, { highWaterMark: 1024 * 1024 }),
            ContentLength: body.bytes,
            ContentType: "application/octet-stream",
            Metadata: meta,
            ChecksumAlgorithm: "SHA256",
          },
          partSize: PART_BYTES,
          queueSize: PARTS_IN_FLIGHT,
          leavePartsOnError: false,
          abortController,
        }).done();
      } finally {
        abortSignal.removeEventListener("abort", onAbort);
      }
      return;
    }
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: "application/octet-stream",
        Metadata: meta,
        ChecksumAlgorithm: "SHA256",
      }),
      { abortSignal },
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

  async listStored(prefix: string): Promise<StoredObject[]> {
    const byKey = new Map<string, { latest?: { at: Date; marker: boolean }; versions: number }>();
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    // Bounded as list: 1,000 pages of 1,000 versions.
    for (let page = 0; page < 1000; page++) {
      const out = await this.s3.send(
        new ListObjectVersionsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          VersionIdMarker: versionMarker,
        }),
      );
      const entry = (key: string) => {
        const e = byKey.get(key) ?? { versions: 0 };
        byKey.set(key, e);
        return e;
      };
      for (const v of out.Versions ?? []) {
        if (!v.Key) continue;
        const e = entry(v.Key);
        e.versions++;
        if (v.IsLatest) e.latest = { at: v.LastModified ?? new Date(0), marker: false };
      }
      for (const d of out.DeleteMarkers ?? []) {
        if (!d.Key) continue;
        const e = entry(d.Key);
        if (d.IsLatest) e.latest = { at: d.LastModified ?? new Date(0), marker: true };
      }
      if (!out.IsTruncated) break;
      keyMarker = out.NextKeyMarker;
      versionMarker = out.NextVersionIdMarker;
    }
    const objects: StoredObject[] = [];
    for (const [key, e] of byKey) {
      if (!e.latest || e.latest.marker) continue;
      objects.push({ key, lastModified: e.latest.at.toISOString(), versions: e.versions });
    }
    return objects;
  }

  async get(key: string): Promise<{ body: Buffer; meta: Record<string, string> }> {
    const signal = AbortSignal.timeout(BACKUP_TRANSFER_TIMEOUT_MS);
    const out = await this.s3.send(
      new GetObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: "ENABLED" }),
      {
        abortSignal: signal,
      },
    );
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

// Snapshots go to S3 streamed from their file (issue #13, defect 12): past one part's size as a
// multipart upload (no 5 GiB PutObject cap, a few parts in memory), the checksum in the metadata
// as before, and a failed upload aborted so no part is left behind.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { PART_BYTES, S3Backups } from "../../../agent/adapters/s3-backups.js";

const s3Mock = mockClient(S3Client);
const work = mkdtempSync(join(tmpdir(), "etcd-agent-s3-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const META = { sha256: "ab".repeat(32), members: "i-1,i-2,i-3" };

function snapshotFile(bytes: number): { file: string; bytes: number } {
  const file = join(work, `snap-${bytes}.db`);
  writeFileSync(file, Buffer.alloc(bytes, 7));
  return { file, bytes };
}

beforeEach(() => {
  s3Mock.reset();
  s3Mock.on(CreateMultipartUploadCommand).resolves({ UploadId: "up-1" });
  s3Mock.on(UploadPartCommand).resolves({ ETag: '"e"' });
  s3Mock.on(CompleteMultipartUploadCommand).resolves({});
  s3Mock.on(PutObjectCommand).resolves({});
  s3Mock.on(AbortMultipartUploadCommand).resolves({});
});

describe("S3Backups.put of a snapshot file", () => {
  it("uploads a file larger than a part in parts, with the checksum and members on the object", async () => {
    const s3 = new S3Backups(new S3Client({ region: "eu-west-1" }), "etcd-backups");
    await s3.put("backups/etcd/a.db", snapshotFile(2 * PART_BYTES + 1), META);

    const create = s3Mock.commandCalls(CreateMultipartUploadCommand);
    expect(create).toHaveLength(1);
    expect(create[0]?.args[0].input.Metadata).toEqual(META);
    expect(s3Mock.commandCalls(UploadPartCommand)).toHaveLength(3);
    expect(s3Mock.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(1);
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it("aborts the multipart upload when a part fails: no object and no parts are left", async () => {
    s3Mock.on(UploadPartCommand).rejects(new Error("S3 said 503"));
    const s3 = new S3Backups(new S3Client({ region: "eu-west-1" }), "etcd-backups");
    await expect(s3.put("backups/etcd/b.db", snapshotFile(2 * PART_BYTES + 2), META)).rejects.toThrow();

    expect(s3Mock.commandCalls(AbortMultipartUploadCommand)).toHaveLength(1);
    expect(s3Mock.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });

  it("puts a small record (a restore event) in one PutObject, as before", async () => {
    const s3 = new S3Backups(new S3Client({ region: "eu-west-1" }), "etcd-backups");
    await s3.put("backups/etcd/events/e.json", Buffer.from("{}\n"), { sha256: "cd".repeat(32) });

    const puts = s3Mock.commandCalls(PutObjectCommand);
    expect(puts).toHaveLength(1);
    expect(puts[0]?.args[0].input.Metadata).toEqual({ sha256: "cd".repeat(32) });
  });
});

describe("S3's own checksum and what S3 recorded (#16)", () => {
  it("asks S3 for a SHA256 checksum on every upload, single and multipart", async () => {
    const s3 = new S3Backups(new S3Client({ region: "eu-west-1" }), "etcd-backups");
    await s3.put("backups/etcd/a.db", snapshotFile(2 * PART_BYTES + 3), META);
    await s3.put("backups/etcd/events/e.json", Buffer.from("{}\n"), { sha256: "cd".repeat(32) });

    expect(s3Mock.commandCalls(CreateMultipartUploadCommand)[0]?.args[0].input.ChecksumAlgorithm).toBe(
      "SHA256",
    );
    expect(s3Mock.commandCalls(UploadPartCommand)[0]?.args[0].input.ChecksumAlgorithm).toBe("SHA256");
    expect(s3Mock.commandCalls(PutObjectCommand)[0]?.args[0].input.ChecksumAlgorithm).toBe("SHA256");
  });

  it("downloads with ChecksumMode ENABLED, so the SDK checks S3's checksum", async () => {
    s3Mock.on(GetObjectCommand).resolves({ Metadata: { sha256: "ab" } });
    const s3 = new S3Backups(new S3Client({ region: "eu-west-1" }), "etcd-backups");
    await s3.get("backups/etcd/a.db");

    expect(s3Mock.commandCalls(GetObjectCommand)[0]?.args[0].input.ChecksumMode).toBe("ENABLED");
  });

  it("lists LastModified and the number of versions per key; a key whose latest is a delete marker is gone", async () => {
    const t = (h: number) => new Date(Date.UTC(2026, 0, 1, h));
    s3Mock
      .on(ListObjectVersionsCommand)
      .resolvesOnce({
        IsTruncated: true,
        NextKeyMarker: "k",
        NextVersionIdMarker: "v",
        Versions: [
          { Key: "p/once.db", IsLatest: true, LastModified: t(1) },
          { Key: "p/twice.db", IsLatest: true, LastModified: t(3) },
        ],
      })
      .resolvesOnce({
        IsTruncated: false,
        Versions: [
          { Key: "p/twice.db", IsLatest: false, LastModified: t(2) },
          { Key: "p/deleted.db", IsLatest: false, LastModified: t(1) },
        ],
        DeleteMarkers: [{ Key: "p/deleted.db", IsLatest: true, LastModified: t(4) }],
      });
    const s3 = new S3Backups(new S3Client({ region: "eu-west-1" }), "etcd-backups");

    const listed = await s3.listStored("p/");

    expect(listed.sort((a, b) => (a.key < b.key ? -1 : 1))).toEqual([
      { key: "p/once.db", lastModified: t(1).toISOString(), versions: 1 },
      { key: "p/twice.db", lastModified: t(3).toISOString(), versions: 2 },
    ]);
    expect(s3Mock.commandCalls(ListObjectVersionsCommand)[1]?.args[0].input).toMatchObject({
      Prefix: "p/",
      KeyMarker: "k",
      VersionIdMarker: "v",
    });
  });
});

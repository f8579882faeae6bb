// The cluster's objects in S3: the agent binary (an asset the nodes and the bastion fetch) and the
// backup bucket with its key. Snapshots nobody can poison after the fact (docs/security.md, "A
// bucket writer"): Object Lock keeps every version a node wrote for the lock's days (a node can add
// a delete marker or a new version, never remove or change a locked one); current versions never
// expire by a bucket rule, so the newest snapshot stays whatever the clock says; what the agent
// expired (non-current versions) goes after expireAfterDays, never before the lock ends.
import {
  aws_s3_assets as assets,
  Duration,
  aws_kms as kms,
  RemovalPolicy,
  Stack,
  aws_s3 as s3,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { ValidSettings } from "../props.js";
import { acknowledge } from "./acknowledge.js";

export interface StorageProps {
  settings: ValidSettings;
  asgName: string;
}

export interface Storage {
  binary: assets.Asset;
  backupBucket: s3.Bucket;
  /** The snapshots' customer-managed key (backup.customerManagedKey, default on). */
  backupKey: kms.Key | undefined;
  /** This cluster's snapshots and event records are under this prefix, and nowhere else. */
  backupPrefix: string;
}

/** Made in `scope` itself (the EtcdCluster), so each resource keeps its construct path and logical ID. */
export function storage(scope: Construct, { settings: s, asgName }: StorageProps): Storage {
  const binary = new assets.Asset(scope, "AgentBinary", { path: s.agentBinaryPath });
  const backupPrefix = `backups/${asgName}/`;
  const lock = s.backupLock;
  const backupKey = s.backupCustomerManagedKey
    ? new kms.Key(scope, "BackupKey", {
        description: `etcd snapshots of ${asgName}`,
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      })
    : undefined;
  const backupBucket = new s3.Bucket(scope, "Backups", {
    versioned: true,
    ...(backupKey
      ? { encryption: s3.BucketEncryption.KMS, encryptionKey: backupKey, bucketKeyEnabled: true }
      : { encryption: s3.BucketEncryption.S3_MANAGED }),
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    removalPolicy: RemovalPolicy.RETAIN,
    // Off: no ObjectLockEnabled at all, as a bucket made before the lock existed. It is a
    // create-only property: false where it was absent would replace the bucket (docs/security.md).
    ...(lock
      ? {
          objectLockEnabled: true,
          objectLockDefaultRetention:
            lock.mode === "COMPLIANCE"
              ? s3.ObjectLockRetention.compliance(Duration.days(lock.days))
              : s3.ObjectLockRetention.governance(Duration.days(lock.days)),
        }
      : {}),
    lifecycleRules: [
      {
        id: "ExpiredSnapshotsGoAfterExpireAfterDays",
        noncurrentVersionExpiration: Duration.days(Math.max(s.backupExpireAfterDays, lock?.days ?? 0)),
        // Snapshots go up as multipart uploads: the parts of one a killed agent left are dropped.
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      },
      { id: "DeleteMarkersWithNothingBehindThem", expiredObjectDeleteMarker: true },
    ],
    ...(s.backupReplicateToBucketArn
      ? {
          replicationRules: [
            {
              id: "CopyToAnotherAccount",
              destination: s3.Bucket.fromBucketArn(scope, "BackupReplica", s.backupReplicateToBucketArn),
              priority: 0,
              // A node's delete markers stay here: the copy keeps what was deleted.
              deleteMarkerReplication: false,
              ...(backupKey ? { sseKmsEncryptedObjects: true } : {}),
              filter: { prefix: backupPrefix },
            },
          ],
        }
      : {}),
  });
  // Object-created events go to EventBridge: the RestoredFromSnapshot rule alarms on the agent's
  // restore records (no extra permission on the nodes: they already write the prefix). Set on the
  // CloudFormation resource: the Bucket's eventBridgeEnabled would add a custom-resource Lambda.
  (backupBucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
    eventBridgeConfiguration: { eventBridgeEnabled: true },
  };

  acknowledge(backupBucket, {
    "AwsSolutions::AwsSolutions-S1":
      "Only the nodes' role can write here and the agent logs every snapshot it writes or expires; an access-log bucket would need its own retention. Enable CloudTrail S3 data events for an audit trail.",
  });
  if (s.backupReplicateToBucketArn) {
    const bucketId = Stack.of(scope).getLogicalId(backupBucket.node.defaultChild as s3.CfnBucket);
    acknowledge(backupBucket, {
      [`AwsSolutions::AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/*]`]:
        "S3's replication role (made by the Bucket for replicationRules) reads every version of this bucket to copy it.",
      [`AwsSolutions::AwsSolutions-IAM5[Resource::${s.backupReplicateToBucketArn}/*]`]:
        "S3's replication role writes the copies into the operator's replica bucket, in another account.",
    });
  }
  return { binary, backupBucket, backupKey, backupPrefix };
}

// Builds the real adapters. AWS endpoints follow the SDK's own settings (AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_AUTO_SCALING, ...), IMDS follows AWS_EC2_METADATA_SERVICE_ENDPOINT.
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { Route53Client } from "@aws-sdk/client-route-53";
import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type AgentConfig, nodeTlsFiles } from "../config/config.js";
import type { Logger } from "../log.js";
import type { Ports } from "../ports/index.js";
import type { InstanceMetadata } from "../ports/metadata.js";
import { AwsAutoScaling } from "./aws-autoscaling.js";
import { AwsEc2 } from "./aws-ec2.js";
import { Etcd3Cluster } from "./etcd3-cluster.js";
import { ImdsMetadata } from "./imds.js";
import { LocalCertFiles, LocalDisk, lookupId } from "./local-disk.js";
import { Route53Dns } from "./route53.js";
import { S3Backups } from "./s3-backups.js";
import { SecretsManagerStore } from "./secrets-manager.js";
import { SystemClock } from "./system-clock.js";
import { SystemdNotify } from "./systemd-notify.js";

export function createMetadata(config: AgentConfig, clock = new SystemClock()): InstanceMetadata {
  return new ImdsMetadata({ deadlineMs: config.metadataTimeoutSeconds * 1000, clock });
}

export function createPorts(
  config: AgentConfig,
  region: string,
  log: Logger,
  metadata?: InstanceMetadata,
): Ports {
  const clock = new SystemClock();
  // Names are looked up once, here: a user or group the node does not have stops the command.
  const owner = config.fileOwner === null ? null : lookupId("user", config.fileOwner, "--file-owner");
  const group = config.tls?.group ? lookupId("group", config.tls.group, "--tls-group") : null;
  // Retries follow the SDK's standard mode and AWS_MAX_ATTEMPTS.
  const aws = { region };
  return {
    clock,
    metadata: metadata ?? createMetadata(config, clock),
    autoscaling: new AwsAutoScaling(new AutoScalingClient(aws)),
    ec2: new AwsEc2(new EC2Client(aws)),
    dns: new Route53Dns(new Route53Client(aws), config.hostedZoneId),
    // A membership change is applied in milliseconds by a cluster with a leader; one sent during an
    // election hangs until its deadline. 5 s, then the caller observes again (boot resumes a member
    // added for it, by its peer URL) rather than waiting out a longer deadline.
    etcd: new Etcd3Cluster({
      callTimeoutMs: 3000,
      changeTimeoutMs: 5000,
      ...(config.tls
        ? { tls: { caFile: config.tls.caFile, certFile: config.tls.certFile, keyFile: config.tls.keyFile } }
        : {}),
    }),
    local: new LocalDisk({
      dataDir: config.dataDir,
      stateDir: config.stateDir,
      envFile: config.envFile,
      clock,
      ...(owner === null ? {} : { owner: { uid: owner, gid: -1 } }),
    }),
    serviceManager: new SystemdNotify(process.env, log),
    ...(config.tls
      ? {
          secrets: new SecretsManagerStore(new SecretsManagerClient(aws)),
          certs: new LocalCertFiles(nodeTlsFiles(config.tls), { owner, group }),
        }
      : {}),
    ...(config.backup
      ? {
          backups: new S3Backups(
            new S3Client({ ...aws, forcePathStyle: config.backup.pathStyle }),
            config.backup.bucket,
          ),
        }
      : {}),
  };
}

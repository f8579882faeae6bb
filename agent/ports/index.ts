import type { AutoScaling } from "./autoscaling.js";
import type { BackupStore } from "./backups.js";
import type { CertFiles } from "./cert-files.js";
import type { Clock } from "./clock.js";
import type { Dns } from "./dns.js";
import type { Ec2 } from "./ec2.js";
import type { EtcdCluster } from "./etcd.js";
import type { EtcdService, RestartLock } from "./etcd-service.js";
import type { LocalNode } from "./local-node.js";
import type { InstanceMetadata } from "./metadata.js";
import type { MetricsSink } from "./metrics.js";
import type { SecretStore } from "./secrets.js";
import type { ServiceManager } from "./service-manager.js";

/** Everything outside the agent, one port per system. Commands take these; tests pass fakes. */
export interface Ports {
  metadata: InstanceMetadata;
  autoscaling: AutoScaling;
  ec2: Ec2;
  dns: Dns;
  etcd: EtcdCluster;
  clock: Clock;
  local: LocalNode;
  serviceManager: ServiceManager;
  /** Snapshots in S3; absent when backups are off. */
  backups?: BackupStore;
  /** The TLS secrets; absent with --plaintext. */
  secrets?: SecretStore;
  /** This node's certificate files; absent with --plaintext. */
  certs?: CertFiles;
  /** etcd's service on this node and the restart lock, for a CA rotation; absent with --plaintext. */
  etcdService?: EtcdService;
  restartLock?: RestartLock;
  /** Where `run` sends each cycle's vital signs (CloudWatch, Prometheus); absent: nowhere. */
  metrics?: MetricsSink[];
}

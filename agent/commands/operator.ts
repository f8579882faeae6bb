// What the operator commands (status, plan, remove-member, join) share: a view of the whole
// cluster from anywhere that reaches it, such as the bastion.
import type { AgentConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { candidateEndpoints, observeCluster, observeDns, tryObserveAsg } from "../observe/observe.js";
import type { MarkerRead } from "../planner/boot-plan.js";
import type { AsgView, ClusterView, DnsRecord } from "../planner/observation.js";
import type { Ports } from "../ports/index.js";

export interface ClusterSnapshot {
  asgName: string;
  asg: AsgView | null;
  cluster: ClusterView | null;
  dns: DnsRecord[] | null;
  marker: MarkerRead;
}

export async function operatorAsgName(
  ports: Pick<Ports, "metadata" | "autoscaling">,
  config: AgentConfig,
): Promise<string> {
  if (config.asgName !== null) return config.asgName;
  try {
    const identity = await ports.metadata.identity();
    const name = await ports.autoscaling.groupOf(identity.instanceId);
    if (name !== null) return name;
  } catch {
    // Not on a node: fall through to the message below.
  }
  throw new ConfigError(
    "--asg-name (ETCD_AGENT_ASG_NAME) is required here: this machine is not a node of an Auto Scaling group",
  );
}

export async function observeSnapshot(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  log: Logger,
): Promise<ClusterSnapshot> {
  const asg = await tryObserveAsg(ports.autoscaling, ports.ec2, asgName, log);
  const endpoints = candidateEndpoints(asg, config.clientPort, config.endpoints, config.scheme);
  const cluster =
    endpoints.length > 0
      ? await observeCluster(ports.etcd, endpoints, asg, config.clientPort, config.scheme)
      : null;
  const { records, marker } = await observeDns(ports.dns, config.domain, log);
  return { asgName, asg, cluster, dns: records, marker };
}

// A view of the whole cluster from anywhere that reaches it, such as the bastion: what the
// operator commands (status, plan, remove-member, join) look at.
import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../log.js";
import type { AsgView, ClusterView, DnsRecord, MarkerRead } from "../planner/observation.js";
import type { Ports } from "../ports/index.js";
import { candidateEndpoints, observeCluster, observeDns, tryObserveAsg } from "./observe.js";

export interface ClusterSnapshot {
  asgName: string;
  asg: AsgView | null;
  cluster: ClusterView | null;
  dns: DnsRecord[] | null;
  marker: MarkerRead;
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

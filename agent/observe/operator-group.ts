// What the operator commands (status, plan, remove-member, join) share: the ASG they look at. Their
// view of the whole cluster is observed in agent/observe/snapshot.ts.
import type { AgentConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import type { Ports } from "../ports/index.js";

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

// `etcd-agent join`: the join path by hand. On a node it is `boot` that never bootstraps; from the
// bastion (--instance-id) it makes room and adds that instance as a learner, then prints the
// environment file the node needs. Idempotent: a second run finds the member and resumes.
import { MemoryLocalNode } from "../adapters/memory-local.js";
import type { AgentConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { operatorAsgName } from "../observe/operator-group.js";
import type { Ports } from "../ports/index.js";
import { type BootContext, type BootResult, resolveContext, runBoot } from "./boot.js";

export interface JoinResult extends BootResult {
  nextStep: string;
  envFileContent: string | null;
}

export async function runJoin(
  ports: Ports,
  config: AgentConfig,
  log: Logger,
  options: { instanceId: string | null; signal?: AbortSignal },
): Promise<JoinResult> {
  if (options.instanceId === null) {
    const ctx = await resolveContext(ports, config, log);
    // As boot does: with TLS every etcd call presents this node's certificate, so it comes first.
    // (Loaded on demand, as cli.ts does for boot: the PKI is not every command's start-up cost.)
    if (config.tls) await (await import("../tls/node-certs.js")).ensureNodeCert(ports, config, ctx, log);
    const result = await runBoot(ports, config, ctx, log, { signal: options.signal, mode: "join" });
    return {
      ...result,
      envFileContent: null,
      nextStep: `start etcd on this node (systemctl start etcd-member.service); it reads ${config.envFile}`,
    };
  }
  if (!/^i-[0-9a-f]+$/.test(options.instanceId)) {
    throw new ConfigError(
      `--instance-id must be an EC2 instance ID such as i-0123456789abcdef0, got ${JSON.stringify(options.instanceId)}`,
    );
  }
  const asgName = await operatorAsgName(ports, config);
  const [facts] = await ports.ec2.describeInstances([options.instanceId]);
  if (facts === undefined || facts.privateIp === null) {
    throw new ConfigError(`instance ${options.instanceId} was not found or has no private address`);
  }
  const local = new MemoryLocalNode();
  const ctx: BootContext = {
    asgName,
    identity: {
      instanceId: options.instanceId,
      privateIp: facts.privateIp,
      region: "",
      availabilityZone: "",
    },
  };
  const remote: Ports = {
    ...ports,
    local,
    metadata: { identity: async () => ctx.identity, targetLifecycleState: async () => null },
  };
  const result = await runBoot(remote, config, ctx, log, {
    signal: options.signal,
    mode: "join",
    remote: true,
  });
  return {
    ...result,
    envFileContent: local.envFile,
    nextStep: `on ${options.instanceId}: write the environment below to ${config.envFile}, then start etcd there`,
  };
}

// `etcd-agent remove-member <member-id|instance-id>`: with the quorum check; --force overrides it.
import type { AgentConfig } from "../config/config.js";
import { ConfigError, EtcdUnavailableError, RefusedError } from "../errors.js";
import type { Logger } from "../log.js";
import { operatorAsgName } from "../observe/operator-group.js";
import { observeSnapshot } from "../observe/snapshot.js";
import { isHealthy, voterCounts } from "../planner/membership.js";
import { quorumAfterRemoval } from "../planner/quorum.js";
import type { Ports } from "../ports/index.js";

export interface RemoveResult {
  memberId: string;
  name: string;
  forced: boolean;
  dryRun: boolean;
}

export async function runRemoveMember(
  ports: Ports,
  config: AgentConfig,
  log: Logger,
  target: string,
  options: { force: boolean; dryRun: boolean },
): Promise<RemoveResult> {
  if (!/^(\d{1,20}|[0-9a-f]{1,16}|i-[0-9a-f]+)$/.test(target)) {
    throw new ConfigError(
      `remove-member takes a member ID (decimal or hex) or an instance ID, got ${JSON.stringify(target)}`,
    );
  }
  const asgName = await operatorAsgName(ports, config);
  const snap = await observeSnapshot(ports, config, asgName, log);
  if (snap.cluster === null) throw new EtcdUnavailableError("no etcd member answers; nothing can be removed");
  const cluster = snap.cluster;
  // etcdctl prints member IDs in hex, the API in decimal: accept either.
  const ids = new Set([target]);
  if (/^[0-9a-f]{1,16}$/.test(target)) ids.add(BigInt(`0x${target}`).toString());
  const matches = cluster.members.filter(
    (m) => ids.has(m.id) || m.name === target || m.instanceId === target,
  );
  if (matches.length > 1) {
    throw new ConfigError(
      `${JSON.stringify(target)} matches more than one member (${matches.map((m) => m.id).join(", ")}); give the decimal member ID`,
    );
  }
  const member = matches[0];
  if (member === undefined) {
    throw new ConfigError(
      `no member matches ${JSON.stringify(target)}; members are ${cluster.members.map((m) => `${m.id} (${m.name || "not started"})`).join(", ")}`,
    );
  }
  const check = quorumAfterRemoval(voterCounts(cluster.members), {
    isVoter: !member.isLearner,
    isHealthy: isHealthy(member),
  });
  if (!check.ok) {
    const hold = {
      rule: "quorum-after-removal" as const,
      detail: `removing ${member.id} (${member.name || "not started"}) leaves ${check.after.healthyVoters} healthy of ${check.after.voters} voters, ${check.needed} needed`,
    };
    if (!options.force) throw new RefusedError(hold);
    log.warn("FORCED: removing a member against the quorum rule; the cluster may stop accepting writes", {
      action: "remove-member",
      member_id: member.id,
      rule: hold.rule,
      reason: hold.detail,
    });
  }
  if (!options.dryRun) {
    const endpoints = cluster.members.filter((m) => m.status !== null).flatMap((m) => m.clientUrls);
    await ports.etcd.memberRemove(endpoints, member.id);
    log.warn("removed member by hand", {
      action: "remove-member",
      member_id: member.id,
      target_instance_id: member.instanceId ?? undefined,
    });
  }
  return {
    memberId: member.id,
    name: member.name,
    forced: options.force && !check.ok,
    dryRun: options.dryRun,
  };
}

// A node following a CA rotation (the phases are in ./ca-rotation.ts): each look at the CA secret
// rewrites this node's files when the trusted bundle or the signer changed (ensureNodeCert), then,
// when etcd has not loaded that bundle, restarts etcd under the cluster's restart lock, one member
// at a time and only while every voter is healthy. Observe, plan (planCaRestart), apply in named
// steps; a crash after any step is repaired by the next look (test/unit/tls/ca-rotation-steps.test.ts).
import { type AfterStep, Steps } from "../apply/steps.js";
import { type AgentConfig, tlsSecretNames } from "../config/config.js";
import { ClusterUnhealthyError, ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { observeCluster } from "../observe/observe.js";
import { clientUrlFor, findSelfMember, isHealthy } from "../planner/membership.js";
import type { Identity, MemberStatus } from "../planner/observation.js";
import { RULES } from "../planner/rules.js";
import type { FollowedCa } from "../ports/etcd-service.js";
import type { Ports } from "../ports/index.js";
import {
  CA_RESTART_MAX_LAG,
  type CaSecret,
  caPhase,
  parseCaSecret,
  planCaRestart,
  type RestartDecision,
  sameTrust,
  staleCaSecret,
  trustBundle,
  trustSet,
} from "./ca-rotation.js";
import { ensureNodeCert } from "./node-certs.js";

/** The steps of following one phase, in order (the restart ones only when etcd must load a new bundle). */
export const CA_ROTATION_STEPS = [
  "rotate:files",
  "rotate:remember",
  "rotate:lock",
  "rotate:restart",
  "rotate:healthy",
  "rotate:record",
  "rotate:unlock",
] as const;

/** A member's raft applied index from its Status (committed when etcd does not report applied). */
function appliedIndex(status: MemberStatus | null): string | null {
  return status ? (status.raftAppliedIndex ?? status.raftIndex) : null;
}

/** The lock outlives a restart and the wait for health; a dead holder frees it after this. */
export const RESTART_LOCK_TTL_SECONDS = 120;
/** A voter that answers no count-only read within this is taken as paused (e.g. defragmenting). */
const READ_PROBE_MS = 2000;
/** How long a restarted etcd has to answer healthy before the step fails (the lock then expires). */
const HEALTHY_WAIT_MS = 90_000;

export type RotationOutcome =
  | { kind: "steady" | "followed"; phase: string; decision: RestartDecision }
  | { kind: "restarted"; phase: string; decision: RestartDecision };

export async function readCaSecret(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
): Promise<CaSecret | null> {
  if (!config.tls || !ports.secrets) return null;
  const name = tlsSecretNames(config.tls, asgName).ca;
  const raw = await ports.secrets.get(name);
  if (raw === null) return null;
  const ca = parseCaSecret(raw);
  if (ca === null)
    throw new ConfigError(
      `secret ${name} is not what etcd-agent keeps there (JSON with PEM "cert" and "key", and at most one of "next" and "previous"); restore its previous version (aws secretsmanager get-secret-value --version-stage AWSPREVIOUS)`,
    );
  return ca;
}

/**
 * One look: follow the CA secret's phase on this node. Returns what was done; throws when a step
 * failed (the caller logs it and looks again next cycle).
 */
export async function followCaRotation(
  ports: Ports,
  config: AgentConfig,
  ctx: { identity: Identity; asgName: string },
  log: Logger,
  options: { afterStep?: AfterStep; sleep?: (ms: number) => Promise<void>; knownEndpoints?: string[] } = {},
): Promise<RotationOutcome> {
  const tls = config.tls;
  const service = ports.etcdService;
  const lock = ports.restartLock;
  if (!tls || !service || !lock) throw new ConfigError("followCaRotation with --plaintext (a bug)");
  const ca = await readCaSecret(ports, config, ctx.asgName);
  if (ca === null)
    return { kind: "steady", phase: "none", decision: { action: "none", reason: "no CA yet" } };
  const phase = caPhase(ca);
  const wanted = trustBundle(ca);
  const followed = await service.followedCa();
  const stale = staleCaSecret(followed, ca);
  if (stale !== null && followed !== null) {
    // Neither the files nor etcd move back: the next read shows the current secret again.
    log.warn("CA rotation: a stale read of the CA secret is ignored", {
      action: "ca-rotation",
      rule: stale.rule,
      reason: RULES[stale.rule],
      detail: stale.detail,
    });
    return { kind: "followed", phase: followed.phase, decision: { action: "hold", ...stale } };
  }
  const steps = new Steps(log, options.afterStep);
  const files = await steps.run("rotate:files", () => ensureNodeCert(ports, config, ctx, log, { ca }), {
    phase,
  });
  const now: FollowedCa = { generation: ca.generation ?? 0, phase, trust: trustSet(wanted) };
  if (JSON.stringify(followed) !== JSON.stringify(now))
    await steps.run("rotate:remember", () => service.recordFollowedCa(now), { generation: now.generation });
  // The agent's own etcd connections present the files read when they opened: open new ones.
  if (files.kind !== "kept") await ports.etcd.close();

  let loaded = await service.loadedTrust();
  if (loaded === null && phase === "steady") {
    // No record (an agent from before rotations): no rotation is under way, so etcd runs on the
    // one CA on disk. Recorded without a restart, so an upgrade does not restart every member.
    await service.recordLoadedTrust(wanted);
    loaded = wanted;
  }

  if (phase === "steady" && loaded !== null && sameTrust(loaded, wanted))
    return {
      kind: "steady",
      phase,
      decision: { action: "none", reason: "etcd trusts the bundle the CA secret names" },
    };

  const selfUrl = clientUrlFor(ctx.identity.privateIp, config.clientPort, config.scheme);
  const cluster = await observeCluster(
    ports.etcd,
    [selfUrl, ...(options.knownEndpoints ?? []).filter((u) => u !== selfUrl)],
    null,
    config.clientPort,
    config.scheme,
  );
  const voters = cluster?.members.filter((m) => !m.isLearner) ?? [];
  const self = cluster
    ? findSelfMember(cluster.members, ctx.identity.instanceId, ctx.identity.privateIp)
    : null;
  const leader = cluster?.members.find((m) => m.id === cluster.leaderId) ?? null;
  const decision = planCaRestart({
    wanted,
    loaded,
    voters: voters.length,
    healthyVoters: voters.filter(isHealthy).length,
    selfHealthy: self !== null && isHealthy(self),
    applied: voters
      .filter((m) => m.id !== self?.id)
      .map((m) => ({ member: m.name || m.id, applied: appliedIndex(m.status) })),
    leaderApplied: appliedIndex(leader?.status ?? null),
  });
  const endpoints = voters.flatMap((m) => m.clientUrls);
  const owner = ctx.identity.instanceId;
  if (decision.action === "none") {
    // A crash between the record and the unlock left the lock held: let it go now, not at its TTL.
    if (phase !== "steady" && endpoints.length > 0) await lock.release(endpoints, owner);
    return { kind: phase === "steady" ? "steady" : "followed", phase, decision };
  }
  if (decision.action === "hold") {
    log.info("CA rotation: etcd's restart waits", {
      action: "ca-rotation",
      rule: decision.rule,
      reason: RULES[decision.rule],
      detail: decision.detail,
    });
    return { kind: "followed", phase, decision };
  }

  const got = await steps.run("rotate:lock", () => lock.acquire(endpoints, owner, RESTART_LOCK_TTL_SECONDS));
  if (!got.held) {
    const rule = "ca-restart-one-at-a-time" as const;
    log.info("CA rotation: etcd's restart waits", {
      action: "ca-rotation",
      rule,
      reason: RULES[rule],
      detail: `${got.holder} holds the restart lock`,
    });
    return { kind: "followed", phase, decision: { action: "hold", rule, detail: `${got.holder} holds it` } };
  }
  // Under the lock, every voter must answer a read: a member the leader is defragmenting answers
  // Status (so it counts as healthy) but is paused; restarting this one too would pause two.
  const busy: string[] = [];
  for (const url of endpoints) if (!(await ports.etcd.answersRead(url, READ_PROBE_MS))) busy.push(url);
  if (busy.length > 0) {
    await lock.release(endpoints, owner);
    const rule = "ca-restart-quorum" as const;
    const detail = `${busy.join(", ")} answered no read within ${READ_PROBE_MS / 1000} s (perhaps defragmenting)`;
    log.info("CA rotation: etcd's restart waits", {
      action: "ca-rotation",
      rule,
      reason: RULES[rule],
      detail,
    });
    return { kind: "followed", phase, decision: { action: "hold", rule, detail } };
  }
  log.warn("CA rotation: restarting etcd to load the trusted CA bundle", {
    action: "ca-rotation",
    reason: decision.reason,
    phase,
  });
  await steps.run("rotate:restart", () => service.restart());
  await steps.run("rotate:healthy", async () => {
    const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    await ports.etcd.close();
    // Healthy is not enough: it names a leader before it has replayed what it missed, and the next
    // member's restart would then leave the quorum waiting on it. The lock is held until it caught up.
    let last = "no answer";
    for (let waited = 0; ; waited += 1000) {
      const status = await ports.etcd.status(selfUrl).catch(() => null);
      if (status !== null && status.leaderId !== "0") {
        const mine = appliedIndex(status);
        const leaderUrl = voters.find((m) => m.id === status.leaderId)?.clientUrls[0];
        const theirs =
          status.leaderId === status.memberId
            ? mine
            : leaderUrl
              ? appliedIndex(await ports.etcd.status(leaderUrl).catch(() => null))
              : null;
        if (mine !== null && theirs !== null && BigInt(theirs) - BigInt(mine) <= BigInt(CA_RESTART_MAX_LAG))
          return;
        last = `applied index ${mine ?? "unknown"} of the leader's ${theirs ?? "unknown"}`;
      }
      if (waited >= HEALTHY_WAIT_MS)
        throw new ClusterUnhealthyError(
          `etcd did not answer healthy and caught up within ${HEALTHY_WAIT_MS / 1000} s of its restart (${last})`,
        );
      await sleep(1000);
    }
  });
  await steps.run("rotate:record", () => service.recordLoadedTrust(wanted));
  await steps.run("rotate:unlock", () => lock.release(endpoints, owner));
  log.info("CA rotation: etcd restarted on the trusted CA bundle", { action: "ca-rotation", phase });
  return { kind: "restarted", phase, decision };
}

/**
 * Boot's certificates, before etcd starts: the node's files as the CA secret's phase wants them
 * (not after a stale read: staleCaSecret), then the bundle recorded as what etcd is about to load
 * (boot runs before every start of etcd).
 */
export async function bootCertificates(
  ports: Ports,
  config: AgentConfig,
  ctx: { identity: Identity; asgName: string },
  log: Logger,
): Promise<void> {
  const ca = await readCaSecret(ports, config, ctx.asgName);
  const followed = ca && ports.etcdService ? await ports.etcdService.followedCa() : null;
  const stale = ca ? staleCaSecret(followed, ca) : null;
  if (stale !== null)
    // The files stay as the node followed them last (they are only re-issued if invalid).
    log.warn("CA rotation: a stale read of the CA secret is ignored at boot", {
      action: "ca-rotation",
      rule: stale.rule,
      reason: RULES[stale.rule],
      detail: stale.detail,
    });
  await ensureNodeCert(ports, config, ctx, log, ca && stale === null ? { ca } : {});
  const files = await ports.certs?.read();
  if (files && ports.etcdService) await ports.etcdService.recordLoadedTrust(files.ca);
}

// A CA rotation without a restore: the CA's secret says which phase the cluster is in, the
// operator moves it one phase at a time (`etcd-agent ca-rotate begin|promote|finish`, with
// credentials that may PutSecretValue, which no node has), and every node follows it. Pure: the
// phases, the trusted bundle each implies, the next secret for an operator's step, and whether a
// node may restart its etcd now (etcd 3.4/3.5 read --trusted-ca-file and --peer-trusted-ca-file
// once, at start; certificates are read on every handshake).
//
//   steady       {cert, key}                          trust cert;             sign with cert
//   trust-next   {cert, key, next: {cert, key}}       trust cert + next;      sign with cert
//   sign-next    {cert, key, previous: {cert}}        trust cert + previous;  sign with cert (the new one)
//   steady       {cert, key}                          trust the new CA only
//
// Invariant: two consecutive phases trust a common CA that signs every certificate in use, so no
// node ever presents a certificate a peer does not trust; only a change of the trusted set needs
// etcd restarted, one member at a time under quorum, each once the one before has caught up.
// Each operator step raises the secret's `generation`; a node never follows a lower generation of
// the same CA lineage than it has followed already (a stale read: staleCaSecret).
import { createHash, X509Certificate } from "node:crypto";
import { quorumSize } from "../planner/quorum.js";
import type { RuleId } from "../planner/rules.js";
import type { FollowedCa } from "../ports/etcd-service.js";
import type { CertKey } from "./pki.js";

export interface CaSecret extends CertKey {
  createdAt?: string;
  /** Raised by one at each operator step (absent: 0, a secret from before rotations counted). */
  generation?: number;
  /** trust-next: the new CA, trusted but not yet signing. */
  next?: CertKey;
  /** sign-next: the old CA's certificate, still trusted while nodes move to the new one. */
  previous?: { cert: string };
}

export type CaPhase = "steady" | "trust-next" | "sign-next";

export const ROTATION_COMMANDS = ["begin", "promote", "finish"] as const;
export type RotationCommand = (typeof ROTATION_COMMANDS)[number];

const isPem = (v: unknown, label: string): v is string =>
  typeof v === "string" && v.includes(`BEGIN ${label}`);

/** The CA secret's JSON, or null when it is not what etcd-agent keeps there. */
export function parseCaSecret(raw: string): CaSecret | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (o === null || typeof o !== "object") return null;
  if (!isPem(o.cert, "CERTIFICATE") || !isPem(o.key, "PRIVATE KEY")) return null;
  const out: CaSecret = { cert: o.cert, key: o.key };
  if (typeof o.createdAt === "string") out.createdAt = o.createdAt;
  if (o.generation !== undefined) {
    if (typeof o.generation !== "number" || !Number.isSafeInteger(o.generation) || o.generation < 0)
      return null;
    out.generation = o.generation;
  }
  const next = o.next as Record<string, unknown> | undefined;
  const previous = o.previous as Record<string, unknown> | undefined;
  if (next !== undefined && previous !== undefined) return null;
  if (next !== undefined) {
    if (!isPem(next?.cert, "CERTIFICATE") || !isPem(next?.key, "PRIVATE KEY")) return null;
    out.next = { cert: next.cert, key: next.key };
  }
  if (previous !== undefined) {
    if (!isPem(previous?.cert, "CERTIFICATE")) return null;
    out.previous = { cert: previous.cert };
  }
  return out;
}

export function caPhase(s: CaSecret): CaPhase {
  if (s.next) return "trust-next";
  if (s.previous) return "sign-next";
  return "steady";
}

/** The PEM certificates of a bundle, in order. */
export function pemCerts(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g) ?? [];
}

/** The trusted CA bundle this phase implies (what ca.crt holds): the signer first. */
export function trustBundle(s: CaSecret): string {
  const other = s.next?.cert ?? s.previous?.cert;
  const norm = (p: string) => (p.endsWith("\n") ? p : `${p}\n`);
  return other && other !== s.cert ? norm(s.cert) + norm(other) : s.cert;
}

/** The sha256 of each certificate's DER, sorted: the set a bundle trusts, order and format aside. */
export function trustSet(bundle: string): string[] {
  return pemCerts(bundle)
    .map((p) => createHash("sha256").update(new X509Certificate(p).raw).digest("hex"))
    .sort();
}

export function sameTrust(a: string, b: string): boolean {
  return JSON.stringify(trustSet(a)) === JSON.stringify(trustSet(b));
}

export type NextSecret = { ok: true; secret: CaSecret } | { ok: false; reason: string };

/**
 * The CA secret after an operator's step, or why the step does not apply to this phase.
 * begin needs a freshly made CA (`made`); the cluster checks (every member trusts the new CA
 * before promote, every member presents a new certificate before finish) are the command's.
 */
export function nextCaSecret(current: CaSecret, command: RotationCommand, made?: CertKey): NextSecret {
  const phase = caPhase(current);
  const generation = (current.generation ?? 0) + 1;
  const base = { ...(current.createdAt ? { createdAt: current.createdAt } : {}), generation };
  if (command === "begin") {
    if (phase !== "steady")
      return { ok: false, reason: `a rotation is already under way (phase ${phase}); run the next step` };
    if (!made) return { ok: false, reason: "begin needs the new CA (a bug)" };
    return { ok: true, secret: { cert: current.cert, key: current.key, ...base, next: made } };
  }
  if (command === "promote") {
    if (!current.next) return { ok: false, reason: `promote follows begin; the phase is ${phase}` };
    return {
      ok: true,
      secret: {
        cert: current.next.cert,
        key: current.next.key,
        previous: { cert: current.cert },
        generation,
      },
    };
  }
  if (!current.previous) return { ok: false, reason: `finish follows promote; the phase is ${phase}` };
  return { ok: true, secret: { cert: current.cert, key: current.key, generation } };
}

/**
 * Whether a read of the CA secret is stale: a lower generation than this node followed, of the same
 * CA lineage (it shares a trusted CA with what was followed). Secrets Manager reads are not
 * guaranteed to see the latest PutSecretValue at once; two phases back, following such a read would
 * trust only a CA the peers no longer present. A secret sharing no CA with what was followed is a
 * replaced CA (the compromise recovery), not a stale read: it is followed.
 */
export function staleCaSecret(
  followed: FollowedCa | null,
  secret: CaSecret,
): { rule: RuleId; detail: string } | null {
  if (followed === null) return null;
  const generation = secret.generation ?? 0;
  if (generation >= followed.generation) return null;
  const trust = trustSet(trustBundle(secret));
  if (!trust.some((f) => followed.trust.includes(f))) return null;
  return {
    rule: "ca-secret-stale",
    detail: `the CA secret read is generation ${generation} (phase ${caPhase(secret)}); this node followed generation ${followed.generation} (phase ${followed.phase}) already`,
  };
}

/**
 * How far (raft entries) a voter's applied index may trail the leader's for the next restart to go
 * ahead: a follower in step trails by the entries in flight, a few; one replaying after its restart
 * trails by everything written while it was down. Well under etcd's 5000 snapshot catch-up entries.
 */
export const CA_RESTART_MAX_LAG = 1000;

/**
 * Whether a rotation can be begun with this many voters: every member must be able to restart in
 * turn (planCaRestart), so with two (a restart of either loses quorum) it would stop at promote for
 * ever. One voter restarts alone (a few seconds without service, nothing to keep).
 */
export function planRotationBegin(
  voters: number,
): { ok: true } | { ok: false; rule: RuleId; detail: string } {
  if (voters === 1 || voters - 1 >= quorumSize(voters)) return { ok: true };
  return {
    ok: false,
    rule: "ca-rotation-too-few-voters",
    detail: `the cluster has ${voters} voting member${voters === 1 ? "" : "s"}: each must restart its etcd once per phase, and a restart of one would leave ${voters - 1}, below the quorum of ${quorumSize(voters)}; scale the group to 3 (or more) first, then run begin again`,
  };
}

export interface RestartObservation {
  /** The bundle the CA secret implies now. */
  wanted: string;
  /** The bundle etcd loaded at its last start (recorded by boot, etcd's ExecStartPre); null: unknown. */
  loaded: string | null;
  /** Voting members and how many of them answer healthy, this one included. */
  voters: number;
  healthyVoters: number;
  selfHealthy: boolean;
  /** The raft applied index of each other voter (null: unknown), and the leader's. */
  applied: Array<{ member: string; applied: string | null }>;
  leaderApplied: string | null;
}

export type RestartDecision =
  | { action: "none"; reason: string }
  | { action: "restart"; reason: string }
  | { action: "hold"; rule: RuleId; detail: string };

/**
 * Whether this node restarts etcd to load the trusted bundle. Only a changed trusted set needs it;
 * then only with every voter healthy and quorum kept while this one is down (one member at a time
 * is the lock's job: the applier takes it before, and checks again under it).
 */
export function planCaRestart(o: RestartObservation): RestartDecision {
  if (o.loaded !== null && sameTrust(o.loaded, o.wanted))
    return { action: "none", reason: "etcd trusts the bundle the CA secret names" };
  if (!o.selfHealthy)
    return {
      action: "hold",
      rule: "ca-restart-quorum",
      detail: "this member is not healthy; its etcd is restarted only from a healthy cluster",
    };
  const after = o.healthyVoters - 1;
  if (o.voters > 1 && (o.healthyVoters < o.voters || after < quorumSize(o.voters)))
    return {
      action: "hold",
      rule: "ca-restart-quorum",
      detail: `${o.healthyVoters} of ${o.voters} voters healthy; a restart now would leave ${after}, quorum is ${quorumSize(o.voters)}`,
    };
  // A member restarted a moment ago names a leader before it has replayed what it missed; the
  // quorum while this one is down would then wait on it (commits stall).
  const behind = o.applied
    .filter(
      (v) =>
        o.leaderApplied === null ||
        v.applied === null ||
        BigInt(o.leaderApplied) - BigInt(v.applied) > BigInt(CA_RESTART_MAX_LAG),
    )
    .map(
      (v) =>
        `${v.member} at applied index ${v.applied ?? "unknown"} of the leader's ${o.leaderApplied ?? "unknown"}`,
    );
  if (o.leaderApplied === null && behind.length === 0) behind.push("the leader's applied index is unknown");
  if (behind.length > 0)
    return {
      action: "hold",
      rule: "ca-restart-catching-up",
      detail: `${behind.join("; ")} (more than ${CA_RESTART_MAX_LAG} entries behind, or unknown)`,
    };
  return {
    action: "restart",
    reason:
      o.loaded === null
        ? "what etcd loaded is not recorded; restart to load the CA secret's bundle"
        : "the trusted CA bundle changed (a CA rotation); etcd reads it only at start",
  };
}

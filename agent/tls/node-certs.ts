// The agent's side of TLS: the cluster CA in Secrets Manager (made once, by whichever node gets
// there first: CreateSecret is the atomic create-if-absent), each node's own certificate issued at
// boot and renewed by `run` with a third of its life left, and the operators' client certificate
// kept by the leader in a second secret the bastion may read. The CA's key is read only to sign,
// and never written to disk or to a log.
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { type AfterStep, Steps } from "../apply/steps.js";
import { type AgentConfig, type TlsConfig, tlsSecretNames } from "../config/config.js";
import { ConfigError, WaitingError } from "../errors.js";
import type { Logger } from "../log.js";
import { memberHostName } from "../planner/dns-plan.js";
import type { Identity } from "../planner/observation.js";
import { hold } from "../planner/rules.js";
import type { CertBundle } from "../ports/cert-files.js";
import type { Ports } from "../ports/index.js";
import { type CaSecret, parseCaSecret, pemCerts, sameTrust, trustBundle } from "./ca-rotation.js";
import { type CertFacts, type CertKey, certFacts, createCa, issue, signedBy } from "./pki.js";

/** The CA's lifetime: ten years; rotating it is a documented manual step (docs/security.md). */
export const CA_DAYS = 3650;
/** Issued certificates start a minute early: clocks across nodes are not exact. */
const SKEW_MS = 60_000;

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined)
    throw new ConfigError(`TLS is on but ${what} is not set up (a bug: createPorts makes it)`);
  return value;
}

/** A renewal is due with a third of the certificate's life left (or less), or once it has expired. */
export function renewalDue(facts: Pick<CertFacts, "notBefore" | "notAfter">, now: Date): boolean {
  const total = facts.notAfter.getTime() - facts.notBefore.getTime();
  return facts.notAfter.getTime() - now.getTime() < total / 3;
}

/** When a certificate's renewal falls due. */
export function renewalAt(facts: Pick<CertFacts, "notBefore" | "notAfter">): Date {
  const total = facts.notAfter.getTime() - facts.notBefore.getTime();
  return new Date(facts.notAfter.getTime() - total / 3);
}

function parsePair(raw: string, secret: string, withCa: boolean): CertKey & { ca?: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    v = null;
  }
  const o = v as Record<string, unknown> | null;
  const ok =
    o !== null &&
    typeof o === "object" &&
    typeof o.cert === "string" &&
    typeof o.key === "string" &&
    o.cert.includes("BEGIN CERTIFICATE") &&
    o.key.includes("PRIVATE KEY") &&
    (!withCa || typeof o.ca === "string");
  if (!ok) {
    throw new ConfigError(
      `secret ${secret} is not what etcd-agent keeps there (JSON with PEM "cert" and "key"${withCa ? ' and "ca"' : ""}); delete it only if no cluster uses it, or point --tls-ca-secret elsewhere`,
    );
  }
  return { cert: o.cert as string, key: o.key as string, ...(withCa ? { ca: o.ca as string } : {}) };
}

/**
 * The steps of making the cluster CA when no node has: made in memory, then stored with the
 * atomic create-if-absent. A crash before the store leaves nothing; after it, the next run reads it.
 */
export const CA_STEPS = ["ca:generate", "ca:store"] as const;

/**
 * The steps of issuing or renewing a node's certificate, in order. The files are written ca, key,
 * cert: a crash between key and cert leaves a pair that does not match, which the next run sees
 * and replaces (a mismatched pair is never kept).
 */
export const NODE_CERT_STEPS = [
  "cert:ca",
  "cert:issue",
  "cert:write-ca",
  "cert:write-key",
  "cert:write-cert",
] as const;

/** Whether `keyPem` is the private key of `certPem`'s public key. */
export function keyMatchesCert(certPem: string, keyPem: string): boolean {
  try {
    const fromCert = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" });
    return fromCert.equals(fromKey);
  } catch {
    return false;
  }
}

/** The cluster CA: read, or made and stored if no node has yet. Two at once: one wins, both use it. */
/** The KMS key both secrets are created under (--tls-secrets-kms-key), or the store's default. */
function secretKeyOptions(tls: TlsConfig): { kmsKeyId?: string } {
  return tls.secretsKmsKey ? { kmsKeyId: tls.secretsKmsKey } : {};
}

export async function ensureCa(
  ports: Ports,
  tls: TlsConfig,
  asgName: string,
  log: Logger,
  options: { afterStep?: AfterStep } = {},
): Promise<CaSecret> {
  const secrets = need(ports.secrets, "the secret store");
  const steps = new Steps(log, options.afterStep);
  const name = tlsSecretNames(tls, asgName).ca;
  let raw = await secrets.get(name);
  if (raw === null) {
    const ca = await steps.run("ca:generate", () =>
      createCa(`etcd-agent CA ${asgName}`, ports.clock.now(), CA_DAYS),
    );
    const body = JSON.stringify({ ...ca, createdAt: ports.clock.now().toISOString() });
    const created = await steps.run("ca:store", () =>
      secrets.createIfAbsent(
        name,
        body,
        `etcd-agent: the CA of the etcd cluster in ${asgName}`,
        secretKeyOptions(tls),
      ),
    );
    if (created) {
      log.warn("created the cluster CA", {
        action: "tls-ca",
        secret: name,
        not_after: certFacts(ca.cert).notAfter.toISOString(),
      });
      return ca;
    }
    raw = await secrets.get(name);
    if (raw === null)
      throw new WaitingError(
        hold(
          "ca-secret-unreadable",
          `secret ${name} exists (CreateSecret said so) but GetSecretValue finds none yet`,
        ),
      );
  }
  const parsed = parseCaSecret(raw);
  if (parsed === null) parsePair(raw, name, false); // throws the message naming the secret
  if (parsed === null)
    throw new ConfigError(
      `secret ${name} holds both "next" and "previous" or a malformed one: a CA rotation's state is broken; restore its previous version (aws secretsmanager get-secret-value --version-stage AWSPREVIOUS)`,
    );
  return parsed;
}

/** Whether `certPem` was signed by any CA of the bundle. */
export function signedByAny(certPem: string, bundle: string): boolean {
  return pemCerts(bundle).some((ca) => signedBy(certPem, ca));
}

/** The names a node's certificate carries: its IP, its A record, the cluster domain. */
export function nodeNames(identity: Pick<Identity, "instanceId" | "privateIp">, domain: string): string[] {
  return [identity.privateIp, memberHostName(identity.instanceId, domain), domain];
}

export type NodeCertOutcome = { kind: "kept" | "issued" | "renewed"; facts: CertFacts; reason: string };

/**
 * This node's certificate: kept while it is signed by the CA beside it, names this node and has more
 * than a third of its life left; otherwise issued from the CA (read from the secret) and written.
 */
export async function ensureNodeCert(
  ports: Ports,
  config: AgentConfig,
  ctx: { identity: Pick<Identity, "instanceId" | "privateIp">; asgName: string },
  log: Logger,
  options: { afterStep?: AfterStep; ca?: CaSecret } = {},
): Promise<NodeCertOutcome> {
  const tls = config.tls;
  if (!tls) throw new ConfigError("ensureNodeCert with --plaintext (a bug)");
  const files = need(ports.certs, "the certificate files");
  const now = ports.clock.now();
  const names = [...new Set([...nodeNames(ctx.identity, config.domain), ...tls.extraNames])];
  const have = await files.read();
  let reason = "no certificate yet";
  if (have !== null) {
    const facts = certFacts(have.cert);
    const missing = names.filter((n) => !facts.names.includes(n));
    if (!signedByAny(have.cert, have.ca)) reason = "the certificate is not signed by the CA beside it";
    else if (options.ca && !signedBy(have.cert, options.ca.cert))
      reason = "the certificate is not signed by the cluster's current CA (a CA rotation)";
    else if (options.ca && !sameTrust(have.ca, trustBundle(options.ca)))
      reason = "the trusted CA bundle changed (a CA rotation)";
    else if (!keyMatchesCert(have.cert, have.key))
      reason = "the key does not match the certificate (an interrupted write)";
    else if (missing.length > 0) reason = `the certificate does not name ${missing.join(", ")}`;
    else if (renewalDue(facts, now))
      reason = `a third or less of its life is left (expires ${facts.notAfter.toISOString()})`;
    else return { kind: "kept", facts, reason: "valid" };
  }
  const steps = new Steps(log, options.afterStep);
  const ca = await steps.run(
    "cert:ca",
    async () => options.ca ?? ensureCa(ports, tls, ctx.asgName, log, options),
  );
  const leaf = await steps.run("cert:issue", () =>
    issue(ca, {
      commonName: ctx.identity.instanceId,
      names,
      usage: "node",
      notBefore: new Date(now.getTime() - SKEW_MS),
      notAfter: new Date(now.getTime() + tls.certLifetimeSeconds * 1000),
    }),
  );
  const bundle: CertBundle = { ca: trustBundle(ca), cert: leaf.cert, key: leaf.key };
  await files.write(bundle, (file) => steps.run(`cert:write-${file}`, async () => {}));
  const facts = certFacts(leaf.cert);
  const kind = have === null ? "issued" : "renewed";
  log.info(kind === "issued" ? "issued this node's certificate" : "renewed this node's certificate", {
    action: "tls-cert",
    reason,
    serial: facts.serial,
    not_after: facts.notAfter.toISOString(),
  });
  return { kind, facts, reason };
}

export const OPERATOR_CN = "etcd-operator";

/**
 * The operators' client certificate in its secret (with the CA's certificate, not its key): made
 * when missing, renewed with a third of its life left. The leader calls this; returns when to look again.
 */
export async function ensureOperatorCert(
  ports: Ports,
  tls: TlsConfig,
  asgName: string,
  log: Logger,
): Promise<Date> {
  const secrets = need(ports.secrets, "the secret store");
  const name = tlsSecretNames(tls, asgName).operator;
  const now = ports.clock.now();
  const raw = await secrets.get(name);
  // Read first: a CA rotation changes the signer and the bundle the operators must trust.
  const ca = await ensureCa(ports, tls, asgName, log);
  if (raw !== null) {
    const have = parsePair(raw, name, true);
    const facts = certFacts(have.cert);
    if (
      signedBy(have.cert, ca.cert) &&
      sameTrust(have.ca as string, trustBundle(ca)) &&
      !renewalDue(facts, now)
    )
      return renewalAt(facts);
  }
  const leaf = await issue(ca, {
    commonName: OPERATOR_CN,
    names: [],
    usage: "client",
    notBefore: new Date(now.getTime() - SKEW_MS),
    notAfter: new Date(now.getTime() + tls.certLifetimeSeconds * 1000),
  });
  const body = JSON.stringify({ ca: trustBundle(ca), cert: leaf.cert, key: leaf.key });
  if (raw === null) {
    const created = await secrets.createIfAbsent(
      name,
      body,
      `etcd-agent: operators' client certificate for ${asgName}`,
      secretKeyOptions(tls),
    );
    if (!created) return now; // another leader made it a moment ago: read it next time
  } else await secrets.put(name, body);
  const facts = certFacts(leaf.cert);
  log.info(
    raw === null ? "issued the operators' client certificate" : "renewed the operators' client certificate",
    {
      action: "tls-operator-cert",
      secret: name,
      serial: facts.serial,
      not_after: facts.notAfter.toISOString(),
    },
  );
  return renewalAt(facts);
}

/** The operators' client certificate, for `etcd-agent client-cert` on the bastion. */
export async function readOperatorCert(ports: Ports, tls: TlsConfig, asgName: string): Promise<CertBundle> {
  const secrets = need(ports.secrets, "the secret store");
  const name = tlsSecretNames(tls, asgName).operator;
  const raw = await secrets.get(name);
  if (raw === null) {
    throw new ConfigError(
      `secret ${name} does not exist yet: the cluster's leader makes it within a cycle of running with TLS; check the cluster is up (systemctl status etcd-agent on a node), or give --tls-operator-secret`,
    );
  }
  const p = parsePair(raw, name, true);
  return { ca: p.ca as string, cert: p.cert, key: p.key };
}

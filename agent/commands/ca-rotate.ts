// `etcd-agent ca-rotate begin|promote|finish|status`: an administrator moves the CA secret one phase
// on (agent/tls/ca-rotation.ts), with credentials that may PutSecretValue on it (no node and not
// the bastion's role may). Each step first checks that every member followed the phase before:
// promote only once every member's etcd accepts a client of the new CA, finish only once every
// member presents a certificate of the new CA and the operators' certificate is one. The checks
// use a short-lived client certificate the command issues itself from the secret, so they do not
// depend on the caller's own files during the rotation.
import type { AgentConfig } from "../config/config.js";
import { tlsSecretNames } from "../config/config.js";
import { ConfigError, RefusedError } from "../errors.js";
import type { Logger } from "../log.js";
import { candidateEndpoints, tryObserveAsg } from "../observe/observe.js";
import { operatorAsgName } from "../observe/operator-group.js";
import type { MemberProbe, ProbeCredentials } from "../ports/etcd-service.js";
import type { Ports } from "../ports/index.js";
import {
  type CaPhase,
  type CaSecret,
  caPhase,
  nextCaSecret,
  planRotationBegin,
  type RotationCommand,
  trustBundle,
} from "../tls/ca-rotation.js";
import { CA_DAYS } from "../tls/node-certs.js";
import { type CertKey, createCa, issue, signedBy } from "../tls/pki.js";
import { readCaSecret } from "../tls/rotate-node.js";

export interface MemberRotationView {
  url: string;
  /** Its etcd accepts a client of the CA being introduced (trust-next only; null otherwise). */
  acceptsNext: boolean | null;
  /** It presents a certificate signed by the CA that signs now. */
  servesSigner: boolean;
}

export interface CaRotateReport {
  secret: string;
  phase: CaPhase;
  /** The phase after this command (the same for status). */
  now: CaPhase;
  members: MemberRotationView[];
  /** The operators' certificate is signed by the CA that signs now. */
  operatorCertCurrent: boolean | null;
}

async function probeClient(ca: CertKey, trust: string, now: Date): Promise<ProbeCredentials> {
  const leaf = await issue(ca, {
    commonName: "etcd-agent-ca-rotate",
    names: [],
    usage: "client",
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 600_000),
  });
  return { trust, cert: leaf.cert, key: leaf.key };
}

async function observeMembers(
  ports: Ports,
  config: AgentConfig,
  asgName: string,
  ca: CaSecret,
  probe: MemberProbe,
  log: Logger,
): Promise<{ members: MemberRotationView[]; voters: number }> {
  const now = ports.clock.now();
  const trust = trustBundle(ca);
  const signer = await probeClient(ca, trust, now);
  const asg = await tryObserveAsg(ports.autoscaling, ports.ec2, asgName, log);
  const endpoints = candidateEndpoints(asg, config.clientPort, config.endpoints, config.scheme);
  const listed = await probe.members(endpoints, signer);
  if (listed === null)
    throw new RefusedError({
      rule: "ca-rotation-not-converged",
      detail: `no member answered at ${endpoints.join(", ") || "(no endpoint: give --endpoints)"}`,
    });
  const urls = listed.flatMap((m) => m.clientUrls);
  const voters = listed.filter((m) => !m.isLearner).length;
  const next = ca.next ? await probeClient(ca.next, trust, now) : null;
  const out: MemberRotationView[] = [];
  for (const url of [...new Set(urls)].sort()) {
    const served = await probe.servedCert(url, signer);
    out.push({
      url,
      acceptsNext: next ? await probe.accepts(url, next) : null,
      servesSigner: served !== null && signedBy(served, ca.cert),
    });
  }
  return { members: out, voters };
}

export async function runCaRotate(
  ports: Ports,
  config: AgentConfig,
  log: Logger,
  step: RotationCommand | "status",
  probe: MemberProbe,
): Promise<CaRotateReport> {
  if (!config.tls || !ports.secrets)
    throw new ConfigError("ca-rotate with --plaintext: a plaintext cluster has no CA");
  const asgName = await operatorAsgName(ports, config);
  const names = tlsSecretNames(config.tls, asgName);
  const ca = await readCaSecret(ports, config, asgName);
  if (ca === null)
    throw new ConfigError(`secret ${names.ca} does not exist: the cluster has no CA yet, nothing to rotate`);
  const phase = caPhase(ca);
  const { members, voters } = await observeMembers(ports, config, asgName, ca, probe, log);
  const opRaw = await ports.secrets.get(names.operator);
  const opCert = opRaw ? (JSON.parse(opRaw) as { cert?: string }).cert : undefined;
  const operatorCertCurrent = opCert ? signedBy(opCert, ca.cert) : null;
  const report = { secret: names.ca, phase, now: phase, members, operatorCertCurrent };
  if (step === "status") return report;

  const refuse = (detail: string) => new RefusedError({ rule: "ca-rotation-not-converged", detail });
  const behind = (pred: (m: MemberRotationView) => boolean) =>
    members
      .filter((m) => !pred(m))
      .map((m) => m.url)
      .join(", ");
  if (step === "promote" && phase === "trust-next" && behind((m) => m.acceptsNext === true) !== "")
    throw refuse(
      `these members' etcd does not trust the new CA yet: ${behind((m) => m.acceptsNext === true)}; each restarts once it holds the restart lock (see its agent's log, action ca-rotation); run promote again then`,
    );
  if (step === "finish" && phase === "sign-next") {
    if (behind((m) => m.servesSigner) !== "")
      throw refuse(
        `these members do not present a certificate of the new CA yet: ${behind((m) => m.servesSigner)}; run finish again after their agents' next look`,
      );
    if (operatorCertCurrent !== true)
      throw refuse(
        `the operators' certificate in ${names.operator} is not signed by the new CA yet; the leader re-issues it within a cycle`,
      );
  }
  if (step === "begin") {
    // Every member restarts its etcd once per phase, in turn: with two voters none can.
    const can = planRotationBegin(voters);
    if (!can.ok) throw new RefusedError({ rule: can.rule, detail: can.detail });
  }
  if (step === "begin" && behind((m) => m.servesSigner) !== "")
    throw refuse(
      `these members do not present a certificate of the current CA: ${behind((m) => m.servesSigner)}`,
    );

  const made =
    step === "begin"
      ? await createCa(
          `etcd-agent CA ${asgName} ${ports.clock.now().toISOString()}`,
          ports.clock.now(),
          CA_DAYS,
        )
      : undefined;
  const next = nextCaSecret(ca, step, made);
  if (!next.ok) throw new RefusedError({ rule: "ca-rotation-not-converged", detail: next.reason });
  await ports.secrets.put(names.ca, JSON.stringify(next.secret));
  log.warn(`CA rotation: ${step}`, {
    action: "ca-rotation",
    secret: names.ca,
    from: phase,
    to: caPhase(next.secret),
  });
  return { ...report, now: caPhase(next.secret) };
}

export function formatCaRotate(r: CaRotateReport): string {
  const lines = [
    `CA secret ${r.secret}: ${r.phase}${r.now !== r.phase ? ` -> ${r.now}` : ""}`,
    ...r.members.map(
      (m) =>
        `  ${m.url}  presents the signing CA's certificate: ${m.servesSigner ? "yes" : "no"}${m.acceptsNext === null ? "" : `  trusts the new CA: ${m.acceptsNext ? "yes" : "no"}`}`,
    ),
    `  operators' certificate of the signing CA: ${r.operatorCertCurrent === null ? "none yet" : r.operatorCertCurrent ? "yes" : "no"}`,
  ];
  return `${lines.join("\n")}\n`;
}

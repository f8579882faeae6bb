// `etcd-agent client-cert`: on the bastion, fetch the operators' client certificate (kept by the
// leader in the secret store) into a directory of files etcdctl and the agent's own commands use.
import type { AgentConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import { operatorAsgName } from "../observe/operator-group.js";
import type { Ports } from "../ports/index.js";

export interface ClientCertFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The directory the files go to: `--out`, else ~/.etcd-agent/tls. */
export function clientCertDir(out: unknown, home: string | undefined): string {
  return typeof out === "string" ? out : `${home ?? "/root"}/.etcd-agent/tls`;
}

/** Writes ca.crt, client.crt and client.key into `out` (an absolute path); returns their paths. */
export async function runClientCert(
  ports: Ports,
  config: AgentConfig,
  out: string,
  /** With --issuer-url: a certificate in the caller's own name from the issuer, not the shared one. */
  issuer?: { url: unknown; hours: unknown; region: string | null },
): Promise<ClientCertFiles> {
  if (!config.tls)
    throw new ConfigError("client-cert with --plaintext: a plaintext cluster has no certificates");
  const { readOperatorCert } = await import("../tls/node-certs.js");
  const { LocalCertFiles } = await import("../adapters/local-disk.js");
  if (!out.startsWith("/"))
    throw new ConfigError(`--out must be an absolute path, got ${JSON.stringify(out)}`);
  const bundle = issuer
    ? await (await import("../tls/issuer-client.js")).issueForCaller(issuer.url, issuer.hours, issuer.region)
    : await readOperatorCert(ports, config.tls, await operatorAsgName(ports, config));
  const files = {
    caFile: `${out}/ca.crt`,
    certFile: `${out}/client.crt`,
    keyFile: `${out}/client.key`,
  };
  await new LocalCertFiles(files).write(bundle);
  return files;
}

export function formatClientCert(out: string, files: ClientCertFiles): string {
  return `wrote ${out}/{ca.crt,client.crt,client.key}; use them with\n  export ETCD_AGENT_TLS_CA_FILE=${files.caFile} ETCD_AGENT_TLS_CERT_FILE=${files.certFile} ETCD_AGENT_TLS_KEY_FILE=${files.keyFile}\n`;
}

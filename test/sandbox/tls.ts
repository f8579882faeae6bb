// TLS in the sandbox. The first node's boot makes the cluster CA in moto's Secrets Manager and the
// leader makes the operators' certificate; the sandbox only reads them. Its own probes (the
// hypervisor's health checks, the tests' observers, the continuous writer) use a client
// certificate it issues from the CA as the test harness: the god's-eye view, as the hypervisor is.
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { LocalCertFiles } from "../../agent/adapters/local-disk.js";
import { parseCaSecret, trustBundle } from "../../agent/tls/ca-rotation.js";
import { issue } from "../../agent/tls/pki.js";
import type { World } from "./world.js";

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

function secrets(world: World): SecretsManagerClient {
  return new SecretsManagerClient({
    endpoint: world.endpoint,
    region: world.region,
    credentials: { accessKeyId: "sandbox", secretAccessKey: "sandbox" },
  });
}

async function readSecret(world: World, name: string): Promise<Record<string, string> | null> {
  const client = secrets(world);
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: name }));
    return JSON.parse(out.SecretString ?? "null") as Record<string, string>;
  } catch (error) {
    if ((error as Error).name === "ResourceNotFoundException") return null;
    throw error;
  }
}

export function filesIn(dir: string, leaf: string): TlsFiles {
  return { caFile: `${dir}/ca.crt`, certFile: `${dir}/${leaf}.crt`, keyFile: `${dir}/${leaf}.key` };
}

/**
 * The harness's client certificate, once a node has made the CA; false while there is none yet.
 * Signed by the CA that signs now and trusting the bundle the CA secret's phase names (a CA
 * rotation's scenario issues it again after each step).
 */
export async function harnessCert(world: World, dir: string): Promise<boolean> {
  const raw = await readSecret(world, `etcd-agent/${world.asgName}/ca`);
  const ca = raw === null ? null : parseCaSecret(JSON.stringify(raw));
  if (ca === null) return false;
  const now = Date.now();
  const leaf = await issue(
    { cert: ca.cert, key: ca.key },
    {
      commonName: "etcd-sandbox-harness",
      names: [],
      usage: "client",
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 7 * 86_400_000),
    },
  );
  await new LocalCertFiles(filesIn(dir, "client")).write({
    ca: trustBundle(ca),
    cert: leaf.cert,
    key: leaf.key,
  });
  return true;
}

/** The operators' client certificate the leader keeps, written to `dir`; waits for it up to `ms`. */
export async function operatorCert(world: World, dir: string, ms: number): Promise<TlsFiles> {
  const deadline = Date.now() + ms;
  for (;;) {
    const op = await readSecret(world, `etcd-agent/${world.asgName}/operator`);
    if (op?.ca && op.cert && op.key) {
      const files = filesIn(dir, "client");
      await new LocalCertFiles(files).write({ ca: op.ca, cert: op.cert, key: op.key });
      return files;
    }
    if (Date.now() > deadline)
      throw new Error(`no operator certificate in etcd-agent/${world.asgName}/operator after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

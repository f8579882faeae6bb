// The binary as an operator on the bastion runs it, against a sandbox.
import { spawn } from "node:child_process";
import { AGENT_BINARY } from "../sandbox/node-process.js";
import type { Sandbox } from "../sandbox/sandbox.js";

export interface BinaryRun {
  code: number | null;
  out: string;
  err: string;
}

/**
 * The shipped binary with only PATH and `env`, its output collected. Asynchronous: the sandbox's
 * AWS proxy lives in this process and must answer while the binary runs.
 */
export function runAgentBinary(args: string[], env: NodeJS.ProcessEnv): Promise<BinaryRun> {
  return new Promise((resolve) => {
    const child = spawn(AGENT_BINARY, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: "/usr/bin:/bin", ...env },
    });
    let out = "";
    let err = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** The AWS side of an operator's environment against the sandbox (the proxy, the group, the zone). */
export function operatorAwsEnv(sandbox: Sandbox): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL: sandbox.gaps.url,
    AWS_REGION: sandbox.world.region,
    AWS_ACCESS_KEY_ID: "operator",
    AWS_SECRET_ACCESS_KEY: "operator",
    ETCD_AGENT_DOMAIN: sandbox.world.domain,
    ETCD_AGENT_HOSTED_ZONE_ID: sandbox.world.hostedZoneId,
    ETCD_AGENT_ASG_NAME: sandbox.world.asgName,
  };
}

/** The binary as an operator on the bastion runs it, with the operators' certificate, with --json. */
export async function operatorAgent(sandbox: Sandbox, endpoint: string, args: string[]): Promise<BinaryRun> {
  // The operators' certificate the leader keeps in its secret, as `etcd-agent client-cert` fetches it.
  const tls = await sandbox.operatorTls();
  return runAgentBinary([...args, "--json"], {
    ...operatorAwsEnv(sandbox),
    ETCD_AGENT_ENDPOINTS: endpoint,
    ETCD_AGENT_BACKUP_BUCKET: sandbox.world.backupBucket,
    ETCD_AGENT_BACKUP_S3_PATH_STYLE: "true",
    ...(tls
      ? {
          ETCD_AGENT_TLS_CA_FILE: tls.caFile,
          ETCD_AGENT_TLS_CERT_FILE: tls.certFile,
          ETCD_AGENT_TLS_KEY_FILE: tls.keyFile,
        }
      : { ETCD_AGENT_PLAINTEXT: "true" }),
  });
}

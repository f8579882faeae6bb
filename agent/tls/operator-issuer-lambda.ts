// The issuer's Lambda entry (bundled by infra/lib/operator-cert-issuer.ts): the CA secret through
// the SDK the Node runtime provides, the log to stdout (the function's log group), the rest in
// operator-issuer.ts.
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { type FunctionUrlEvent, type FunctionUrlResult, handleIssue } from "./operator-issuer.js";

const client = new SecretsManagerClient({});
const secretId = process.env.ETCD_AGENT_CA_SECRET ?? "";

async function readCaSecret(): Promise<string | null> {
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    return out.SecretString ?? null;
  } catch (e) {
    if (e instanceof ResourceNotFoundException) return null;
    throw e;
  }
}

export function handler(event: FunctionUrlEvent): Promise<FunctionUrlResult> {
  return handleIssue(event, {
    readCaSecret,
    now: () => new Date(),
    log: (record) => process.stdout.write(`${JSON.stringify(record)}\n`),
  });
}

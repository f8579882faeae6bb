// client-cert's options for the operators' certificate issuer (agent/tls/issuer-client.ts), kept
// apart from the client so that defining the command loads no signer.
import type { Argv } from "yargs";

export function withIssuerOptions<T>(y: Argv<T>) {
  return y
    .option("issuer-url", {
      type: "string",
      requiresArg: true,
      describe:
        "the operators' certificate issuer (output OperatorCertIssuerUrl): a certificate in your own name, signed with your AWS credentials, instead of the shared one",
    })
    .option("hours", {
      type: "string",
      requiresArg: true,
      describe: "with --issuer-url: 1 to 12 (default 8)",
    });
}

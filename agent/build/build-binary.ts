// npm run build:binary: bundle the agent with esbuild and build a Node single executable for
// linux-x64 and linux-arm64 (dist/etcd-agent-linux-<arch>).
//
// etcd3 reads its .proto files from disk when it loads (`loadSync(__dirname + "/../proto/rpc.proto")`),
// which a single file cannot do. The bundle replaces that call with `fromJSON(...)` over the same
// definitions, parsed here at build time by protobufjs, so the binary needs nothing beside it.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";
import protobuf from "protobufjs";
import { checkNodeBinary, SEA_NODE_VERSION } from "./node-version.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DIST = join(ROOT, "dist");
const CACHE = join(ROOT, ".cache", "node-sea");
const BUNDLE = join(DIST, "bundle", "etcd-agent.cjs");
const ARCHES = ["x64", "arm64"] as const;
type Arch = (typeof ARCHES)[number];
const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const require = createRequire(import.meta.url);

function log(msg: string): void {
  process.stdout.write(`build:binary: ${msg}\n`);
}

/** etcd3's proto definitions as JSON, for @grpc/proto-loader's fromJSON. */
function etcdProtoJson(): string {
  const proto = join(dirname(require.resolve("etcd3/package.json")), "proto", "rpc.proto");
  const root = new protobuf.Root();
  root.loadSync(proto, { keepCase: true });
  return JSON.stringify(root.toJSON());
}

function embedEtcdProtos(): Plugin {
  const json = etcdProtoJson();
  return {
    name: "embed-etcd3-protos",
    setup(b) {
      b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
        const source = readFileSync(args.path, "utf8");
        const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`,/;
        if (!call.test(source)) {
          throw new Error(
            `etcd3 no longer loads its protos the way this build expects; update ${fileURLToPath(import.meta.url)}`,
          );
        }
        return { contents: source.replace(call, `(0, proto_loader_1.fromJSON)(${json},`), loader: "js" };
      });
    },
  };
}

function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

async function bundle(): Promise<void> {
  mkdirSync(dirname(BUNDLE), { recursive: true });
  await build({
    entryPoints: [join(ROOT, "agent/sea-main.ts")],
    outfile: BUNDLE,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "cjs",
    minify: true,
    keepNames: true,
    sourcemap: false,
    legalComments: "none",
    plugins: [embedEtcdProtos()],
    // ESM dependencies (yargs) ask for import.meta.url; in the CommonJS bundle it is the binary.
    define: {
      "import.meta.url": "__etcdAgentImportMetaUrl",
      __ETCD_AGENT_COMMIT__: JSON.stringify(gitCommit()),
    },
    banner: { js: 'var __etcdAgentImportMetaUrl = require("url").pathToFileURL(__filename).href;' },
    logLevel: "warning",
  });
  log(`bundle ${BUNDLE} (${(statSync(BUNDLE).size / 1024).toFixed(0)} KiB)`);
}

/** The node binary of this arch from the registry package, fetched with npm pack and cached. */
function nodeBinary(arch: Arch): string {
  const dir = join(CACHE, `${arch}-${SEA_NODE_VERSION}`);
  const bin = join(dir, "package", "bin", "node");
  if (existsSync(bin)) {
    checkNodeBinary(bin, arch);
    return bin;
  }
  mkdirSync(dir, { recursive: true });
  const pkg = `node-linux-${arch}@${SEA_NODE_VERSION}`;
  log(`npm pack ${pkg}`);
  const tgz = execFileSync("npm", ["pack", pkg, "--silent", "--pack-destination", dir], { encoding: "utf8" })
    .trim()
    .split("\n")
    .pop();
  if (!tgz) throw new Error(`npm pack ${pkg} printed no file name`);
  execFileSync("tar", ["xzf", join(dir, tgz), "-C", dir, "package/bin/node"]);
  rmSync(join(dir, tgz));
  checkNodeBinary(bin, arch);
  return bin;
}

function seaBlob(hostNode: string, useCodeCache: boolean, out: string): void {
  const config = join(DIST, "bundle", `sea-config-${useCodeCache ? "cache" : "plain"}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      main: BUNDLE,
      output: out,
      disableExperimentalSEAWarning: true,
      useCodeCache,
      useSnapshot: false,
      // Ends Node's options: without it Node reads --env-file anywhere in the arguments, the
      // agent's own --env-file too (a missing file exits 9 before the agent runs). Node 24.6+.
      execArgv: ["--"],
    }),
  );
  execFileSync(hostNode, ["--experimental-sea-config", config], { stdio: "pipe" });
}

/** llvm-strip reads both architectures; GNU strip only the host's. */
function stripTool(): string | null {
  for (const tool of ["llvm-strip", "llvm-strip-14"]) {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
      return tool;
    } catch {
      // try the next one
    }
  }
  return null;
}

function inject(nodeBin: string, blob: string, out: string): void {
  rmSync(out, { force: true });
  copyFileSync(nodeBin, out);
  chmodSync(out, 0o755);
  // Node's release binaries carry their symbols and debug info (about 18 MB); the agent needs
  // neither. Strip before injecting: stripping after would drop the injected blob.
  const strip = stripTool();
  if (strip) execFileSync(strip, ["--strip-all", out]);
  else log(`no llvm-strip here: ${out} keeps Node's symbols`);
  const postject = join(dirname(require.resolve("postject/package.json")), "dist", "cli.js");
  execFileSync(process.execPath, [postject, out, "NODE_SEA_BLOB", blob, "--sentinel-fuse", FUSE], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  await bundle();
  // The x64 node runs here, so it makes the blobs. A code cache is specific to the V8 build and
  // CPU it was made on, so only the x64 binary gets one; the arm64 blob is plain.
  const hostNode = nodeBinary("x64");
  const blobs: Record<Arch, string> = {
    x64: join(DIST, "bundle", "x64.blob"),
    arm64: join(DIST, "bundle", "arm64.blob"),
  };
  seaBlob(hostNode, true, blobs.x64);
  seaBlob(hostNode, false, blobs.arm64);
  for (const arch of ARCHES) {
    const out = join(DIST, `etcd-agent-linux-${arch}`);
    inject(nodeBinary(arch), blobs[arch], out);
    const sha512 = createHash("sha512").update(readFileSync(out)).digest("hex");
    writeFileSync(`${out}.sha512`, `${sha512}  etcd-agent-linux-${arch}\n`);
    log(`${out} ${(statSync(out).size / 1024 / 1024).toFixed(1)} MiB sha512 ${sha512.slice(0, 16)}...`);
  }
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

await main();

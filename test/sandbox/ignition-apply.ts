// A small Ignition applier for the sandbox's machines: what Ignition's files stage does with the
// parts of spec 3.3.0 that ignition/render.ts uses (users, directories, files fetched and verified
// by sha512, systemd units, drop-ins, enablement), against a root directory. Debian ships only
// ignition-validate (no `ignition` binary to run the files stage), hence this; it refuses any field
// it does not implement instead of skipping it, so a config it applies is one it fully understood.
// test/node-config/ignition-apply.test.ts runs it on configs ignition-validate accepts.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

export class IgnitionApplyError extends Error {
  override name = "IgnitionApplyError";
}

/** Fetches a remote source (s3://, https://) and returns its bytes. */
export type SourceFetcher = (url: string) => Promise<Buffer>;

interface User {
  name: string;
  system?: boolean;
  noCreateHome?: boolean;
  homeDir?: string;
  shell?: string;
}
interface Owner {
  id?: number;
  name?: string;
}
interface Group {
  name: string;
  system?: boolean;
}
interface Directory {
  path: string;
  mode?: number;
  user?: Owner;
  group?: Owner;
}
interface File {
  path: string;
  mode?: number;
  user?: Owner;
  group?: Owner;
  overwrite?: boolean;
  contents?: { source?: string; verification?: { hash?: string } };
}
interface Unit {
  name: string;
  enabled?: boolean;
  mask?: boolean;
  contents?: string;
  dropins?: Array<{ name: string; contents?: string }>;
}

const KNOWN: Record<string, readonly string[]> = {
  top: ["ignition", "passwd", "storage", "systemd"],
  ignition: ["version"],
  passwd: ["users", "groups"],
  group: ["name", "system"],
  owner: ["id", "name"],
  user: ["name", "system", "noCreateHome", "homeDir", "shell"],
  storage: ["directories", "files"],
  directory: ["path", "mode", "user", "group"],
  file: ["path", "mode", "overwrite", "contents", "user", "group"],
  contents: ["source", "verification"],
  systemd: ["units"],
  unit: ["name", "enabled", "mask", "contents", "dropins"],
  dropin: ["name", "contents"],
};

function only(kind: string, value: object, where: string): void {
  for (const key of Object.keys(value)) {
    if (!KNOWN[kind]?.includes(key))
      throw new IgnitionApplyError(
        `${where}: field ${JSON.stringify(key)} is not implemented by the sandbox's applier (it knows ${KNOWN[kind]?.join(", ")}); extend test/sandbox/ignition-apply.ts`,
      );
  }
}

function inRoot(root: string, path: string): string {
  if (!path.startsWith("/") || path.split("/").includes(".."))
    throw new IgnitionApplyError(`path ${JSON.stringify(path)} must be absolute and without ..`);
  return join(root, path);
}

async function contentsOf(file: File, fetch: SourceFetcher): Promise<Buffer> {
  const source = file.contents?.source;
  let data: Buffer;
  if (source === undefined) data = Buffer.alloc(0);
  else if (source.startsWith("data:,")) data = Buffer.from(decodeURIComponent(source.slice(6)), "utf8");
  else if (/^data:[^,]*;base64,/.test(source))
    data = Buffer.from(source.slice(source.indexOf(",") + 1), "base64");
  else if (/^(s3|https?):\/\//.test(source)) data = await fetch(source);
  else
    throw new IgnitionApplyError(`${file.path}: source ${JSON.stringify(source.slice(0, 40))} not supported`);
  const hash = file.contents?.verification?.hash;
  if (hash !== undefined) {
    const m = /^sha512-([0-9a-f]{128})$/.exec(hash);
    if (!m)
      throw new IgnitionApplyError(
        `${file.path}: verification hash ${JSON.stringify(hash)} is not sha512-<hex>`,
      );
    const got = createHash("sha512").update(data).digest("hex");
    if (got !== m[1])
      throw new IgnitionApplyError(
        `${file.path}: sha512 of ${source} is ${got.slice(0, 16)}..., the config says ${m[1]?.slice(0, 16)}...: refused, as Ignition does`,
      );
  }
  return data;
}

/** The numeric ID of a user or group given by name or id, looked up in the root's /etc files. */
function idOf(root: string, file: "passwd" | "group", owner: Owner | undefined, where: string): number {
  if (owner === undefined) return 0;
  only("owner", owner, where);
  if (owner.id !== undefined) return owner.id;
  const line = readFileSync(join(root, "etc", file), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${owner.name}:`));
  if (!line)
    throw new IgnitionApplyError(
      `${where}: no ${file === "passwd" ? "user" : "group"} ${JSON.stringify(owner.name)} in the root's /etc/${file}`,
    );
  return Number(line.split(":")[2]);
}

function own(root: string, path: string, entry: { user?: Owner; group?: Owner }, where: string): void {
  chownSync(
    path,
    idOf(root, "passwd", entry.user, `${where}.user`),
    idOf(root, "group", entry.group, `${where}.group`),
  );
}

/** Applies an Ignition config to `root` as Ignition's files stage would on first boot. */
export async function applyIgnition(config: unknown, root: string, fetch: SourceFetcher): Promise<void> {
  const c = config as {
    ignition?: { version?: string };
    passwd?: { users?: User[]; groups?: Group[] };
    storage?: { directories?: Directory[]; files?: File[] };
    systemd?: { units?: Unit[] };
  };
  only("top", c, "config");
  only("ignition", c.ignition ?? {}, "ignition");
  if (c.ignition?.version !== "3.3.0")
    throw new IgnitionApplyError(
      `ignition.version must be 3.3.0, got ${JSON.stringify(c.ignition?.version)}`,
    );
  only("passwd", c.passwd ?? {}, "passwd");
  for (const g of c.passwd?.groups ?? []) {
    only("group", g, `passwd.groups[${g.name}]`);
    const groups = readFileSync(join(root, "etc/group"), "utf8");
    if (groups.split("\n").some((l) => l.startsWith(`${g.name}:`))) continue;
    execFileSync("groupadd", ["--root", root, ...(g.system ? ["--system"] : []), g.name], { stdio: "pipe" });
  }
  for (const u of c.passwd?.users ?? []) {
    only("user", u, `passwd.users[${u.name}]`);
    const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
    if (passwd.split("\n").some((l) => l.startsWith(`${u.name}:`))) continue;
    execFileSync(
      "useradd",
      [
        "--root",
        root,
        ...(u.system ? ["--system"] : []),
        u.noCreateHome ? "--no-create-home" : "--create-home",
        ...(u.homeDir ? ["--home-dir", u.homeDir] : []),
        ...(u.shell ? ["--shell", u.shell] : []),
        "--user-group",
        u.name,
      ],
      { stdio: "pipe" },
    );
  }
  only("storage", c.storage ?? {}, "storage");
  for (const d of c.storage?.directories ?? []) {
    only("directory", d, `storage.directories[${d.path}]`);
    const p = inRoot(root, d.path);
    mkdirSync(p, { recursive: true });
    chmodSync(p, d.mode ?? 0o755);
    own(root, p, d, `storage.directories[${d.path}]`);
  }
  for (const f of c.storage?.files ?? []) {
    only("file", f, `storage.files[${f.path}]`);
    only("contents", f.contents ?? {}, `storage.files[${f.path}].contents`);
    const p = inRoot(root, f.path);
    if (existsSync(p) && !f.overwrite)
      throw new IgnitionApplyError(`${f.path} exists and overwrite is false: Ignition fails here too`);
    const data = await contentsOf(f, fetch);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, data);
    chmodSync(p, f.mode ?? 0o644);
    own(root, p, f, `storage.files[${f.path}]`);
  }
  only("systemd", c.systemd ?? {}, "systemd");
  const enable: string[] = [];
  for (const u of c.systemd?.units ?? []) {
    only("unit", u, `systemd.units[${u.name}]`);
    const dir = join(root, "etc/systemd/system");
    mkdirSync(dir, { recursive: true });
    if (u.contents !== undefined) writeFileSync(join(dir, u.name), u.contents, { mode: 0o644 });
    for (const d of u.dropins ?? []) {
      only("dropin", d, `systemd.units[${u.name}].dropins[${d.name}]`);
      mkdirSync(join(dir, `${u.name}.d`), { recursive: true });
      writeFileSync(join(dir, `${u.name}.d`, d.name), d.contents ?? "", { mode: 0o644 });
    }
    if (u.mask) symlinkSync("/dev/null", join(dir, u.name));
    if (u.enabled) enable.push(u.name);
  }
  // Ignition writes a preset that systemd applies on first boot; `systemctl --root enable` makes
  // the same links (the [Install] section of each unit, the OS's own for etcd-member.service).
  if (enable.length > 0) execFileSync("systemctl", ["--root", root, "enable", ...enable], { stdio: "pipe" });
}

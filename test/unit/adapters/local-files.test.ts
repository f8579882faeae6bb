// The node's files as etcd and the agent's two units need them (#14): the certificate directory
// and key readable by etcd's group and owned by the agent's user, whoever writes them (boot runs
// as root, run as etcd-agent); the agent's state files given to its user; users and groups found
// where Flatcar and Fedora CoreOS keep them. Owners are numbers passed in (the suite runs as root).
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCertFiles, LocalDisk, lookupId } from "../../../agent/adapters/local-disk.js";
import { ConfigError } from "../../../agent/errors.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-local-files-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const AGENT_UID = 4242; // the etcd-agent user
const ETCD_GID = 232; // Flatcar's etcd group
const bundle = { ca: "CA PEM\n", cert: "CERT PEM\n", key: "KEY PEM\n" };

let seq = 0;
function tlsDir() {
  const dir = join(root, `n${++seq}`, "tls");
  return { dir, files: { caFile: `${dir}/ca.crt`, certFile: `${dir}/node.crt`, keyFile: `${dir}/node.key` } };
}
const modeOf = (p: string) => statSync(p).mode & 0o7777;
const ownerOf = (p: string) => ({ uid: statSync(p).uid, gid: statSync(p).gid });

describe("the node's certificate files", () => {
  it("shared with etcd's group: directory 0750, key 0640, certificates 0644, all owned by the agent's user and etcd's group", async () => {
    const { dir, files } = tlsDir();
    await new LocalCertFiles(files, { owner: AGENT_UID, group: ETCD_GID }).write(bundle);
    expect(modeOf(dir)).toBe(0o750);
    expect(modeOf(files.keyFile)).toBe(0o640);
    expect(modeOf(files.certFile)).toBe(0o644);
    expect(modeOf(files.caFile)).toBe(0o644);
    for (const p of [dir, files.keyFile, files.certFile, files.caFile]) {
      expect({ path: p, ...ownerOf(p) }).toEqual({ path: p, uid: AGENT_UID, gid: ETCD_GID });
    }
    expect(await new LocalCertFiles(files).read()).toEqual(bundle);
  });

  it("a directory an older agent made root 0700 is opened to etcd's group at the next write", async () => {
    const { dir, files } = tlsDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(files.keyFile, "old", { mode: 0o600 });
    await new LocalCertFiles(files, { owner: AGENT_UID, group: ETCD_GID }).write(bundle);
    expect({ mode: modeOf(dir), ...ownerOf(dir) }).toEqual({ mode: 0o750, uid: AGENT_UID, gid: ETCD_GID });
    expect({ mode: modeOf(files.keyFile), ...ownerOf(files.keyFile) }).toEqual({
      mode: 0o640,
      uid: AGENT_UID,
      gid: ETCD_GID,
    });
  });

  it("without a reading group (a bastion, the sandbox): private, directory 0700 and key 0600", async () => {
    const { dir, files } = tlsDir();
    await new LocalCertFiles(files).write(bundle);
    expect(modeOf(dir)).toBe(0o700);
    expect(modeOf(files.keyFile)).toBe(0o600);
    expect(ownerOf(files.keyFile)).toEqual({ uid: process.getuid?.(), gid: process.getgid?.() });
  });
});

describe("the agent's state files", () => {
  it("boot (root) gives state.json and memory.json to the agent's user, who reads them in run", async () => {
    const dir = join(root, `s${++seq}`);
    const disk = new LocalDisk({
      dataDir: join(dir, "data"),
      stateDir: join(dir, "state"),
      envFile: join(dir, "etcd.env"),
      clock: { now: () => new Date(), sleep: async () => {} },
      owner: { uid: AGENT_UID, gid: AGENT_UID },
    });
    await disk.writeState({ clusterToken: "t", memberId: null, name: "i-1", updatedAt: "" });
    await disk.writeMemory({ v: 1 });
    for (const f of ["state.json", "memory.json"]) {
      const p = join(dir, "state", f);
      expect({ f, mode: modeOf(p), ...ownerOf(p) }).toEqual({
        f,
        mode: 0o600,
        uid: AGENT_UID,
        gid: AGENT_UID,
      });
    }
  });
});

describe("users and groups, where each OS keeps them", () => {
  const db = join(root, "db");
  mkdirSync(db, { recursive: true });
  // /etc/passwd holds only local users on Flatcar; its system users (etcd) are in /usr/share/baselayout.
  writeFileSync(
    join(db, "etc-passwd"),
    "root:x:0:0::/root:/bin/bash\netcd-agent:x:998:997::/:/sbin/nologin\n",
  );
  writeFileSync(join(db, "baselayout-passwd"), "etcd:x:232:232::/dev/null:/sbin/nologin\n");
  writeFileSync(join(db, "etc-group"), "root:x:0:\netcd-agent:x:997:\n");
  writeFileSync(join(db, "baselayout-group"), "etcd:x:232:\ndocker:x:233:core\n");
  const passwd = [join(db, "etc-passwd"), join(db, "baselayout-passwd"), join(db, "missing")];
  const group = [join(db, "etc-group"), join(db, "baselayout-group")];

  it("a name in any of the files, or a number as it is", () => {
    expect(lookupId("user", "etcd-agent", "--file-owner", passwd)).toBe(998);
    expect(lookupId("user", "etcd", "--file-owner", passwd)).toBe(232);
    expect(lookupId("group", "etcd", "--tls-group", group)).toBe(232);
    expect(lookupId("group", "1234", "--tls-group", group)).toBe(1234);
  });

  it("an unknown name: a ConfigError naming the option, the value and the files read", () => {
    expect(() => lookupId("group", "etcdd", "--tls-group", group)).toThrow(ConfigError);
    expect(() => lookupId("group", "etcdd", "--tls-group", group)).toThrow(
      /--tls-group "etcdd" is not a group in .*etc-group, .*baselayout-group/,
    );
  });
});

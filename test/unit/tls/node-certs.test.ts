// The agent's certificates: the CA made once (a race of two nodes: one creates, both use it), a
// node's certificate kept, renewed or reissued for the right reasons, the operators' certificate,
// and TLS settings refused with the value and the fix.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../agent/config/config.js";
import { WaitingError } from "../../../agent/errors.js";
import { exitNameFor } from "../../../agent/exit-codes.js";
import { createLogger } from "../../../agent/log.js";
import type { CertBundle, CertFiles } from "../../../agent/ports/cert-files.js";
import type { Ports } from "../../../agent/ports/index.js";
import type { SecretStore } from "../../../agent/ports/secrets.js";
import {
  ensureCa,
  ensureNodeCert,
  ensureOperatorCert,
  readOperatorCert,
  renewalDue,
} from "../../../agent/tls/node-certs.js";
import { certFacts, signedBy } from "../../../agent/tls/pki.js";

class MapSecrets implements SecretStore {
  readonly values = new Map<string, string>();
  /** The KMS key each secret was created under (null: Secrets Manager's own). */
  readonly keys = new Map<string, string | null>();
  creates = 0;
  async get(name: string) {
    return this.values.get(name) ?? null;
  }
  async createIfAbsent(name: string, value: string, _description: string, options?: { kmsKeyId?: string }) {
    this.creates++;
    if (this.values.has(name)) return false;
    this.values.set(name, value);
    this.keys.set(name, options?.kmsKeyId ?? null);
    return true;
  }
  async put(name: string, value: string) {
    if (!this.values.has(name)) throw new Error(`no ${name}`);
    this.values.set(name, value);
  }
}

class MemFiles implements CertFiles {
  bundle: CertBundle | null = null;
  writes = 0;
  async read() {
    return this.bundle;
  }
  async write(b: CertBundle) {
    this.writes++;
    this.bundle = b;
  }
}

const config = parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST", tlsCertLifetimeSeconds: 3000 });
const tls = config.tls as NonNullable<typeof config.tls>;
const identity = { instanceId: "i-0abc", privateIp: "127.0.1.5" };
const ctx = { identity, asgName: "etcd" };
const log = createLogger({ write: () => true } as never);

function ports(secrets: MapSecrets, files: MemFiles, now: () => Date): Ports {
  return { secrets, certs: files, clock: { now } } as unknown as Ports;
}

describe("the cluster CA", () => {
  it("two nodes at once: one creates it, the other reads the same one", async () => {
    const secrets = new MapSecrets();
    const now = () => new Date();
    // Both read "absent" before either creates: the slower one's CreateSecret loses.
    const a = ports(secrets, new MemFiles(), now);
    const b = ports(secrets, new MemFiles(), now);
    const [ca1, ca2] = await Promise.all([ensureCa(a, tls, "etcd", log), ensureCa(b, tls, "etcd", log)]);
    expect(secrets.creates).toBe(2);
    expect([...secrets.values.keys()]).toEqual(["etcd-agent/etcd/ca"]);
    const stored = JSON.parse(secrets.values.get("etcd-agent/etcd/ca") as string);
    expect(new Set([ca1.cert, ca2.cert, stored.cert]).size).toBe(1);
  });

  it("CreateSecret says it exists, GetSecretValue finds none (Secrets Manager is eventually consistent): waiting, rule ca-secret-unreadable", async () => {
    const secrets = new MapSecrets();
    secrets.createIfAbsent = async () => false;
    const error = await ensureCa(
      ports(secrets, new MemFiles(), () => new Date()),
      tls,
      "etcd",
      log,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitingError);
    expect(exitNameFor(error)).toBe("WAITING");
    expect((error as WaitingError).hold.rule).toBe("ca-secret-unreadable");
    expect((error as Error).message).toContain("etcd-agent/etcd/ca");
  });

  it("refuses a secret that is not ours, naming it and the way out", async () => {
    const secrets = new MapSecrets();
    secrets.values.set("etcd-agent/etcd/ca", "hunter2");
    await expect(
      ensureCa(
        ports(secrets, new MemFiles(), () => new Date()),
        tls,
        "etcd",
        log,
      ),
    ).rejects.toThrow(/secret etcd-agent\/etcd\/ca is not what etcd-agent keeps there .* --tls-ca-secret/);
  });
});

describe("a node's certificate", () => {
  it("issued with the node's names, kept while valid, renewed with a third of its life left", async () => {
    const secrets = new MapSecrets();
    const files = new MemFiles();
    let t = Date.parse("2026-11-22T12:00:00Z");
    const p = ports(secrets, files, () => new Date(t));

    const first = await ensureNodeCert(p, config, ctx, log);
    expect(first.kind).toBe("issued");
    expect(first.facts.names).toEqual(["127.0.1.5", "i-0abc.etcd.test", "etcd.test"]);
    expect(signedBy(files.bundle?.cert as string, files.bundle?.ca as string)).toBe(true);
    // The CA's key is never among the files.
    const caKey = JSON.parse(secrets.values.get("etcd-agent/etcd/ca") as string).key as string;
    expect(JSON.stringify(files.bundle)).not.toContain(caKey.split("\n")[1]);

    t += 1900_000; // 1,900 s of 3,000 (+60 s of skew allowance): more than a third left
    expect((await ensureNodeCert(p, config, ctx, log)).kind).toBe("kept");
    expect(files.writes).toBe(1);

    t += 200_000; // about a third left: renewed
    const renewed = await ensureNodeCert(p, config, ctx, log);
    expect(renewed.kind).toBe("renewed");
    expect(renewed.reason).toMatch(/a third or less of its life is left/);
    expect(renewed.facts.serial).not.toBe(first.facts.serial);
  });

  it("reissued at once for a new IP, or a certificate another CA signed", async () => {
    const secrets = new MapSecrets();
    const files = new MemFiles();
    const p = ports(secrets, files, () => new Date());
    await ensureNodeCert(p, config, ctx, log);
    const moved = await ensureNodeCert(
      p,
      config,
      { ...ctx, identity: { ...identity, privateIp: "127.0.1.9" } },
      log,
    );
    expect(moved).toMatchObject({ kind: "renewed", reason: "the certificate does not name 127.0.1.9" });

    const other = new MapSecrets();
    const foreign = new MemFiles();
    await ensureNodeCert(
      ports(other, foreign, () => new Date()),
      config,
      ctx,
      log,
    );
    files.bundle = { ...(files.bundle as CertBundle), cert: foreign.bundle?.cert as string };
    expect((await ensureNodeCert(p, config, ctx, log)).reason).toBe(
      "the certificate is not signed by the CA beside it",
    );
  });

  it("carries --tls-extra-names", async () => {
    const extra = parseConfig({
      domain: "etcd.test",
      hostedZoneId: "ZTEST",
      tlsExtraNames: "127.0.0.1, etcd.example.org",
    });
    const out = await ensureNodeCert(
      ports(new MapSecrets(), new MemFiles(), () => new Date()),
      extra,
      ctx,
      log,
    );
    expect(out.facts.names).toEqual(expect.arrayContaining(["127.0.0.1", "etcd.example.org", "127.0.1.5"]));
  });

  it("renewalDue: a third of the lifetime left, or expired", () => {
    const notBefore = new Date("2026-01-01T00:00:00Z");
    const notAfter = new Date("2026-01-01T00:30:00Z");
    expect(renewalDue({ notBefore, notAfter }, new Date("2026-01-01T00:19:00Z"))).toBe(false);
    expect(renewalDue({ notBefore, notAfter }, new Date("2026-01-01T00:21:00Z"))).toBe(true);
    expect(renewalDue({ notBefore, notAfter }, new Date("2026-01-02T00:00:00Z"))).toBe(true);
  });
});

describe("the operators' certificate", () => {
  it("a client certificate with the CA's certificate (not its key); renewed when due", async () => {
    const secrets = new MapSecrets();
    let t = Date.now();
    const p = ports(secrets, new MemFiles(), () => new Date(t));
    const next = await ensureOperatorCert(p, tls, "etcd", log);
    const first = await readOperatorCert(p, tls, "etcd");
    expect(signedBy(first.cert, first.ca)).toBe(true);
    expect(secrets.values.get("etcd-agent/etcd/operator")).not.toContain(
      JSON.parse(secrets.values.get("etcd-agent/etcd/ca") as string).key,
    );
    expect(next.getTime()).toBeGreaterThan(t);
    expect(await ensureOperatorCert(p, tls, "etcd", log)).toEqual(next); // nothing to do yet
    t = next.getTime() + 1000;
    await ensureOperatorCert(p, tls, "etcd", log);
    const second = await readOperatorCert(p, tls, "etcd");
    expect(certFacts(second.cert).serial).not.toBe(certFacts(first.cert).serial);
  });

  it("client-cert before the leader made it says so, and what to check", async () => {
    await expect(
      readOperatorCert(
        ports(new MapSecrets(), new MemFiles(), () => new Date()),
        tls,
        "etcd",
      ),
    ).rejects.toThrow(/secret etcd-agent\/etcd\/operator does not exist yet: the cluster's leader makes it/);
  });
});

describe("the secrets' KMS key (#16)", () => {
  const KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

  it("with --tls-secrets-kms-key, the CA and the operators' certificate are created under that key", async () => {
    const keyed = parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST", tlsSecretsKmsKey: KEY });
    const secrets = new MapSecrets();
    const p = ports(secrets, new MemFiles(), () => new Date());
    await ensureNodeCert(p, keyed, ctx, log);
    await ensureOperatorCert(p, keyed.tls as NonNullable<typeof keyed.tls>, "etcd", log);
    expect(Object.fromEntries(secrets.keys)).toEqual({
      "etcd-agent/etcd/ca": KEY,
      "etcd-agent/etcd/operator": KEY,
    });
  });

  it("without it, Secrets Manager's own key (no KmsKeyId)", async () => {
    const secrets = new MapSecrets();
    await ensureCa(
      ports(secrets, new MemFiles(), () => new Date()),
      tls,
      "etcd",
      log,
    );
    expect(secrets.keys.get("etcd-agent/etcd/ca")).toBeNull();
  });

  it.each([["alias/etcd-secrets"], ["1234abcd-12ab-34cd-56ef-1234567890ab"], [KEY]])("takes %s", (key) => {
    expect(
      parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST", tlsSecretsKmsKey: key }).tls,
    ).toMatchObject({
      secretsKmsKey: key,
    });
  });

  it("refuses anything else, naming the value and the forms it takes", () => {
    expect(() =>
      parseConfig({ domain: "etcd.test", hostedZoneId: "ZTEST", tlsSecretsKmsKey: "my key" }),
    ).toThrow(
      /--tls-secrets-kms-key \(ETCD_AGENT_TLS_SECRETS_KMS_KEY\) must be a KMS key ID, key ARN, alias name or alias ARN, got "my key"/,
    );
  });
});

describe("TLS settings", () => {
  const base = { domain: "etcd.test", hostedZoneId: "ZTEST" };
  it.each([
    [{ tlsCaSecret: "has space" }, /--tls-ca-secret .*must be a Secrets Manager secret name.*"has space"/],
    [{ tlsExtraNames: "127.0.0.1,not a name" }, /--tls-extra-names .*"not a name" is neither/],
    [{ tlsGroup: "Etcd!" }, /--tls-group .*must be a group name such as etcd or a number, got "Etcd!"/],
    [
      { fileOwner: "Agent!" },
      /--file-owner .*must be a user name such as etcd-agent or a number, got "Agent!"/,
    ],
    [
      { tlsKeyOwner: "etcd" },
      /--tls-key-owner .*no longer read.*ETCD_AGENT_FILE_OWNER=etcd-agent and ETCD_AGENT_TLS_GROUP=etcd/,
    ],
    [{ tlsCertLifetimeSeconds: "5" }, /--tls-cert-lifetime-seconds .*from 60 to/],
    [
      { endpoints: "http://i-1.etcd.test:2379" },
      /does not start with https:\/\/.*--plaintext for a plaintext cluster/,
    ],
    [
      { endpoints: "https://i-1.etcd.test:2379", plaintext: "true" },
      /does not start with http:\/\/.*in plaintext/,
    ],
    [{ plaintext: "yes" }, /--plaintext .*must be true or false, got "yes"/],
  ])("%o", (over, message) => {
    expect(() => parseConfig({ ...base, ...over })).toThrow(message);
  });

  it("defaults: TLS on, the node's directory, https", () => {
    const c = parseConfig(base);
    expect(c.scheme).toBe("https");
    expect(c.tls).toMatchObject({
      caFile: "/etc/etcd-agent/tls/ca.crt",
      certFile: "/etc/etcd-agent/tls/node.crt",
      keyFile: "/etc/etcd-agent/tls/node.key",
      etcdDir: "/etc/etcd-agent/tls",
      group: null,
    });
    expect(c.fileOwner).toBeNull();
    expect(parseConfig({ ...base, plaintext: "true" })).toMatchObject({ tls: null, scheme: "http" });
  });
});

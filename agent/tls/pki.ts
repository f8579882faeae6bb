// The cluster's certificates: a CA (ECDSA P-256) and the leaves it signs, built with
// @peculiar/x509 over Node's WebCrypto. Node can parse certificates but not make them; this is the
// well-kept library that does, with no native code (the binary stays one file).
import "reflect-metadata";
import { randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A certificate and its private key, PEM (the key PKCS#8, "PRIVATE KEY"). */
export interface CertKey {
  cert: string;
  key: string;
}

export type Usage = "node" | "client";

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

function der(pemText: string, label: string): ArrayBuffer {
  const m = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`).exec(pemText);
  if (!m?.[1]) throw new Error(`not a PEM ${label}`);
  const buf = Buffer.from(m[1].replace(/\s+/g, ""), "base64");
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** A positive serial number of 16 random bytes (RFC 5280: at most 20 octets, unpredictable). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString("hex");
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", key));
}

/** A new CA, self-signed, valid from `now` (less a minute of clock skew) for `days`. */
export async function createCa(commonName: string, now: Date, days: number): Promise<CertKey> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString("pem"), key: await exportKey(keys.privateKey) };
}

export interface LeafRequest {
  commonName: string;
  /** DNS names and IP addresses, in the subject alternative names. */
  names: string[];
  usage: Usage;
  notBefore: Date;
  notAfter: Date;
}

/** A leaf signed by `ca`: a node's (server and client: etcd peers are both) or an operator's (client). */
export async function issue(ca: CertKey, req: LeafRequest): Promise<CertKey> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey("pkcs8", der(ca.key, "PRIVATE KEY"), ALG, false, ["sign"]);
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.commonName}`,
    issuer: caCert.subject,
    notBefore: req.notBefore,
    notAfter: req.notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        req.usage === "node"
          ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
          : [x509.ExtendedKeyUsage.clientAuth],
      ),
      new x509.SubjectAlternativeNameExtension(
        req.names.map((n) =>
          isIP(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n },
        ),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString("pem"), key: await exportKey(keys.privateKey) };
}

/** What the agent needs to know of a certificate it holds, parsed by Node itself. */
export interface CertFacts {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IPs of the subject alternative names. */
  names: string[];
  issuer: string;
}

export function certFacts(certPem: string): CertFacts {
  const c = new X509Certificate(certPem);
  const names = (c.subjectAltName ?? "")
    .split(/,\s*/)
    .map((s) => /^(?:DNS|IP Address):(.+)$/.exec(s)?.[1])
    .filter((s): s is string => s !== undefined);
  return {
    serial: c.serialNumber,
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    names,
    issuer: c.issuer,
  };
}

/** Whether `certPem` was signed by `caPem`. */
export function signedBy(certPem: string, caPem: string): boolean {
  try {
    const ca = new X509Certificate(caPem);
    return new X509Certificate(certPem).verify(ca.publicKey);
  } catch {
    return false;
  }
}

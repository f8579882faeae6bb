// The CA rotation's probes of each member: a real request with a given client certificate (etcd
// refuses one its trusted CAs did not sign) and the certificate a member presents on a new handshake.
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { Etcd3 } from "etcd3";
import type { MemberProbe, ProbeCredentials } from "../ports/etcd-service.js";

function client(hosts: string[], c: ProbeCredentials): Etcd3 {
  return new Etcd3({
    hosts,
    credentials: {
      rootCertificate: Buffer.from(c.trust),
      certChain: Buffer.from(c.cert),
      privateKey: Buffer.from(c.key),
    },
    dialTimeout: 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 4000 }),
  });
}

export class EtcdTlsProbe implements MemberProbe {
  async members(
    endpoints: string[],
    c: ProbeCredentials,
  ): Promise<Array<{ clientUrls: string[]; isLearner: boolean }> | null> {
    if (endpoints.length === 0) return null;
    const etcd = client(endpoints, c);
    try {
      const out = await etcd.cluster.memberList({});
      return (out.members ?? []).map((m) => ({
        clientUrls: m.clientURLs ?? [],
        isLearner: Boolean(m.isLearner),
      }));
    } catch {
      return null;
    } finally {
      etcd.close();
    }
  }

  async accepts(url: string, c: ProbeCredentials): Promise<boolean> {
    const etcd = client([url], c);
    try {
      await etcd.maintenance.status();
      return true;
    } catch {
      return false;
    } finally {
      etcd.close();
    }
  }

  servedCert(url: string, c: ProbeCredentials): Promise<string | null> {
    const u = new URL(url);
    return new Promise((resolve) => {
      const socket = connect({
        host: u.hostname,
        port: Number(u.port || 2379),
        ca: c.trust,
        cert: c.cert,
        key: c.key,
        ALPNProtocols: ["h2"],
        timeout: 4000,
      });
      const done = (v: string | null) => {
        socket.destroy();
        resolve(v);
      };
      socket.once("secureConnect", () => {
        const raw = socket.getPeerCertificate().raw;
        done(raw ? new X509Certificate(raw).toString() : null);
      });
      socket.once("error", () => done(null));
      socket.once("timeout", () => done(null));
    });
  }
}

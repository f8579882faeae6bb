// `etcd-agent join` on a node with TLS (#14 defect 3): like `boot`, it issues this node's
// certificate before it talks to etcd, so every etcd call presents one; from the bastion
// (--instance-id) it issues none (the bastion has the operators' certificate, not a node's).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryLocalNode } from "../../../agent/adapters/memory-local.js";
import { noServiceManager } from "../../../agent/adapters/systemd-notify.js";
import { runJoin } from "../../../agent/commands/join.js";
import { EtcdUnavailableError } from "../../../agent/errors.js";
import { createLogger } from "../../../agent/log.js";
import type { CertBundle, CertFiles } from "../../../agent/ports/cert-files.js";
import type { EtcdCluster } from "../../../agent/ports/etcd.js";
import type { Ports } from "../../../agent/ports/index.js";
import { keyMatchesCert } from "../../../agent/tls/node-certs.js";
import { signedBy } from "../../../agent/tls/pki.js";
import { FakeAws } from "../../fakes/fake-aws.js";
import { MapSecrets } from "../../fakes/fake-secrets.js";
import { nodeConfig } from "../../support/etcd-node.js";

const root = mkdtempSync(join(tmpdir(), "etcd-agent-join-tls-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class MemFiles implements CertFiles {
  bundle: CertBundle | null = null;
  async read() {
    return this.bundle;
  }
  async write(b: CertBundle) {
    this.bundle = b;
  }
}

/** A clock that moves only when the code under test sleeps (boot's waits pass at once). */
class StepClock {
  constructor(public t: number) {}
  now(): Date {
    return new Date(this.t);
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }
}

function world() {
  const aws = new FakeAws();
  const self = aws.launch(1, "127.0.60.1");
  aws.launch(2, "127.0.60.2");
  const certs = new MemFiles();
  const secrets = new MapSecrets();
  // No member answers; each call notes whether this node had a certificate to present.
  const presented: boolean[] = [];
  const etcd = new Proxy({} as EtcdCluster, {
    get: (_t, prop) =>
      prop === "close"
        ? async () => {}
        : async () => {
            presented.push(certs.bundle !== null);
            throw new EtcdUnavailableError(`no member answers (${String(prop)})`);
          },
  });
  const config = nodeConfig(join(root, `n${Math.random().toString(16).slice(2)}`), {
    plaintext: "false",
    bootTimeoutSeconds: 10,
  });
  const ports: Ports = {
    clock: new StepClock(Date.parse("2026-11-23T12:00:00Z")),
    metadata: aws.metadata(self.instanceId),
    autoscaling: aws.autoscaling(),
    ec2: aws.ec2(),
    dns: aws.dns(),
    etcd,
    local: new MemoryLocalNode(),
    serviceManager: noServiceManager,
    secrets,
    certs,
  };
  const log = createLogger({ write: () => true } as never);
  return { aws, config, ports, log, certs, secrets, presented };
}

describe("etcd-agent join with TLS", () => {
  it("on a fresh node: issues this node's certificate (signed by the cluster CA) before any etcd call", async () => {
    const w = world();
    // The cluster's members do not answer here, so the join itself cannot finish; what matters is
    // what it presented while it tried.
    await runJoin(w.ports, w.config, w.log, { instanceId: null }).catch(() => null);
    expect(w.presented.length).toBeGreaterThan(0);
    expect(w.presented.every((had) => had)).toBe(true);
    const bundle = w.certs.bundle as CertBundle;
    const ca = JSON.parse(w.secrets.values.get("etcd-agent/etcd/ca") as string) as { cert: string };
    expect(signedBy(bundle.cert, ca.cert)).toBe(true);
    expect(keyMatchesCert(bundle.cert, bundle.key)).toBe(true);
  });

  it("from the bastion (--instance-id): no node certificate is written there", async () => {
    const w = world();
    await runJoin(w.ports, w.config, w.log, { instanceId: "i-00000002" }).catch(() => null);
    expect(w.presented.length).toBeGreaterThan(0);
    expect(w.certs.bundle).toBeNull();
  });
});

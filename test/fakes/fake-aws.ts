// An in-memory AWS for tests that run real etcd but need no wire-level AWS: an ASG, EC2's view of
// its instances, a hosted zone with Route53's change-batch semantics, and per-node metadata.
// The moto-backed sandbox covers the wire; these fakes implement the same ports the adapters do.
import { MarkerConflictError } from "../../agent/errors.js";
import type { DnsChange } from "../../agent/planner/dns-plan.js";
import { normalizeName } from "../../agent/planner/dns-plan.js";
import type { DnsRecord, Identity } from "../../agent/planner/observation.js";
import type { AutoScaling, GroupDescription, LifecycleHooks } from "../../agent/ports/autoscaling.js";
import type { Dns } from "../../agent/ports/dns.js";
import type { Ec2, InstanceFacts } from "../../agent/ports/ec2.js";
import type { InstanceMetadata } from "../../agent/ports/metadata.js";

export interface FakeInstance {
  instanceId: string;
  ip: string;
  launchTime: string;
  lifecycleState: string;
  healthStatus: string;
  targetLifecycleState: string | null;
}

export class FakeAws {
  readonly instances = new Map<string, FakeInstance>();
  readonly records = new Map<string, DnsRecord>();
  readonly calls: string[] = [];
  readonly completed: Array<{ instanceId: string; hookName: string; result: string }> = [];
  readonly reportedUnhealthy: string[] = [];
  hooks: LifecycleHooks = { launch: null, terminate: null };
  asgName = "etcd";
  /** When set, every AutoScaling call fails with this message (an outage). */
  autoscalingDown: string | null = null;
  private launches = 0;

  launch(n: number, ip: string, lifecycleState = "InService"): FakeInstance {
    this.launches++;
    const inst: FakeInstance = {
      instanceId: `i-${n.toString(16).padStart(8, "0")}`,
      ip,
      launchTime: new Date(Date.UTC(2026, 10, 22, 10, 0, this.launches)).toISOString(),
      lifecycleState,
      healthStatus: "Healthy",
      targetLifecycleState: lifecycleState === "Pending:Wait" ? "InService" : lifecycleState,
    };
    this.instances.set(inst.instanceId, inst);
    return inst;
  }

  /** Instances terminated: EC2 still describes them, as `terminated`, for about an hour. */
  readonly terminated = new Map<string, { ip: string; launchTime: string }>();

  terminate(instanceId: string): void {
    const i = this.instances.get(instanceId);
    if (i) this.terminated.set(instanceId, { ip: i.ip, launchTime: i.launchTime });
    this.instances.delete(instanceId);
  }

  private key(name: string, type: string): string {
    return `${type} ${normalizeName(name)}`;
  }

  record(name: string, type: DnsRecord["type"]): DnsRecord | undefined {
    return this.records.get(this.key(name, type));
  }

  autoscaling(): AutoScaling {
    const aws = this;
    const guard = (op: string) => {
      aws.calls.push(`AutoScaling.${op}`);
      if (aws.autoscalingDown) throw new Error(aws.autoscalingDown);
    };
    return {
      async groupOf(instanceId: string) {
        guard("DescribeAutoScalingInstances");
        return aws.instances.has(instanceId) ? aws.asgName : null;
      },
      async describeGroup(name: string): Promise<GroupDescription> {
        guard("DescribeAutoScalingGroups");
        if (name !== aws.asgName) throw new Error(`no group ${name}`);
        return {
          name,
          desiredCapacity: aws.instances.size,
          instances: [...aws.instances.values()].map((i) => ({
            instanceId: i.instanceId,
            lifecycleState: i.lifecycleState,
            healthStatus: i.healthStatus,
          })),
        };
      },
      async lifecycleHooks() {
        guard("DescribeLifecycleHooks");
        return aws.hooks;
      },
      async completeLifecycleAction(input) {
        guard("CompleteLifecycleAction");
        aws.completed.push({ instanceId: input.instanceId, hookName: input.hookName, result: input.result });
        const inst = aws.instances.get(input.instanceId);
        if (inst?.lifecycleState === "Pending:Wait") inst.lifecycleState = "InService";
        if (inst?.lifecycleState === "Terminating:Wait") aws.terminate(input.instanceId);
      },
      async recordLifecycleActionHeartbeat() {
        guard("RecordLifecycleActionHeartbeat");
      },
      async setInstanceUnhealthy(instanceId: string) {
        guard("SetInstanceHealth");
        aws.reportedUnhealthy.push(instanceId);
        const inst = aws.instances.get(instanceId);
        if (inst) inst.healthStatus = "Unhealthy";
      },
    };
  }

  ec2(): Ec2 {
    const aws = this;
    return {
      async describeInstances(ids: string[]): Promise<InstanceFacts[]> {
        aws.calls.push("EC2.DescribeInstances");
        return ids.flatMap((id) => {
          const i = aws.instances.get(id);
          if (i) return [{ instanceId: id, privateIp: i.ip, launchTime: i.launchTime, state: "running" }];
          const t = aws.terminated.get(id);
          return t
            ? [{ instanceId: id, privateIp: t.ip, launchTime: t.launchTime, state: "terminated" }]
            : [];
        });
      },
    };
  }

  dns(): Dns {
    const aws = this;
    const same = (a: DnsRecord, b: DnsRecord) =>
      a.ttl === b.ttl && [...a.values].sort().join("\n") === [...b.values].sort().join("\n");
    return {
      async listRecords(domain: string) {
        aws.calls.push("Route53.ListResourceRecordSets");
        const suffix = normalizeName(domain);
        return [...aws.records.values()].filter((r) => r.name === suffix || r.name.endsWith(`.${suffix}`));
      },
      async change(changes: DnsChange[]) {
        aws.calls.push("Route53.ChangeResourceRecordSets");
        for (const c of changes) {
          const rec = { ...c.record, name: normalizeName(c.record.name) };
          if (c.action === "UPSERT") aws.records.set(aws.key(rec.name, rec.type), rec);
          else aws.records.delete(aws.key(rec.name, rec.type));
        }
      },
      async swapTxt(name: string, expected: DnsRecord | null, next: DnsRecord) {
        aws.calls.push("Route53.ChangeResourceRecordSets");
        const k = aws.key(name, "TXT");
        const current = aws.records.get(k);
        // Route53: CREATE fails when the record exists; DELETE must match exactly; all or nothing.
        if (expected === null ? current !== undefined : current === undefined || !same(current, expected)) {
          throw new MarkerConflictError(`marker ${name} is not as expected`);
        }
        aws.records.set(k, { ...next, name: normalizeName(next.name) });
      },
    };
  }

  metadata(instanceId: string): InstanceMetadata {
    const aws = this;
    return {
      async identity(): Promise<Identity> {
        const i = aws.instances.get(instanceId);
        if (!i) throw new Error(`metadata: ${instanceId} is gone`);
        return { instanceId, privateIp: i.ip, region: "eu-west-1", availabilityZone: "eu-west-1a" };
      },
      async targetLifecycleState() {
        return aws.instances.get(instanceId)?.targetLifecycleState ?? null;
      },
    };
  }
}

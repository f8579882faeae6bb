// The Teardown custom resource's Lambda: on stack delete, after the Auto Scaling group is gone and
// before the hosted zone goes, it deletes what the nodes made outside CloudFormation: the agent's
// records in the zone (CloudFormation cannot delete a zone that still has records) and the
// cluster's two TLS secrets. It touches only the records the nodes may write (the same names and
// types as their IAM condition) and only the two named secrets. Bundled inline by ./teardown.ts.
import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  type ListResourceRecordSetsCommandInput,
  type ResourceRecordSet,
  Route53Client,
} from "@aws-sdk/client-route-53";
import { DeleteSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";

export interface TeardownProps {
  HostedZoneId: string;
  Domain: string;
  SecretIds: string[];
}

/** Records the agent writes: the SRV sets, the cluster marker, one A record per instance. */
export function agentOwned(name: string, type: string | undefined, domain: string): boolean {
  const n = name.replace(/\.$/, "").toLowerCase();
  const d = domain.toLowerCase();
  if (type !== "A" && type !== "SRV" && type !== "TXT") return false;
  const fixed = ["_etcd-server-ssl._tcp", "_etcd-client-ssl._tcp", "_etcd-server._tcp", "_etcd-client._tcp"];
  if (fixed.some((p) => n === `${p}.${d}`)) return type === "SRV";
  if (n === `_etcd-cluster.${d}`) return type === "TXT";
  return type === "A" && /^i-[0-9a-f]+$/.test(n.slice(0, -(d.length + 1))) && n.endsWith(`.${d}`);
}

/** Deletes the agent's records in the zone; returns their names. Leaves SOA, NS and anyone else's. */
export async function emptyZone(r53: Route53Client, zoneId: string, domain: string): Promise<string[]> {
  const doomed: ResourceRecordSet[] = [];
  let start: Omit<ListResourceRecordSetsCommandInput, "HostedZoneId"> = {};
  for (let page = 0; page < 1000; page++) {
    const r = await r53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId, ...start }));
    for (const rr of r.ResourceRecordSets ?? []) {
      if (rr.Name && agentOwned(rr.Name, rr.Type, domain)) doomed.push(rr);
    }
    if (!r.IsTruncated) break;
    start = {
      StartRecordName: r.NextRecordName,
      StartRecordType: r.NextRecordType,
      StartRecordIdentifier: r.NextRecordIdentifier,
    };
  }
  for (let i = 0; i < doomed.length; i += 500) {
    await r53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: zoneId,
        ChangeBatch: {
          Comment: "etcd-asg-agent teardown: the stack is being deleted",
          Changes: doomed.slice(i, i + 500).map((rr) => ({ Action: "DELETE", ResourceRecordSet: rr })),
        },
      }),
    );
  }
  return doomed.map((rr) => rr.Name ?? "");
}

/** Deletes the secrets now (no recovery window: a new stack of the same name makes them again). */
export async function deleteSecrets(sm: SecretsManagerClient, ids: string[]): Promise<string[]> {
  const deleted: string[] = [];
  for (const id of ids) {
    try {
      await sm.send(new DeleteSecretCommand({ SecretId: id, ForceDeleteWithoutRecovery: true }));
      deleted.push(id);
    } catch (error) {
      if ((error as Error).name !== "ResourceNotFoundException") throw error;
    }
  }
  return deleted;
}

interface CfnEvent {
  RequestType: "Create" | "Update" | "Delete";
  ResponseURL: string;
  StackId: string;
  RequestId: string;
  LogicalResourceId: string;
  PhysicalResourceId?: string;
  ResourceProperties: TeardownProps & { ServiceToken: string };
}

/** CloudFormation's custom resource protocol: nothing on create and update, the teardown on delete. */
export async function handler(event: CfnEvent): Promise<void> {
  const p = event.ResourceProperties;
  const physicalId = event.PhysicalResourceId ?? `etcd-agent-teardown-${p.HostedZoneId}`;
  let status = "SUCCESS";
  let reason = "nothing to do";
  try {
    if (event.RequestType === "Delete") {
      const records = await emptyZone(new Route53Client({}), p.HostedZoneId, p.Domain);
      const secrets = await deleteSecrets(new SecretsManagerClient({}), p.SecretIds);
      reason = `deleted ${records.length} records and ${secrets.length} secrets`;
    }
  } catch (error) {
    status = "FAILED";
    reason = `teardown failed: ${(error as Error).name}: ${(error as Error).message}`.slice(0, 1000);
  }
  console.log(JSON.stringify({ level: status === "SUCCESS" ? "info" : "error", msg: reason }));
  const body = JSON.stringify({
    Status: status,
    Reason: reason,
    PhysicalResourceId: physicalId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
  });
  await fetch(event.ResponseURL, { method: "PUT", headers: { "content-type": "" }, body });
}

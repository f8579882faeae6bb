// The Teardown custom resource's handler: which records it deletes (only the agent's), the
// secrets (already gone is fine), and its answer to CloudFormation (FAILED carries the reason).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  type ResourceRecordSet,
  Route53Client,
  type RRType,
} from "@aws-sdk/client-route-53";
import { DeleteSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { agentOwned, deleteSecrets, emptyZone, handler } from "../../infra/lib/teardown/handler.js";

const r53 = mockClient(Route53Client);
const sm = mockClient(SecretsManagerClient);
afterEach(() => {
  r53.reset();
  sm.reset();
});

const D = "etcd.internal";
const rr = (Name: string, Type: RRType): ResourceRecordSet => ({
  Name,
  Type,
  TTL: 60,
  ResourceRecords: [{ Value: "x" }],
});

describe("agentOwned: the names and types the nodes' IAM condition allows, nothing else", () => {
  it.each([
    ["_etcd-server-ssl._tcp.etcd.internal.", "SRV", true],
    ["_etcd-client-ssl._tcp.etcd.internal.", "SRV", true],
    ["_etcd-server._tcp.etcd.internal.", "SRV", true],
    ["_etcd-client._tcp.etcd.internal.", "SRV", true],
    ["_etcd-cluster.etcd.internal.", "TXT", true],
    ["i-0123456789abcdef0.etcd.internal.", "A", true],
    ["etcd.internal.", "SOA", false],
    ["etcd.internal.", "NS", false],
    ["db.etcd.internal.", "A", false],
    ["i-0123456789abcdef0.other.internal.", "A", false],
    ["_etcd-cluster.etcd.internal.", "A", false],
    ["x.i-0123.etcd.internal.", "A", false],
  ] as const)("%s %s -> %s", (name, type, owned) => {
    expect(agentOwned(name, type, D)).toBe(owned);
  });
});

describe("emptyZone", () => {
  it("deletes the agent's records across pages, leaves SOA, NS and others", async () => {
    r53
      .on(ListResourceRecordSetsCommand, { HostedZoneId: "Z1" })
      .resolvesOnce({
        ResourceRecordSets: [
          rr("etcd.internal.", "NS"),
          rr("etcd.internal.", "SOA"),
          rr("_etcd-cluster.etcd.internal.", "TXT"),
        ],
        IsTruncated: true,
        NextRecordName: "_etcd-server-ssl._tcp.etcd.internal.",
        NextRecordType: "SRV",
        MaxItems: 3,
      })
      .resolvesOnce({
        ResourceRecordSets: [
          rr("_etcd-server-ssl._tcp.etcd.internal.", "SRV"),
          rr("i-0abc.etcd.internal.", "A"),
          rr("db.etcd.internal.", "A"),
        ],
        IsTruncated: false,
        MaxItems: 3,
      });
    r53.on(ChangeResourceRecordSetsCommand).resolves({});
    const deleted = await emptyZone(new Route53Client({}), "Z1", D);
    expect(deleted).toEqual([
      "_etcd-cluster.etcd.internal.",
      "_etcd-server-ssl._tcp.etcd.internal.",
      "i-0abc.etcd.internal.",
    ]);
    const lists = r53.commandCalls(ListResourceRecordSetsCommand).map((c) => c.args[0].input);
    expect(lists[1]).toMatchObject({
      StartRecordName: "_etcd-server-ssl._tcp.etcd.internal.",
      StartRecordType: "SRV",
    });
    const changes = r53
      .commandCalls(ChangeResourceRecordSetsCommand)
      .flatMap((c) => c.args[0].input.ChangeBatch?.Changes ?? []);
    expect(changes.map((c) => [c.Action, c.ResourceRecordSet?.Name])).toEqual(
      deleted.map((n) => ["DELETE", n]),
    );
  });

  it("an empty zone: no change call", async () => {
    r53
      .on(ListResourceRecordSetsCommand)
      .resolves({ ResourceRecordSets: [rr("etcd.internal.", "SOA")], IsTruncated: false, MaxItems: 100 });
    expect(await emptyZone(new Route53Client({}), "Z1", D)).toEqual([]);
    expect(r53.commandCalls(ChangeResourceRecordSetsCommand)).toHaveLength(0);
  });
});

describe("deleteSecrets", () => {
  it("deletes without a recovery window; a secret never made is not an error", async () => {
    const notFound = Object.assign(new Error("Secrets Manager can't find the specified secret."), {
      name: "ResourceNotFoundException",
    });
    sm.on(DeleteSecretCommand, { SecretId: "etcd-agent/g/ca" })
      .resolves({})
      .on(DeleteSecretCommand, { SecretId: "etcd-agent/g/operator" })
      .rejects(notFound);
    expect(
      await deleteSecrets(new SecretsManagerClient({}), ["etcd-agent/g/ca", "etcd-agent/g/operator"]),
    ).toEqual(["etcd-agent/g/ca"]);
    expect(sm.commandCalls(DeleteSecretCommand)[0]?.args[0].input).toEqual({
      SecretId: "etcd-agent/g/ca",
      ForceDeleteWithoutRecovery: true,
    });
  });

  it("any other error fails the delete (the stack's delete reports it)", async () => {
    sm.on(DeleteSecretCommand).rejects(Object.assign(new Error("denied"), { name: "AccessDeniedException" }));
    await expect(deleteSecrets(new SecretsManagerClient({}), ["etcd-agent/g/ca"])).rejects.toThrow("denied");
  });
});

describe("handler: CloudFormation's protocol", () => {
  async function invoke(RequestType: "Create" | "Delete"): Promise<Record<string, string>> {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let b = "";
      req.on("data", (c) => {
        b += c;
      });
      req.on("end", () => {
        bodies.push(b);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      await handler({
        RequestType,
        ResponseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/response`,
        StackId: "stack",
        RequestId: "req",
        LogicalResourceId: "EtcdTeardown",
        ResourceProperties: {
          ServiceToken: "arn",
          HostedZoneId: "Z1",
          Domain: D,
          SecretIds: ["etcd-agent/g/ca"],
        },
      });
    } finally {
      server.close();
    }
    expect(bodies).toHaveLength(1);
    return JSON.parse(bodies[0] as string);
  }

  it("create: nothing touched, SUCCESS", async () => {
    const body = await invoke("Create");
    expect(body).toMatchObject({
      Status: "SUCCESS",
      PhysicalResourceId: "etcd-agent-teardown-Z1",
      RequestId: "req",
    });
    expect(r53.calls()).toHaveLength(0);
  });

  it("delete: records and secrets go, SUCCESS with the counts", async () => {
    r53.on(ListResourceRecordSetsCommand).resolves({
      ResourceRecordSets: [rr("_etcd-cluster.etcd.internal.", "TXT")],
      IsTruncated: false,
      MaxItems: 100,
    });
    r53.on(ChangeResourceRecordSetsCommand).resolves({});
    sm.on(DeleteSecretCommand).resolves({});
    expect(await invoke("Delete")).toMatchObject({
      Status: "SUCCESS",
      Reason: "deleted 1 records and 1 secrets",
    });
  });

  it("delete that fails: FAILED with the reason (the stack's delete stops and says why)", async () => {
    r53
      .on(ListResourceRecordSetsCommand)
      .rejects(Object.assign(new Error("no such zone"), { name: "NoSuchHostedZone" }));
    expect(await invoke("Delete")).toMatchObject({
      Status: "FAILED",
      Reason: "teardown failed: NoSuchHostedZone: no such zone",
    });
  });
});

// `npm start`'s live view (issue #18): redrawn in place on a terminal, plain blocks otherwise; the
// members' db size against the quota and the newest backup's age from the nodes' metrics; the
// agents' actions and holds as a short event list; a hint that works with the AWS CLI v1 and v2.
import { describe, expect, it } from "vitest";
import {
  backupLine,
  eventLines,
  eventsOf,
  frame,
  parsePrometheus,
  REDRAW,
  storageOf,
  tryHint,
} from "../../sandbox/live-view.js";

const leaderMetrics = parsePrometheus(
  [
    "# HELP etcd_agent_is_leader 1 when this node's member leads the cluster",
    "etcd_agent_is_leader 1",
    'etcd_agent_db_size_bytes{member="i-00000001"} 25165824',
    'etcd_agent_db_size_in_use_bytes{member="i-00000001"} 12582912',
    "etcd_agent_quota_bytes 2147483648",
    "etcd_agent_backup_age_seconds 300",
  ].join("\n"),
);
const followerMetrics = parsePrometheus("etcd_agent_is_leader 0\netcd_agent_quota_bytes 2147483648\n");

describe("the live view", () => {
  it("redraws in place on a terminal and prints plain blocks when piped", () => {
    expect(frame(["a", "b"], true)).toBe(`${REDRAW}a\nb\n`);
    expect(frame(["a", "b"], false)).toBe("a\nb\n\n");
    expect(frame(["a"], false)).not.toContain("\x1b");
  });

  it("shows a member's db size and in-use size against the quota, and the newest backup's age", () => {
    expect(storageOf("i-00000001", [followerMetrics, leaderMetrics])).toBe(
      "db 24.0 MiB, in use 12.0 MiB (1.2% of 2.00 GiB)",
    );
    expect(storageOf("i-00000009", [leaderMetrics])).toBe("db ?");
    expect(backupLine([followerMetrics, leaderMetrics])).toBe("backups: newest snapshot 5 min ago");
    expect(backupLine([followerMetrics])).toBe("backups: newest snapshot unknown");
  });

  it("lists actions and new holds from the agents' logs, newest last, without heartbeats, leader-only or debug lines", () => {
    const log = (o: Record<string, unknown>) => JSON.stringify({ level: "info", ...o });
    const a = eventsOf("i-00000001", [
      log({
        ts: "2026-11-23T10:00:03.000Z",
        msg: "removed member",
        action: "remove-member",
        member_id: "7",
        reason: "instance gone",
      }),
      log({
        ts: "2026-11-23T10:00:01.000Z",
        msg: "held back: ...",
        rule: "dns-drain",
        reason: "records still published",
      }),
      log({ ts: "2026-11-23T10:00:02.000Z", msg: "lifecycle heartbeat", action: "heartbeat-lifecycle" }),
      log({
        ts: "2026-11-23T10:00:02.500Z",
        msg: "held back: ...",
        rule: "leader-only",
        reason: "leader is 1",
      }),
      JSON.stringify({ level: "debug", ts: "2026-11-23T10:00:04.000Z", msg: "held back", rule: "dns-drain" }),
      "not json",
    ]);
    const b = eventsOf("i-00000002", [
      log({
        ts: "2026-11-23T10:00:05.000Z",
        msg: "promoted this learner to a voting member",
        action: "promote-self",
        member_id: "9",
      }),
    ]);
    expect(eventLines([...a, ...b], 8)).toEqual([
      "  10:00:01 i-00000001  held: dns-drain (records still published)",
      "  10:00:03 i-00000001  removed member [7] (instance gone)",
      "  10:00:05 i-00000002  promoted this learner to a voting member [9]",
    ]);
    expect(eventLines([...a, ...b], 1)).toHaveLength(1);
  });

  it("gives a hint the AWS CLI v1 can run: the region as AWS_DEFAULT_REGION, the endpoint as --endpoint-url", () => {
    const hint = tryHint({
      awsEndpoint: "http://127.0.0.1:5000",
      region: "eu-west-1",
      asgName: "etcd-sandbox",
      domain: "etcd.internal",
      hostedZoneId: "Z1",
      firstInstanceId: "i-00000001",
      tls: null,
    });
    expect(hint).toContain("AWS_DEFAULT_REGION=eu-west-1");
    expect(hint).not.toMatch(/\bAWS_REGION=/);
    expect(hint).toContain(
      "aws --endpoint-url $AWS_ENDPOINT_URL ec2 terminate-instances --instance-ids i-00000001",
    );
  });
});

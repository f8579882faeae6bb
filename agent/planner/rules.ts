// The safety rules a plan can be held back by. Each has a stable id (logged as `rule`) and the
// sentence an operator reads. Docs: docs/architecture.md, "Safety rules".

export const RULES = {
  "quorum-after-removal": "removing the member would leave the healthy voters below quorum",
  "last-word-snapshot":
    "a leaving leader hands over once its last snapshot is saved (or failed, or after 5 minutes); it keeps heartbeating meanwhile",
  "cluster-has-no-quorum": "the cluster has no quorum now; membership changes wait until it has",
  "no-leader":
    "the cluster has no live leader (an election is under way); a membership change now would hang until its deadline",
  "leader-only": "only the leader changes membership, DNS and instance health",
  "partial-information":
    "part of the picture could not be read; no destructive action on partial information",
  "self-not-in-asg": "the ASG listing does not include this instance; it cannot be trusted for removals",
  "instance-still-in-asg": "the member's instance is still in the ASG and may come back",
  "startup-grace": "the member was added recently and may still be starting",
  "foreign-member":
    "the member is not named after an instance and its peer address matches none; remove it by hand",
  "one-change-per-cycle": "one membership change per cycle; the rest waits for the next cycle",
  "learner-in-progress": "a learner is already catching up (etcd allows one learner at a time)",
  "learner-not-in-sync": "the learner has not caught up with the leader yet",
  "remote-member-started":
    "the instance's member has started; from the bastion its data cannot be seen, so join never removes it: run etcd-agent join on that node",
  "cluster-existed":
    "a cluster existed before and no member answers; a new empty cluster would replace its data",
  "not-bootstrapper": "another instance is the designated bootstrapper",
  "former-member-present":
    "an instance of the lost cluster is still in the ASG and may come back with its data; no restore while it is",
  "restore-wait": "no member has answered for less than the restore bound; it may still come back",
  "no-snapshot":
    "the cluster existed, no member answers, and there is no snapshot of that cluster to restore from",
  "snapshot-unverified":
    "the snapshot the restore planned is gone, or neither it nor the older ones the plan named match their checksum; nothing was restored and the next boot plans again",
  "restore-in-progress":
    "another instance is restoring the cluster from a snapshot; this one waits to join the restored cluster",
  "bootstrap-claimed": "another instance has claimed the bootstrap and may be starting the cluster",
  "no-eligible-instances": "the ASG has no eligible instance with a known address and launch time",
  "self-not-eligible": "this instance is not eligible to bootstrap (not Pending/InService and Healthy)",
  "dead-member-blocks-join":
    "a voting member is down and its instance is still in the ASG; the join waits for it",
  "self-terminating": "this instance is leaving; it does not join or take on work",
  "unhealthy-deadline": "the member has been unhealthy for less than the deadline",
  "health-report-sent":
    "the instance was reported unhealthy less than the deadline ago; the report is sent again if the group still shows it Healthy after that (AWS ignores a report inside the grace period)",
  "marker-unknown": "the cluster marker could not be read",
  "claimant-not-gone":
    "the marker's claimant has left the ASG listing but EC2 does not say it is terminated; its etcd may still start",
  "foreign-cluster":
    "the cluster that answers is not the one the marker names; no join, no DNS or marker write (two clusters: see the alarm)",
  "etcd-alarm":
    "etcd has raised an alarm (shown by `etcd-agent status`); alarms are cluster-wide and never read as a member being unhealthy",
  "etcd-alarm-corrupt":
    "etcd reports a CORRUPT alarm: no member is removed or reported unhealthy until an operator has checked the data and disarmed it",
  "defrag-in-progress":
    "a member is being defragmented; never two at once, and nothing else about storage until it ends",
  "defrag-member-unhealthy":
    "a member is not healthy; no defragmentation (it pauses a member) until every member is",
  "defrag-quorum": "defragmenting the member would pause it while the other healthy voters are not a quorum",
  "defrag-recent": "the member was defragmented a short while ago; it waits before the next one",
  "nospace-still-full":
    "NOSPACE stays armed: after compaction and defragmentation a member's db is still near the quota; delete data or raise --etcd-quota-backend-bytes",
  "quorum-after-report":
    "a reported instance is terminated; reporting this one would leave the healthy voters below quorum",
  "observer-suspect":
    "this leader sees too many members down at once; its own reachability (security group, certificate) may be the problem, so it reports nobody and drops nobody from DNS on that view",
  "instance-missing":
    "the member's instance is missing from the ASG listing (detached, or a stale read); a healthy member is not removed, an unhealthy one only after it stays missing",
  "dns-settle":
    "DNS drops a member only after it has been unhealthy for the settle time, and takes it back once it has recovered",
  "dns-write-budget": "DNS writes are limited per minute; the change waits for the budget",
  "dns-not-instance-name":
    "the member is not named after an instance; DNS records are published only for members named after instances",
  "dns-drain":
    "a leaving member leaves DNS first; it leaves etcd once its records are gone and their TTL has passed",
  "ca-restart-quorum":
    "etcd is restarted to load a new trusted CA bundle only while every voter is healthy and quorum holds without this one",
  "ca-restart-one-at-a-time":
    "another member is restarting its etcd for the CA rotation (it holds the restart lock); one member at a time",
  "ca-restart-catching-up":
    "a voter is behind the leader (a member restarted a moment ago replays what it missed); the next restart waits until every voter has caught up",
  "ca-secret-stale":
    "the CA secret read is older than what this node has already followed (a stale read); it is ignored until a read shows the current one",
  "ca-secret-unreadable":
    "the CA secret exists but cannot be read yet (Secrets Manager is eventually consistent, or it is scheduled for deletion); the boot waits and systemd starts it again",
  "ca-rotation-too-few-voters":
    "a CA rotation restarts each member's etcd in turn; with two voters a restart of either loses quorum, so begin is refused until the cluster has three",
  "ca-rotation-not-converged":
    "the next step of a CA rotation waits until every member has followed the current one",
  "operator-cert-caller":
    "an operator's certificate is issued only to a verified role session, named after that session (never a node's or the shared name)",
} as const;

export type RuleId = keyof typeof RULES;

export interface Hold {
  rule: RuleId;
  /** What was held back and the specifics (ids, counts), for the log and the plan output. */
  detail: string;
}

export function hold(rule: RuleId, detail: string): Hold {
  return { rule, detail };
}

// Typed errors. Adapters translate vendor errors into these at the boundary and keep the cause;
// anything they do not understand is re-thrown as it is.
import type { Hold } from "./planner/rules.js";
import { RULES } from "./planner/rules.js";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A command that needs backups, run without a backup bucket. An input error (exit INVALID_INPUT). */
export class BackupsOffError extends ConfigError {
  override name = "BackupsOffError";
  constructor() {
    super("backups are off: set --backup-bucket (ETCD_AGENT_BACKUP_BUCKET) to the cluster's backup bucket");
  }
}

/** etcd's restore tool ran and failed (its exit and output in the message); nothing was restored. */
export class RestoreFailedError extends Error {
  override name = "RestoreFailedError";
}

/** A restore found no snapshot that verifies: nothing was restored (exit REFUSED). */
export class NoGoodSnapshotError extends Error {
  override name = "NoGoodSnapshotError";
}

export class MetadataUnavailableError extends Error {
  override name = "MetadataUnavailableError";
}

export class AwsApiError extends Error {
  override name = "AwsApiError";
  constructor(
    message: string,
    readonly service: string,
    readonly operation: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class EtcdUnavailableError extends Error {
  override name = "EtcdUnavailableError";
}

/** etcd answered but refused the request (e.g. "unhealthy cluster", "member not found"). */
export class EtcdRequestError extends Error {
  override name = "EtcdRequestError";
  constructor(
    message: string,
    readonly code:
      | "unhealthy-cluster"
      | "member-not-found"
      | "learner-not-ready"
      | "too-many-learners"
      | "not-leader"
      | "other",
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class MarkerConflictError extends Error {
  override name = "MarkerConflictError";
}

/** A safety rule held an action back. Carries the rule so the exit and the log can name it. */
export class RefusedError extends Error {
  override name = "RefusedError";
  constructor(readonly hold: Hold) {
    super(`${RULES[hold.rule]} [rule: ${hold.rule}]: ${hold.detail}`);
  }
}

/** Not yet possible; try again later (systemd restarts the unit). */
export class WaitingError extends Error {
  override name = "WaitingError";
  constructor(readonly hold: Hold) {
    super(`${RULES[hold.rule]} [rule: ${hold.rule}]: ${hold.detail}`);
  }
}

export class ClusterUnhealthyError extends Error {
  override name = "ClusterUnhealthyError";
}

/** SIGTERM or SIGINT stopped the command between two of its steps (exit INTERRUPTED). */
export class InterruptedError extends Error {
  override name = "InterruptedError";
}

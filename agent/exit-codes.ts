// Named exit codes; main is the only place that exits. Model: etcd's pkg/cobrautl/error.go.
import {
  AwsApiError,
  ClusterUnhealthyError,
  ConfigError,
  EtcdRequestError,
  EtcdUnavailableError,
  InterruptedError,
  MetadataUnavailableError,
  NoGoodSnapshotError,
  RefusedError,
  WaitingError,
} from "./errors.js";

export const EXIT = {
  SUCCESS: 0,
  ERROR: 1,
  BAD_CONNECTION: 2,
  INVALID_INPUT: 3,
  WAITING: 4,
  REFUSED: 5,
  UNHEALTHY: 6,
  BAD_ARGS: 64,
  INTERRUPTED: 130,
} as const;

export type ExitName = keyof typeof EXIT;

export function exitNameFor(error: unknown): ExitName {
  if (error instanceof ConfigError) return "INVALID_INPUT";
  if (error instanceof InterruptedError) return "INTERRUPTED";
  if (error instanceof MetadataUnavailableError) return "BAD_CONNECTION";
  if (error instanceof EtcdUnavailableError) return "BAD_CONNECTION";
  if (error instanceof AwsApiError) return "BAD_CONNECTION";
  if (error instanceof WaitingError) return "WAITING";
  if (error instanceof RefusedError) return "REFUSED";
  if (error instanceof EtcdRequestError) return "REFUSED";
  if (error instanceof ClusterUnhealthyError) return "UNHEALTHY";
  // snapshot restore found no snapshot that verifies: nothing was restored.
  if (error instanceof NoGoodSnapshotError) return "REFUSED";
  return "ERROR";
}

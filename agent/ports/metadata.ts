import type { Identity } from "../planner/observation.js";

/** Instance metadata (IMDSv2). */
export interface InstanceMetadata {
  identity(): Promise<Identity>;
  /** autoscaling/target-lifecycle-state, or null when the instance has none (not in an ASG yet). */
  targetLifecycleState(): Promise<string | null>;
}

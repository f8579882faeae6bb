import type { AsgInstance } from "../planner/observation.js";

export interface GroupDescription {
  name: string;
  desiredCapacity: number;
  instances: Array<Pick<AsgInstance, "instanceId" | "lifecycleState" | "healthStatus">>;
}

export interface LifecycleHooks {
  launch: string | null;
  terminate: string | null;
}

/** EC2 Auto Scaling. */
export interface AutoScaling {
  /** The ASG an instance belongs to, or null when it belongs to none. */
  groupOf(instanceId: string): Promise<string | null>;
  describeGroup(name: string): Promise<GroupDescription>;
  lifecycleHooks(groupName: string): Promise<LifecycleHooks>;
  completeLifecycleAction(input: {
    groupName: string;
    hookName: string;
    instanceId: string;
    result: "CONTINUE" | "ABANDON";
  }): Promise<void>;
  recordLifecycleActionHeartbeat(input: {
    groupName: string;
    hookName: string;
    instanceId: string;
  }): Promise<void>;
  setInstanceUnhealthy(instanceId: string): Promise<void>;
}

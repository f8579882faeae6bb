/** EC2, for what the ASG does not say: addresses and launch times. */
export interface InstanceFacts {
  instanceId: string;
  privateIp: string | null;
  launchTime: string | null;
  state: string;
}

export interface Ec2 {
  describeInstances(instanceIds: string[]): Promise<InstanceFacts[]>;
}

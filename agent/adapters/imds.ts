// Instance metadata over IMDSv2, through @aws-sdk/ec2-metadata-service (token flow included).
// The endpoint follows the SDK's own setting: AWS_EC2_METADATA_SERVICE_ENDPOINT.
import { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { MetadataUnavailableError } from "../errors.js";
import type { Identity } from "../planner/observation.js";
import type { Clock } from "../ports/clock.js";
import type { InstanceMetadata } from "../ports/metadata.js";

export interface ImdsOptions {
  /** Give up on a path after this long, across retries. */
  deadlineMs: number;
  /** One HTTP attempt's timeout. */
  requestTimeoutMs?: number;
  endpoint?: string;
  clock: Clock;
}

function statusOf(error: unknown): number | undefined {
  const e = error as { $metadata?: { httpStatusCode?: number }; statusCode?: number };
  return e?.$metadata?.httpStatusCode ?? e?.statusCode;
}

export class ImdsMetadata implements InstanceMetadata {
  constructor(private readonly options: ImdsOptions) {}

  /**
   * A new client for each attempt: after one failed token request the library stops asking for
   * tokens for the life of the object, and with IMDSv1 disabled every later call would fail
   * without trying.
   */
  private service(): MetadataService {
    return new MetadataService({
      ...(this.options.endpoint ? { endpoint: this.options.endpoint } : {}),
      httpOptions: { timeout: this.options.requestTimeoutMs ?? 1000 },
      // IMDSv2 only: never fall back to unauthenticated v1 requests.
      ec2MetadataV1Disabled: true,
      retries: 0,
    });
  }

  /** GETs a path, retrying with backoff until the deadline; null on 404. */
  private async get(path: string, allowMissing: boolean): Promise<string | null> {
    const started = this.options.clock.now().getTime();
    let delay = 200;
    let lastError: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.service().request(`/latest/meta-data/${path}`, {})).trim();
      } catch (error) {
        lastError = error;
        const status = statusOf(error);
        if (status === 404) {
          if (allowMissing) return null;
          throw new MetadataUnavailableError(`instance metadata has no ${path} (HTTP 404)`, { cause: error });
        }
        if (status === 400 || status === 403) {
          throw new MetadataUnavailableError(
            `instance metadata refused ${path} (HTTP ${status}); check the launch template's metadata options (IMDSv2 required, hop limit)`,
            { cause: error },
          );
        }
      }
      const elapsed = this.options.clock.now().getTime() - started;
      if (elapsed + delay > this.options.deadlineMs) {
        const reason = lastError instanceof Error ? lastError.message : String(lastError);
        throw new MetadataUnavailableError(
          `instance metadata did not answer ${path} within ${Math.round(this.options.deadlineMs / 1000)}s (${attempt} attempts): ${reason}. ` +
            "Is this an EC2 instance with IMDSv2 enabled? (AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address)",
          { cause: lastError },
        );
      }
      await this.options.clock.sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  private async required(path: string): Promise<string> {
    const value = await this.get(path, false);
    if (value === null || value === "")
      throw new MetadataUnavailableError(`instance metadata ${path} is empty`);
    return value;
  }

  private known: Identity | null = null;

  /** Read once: an instance's identity does not change (a failed read is not remembered). */
  async identity(): Promise<Identity> {
    this.known ??= await this.readIdentity();
    return this.known;
  }

  private async readIdentity(): Promise<Identity> {
    const instanceId = await this.required("instance-id");
    const privateIp = await this.required("local-ipv4");
    const availabilityZone = await this.required("placement/availability-zone");
    const region = (await this.get("placement/region", true)) ?? availabilityZone.replace(/[a-z]$/, "");
    if (!/^i-[0-9a-f]+$/.test(instanceId)) {
      throw new MetadataUnavailableError(
        `instance metadata returned an unexpected instance-id: ${JSON.stringify(instanceId)}`,
      );
    }
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(privateIp)) {
      throw new MetadataUnavailableError(
        `instance metadata returned an unexpected local-ipv4: ${JSON.stringify(privateIp)}`,
      );
    }
    return { instanceId, privateIp, region, availabilityZone };
  }

  async targetLifecycleState(): Promise<string | null> {
    return this.get("autoscaling/target-lifecycle-state", true);
  }
}

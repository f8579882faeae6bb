// The CA rotation's restart lock: one key in etcd under a lease (a create-if-absent transaction),
// so at most one member restarts its etcd at a time and a holder that dies frees it by the TTL.
import { Etcd3, type IOptions } from "etcd3";
import { EtcdUnavailableError } from "../errors.js";
import type { RestartLock } from "../ports/etcd-service.js";

export const RESTART_LOCK_KEY = "/etcd-agent/ca-rotation/restart-lock";

export class Etcd3RestartLock implements RestartLock {
  constructor(private readonly credentials: () => IOptions["credentials"]) {}

  private async with<T>(endpoints: string[], fn: (c: Etcd3) => Promise<T>): Promise<T> {
    const credentials = this.credentials();
    const client = new Etcd3({
      hosts: endpoints,
      ...(credentials ? { credentials } : {}),
      dialTimeout: 3000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
    });
    try {
      return await fn(client);
    } catch (error) {
      throw new EtcdUnavailableError(
        `the restart lock on ${endpoints.join(",")}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    } finally {
      client.close();
    }
  }

  acquire(
    endpoints: string[],
    owner: string,
    ttlSeconds: number,
  ): Promise<{ held: boolean; holder: string }> {
    return this.with(endpoints, async (c) => {
      const holder = await c.get(RESTART_LOCK_KEY).string();
      if (holder === owner) return { held: true, holder };
      if (holder !== null) return { held: false, holder };
      const lease = await c.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
      const out = await c
        .if(RESTART_LOCK_KEY, "Create", "==", 0)
        .then(c.put(RESTART_LOCK_KEY).value(owner).lease(lease.ID))
        .else(c.get(RESTART_LOCK_KEY))
        .commit();
      if (out.succeeded) return { held: true, holder: owner };
      await c.leaseClient.leaseRevoke({ ID: lease.ID }).catch(() => undefined);
      const kv = out.responses[0]?.response_range?.kvs?.[0];
      return { held: false, holder: kv ? kv.value.toString() : "(gone)" };
    });
  }

  release(endpoints: string[], owner: string): Promise<void> {
    return this.with(endpoints, async (c) => {
      await c.if(RESTART_LOCK_KEY, "Value", "==", owner).then(c.delete().key(RESTART_LOCK_KEY)).commit();
    });
  }
}

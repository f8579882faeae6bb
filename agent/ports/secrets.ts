/** Secrets the cluster's TLS lives in (AWS Secrets Manager). Values are strings (JSON here). */
export interface SecretStore {
  /** The current value, or null when there is no such secret. */
  get(name: string): Promise<string | null>;
  /**
   * Creates the secret with this value if it does not exist, under `kmsKeyId` when given (else the
   * store's default key); false when it already did (someone else won).
   */
  createIfAbsent(
    name: string,
    value: string,
    description: string,
    options?: { kmsKeyId?: string },
  ): Promise<boolean>;
  /** A new current value of an existing secret. */
  put(name: string, value: string): Promise<void>;
}

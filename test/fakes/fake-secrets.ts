// Secrets Manager as a map, for the TLS tests: create-if-absent like CreateSecret, and a count of
// the secrets actually created.
import type { SecretStore } from "../../agent/ports/secrets.js";

export class MapSecrets implements SecretStore {
  readonly values = new Map<string, string>();
  created = 0;
  async get(name: string) {
    return this.values.get(name) ?? null;
  }
  async createIfAbsent(name: string, value: string) {
    if (this.values.has(name)) return false;
    this.created++;
    this.values.set(name, value);
    return true;
  }
  async put(name: string, value: string) {
    this.values.set(name, value);
  }
}

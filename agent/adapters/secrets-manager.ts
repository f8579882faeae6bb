// The TLS secrets in AWS Secrets Manager (@aws-sdk/client-secrets-manager). CreateSecret is the
// atomic create-if-absent: of two nodes creating the CA at once, one gets ResourceExistsException.
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { ConfigError } from "../errors.js";
import type { SecretStore } from "../ports/secrets.js";

export class SecretsManagerStore implements SecretStore {
  constructor(private readonly client: SecretsManagerClient) {}

  async get(name: string): Promise<string | null> {
    try {
      const out = await this.client.send(new GetSecretValueCommand({ SecretId: name }));
      if (out.SecretString === undefined)
        throw new ConfigError(`secret ${name} has no string value (a binary secret is not one of ours)`);
      return out.SecretString;
    } catch (error) {
      if (error instanceof ResourceNotFoundException) return null;
      throw error;
    }
  }

  async createIfAbsent(
    name: string,
    value: string,
    description: string,
    options: { kmsKeyId?: string } = {},
  ): Promise<boolean> {
    try {
      await this.client.send(
        new CreateSecretCommand({
          Name: name,
          SecretString: value,
          Description: description,
          ...(options.kmsKeyId ? { KmsKeyId: options.kmsKeyId } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ResourceExistsException) return false;
      throw error;
    }
  }

  async put(name: string, value: string): Promise<void> {
    await this.client.send(new PutSecretValueCommand({ SecretId: name, SecretString: value }));
  }
}

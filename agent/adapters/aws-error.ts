import { AwsApiError } from "../errors.js";

/** Wraps an SDK call so that a failure becomes an AwsApiError naming the service and operation. */
export async function awsCall<T>(service: string, operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    throw new AwsApiError(
      `${service} ${operation} failed: ${e.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}: ${e.message ?? String(error)}`,
      service,
      operation,
      { cause: error },
    );
  }
}

/** The SDK error name behind an AwsApiError, for adapters that treat some errors as answers. */
export function errorName(error: unknown): string | undefined {
  const cause = error instanceof AwsApiError ? error.cause : error;
  return (cause as { name?: string } | undefined)?.name;
}

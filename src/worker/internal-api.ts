/**
 * The API's internal endpoints as a worker uses them (service-account token): claim a task, report
 * step and task status. A 409 means the task moved on without this worker (a newer attempt, or the
 * run ended) and is surfaced as a ForgeError `conflict`, so the handler stops; network errors and
 * 5xx are retried here with backoff before they fail the job as retryable.
 */
import { ForgeError, RetryableError, type ErrorCode } from '../domain/errors.ts';
import { backoffDelay } from '../domain/jobs.ts';
import type { ReportedStatus } from '../domain/statuses.ts';

export interface InternalApi {
  claimTask(taskId: string): Promise<{ attempt: number }>;
  reportStep(stepId: string, body: { status: ReportedStatus; exit_code?: number | null; logs_s3_key?: string; attempt: number; error?: string }): Promise<void>;
  reportTask(taskId: string, body: { status: ReportedStatus; error?: string; attempt: number }): Promise<void>;
}

export interface InternalApiOptions {
  baseUrl: string;
  token: () => Promise<string>;
  /** Attempts for network errors and 5xx (default 4). */
  attempts?: number;
}

export function httpInternalApi(options: InternalApiOptions): InternalApi {
  const attempts = options.attempts ?? 4;
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, backoffDelay(attempt - 1, { baseMs: 100, maxMs: 2000, jitterMs: 100, maxAttempts: attempts })));
      let response: Response;
      try {
        response = await fetch(new URL(path, options.baseUrl), {
          method,
          headers: { authorization: `Bearer ${await options.token()}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch (error) {
        lastError = error;
        continue;
      }
      const text = await response.text();
      if (response.ok) return (text ? JSON.parse(text) : undefined) as T;
      const parsed = (() => {
        try {
          return (JSON.parse(text) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }).error;
        } catch {
          return undefined;
        }
      })();
      const message = `${method} ${path}: ${response.status} ${parsed?.message ?? text.slice(0, 200)}`;
      if (response.status >= 500 || response.status === 429) {
        lastError = new Error(message);
        continue;
      }
      throw new ForgeError((parsed?.code ?? 'internal_error') as ErrorCode, message, parsed?.details ?? {});
    }
    throw new RetryableError(`the Forge API at ${options.baseUrl} did not answer: ${(lastError as Error)?.message ?? lastError}`, undefined, { cause: lastError });
  }
  return {
    claimTask: (taskId) => call('POST', `/v1/tasks/${taskId}/claim`),
    reportStep: async (stepId, body) => void (await call('PUT', `/v1/steps/${stepId}/status`, body)),
    reportTask: async (taskId, body) => void (await call('PUT', `/v1/tasks/${taskId}/status`, body)),
  };
}

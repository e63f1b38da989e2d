/**
 * The API's internal endpoints as a worker uses them (service-account token): claim a task, report
 * step and task status. A 409 means the task moved on without this worker (a newer attempt, or the
 * run ended) and is surfaced as a ForgeError `conflict`, so the handler stops; network errors and
 * 5xx are retried here with backoff before they fail the job as retryable.
 *
 * Requests go through node:http(s) with a keep-alive agent rather than fetch: a worker sends two
 * per step, and undici's fetch (web streams, header lists) cost about as much CPU again per request.
 */
import http from 'node:http';
import https from 'node:https';
import { ForgeError, RetryableError, type ErrorCode } from '../domain/errors.ts';
import { backoffDelay, type DispatchStage, type JobReply } from '../domain/jobs.ts';
import type { StageJobs } from '../engine/run-jobs.ts';
import type { ReportedStatus } from '../domain/statuses.ts';
import { traceHeaders } from '../lib/tracing.ts';

export interface InternalApi {
  claimTask(taskId: string): Promise<{ attempt: number }>;
  reportStep(stepId: string, body: { status: ReportedStatus; exit_code?: number | null; logs_s3_key?: string; attempt: number; error?: string }): Promise<void>;
  reportTask(taskId: string, body: { status: ReportedStatus; error?: string; attempt: number }): Promise<void>;
  /** The release a reference resolves to (alias, number, SHA), or undefined (404). */
  findRelease(repository: string, project: string, ref: string): Promise<RegisteredRelease | undefined>;
  /** The newest release of a project, or undefined when it has none. */
  latestRelease(repository: string, project: string): Promise<RegisteredRelease | undefined>;
  /** POST /v1/releases: `created` is false when the commit had its release already. */
  registerRelease(body: Record<string, unknown>): Promise<{ id: string; release_number: number; oci_uri: string; created: boolean }>;
}

/** What a dispatcher pod (`forge dispatch`) asks of the API: a stage's jobs, and where replies go. */
export interface DispatchApi {
  stageJobs(runId: string, stage: DispatchStage, group?: number): Promise<StageJobs>;
  /** Hands a worker's reply to the API, which applies it like the built-in dispatcher would. */
  handOver(reply: JobReply): Promise<void>;
}

/** The fields of a release the release job reads back. */
export interface RegisteredRelease {
  id: string;
  release_number: number;
  commit_sha: string;
  oci_uri: string;
  oci_digest: string | null;
  aliases: { alias: string; alias_type: 'numeric' | 'tag' | 'branch' | 'custom' }[];
}

export interface InternalApiOptions {
  baseUrl: string;
  token: () => Promise<string>;
  /** Attempts for network errors, 5xx and 429; default: as many as fit in `retryForMs`. */
  attempts?: number;
  /**
   * How long network errors, 5xx and 429 are retried (default 30 s): long enough for an API replica
   * to restart (a rolling upgrade, a crash) while the job waits, heartbeating; then the job is
   * offered again later (RetryableError).
   */
  retryForMs?: number;
}

/** Sends one request; resolves with the status and the body as text. */
function send(url: URL, agent: http.Agent, method: string, headers: Record<string, string>, payload: string | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, { method, agent, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(payload);
  });
}

export function httpInternalApi(options: InternalApiOptions): InternalApi & DispatchApi {
  const retryForMs = options.retryForMs ?? 30_000;
  const agent = new (new URL(options.baseUrl).protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true });
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await exchange<T>(method, path, body)).body;
  }
  async function exchange<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    let lastError: unknown;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const started = Date.now();
    const another = (attempt: number) => (options.attempts !== undefined ? attempt < options.attempts : attempt === 0 || Date.now() - started < retryForMs);
    for (let attempt = 0; another(attempt); attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, backoffDelay(attempt - 1, { baseMs: 100, maxMs: 2000, jitterMs: 100, maxAttempts: attempt + 1 })));
      let response: { status: number; text: string };
      try {
        response = await send(new URL(path, options.baseUrl), agent, method, {
          authorization: `Bearer ${await options.token()}`,
          ...traceHeaders(),
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        }, payload);
      } catch (error) {
        lastError = error;
        continue;
      }
      const { text } = response;
      if (response.status >= 200 && response.status < 300) return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
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
    stageJobs: (runId, stage, group) => call('POST', `/v1/runs/${runId}/jobs`, { stage, ...(group === undefined ? {} : { group }) }),
    handOver: async (reply) => void (await call('POST', '/v1/job-replies', reply)),
    reportStep: async (stepId, body) => void (await call('PUT', `/v1/steps/${stepId}/status`, body)),
    reportTask: async (taskId, body) => void (await call('PUT', `/v1/tasks/${taskId}/status`, body)),
    async findRelease(repository, project, ref) {
      try {
        return await call<RegisteredRelease>('GET', `/v1/releases/${repository}/${project}/${encodeURIComponent(ref)}`);
      } catch (error) {
        if (error instanceof ForgeError && error.code === 'not_found') return undefined;
        throw error;
      }
    },
    async latestRelease(repository, project) {
      const page = await call<{ releases: RegisteredRelease[] }>('GET', `/v1/releases/${repository}/${project}?limit=1`);
      return page.releases[0];
    },
    async registerRelease(body) {
      const { status, body: created } = await exchange<{ id: string; release_number: number; oci_uri: string }>('POST', '/v1/releases', body);
      return { ...created, created: status === 201 };
    },
  };
}

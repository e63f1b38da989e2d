/**
 * Jobs: what the dispatcher sends to workers, where each type goes, how long it may take and how
 * it is retried (digest §2.4, §2.5).
 */
import { assertNever } from '../lib/assert-never.ts';
import { invalid } from './errors.ts';

export const JOB_TYPES = ['discovery', 'ci', 'artifact', 'release', 'deployment'] as const;
export type JobType = (typeof JOB_TYPES)[number];

/** Worker kinds (`forge worker --type`): release workers also take deployment jobs. */
export const WORKER_TYPES = ['discovery', 'ci', 'artifact', 'release'] as const;
export type WorkerType = (typeof WORKER_TYPES)[number];

export interface StreamSpec {
  name: string;
  /** The stream's subject filter (one token after the prefix: the job id). */
  subjects: string;
  maxAgeMs: number;
  maxMsgs: number;
  /** The durable pull consumer of the worker type. */
  consumer: string;
}

const HOUR = 3_600_000;
export const STREAMS: Record<WorkerType, StreamSpec> = {
  discovery: { name: 'pipeline-discovery', subjects: 'pipeline.discovery.*', maxAgeMs: HOUR, maxMsgs: 1000, consumer: 'discovery-consumer' },
  ci: { name: 'pipeline-tasks', subjects: 'pipeline.tasks.*', maxAgeMs: 2 * HOUR, maxMsgs: 5000, consumer: 'ci-consumer' },
  artifact: { name: 'pipeline-artifacts', subjects: 'pipeline.artifacts.*', maxAgeMs: HOUR, maxMsgs: 1000, consumer: 'artifact-consumer' },
  release: { name: 'pipeline-releases', subjects: 'pipeline.releases.*', maxAgeMs: HOUR, maxMsgs: 1000, consumer: 'release-consumer' },
};

/**
 * What one `forge dispatch` (an Argo Workflow node) runs of a pipeline run, in Workflow order:
 * discovery, the phase groups' CI jobs, the release builds' artifact jobs, their release jobs, and
 * the deployment jobs of the environments the new releases deploy to by themselves (decision 207).
 */
export const DISPATCH_STAGES = ['discovery', 'ci', 'artifact', 'release', 'deployment'] as const;
export type DispatchStage = (typeof DISPATCH_STAGES)[number];

export function isJobType(value: string): value is JobType {
  return (JOB_TYPES as readonly string[]).includes(value);
}

/** The worker type that takes a job type. */
export function workerTypeOf(type: JobType): WorkerType {
  switch (type) {
    case 'discovery':
      return 'discovery';
    case 'ci':
      return 'ci';
    case 'artifact':
      return 'artifact';
    case 'release':
    case 'deployment':
      return 'release';
    default:
      return assertNever(type, 'job type');
  }
}

const JOB_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** The subject a job is published on: `pipeline.<stream>.<job-id>`; unknown types are refused. */
export function subjectOf(type: string, jobId: string): string {
  if (!isJobType(type)) throw invalid(`unknown job type "${type}"; job types are ${JOB_TYPES.join(', ')}`, { type });
  if (!JOB_ID.test(jobId)) throw invalid('a job id is 1-128 letters, digits, "_" or "-"', { job_id: jobId });
  return STREAMS[workerTypeOf(type)].subjects.replace('*', jobId);
}

/** Default time a job may take from publication to its reply (digest §2.5). */
export const JOB_TIMEOUTS_MS: Record<JobType, number> = {
  discovery: 10 * 60_000,
  ci: 30 * 60_000,
  artifact: 20 * 60_000,
  release: 15 * 60_000,
  deployment: 10 * 60_000,
};

/** JetStream deliveries of one message before it is given up (digest §2.4). */
export const MAX_DELIVER = 3;

/** Replies larger than this go to the object store and the reply carries the key (digest §2.4). */
export const MAX_INLINE_REPLY_BYTES = 1024 * 1024;

export const resultKey = (runId: string, type: JobType, jobId: string) => `pipeline-runs/${runId}/results/${type}/${jobId}.json`;

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  jitterMs: number;
  maxAttempts: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 60_000, jitterMs: 1000, maxAttempts: 5 };

/** `min(max, base * 2^attempt) + random(0, jitter)` (digest §2.5); attempt counts from 0. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt)) + Math.floor(random() * policy.jitterMs);
}

/** A job as carried by the queue: ids and what the worker needs; Postgres stays the truth. */
export interface JobMessage {
  id: string;
  type: JobType;
  run_id: string;
  /** The run's attempt (retries of failed tasks publish again under a new attempt). */
  run_attempt: number;
  /** Where the worker publishes the reply. */
  reply_to: string;
  /** When the dispatcher stops waiting (ISO 8601). */
  deadline: string;
  payload: unknown;
  /** When it was published (ISO 8601): dispatch latency is measured from here. */
  published_at?: string;
  /** W3C traceparent of the publish span: the worker's spans join the run's trace. */
  traceparent?: string;
}

export interface JobReply {
  job_id: string;
  type: JobType;
  run_id: string;
  run_attempt: number;
  ok: boolean;
  /** The handler's result, inline when under 1 MB. */
  result?: unknown;
  /** Else the object-store key of the result. */
  result_key?: string;
  /** `details`: a ForgeError's details (e.g. `problems` of a configuration error), when small. */
  error?: { code: string; message: string; details?: Record<string, unknown> };
  /** Which delivery of the message produced this reply. */
  delivery: number;
}

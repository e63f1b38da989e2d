/**
 * What both queue adapters do with one delivered job, so the semantics cannot drift apart:
 * run the handler with heartbeats → reply to the job's inbox → only then ack.
 *
 *   handler resolves          → reply {ok: true, result | result_key}, ack
 *   handler throws Retryable  → nak(backoff) while deliveries remain; else reply the error
 *                               (retries_exhausted), dead-letter a copy, term
 *   handler throws otherwise  → reply the error, term (no redelivery: the error is final)
 *   run cancelled (broadcast) → the handler's signal aborts; whatever it throws is replied, term
 *   reply cannot be sent      → no ack: the message is redelivered after ack_wait
 *
 * Dead letters (decision 123): the adapters keep what the queue could not get an outcome for on a
 * dead-letter queue, with the reason: a message that is not a job (at once: it never will be), a job
 * whose retries ran out (after its reply), and a job delivered max_deliver times without any
 * outcome, its worker dying or freezing every time (answered with a `dead_lettered` reply, so its
 * run fails instead of waiting for a timeout). A final error is an outcome, not a dead letter.
 */
import { RetryableError, isForgeError } from '../domain/errors.ts';
import { MAX_INLINE_REPLY_BYTES, backoffDelay, resultKey, type JobMessage, type JobReply } from '../domain/jobs.ts';
import type { JobHandler, ObjectStore } from '../engine/ports.ts';

export interface DeliveryControl {
  ack(): Promise<void>;
  nak(delayMs: number): void;
  term(): void;
  working(): void;
  /** Stores a copy of the message on the dead-letter queue with the reason; throws when it cannot. */
  deadLetter(reason: string): Promise<void>;
}

/** What the dead-letter queue keeps of a message: why, where it was, how often it was delivered, its bytes. */
export interface DeadLetter {
  reason: string;
  subject: string;
  deliveries: number;
  data: string;
  dead_lettered_at: string;
}

export const NOT_A_JOB = 'not a job message (unparseable, or without id, type, run_id and reply_to)';

/** The reason of a job delivered max_deliver times without an outcome. */
export const noOutcome = (deliveries: number) =>
  `no outcome after ${deliveries} deliveries: every worker that took it died or froze before replying`;

/** The reply that tells a job's dispatcher the queue gave up on it. */
export function deadLetterReply(job: JobMessage, deliveries: number, reason: string): JobReply {
  return {
    job_id: job.id, type: job.type, run_id: job.run_id, run_attempt: job.run_attempt, delivery: deliveries,
    ok: false, error: { code: 'dead_lettered', message: `job ${job.id} was dead-lettered: ${reason}` },
  };
}

/** In-flight jobs by run, so a cancel broadcast aborts the run's handlers. */
export class CancelRegistry {
  private readonly byRun = new Map<string, Set<AbortController>>();

  track(runId: string, controller: AbortController): () => void {
    let set = this.byRun.get(runId);
    if (!set) this.byRun.set(runId, (set = new Set()));
    set.add(controller);
    return () => {
      set.delete(controller);
      if (set.size === 0) this.byRun.delete(runId);
    };
  }

  cancel(runId: string, reason: string): void {
    for (const controller of this.byRun.get(runId) ?? []) controller.abort(new Error(reason));
  }

  abortAll(reason: string): void {
    for (const set of this.byRun.values()) for (const controller of set) controller.abort(new Error(reason));
  }
}

export interface DeliveryOptions {
  job: JobMessage;
  deliveryCount: number;
  maxDeliver: number;
  heartbeatMs: number;
  handler: JobHandler;
  control: DeliveryControl;
  cancels: CancelRegistry;
  /** Publishes a reply and resolves once the transport has it. */
  reply: (subject: string, reply: JobReply) => Promise<void>;
  objects: ObjectStore | undefined;
  /** Aborts with the consumer (stop). */
  stopping?: AbortSignal;
}

/** Parses a queued message into a job, or undefined when it is not one (it is then dropped). */
export function parseJob(data: string): JobMessage | undefined {
  try {
    const job = JSON.parse(data) as Partial<JobMessage>;
    if (typeof job.id !== 'string' || typeof job.type !== 'string' || typeof job.run_id !== 'string' || typeof job.reply_to !== 'string') return undefined;
    return job as JobMessage;
  } catch {
    return undefined;
  }
}

export async function handleDelivery(options: DeliveryOptions): Promise<void> {
  const { job, deliveryCount, control } = options;
  const controller = new AbortController();
  const untrack = options.cancels.track(job.run_id, controller);
  const onStop = () => controller.abort(new Error('worker stopping'));
  options.stopping?.addEventListener('abort', onStop);
  const heartbeat = setInterval(() => control.working(), options.heartbeatMs);
  const base = { job_id: job.id, type: job.type, run_id: job.run_id, run_attempt: job.run_attempt, delivery: deliveryCount };
  try {
    let reply: JobReply;
    try {
      const result = await options.handler({ job, deliveryCount, maxDeliver: options.maxDeliver, signal: controller.signal });
      reply = await inlineOrStored({ ...base, ok: true, result }, options.objects);
    } catch (error) {
      if (error instanceof RetryableError && !controller.signal.aborted && deliveryCount < options.maxDeliver) {
        control.nak(error.retryAfterMs ?? backoffDelay(deliveryCount - 1));
        return;
      }
      const code = controller.signal.aborted ? 'cancelled' : error instanceof RetryableError ? 'retries_exhausted' : isForgeError(error) ? error.code : 'job_failed';
      const message = controller.signal.aborted ? String((controller.signal.reason as Error | undefined)?.message ?? 'cancelled') : (error as Error)?.message ?? String(error);
      const details = !controller.signal.aborted && isForgeError(error) && Object.keys(error.details).length > 0 ? { details: error.details } : {};
      reply = { ...base, ok: false, error: { code, message, ...details } };
      try {
        await options.reply(job.reply_to, reply);
      } catch {
        return; // not acked: redelivered, and replied then
      }
      if (code === 'retries_exhausted') {
        try {
          await control.deadLetter(`retries exhausted after ${deliveryCount} deliveries: ${message}`);
        } catch {
          return; // not termed: once its deliveries are out, the queue dead-letters it itself
        }
      }
      control.term();
      return;
    }
    try {
      await options.reply(job.reply_to, reply);
    } catch {
      return;
    }
    await control.ack();
  } finally {
    clearInterval(heartbeat);
    options.stopping?.removeEventListener('abort', onStop);
    untrack();
  }
}

async function inlineOrStored(reply: JobReply, objects: ObjectStore | undefined): Promise<JobReply> {
  const text = JSON.stringify(reply.result ?? null);
  if (Buffer.byteLength(text) <= MAX_INLINE_REPLY_BYTES || !objects) return reply;
  const key = resultKey(reply.run_id, reply.type, reply.job_id);
  await objects.put(key, text, { contentType: 'application/json' });
  const { result: _result, ...rest } = reply;
  return { ...rest, result_key: key };
}

/**
 * The job outcome a worker's metrics and logs give (forge_job_duration_seconds{outcome}) agrees with
 * what the queue did with the job: `retry` only while a delivery is left, `error` for the last one
 * (replied retries_exhausted and dead-lettered), `cancelled` for a job stopped by a cancel, `ok`.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RetryableError } from '../../src/domain/errors.ts';
import type { JobMessage, JobReply } from '../../src/domain/jobs.ts';
import { createMetrics } from '../../src/lib/metrics.ts';
import { instrumentQueue } from '../../src/queue/instrumented.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';

const until = async (check: () => boolean, timeoutMs = 8000) => {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('instrumentQueue: job outcomes (in-process queue, max_deliver 2)', () => {
  it('counts retry, then error on the last delivery; cancelled for a cancelled result; ok', async () => {
    const metrics = createMetrics({ defaults: false });
    const lines: { fields: Record<string, unknown>; message: string }[] = [];
    const log = { info: (fields: Record<string, unknown>, message: string) => void lines.push({ fields, message }), warn: (fields: Record<string, unknown>, message: string) => void lines.push({ fields, message }) };
    const queue = instrumentQueue(createMemoryJobQueue(new MemoryBroker({ maxDeliver: 2, ackWaitMs: 5000 })), { metrics, log });
    const replies: JobReply[] = [];
    const inbox = await queue.openInbox(async (reply) => void replies.push(reply));
    const job = (kind: string): JobMessage => ({
      id: randomUUID(), type: 'ci', run_id: randomUUID(), run_attempt: 1, reply_to: inbox.subject,
      deadline: new Date(Date.now() + 60_000).toISOString(), payload: { kind },
    } as JobMessage);
    const consumer = await queue.consume('ci', async ({ job: j }) => {
      const { kind } = j.payload as { kind: string };
      if (kind === 'retry') throw new RetryableError('not yet', 10);
      if (kind === 'cancelled') return { status: 'cancelled' };
      return { status: 'success' };
    }, { concurrency: 2 });
    for (const kind of ['retry', 'cancelled', 'ok']) {
      const j = job(kind);
      await queue.publish(j, j.id);
    }
    await until(() => replies.length === 3);
    const text = await metrics.registry.metrics();
    const count = (outcome: string) => Number(new RegExp(`^forge_job_duration_seconds_count\\{job_type="ci",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    expect({ retry: count('retry'), error: count('error'), cancelled: count('cancelled'), ok: count('ok') }).toEqual({ retry: 1, error: 1, cancelled: 1, ok: 1 });
    expect(replies.find((r) => !r.ok)?.error?.code).toBe('retries_exhausted');
    expect(lines.filter((l) => l.message === 'job failed').map((l) => l.fields.outcome)).toEqual(['retry', 'error']);
    expect(lines.filter((l) => l.message === 'job finished').map((l) => l.fields.outcome).sort()).toEqual(['cancelled', 'ok']);
    await consumer.stop();
    await inbox.close();
    await queue.close();
  });
});

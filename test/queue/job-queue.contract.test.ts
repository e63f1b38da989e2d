/**
 * One contract for both job queues (in-process and NATS JetStream): routing by job type, msgID
 * dedupe, reply-before-ack, redelivery when a worker dies (at most 3 deliveries), heartbeats that
 * keep long jobs, retryable vs final errors, cancel broadcasts, replies over 1 MB by reference.
 * Digest §8 behaviours 20, 21, 23, 25.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryableError, invalid } from '../../src/domain/errors.ts';
import { MAX_INLINE_REPLY_BYTES, resultKey, type JobMessage, type JobReply, type JobType, type WorkerType } from '../../src/domain/jobs.ts';
import type { Delivery, JobQueue, ObjectStore } from '../../src/engine/ports.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import { MemoryBroker, createMemoryJobQueue, type QueueTimings } from '../../src/queue/jobs.memory.ts';
import { connectNatsJobs, deleteJobStreams } from '../../src/queue/jobs.nats.ts';
import type { DeadLetter } from '../../src/queue/delivery.ts';
import { TEST_NATS_URL, natsUnavailable, readDeadLetters } from '../helpers/nats.ts';

const TIMINGS: QueueTimings = { ackWaitMs: 1000, maxDeliver: 3, dedupeWindowMs: 30_000 };

interface Backend {
  /** A new connection to the same queue (as another process would have). */
  connect(objects?: ObjectStore): Promise<JobQueue>;
  /** What the dead-letter queue holds, oldest first. */
  deadLetters(): Promise<DeadLetter[]>;
  cleanup(): Promise<void>;
}

const backends: { name: string; skip?: string; open(): Promise<Backend> }[] = [
  {
    name: 'memory',
    async open() {
      const broker = new MemoryBroker(TIMINGS);
      return {
        connect: async (objects) => createMemoryJobQueue(broker, objects ? { objects } : {}),
        deadLetters: async () => structuredClone(broker.dead),
        cleanup: async () => undefined,
      };
    },
  },
  {
    name: 'nats',
    ...(natsUnavailable ? { skip: natsUnavailable } : {}),
    async open() {
      const namespace = `t${randomUUID().slice(0, 8)}.`;
      return {
        connect: (objects) => connectNatsJobs(TEST_NATS_URL, { namespace, timings: TIMINGS, ...(objects ? { objects } : {}) }),
        deadLetters: () => readDeadLetters(TEST_NATS_URL, namespace),
        cleanup: () => deleteJobStreams(TEST_NATS_URL, namespace),
      };
    },
  },
];

const until = async (check: () => boolean, timeoutMs = 8000) => {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const eventuallyLetters = async (read: () => Promise<DeadLetter[]>, count: number, timeoutMs = 8000) => {
  const start = Date.now();
  for (;;) {
    const letters = await read();
    if (letters.length >= count) return letters;
    if (Date.now() - start > timeoutMs) throw new Error(`${letters.length} dead letters, not ${count}`);
    await sleep(50);
  }
};

for (const backend of backends) {
  describe.skipIf(backend.skip !== undefined)(`job queue contract on ${backend.name}`, () => {
    let opened: Backend;
    const queues: JobQueue[] = [];
    const connect = async (objects?: ObjectStore) => {
      const q = await opened.connect(objects);
      queues.push(q);
      return q;
    };
    beforeAll(async () => {
      opened = await backend.open();
    });
    afterAll(async () => {
      for (const q of queues) await q.close().catch(() => undefined);
      await opened.cleanup();
    });

    /** A dispatcher side: an inbox collecting replies, and a job factory addressed to it. */
    async function dispatcher(q: JobQueue) {
      const replies: JobReply[] = [];
      // Its own inbox name: on NATS, inboxes of one name share their replies (API replicas).
      const inbox = await q.openInbox((r) => void replies.push(r), { name: `test-${randomUUID()}` });
      const job = (type: JobType, payload: unknown = {}): JobMessage => ({
        id: randomUUID(), type, run_id: randomUUID(), run_attempt: 1, reply_to: inbox.subject,
        deadline: new Date(Date.now() + 60_000).toISOString(), payload,
      });
      return { replies, job, inbox };
    }

    it('reports each stream\'s lag: jobs not taken, taken and unacked, the oldest one\'s age; nothing once all are done', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      const artifactLag = async () => {
        const all = await q.lag();
        expect(all).toHaveLength(4);
        return all.find((lag) => lag.stream.endsWith('pipeline-artifacts'))!;
      };
      expect(await artifactLag()).toEqual(expect.objectContaining({ pending: 0, unacked: 0, oldestAgeMs: null }));
      const jobs = [d.job('artifact'), d.job('artifact'), d.job('artifact')];
      for (const job of jobs) await q.publish(job, job.id);
      await sleep(50);
      const waiting = await artifactLag();
      expect(waiting).toMatchObject({ pending: 3, unacked: 0 });
      expect(waiting.oldestAgeMs).toBeGreaterThanOrEqual(40);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const started: string[] = [];
      const c = await q.consume('artifact', async ({ job }) => {
        started.push(job.id);
        await gate;
        return {};
      }, { concurrency: 1 });
      await until(() => started.length === 1);
      expect(await artifactLag()).toMatchObject({ pending: 2, unacked: 1 });
      release();
      await until(() => d.replies.length === 3);
      await sleep(100); // the last ack reaches the server after the reply
      expect(await artifactLag()).toEqual(expect.objectContaining({ pending: 0, unacked: 0, oldestAgeMs: null }));
      await c.stop();
    });

    it('counts a job waiting out its retry backoff as unacked, not as gone, until it is offered again', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      const job = d.job('discovery');
      const deliveries: number[] = [];
      const c = await q.consume('discovery', async ({ deliveryCount }) => {
        deliveries.push(deliveryCount);
        if (deliveryCount === 1) throw new RetryableError('try later', 1500);
        return { ok: true };
      }, { concurrency: 1 });
      await q.publish(job, job.id);
      await until(() => deliveries.length === 1);
      await sleep(300);
      const lag = (await q.lag()).find((l) => l.stream.endsWith('pipeline-discovery'))!;
      expect(lag).toMatchObject({ pending: 0, unacked: 1 });
      expect(lag.oldestAgeMs).not.toBeNull();
      await until(() => d.replies.length === 1);
      expect(deliveries).toEqual([1, 2]);
      await c.stop();
    });

    it('routes each job type to its worker type (deployment to release workers) and refuses unknown types', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      const seen: [WorkerType, JobType][] = [];
      const consumers = await Promise.all((['discovery', 'ci', 'artifact', 'release'] as WorkerType[]).map((type) =>
        q.consume(type, async ({ job }) => {
          seen.push([type, job.type]);
          return { handledBy: type };
        }, { concurrency: 2 })));
      for (const type of ['discovery', 'ci', 'artifact', 'release', 'deployment'] as JobType[]) {
        const job = d.job(type);
        await q.publish(job, job.id);
      }
      await until(() => d.replies.length === 5);
      expect(seen.sort()).toEqual([['artifact', 'artifact'], ['ci', 'ci'], ['discovery', 'discovery'], ['release', 'deployment'], ['release', 'release']]);
      expect(d.replies.every((r) => r.ok && r.delivery === 1)).toBe(true);
      await expect(q.publish({ ...d.job('ci'), type: 'build' as JobType }, 'x')).rejects.toThrow(/unknown job type "build"; job types are discovery, ci, artifact, release, deployment/);
      await Promise.all(consumers.map((c) => c.stop()));
    });

    it('drops a second publish with the same msgId', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      let handled = 0;
      const c = await q.consume('ci', async () => ++handled);
      const job = d.job('ci');
      await q.publish(job, `dedupe-${job.id}`);
      await q.publish(job, `dedupe-${job.id}`);
      await until(() => d.replies.length === 1);
      await sleep(300);
      expect(handled).toBe(1);
      await c.stop();
    });

    it('replies before acking; a worker that dies mid-job has the job redelivered to another (delivery 2)', async () => {
      const dying = await connect();
      const d = await dispatcher(await connect());
      const started: Delivery[] = [];
      await dying.consume('ci', (delivery) => {
        started.push(delivery);
        return new Promise(() => undefined); // never finishes: the process dies first
      });
      const job = d.job('ci', { step: 'long' });
      await (await connect()).publish(job, job.id);
      await until(() => started.length === 1);
      await dying.close();
      const survivor = await connect();
      const c = await survivor.consume('ci', async ({ deliveryCount }) => ({ deliveryCount }));
      await until(() => d.replies.length === 1, 10_000);
      expect(d.replies[0]).toMatchObject({ job_id: job.id, ok: true, delivery: 2, result: { deliveryCount: 2 } });
      await c.stop();
    });

    it('a reply over 1 MB goes to the object store and the reply carries only its key; smaller ones inline', async () => {
      const root = mkdtempSync(join(tmpdir(), 'forge-results-'));
      const objects = createFileObjectStore(root);
      try {
        const worker = await connect(objects);
        const d = await dispatcher(await connect());
        const c = await worker.consume('discovery', async (delivery) => ({ projects: 'x'.repeat((delivery.job.payload as { size: number }).size) }));
        const big = d.job('discovery', { size: MAX_INLINE_REPLY_BYTES + 1000 });
        const small = d.job('discovery', { size: 1000 });
        const publisher = await connect();
        await publisher.publish(big, big.id);
        await publisher.publish(small, small.id);
        await until(() => d.replies.length === 2, 10_000);
        const bigReply = d.replies.find((r) => r.job_id === big.id)!;
        expect(bigReply).toMatchObject({ ok: true, result_key: `pipeline-runs/${big.run_id}/results/discovery/${big.id}.json` });
        expect(bigReply.result_key).toBe(resultKey(big.run_id, 'discovery', big.id));
        expect(bigReply.result).toBeUndefined();
        const stored = await objects.get(bigReply.result_key!);
        expect((JSON.parse(stored!.body.toString('utf8')) as { projects: string }).projects).toHaveLength(MAX_INLINE_REPLY_BYTES + 1000);
        const smallReply = d.replies.find((r) => r.job_id === small.id)!;
        expect(smallReply.result_key).toBeUndefined();
        expect((smallReply.result as { projects: string }).projects).toHaveLength(1000);
        await c.stop();
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });

    it('heartbeats keep a job that runs longer than ack_wait from being redelivered', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      let deliveries = 0;
      const c = await q.consume('ci', async () => {
        deliveries += 1;
        await sleep(TIMINGS.ackWaitMs * 2.5);
        return 'done';
      }, { concurrency: 2 });
      const job = d.job('ci');
      await q.publish(job, job.id);
      await until(() => d.replies.length === 1, 10_000);
      await sleep(TIMINGS.ackWaitMs * 1.2);
      expect(deliveries).toBe(1);
      expect(d.replies).toHaveLength(1);
      await c.stop();
    });

    it('retries a RetryableError (delivery 2 succeeds) and replies a final error once, without redelivery', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      const calls = new Map<string, number>();
      const c = await q.consume('artifact', async ({ job, deliveryCount }) => {
        calls.set(job.id, (calls.get(job.id) ?? 0) + 1);
        const kind = (job.payload as { kind: string }).kind;
        if (kind === 'flaky' && deliveryCount === 1) throw new RetryableError('registry answered 503', 50);
        if (kind === 'broken') throw invalid('artifact config is wrong');
        if (kind === 'always') throw new RetryableError('network down', 50);
        return 'ok';
      }, { concurrency: 3 });
      const flaky = d.job('artifact', { kind: 'flaky' });
      const broken = d.job('artifact', { kind: 'broken' });
      const always = d.job('artifact', { kind: 'always' });
      for (const job of [flaky, broken, always]) await q.publish(job, job.id);
      await until(() => d.replies.length === 3, 10_000);
      await sleep(TIMINGS.ackWaitMs * 1.5);
      const byId = new Map(d.replies.map((r) => [r.job_id, r]));
      expect(byId.get(flaky.id)).toMatchObject({ ok: true, delivery: 2, result: 'ok' });
      expect(byId.get(broken.id)).toMatchObject({ ok: false, delivery: 1, error: { code: 'validation_error', message: 'artifact config is wrong' } });
      expect(byId.get(always.id)).toMatchObject({ ok: false, delivery: 3, error: { code: 'retries_exhausted', message: 'network down' } });
      expect([calls.get(flaky.id), calls.get(broken.id), calls.get(always.id)]).toEqual([2, 1, 3]);
      expect(d.replies).toHaveLength(3);
      await c.stop();
    });

    it('a cancel broadcast from another connection aborts the run\'s jobs in flight', async () => {
      const worker = await connect();
      const control = await connect();
      const d = await dispatcher(control);
      const c = await worker.consume('ci', ({ signal }) => new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason as Error));
      }), { concurrency: 2 });
      const job = d.job('ci');
      const other = d.job('ci');
      await control.publish(job, job.id);
      await control.publish(other, other.id);
      await sleep(300);
      await control.broadcastCancel(job.run_id, 'another task failed (fail-fast)');
      await until(() => d.replies.length === 1);
      expect(d.replies[0]).toMatchObject({ job_id: job.id, ok: false, error: { code: 'cancelled', message: 'another task failed (fail-fast)' } });
      await control.broadcastCancel(other.run_id, 'cancelled by alice');
      await until(() => d.replies.length === 2);
      await c.stop();
    });

    it('dead-letters a message that is not a job at once (no handler sees it), and a job whose retries ran out after its reply', async () => {
      const q = await connect();
      const d = await dispatcher(q);
      const handled: string[] = [];
      const c = await q.consume('artifact', async ({ job }) => {
        handled.push(job.id);
        throw new RetryableError('registry answered 503', 50);
      });
      const before = (await opened.deadLetters()).length;
      const garbage = { ...d.job('artifact'), reply_to: undefined } as unknown as JobMessage;
      await q.publish(garbage, garbage.id);
      const exhausted = d.job('artifact');
      await q.publish(exhausted, exhausted.id);
      await until(() => d.replies.length === 1, 10_000);
      expect(d.replies[0]).toMatchObject({ job_id: exhausted.id, ok: false, delivery: 3, error: { code: 'retries_exhausted' } });
      const letters = await eventuallyLetters(() => opened.deadLetters(), before + 2);
      const mine = letters.slice(before).sort((a, b) => a.deliveries - b.deliveries);
      expect(mine).toEqual([
        { reason: 'not a job message (unparseable, or without id, type, run_id and reply_to)', subject: expect.stringContaining(`pipeline.artifacts.${garbage.id}`), deliveries: 1, data: JSON.stringify(garbage), dead_lettered_at: expect.any(String) },
        { reason: 'retries exhausted after 3 deliveries: registry answered 503', subject: expect.stringContaining(`pipeline.artifacts.${exhausted.id}`), deliveries: 3, data: JSON.stringify(exhausted), dead_lettered_at: expect.any(String) },
      ]);
      expect(handled).toEqual([exhausted.id, exhausted.id, exhausted.id]);
      await c.stop();
    });

    it('a job delivered max_deliver times without any outcome (its worker died each time) is dead-lettered, and its dispatcher is told', async () => {
      const d = await dispatcher(await connect());
      const before = (await opened.deadLetters()).length;
      const job = d.job('ci', { poison: true });
      await (await connect()).publish(job, job.id);
      for (let n = 1; n <= TIMINGS.maxDeliver; n++) {
        // A worker takes it and dies with it (never replies, never acks).
        const dying = await connect();
        let took = 0;
        const c = await dying.consume('ci', () => {
          took += 1;
          return new Promise(() => undefined);
        });
        await until(() => took === 1, 10_000);
        void c;
        await dying.close();
      }
      // A healthy worker keeps asking for jobs (JetStream gives up on a message when a consumer
      // asks after its last ack_wait ran out): it never gets this one.
      let again = 0;
      const healthy = await (await connect()).consume('ci', async () => ++again);
      await until(() => d.replies.length === 1, 15_000);
      expect(d.replies[0]).toEqual({
        job_id: job.id, type: 'ci', run_id: job.run_id, run_attempt: 1, delivery: 3, ok: false,
        error: { code: 'dead_lettered', message: `job ${job.id} was dead-lettered: no outcome after 3 deliveries: every worker that took it died or froze before replying` },
      });
      const letters = await eventuallyLetters(() => opened.deadLetters(), before + 1);
      expect(letters.slice(before)).toEqual([{
        reason: 'no outcome after 3 deliveries: every worker that took it died or froze before replying', subject: expect.stringContaining(`pipeline.tasks.${job.id}`),
        deliveries: 3, data: JSON.stringify(job), dead_lettered_at: expect.any(String),
      }]);
      // Off its work queue: nobody gets it again.
      await sleep(TIMINGS.ackWaitMs * 1.5);
      expect(again).toBe(0);
      await healthy.stop();
    });

    // NATS only: in process a reply has nowhere to wait once its process is gone.
    it.skipIf(backend.name === 'memory')('replies are durable: one sent while its inbox is closed reaches the next opening of that name; one whose handling fails comes again', async () => {
      const name = `durable-${randomUUID()}`;
      const server = await connect();
      const first = await server.openInbox(() => undefined, { name });
      await first.close(); // the server that published the job goes away
      const worker = await connect();
      const c = await worker.consume('discovery', async () => 'plan');
      const job: JobMessage = {
        id: randomUUID(), type: 'discovery', run_id: randomUUID(), run_attempt: 1, reply_to: first.subject,
        deadline: new Date(Date.now() + 60_000).toISOString(), payload: {},
      };
      await worker.publish(job, job.id);
      await sleep(500); // handled and acked by the worker meanwhile; its reply waits
      const handled: JobReply[] = [];
      let failures = 0;
      const restarted = await (await connect()).openInbox(async (reply) => {
        if (failures++ === 0) throw new Error('database away');
        handled.push(reply);
      }, { name });
      await until(() => handled.length === 1, 10_000);
      expect(handled[0]).toMatchObject({ job_id: job.id, ok: true, result: 'plan', delivery: 1 });
      expect(failures).toBe(2);
      await sleep(300);
      expect(handled).toHaveLength(1);
      await restarted.close();
      await c.stop();
    });
  });
}

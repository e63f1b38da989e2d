/**
 * The job queue on NATS JetStream (2.9 features only): one workqueue stream per worker type
 * (pipeline-discovery, pipeline-tasks, pipeline-artifacts, pipeline-releases on pipeline.<kind>.*),
 * one durable pull consumer each (explicit ack, max_deliver 3, ack_wait with heartbeats), msgID
 * dedupe on publish, cancel broadcasts on `forge.cancel.<run>`.
 * Replies are durable: a worker stores its reply on the pipeline-replies stream (subject
 * pipeline.replies.<inbox>) before it acks the job, and each inbox name is a durable consumer that
 * acks a reply only once the dispatcher has handled it. A reply that arrives while its server is
 * down waits for the server's next start (fault 4), instead of going to a core-NATS inbox nobody
 * listens to any more.
 * A `namespace` prefixes every stream and subject so test suites never share a stream.
 */
import { ForgeError } from '../domain/errors.ts';
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { STREAMS, backoffDelay, subjectOf, type JobMessage, type JobReply, type WorkerType } from '../domain/jobs.ts';
import type { JobConsumer, JobHandler, JobQueue, ObjectStore } from '../engine/ports.ts';
import { CancelRegistry, handleDelivery, parseJob } from './delivery.ts';
import { DEFAULT_TIMINGS, type QueueTimings } from './jobs.memory.ts';

export const CANCEL_SUBJECT = 'forge.cancel';

const quietly = (fn: () => void) => {
  try {
    fn();
  } catch {
    // see the caller
  }
};

export interface NatsJobsOptions {
  name?: string;
  namespace?: string;
  timings?: Partial<QueueTimings>;
  objects?: ObjectStore;
}

export function streamNames(namespace = '') {
  const names = {} as Record<WorkerType, { stream: string; subjects: string; consumer: string }>;
  for (const [type, spec] of Object.entries(STREAMS) as [WorkerType, (typeof STREAMS)[WorkerType]][]) {
    names[type] = { stream: `${namespace.replace(/\./g, '-')}${spec.name}`, subjects: `${namespace}${spec.subjects}`, consumer: spec.consumer };
  }
  return names;
}

/** The stream replies are stored on until their inbox's dispatcher has handled them. */
export function replyStreamName(namespace = ''): { stream: string; subjects: string } {
  return { stream: `${namespace.replace(/\./g, '-')}pipeline-replies`, subjects: `${namespace}pipeline.replies.*` };
}

const REPLY_MAX_AGE_MS = 24 * 3_600_000;
const INBOX_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Creates or updates the streams and durable consumers (idempotent; every process may call it). */
export async function ensureJobStreams(jsm: JetStreamManager, namespace: string, timings: QueueTimings): Promise<void> {
  const names = streamNames(namespace);
  for (const type of Object.keys(names) as WorkerType[]) {
    const spec = STREAMS[type];
    const { stream, subjects, consumer } = names[type];
    const config = {
      name: stream, subjects: [subjects], retention: RetentionPolicy.Workqueue, storage: StorageType.File,
      max_age: nanos(spec.maxAgeMs), max_msgs: spec.maxMsgs, duplicate_window: nanos(timings.dedupeWindowMs), num_replicas: 1,
    };
    try {
      await jsm.streams.info(stream);
      await jsm.streams.update(stream, config);
    } catch (error) {
      if (!/not found/i.test((error as Error).message)) throw error;
      await jsm.streams.add(config);
    }
    const consumerConfig = {
      durable_name: consumer, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      max_deliver: timings.maxDeliver, ack_wait: nanos(timings.ackWaitMs), filter_subject: subjects, max_ack_pending: 10_000,
    };
    try {
      await jsm.consumers.info(stream, consumer);
      await jsm.consumers.update(stream, consumer, { max_deliver: timings.maxDeliver, ack_wait: nanos(timings.ackWaitMs) });
    } catch (error) {
      if (!/not found/i.test((error as Error).message)) throw error;
      await jsm.consumers.add(stream, consumerConfig);
    }
  }
  const replies = replyStreamName(namespace);
  const replyConfig = {
    name: replies.stream, subjects: [replies.subjects], retention: RetentionPolicy.Workqueue, storage: StorageType.File,
    max_age: nanos(REPLY_MAX_AGE_MS), duplicate_window: nanos(timings.dedupeWindowMs), num_replicas: 1,
  };
  try {
    await jsm.streams.info(replies.stream);
    await jsm.streams.update(replies.stream, replyConfig);
  } catch (error) {
    if (!/not found/i.test((error as Error).message)) throw error;
    await jsm.streams.add(replyConfig);
  }
}

/** Creates the durable consumer of an inbox (idempotent): every reply to its subject, until handled. */
async function ensureInboxConsumer(jsm: JetStreamManager, namespace: string, name: string, timings: QueueTimings): Promise<void> {
  const { stream } = replyStreamName(namespace);
  try {
    await jsm.consumers.info(stream, name);
  } catch (error) {
    if (!/not found/i.test((error as Error).message)) throw error;
    await jsm.consumers.add(stream, {
      durable_name: name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(timings.ackWaitMs), filter_subject: `${namespace}pipeline.replies.${name}`, max_ack_pending: 10_000,
    });
  }
}

/**
 * Pulls from a durable consumer and hands each message to `onMessage`, at most `concurrency` at
 * once, until `stopping` aborts; resolves once every message handed over is settled.
 */
async function pullLoop(nc: NatsConnection, consumer: Consumer, concurrency: number, stopping: AbortSignal, onMessage: (msg: JsMsg) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  let freed: (() => void) | undefined;
  const wake = () => {
    const resolve = freed;
    freed = undefined;
    resolve?.();
  };
  stopping.addEventListener('abort', wake);
  const slotFree = () => new Promise<void>((resolve) => {
    if (running.size < concurrency) resolve();
    else freed = resolve;
  });
  while (!stopping.aborted && !nc.isClosed()) {
    await slotFree();
    if (stopping.aborted) break;
    let batch;
    try {
      batch = await consumer.fetch({ max_messages: concurrency - running.size, expires: 1000 });
    } catch {
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      for await (const msg of batch) {
        const work: Promise<void> = onMessage(msg).catch(() => undefined).finally(() => {
          running.delete(work);
          wake();
        });
        running.add(work);
        if (stopping.aborted) break;
      }
    } catch {
      // The pull ended with an error (heartbeats missed while the event loop was busy, a
      // reconnect): pull again. A message it had taken but not handed over is redelivered
      // after ack_wait, like any unacked one.
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  stopping.removeEventListener('abort', wake);
  await Promise.allSettled([...running]);
}

export async function connectNatsJobs(url: string, options: NatsJobsOptions = {}): Promise<JobQueue> {
  const timings: QueueTimings = { ...DEFAULT_TIMINGS, ...options.timings };
  const namespace = options.namespace ?? '';
  const names = streamNames(namespace);
  const nc: NatsConnection = await connect({ servers: url, name: options.name ?? 'forge-jobs', maxReconnectAttempts: -1 }).catch((error: unknown) => {
    throw new ForgeError('service_unavailable', `cannot connect to NATS at ${url}: ${(error as Error).message}`, {}, { cause: error });
  });
  try {
    await ensureJobStreams(await jetstreamManager(nc), namespace, timings);
  } catch (error) {
    await nc.close();
    throw error;
  }
  const js = jetstream(nc);
  const cancels = new CancelRegistry();
  const cancelSub = nc.subscribe(`${namespace}${CANCEL_SUBJECT}.*`, {
    callback: (_error, msg) => {
      const runId = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
      cancels.cancel(runId, msg.string() || 'run stopped');
    },
  });
  const consumers = new Set<JobConsumer>();

  return {
    kind: 'nats',
    async publish(job: JobMessage, msgId: string) {
      const subject = `${namespace}${subjectOf(job.type, job.id)}`;
      await js.publish(subject, JSON.stringify(job), { msgID: msgId });
    },
    async openInbox(onReply, inboxOptions = {}) {
      const name = inboxOptions.name ?? 'dispatcher';
      if (!INBOX_NAME.test(name)) throw new Error(`inbox name ${JSON.stringify(name)} must be 1-64 letters, digits, "_" or "-"`);
      await ensureInboxConsumer(await jetstreamManager(nc), namespace, name, timings);
      const consumer = await js.consumers.get(replyStreamName(namespace).stream, name);
      const stopping = new AbortController();
      const loop = pullLoop(nc, consumer, 64, stopping.signal, async (msg) => {
        let reply: JobReply;
        try {
          reply = msg.json<JobReply>();
        } catch {
          msg.term(); // not a reply: nothing will ever handle it
          return;
        }
        try {
          await onReply(reply);
        } catch {
          // Not handled (the database is away, …): offered again later; handling is idempotent.
          quietly(() => msg.nak(backoffDelay(msg.info.deliveryCount - 1)));
          return;
        }
        await msg.ackAck().catch(() => false);
      });
      return {
        subject: `${namespace}pipeline.replies.${name}`,
        async close() {
          stopping.abort();
          await loop;
        },
      };
    },
    async consume(type: WorkerType, handler: JobHandler, consumeOptions: { concurrency?: number } = {}): Promise<JobConsumer> {
      const concurrency = Math.max(1, consumeOptions.concurrency ?? 1);
      const consumer = await js.consumers.get(names[type].stream, names[type].consumer);
      const stopping = new AbortController();
      const loop = pullLoop(nc, consumer, concurrency, stopping.signal, async (msg) => {
        const job = parseJob(msg.string());
        if (!job) {
          msg.term();
          return;
        }
        await handleDelivery({
          job, deliveryCount: msg.info.deliveryCount, maxDeliver: timings.maxDeliver, heartbeatMs: Math.max(100, timings.ackWaitMs / 3),
          handler, cancels, objects: options.objects,
          control: {
            ack: async () => void (await msg.ackAck().catch(() => false)),
            // A closed connection makes these throw; the message is then redelivered anyway.
            nak: (delayMs) => quietly(() => msg.nak(delayMs)),
            term: () => quietly(() => msg.term()),
            working: () => quietly(() => msg.working()),
          },
          // Stored on the reply stream before the job is acked: a failed store (JetStream away) is
          // thrown, so the job is not acked and comes back.
          reply: async (subject, reply) => void (await js.publish(subject, JSON.stringify(reply))),
        });
      });

      const handle: JobConsumer = {
        async stop() {
          stopping.abort();
          await loop;
          consumers.delete(handle);
        },
      };
      consumers.add(handle);
      return handle;
    },
    async broadcastCancel(runId: string, reason: string) {
      nc.publish(`${namespace}${CANCEL_SUBJECT}.${runId}`, reason);
      await nc.flush();
    },
    async close() {
      cancelSub.unsubscribe();
      // Like a process that goes away: in-flight deliveries are not acked (they are redelivered).
      await nc.close();
    },
  };
}

/** Deletes a namespace's streams (tests). */
export async function deleteJobStreams(url: string, namespace: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    for (const { stream } of [...Object.values(streamNames(namespace)), replyStreamName(namespace)]) await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}


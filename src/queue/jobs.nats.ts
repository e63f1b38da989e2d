/**
 * The job queue on NATS JetStream (2.9 features only): one workqueue stream per worker type
 * (pipeline-discovery, pipeline-tasks, pipeline-artifacts, pipeline-releases on pipeline.<kind>.*),
 * one durable pull consumer each (explicit ack, max_deliver 3, ack_wait with heartbeats), msgID
 * dedupe on publish, replies on core-NATS inboxes, cancel broadcasts on `forge.cancel.<run>`.
 * A `namespace` prefixes every stream and subject so test suites never share a stream.
 */
import { ForgeError } from '../domain/errors.ts';
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, createInbox, nanos, type NatsConnection } from '@nats-io/transport-node';
import { STREAMS, subjectOf, type JobMessage, type JobReply, type WorkerType } from '../domain/jobs.ts';
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
    async openInbox(onReply: (reply: JobReply) => void) {
      const subject = createInbox(`${namespace}_INBOX`);
      const sub = nc.subscribe(subject, {
        callback: (_error, msg) => {
          try {
            onReply(msg.json<JobReply>());
          } catch {
            // not a reply: ignore
          }
        },
      });
      return { subject, close: async () => sub.unsubscribe() };
    },
    async consume(type: WorkerType, handler: JobHandler, consumeOptions: { concurrency?: number } = {}): Promise<JobConsumer> {
      const concurrency = Math.max(1, consumeOptions.concurrency ?? 1);
      const consumer = await js.consumers.get(names[type].stream, names[type].consumer);
      const stopping = new AbortController();
      const running = new Set<Promise<void>>();
      let freed: (() => void) | undefined;
      const slotFree = () => new Promise<void>((resolve) => {
        if (running.size < concurrency) resolve();
        else freed = resolve;
      });
      const loop = (async () => {
        while (!stopping.signal.aborted && !nc.isClosed()) {
          await slotFree();
          if (stopping.signal.aborted) break;
          let batch;
          try {
            batch = await consumer.fetch({ max_messages: concurrency - running.size, expires: 1000 });
          } catch {
            await new Promise((r) => setTimeout(r, 250));
            continue;
          }
          try {
            for await (const msg of batch) {
              const job = parseJob(msg.string());
              if (!job) {
                msg.term();
                continue;
              }
              const work = handleDelivery({
                job, deliveryCount: msg.info.deliveryCount, maxDeliver: timings.maxDeliver, heartbeatMs: Math.max(100, timings.ackWaitMs / 3),
                handler, cancels, objects: options.objects,
                control: {
                  ack: async () => void (await msg.ackAck().catch(() => false)),
                  // A closed connection makes these throw; the message is then redelivered anyway.
                  nak: (delayMs) => quietly(() => msg.nak(delayMs)),
                  term: () => quietly(() => msg.term()),
                  working: () => quietly(() => msg.working()),
                },
                reply: async (subject, reply) => {
                  nc.publish(subject, JSON.stringify(reply));
                  await nc.flush();
                },
              }).finally(() => {
                running.delete(work);
                const wake = freed;
                freed = undefined;
                wake?.();
              });
              running.add(work);
              if (stopping.signal.aborted) break;
            }
          } catch {
            // The pull ended with an error (heartbeats missed while the event loop was busy, a
            // reconnect): pull again. A message it had taken but not handed over is redelivered
            // after ack_wait, like any unacked one.
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      })();

      const handle: JobConsumer = {
        async stop() {
          stopping.abort();
          freed?.();
          await loop.catch(() => undefined);
          await Promise.allSettled([...running]);
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
    for (const { stream } of Object.values(streamNames(namespace))) await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}


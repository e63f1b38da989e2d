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
import {
  AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager,
  type ConsumerConfig, type ConsumerUpdateConfig, type JetStreamManager, type StreamConfig,
} from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { STREAMS, backoffDelay, subjectOf, type JobMessage, type JobReply, type WorkerType } from '../domain/jobs.ts';
import type { JobConsumer, JobHandler, JobQueue, ObjectStore } from '../engine/ports.ts';
import { CancelRegistry, NOT_A_JOB, deadLetterReply, handleDelivery, noOutcome, parseJob, type DeadLetter } from './delivery.ts';
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

/** The dead-letter queue: pipeline.deadletter.<worker type>, each message a DeadLetter (JSON), kept for a week. */
export function deadLetterStreamName(namespace = ''): { stream: string; subjects: string } {
  return { stream: `${namespace.replace(/\./g, '-')}pipeline-deadletter`, subjects: `${namespace}pipeline.deadletter.*` };
}

/** JetStream's advisories of job messages that ran out of deliveries, kept until a dispatcher has dead-lettered them. */
function maxDeliveriesStream(namespace: string): { stream: string; subjects: string[] } {
  return {
    stream: `${namespace.replace(/\./g, '-')}pipeline-max-deliveries`,
    subjects: Object.values(streamNames(namespace)).map(({ stream, consumer }) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`),
  };
}

const REPLY_MAX_AGE_MS = 24 * 3_600_000;
const DEAD_LETTER_MAX_AGE_MS = 7 * 24 * 3_600_000;
const INBOX_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** The durable consumer (shared by every dispatcher) of the max-deliveries advisories. */
const DEAD_LETTERER = 'dead-letterer';

/**
 * A message handled once it is settled: unparseable → term (nothing will ever handle it); handled →
 * ack; handling failed (the database is away, …) → nak with backoff, offered again (handling must be
 * idempotent).
 */
async function settleOnce<T>(msg: JsMsg, handle: (value: T) => Promise<void> | void): Promise<void> {
  let value: T;
  try {
    value = msg.json<T>();
  } catch {
    msg.term();
    return;
  }
  try {
    await handle(value);
  } catch {
    quietly(() => msg.nak(backoffDelay(msg.info.deliveryCount - 1)));
    return;
  }
  await msg.ackAck().catch(() => false);
}

/** What JetStream publishes when a consumer gives up redelivering a message (the fields read here). */
interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries: number;
}

const isNotFound = (error: unknown) => /not found/i.test((error as Error).message);

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
    await jsm.streams.update(config.name, config);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.streams.add(config);
  }
}

/** Creates the durable consumer unless it exists; `update` is what an existing one is brought to. */
async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }, update?: Partial<ConsumerUpdateConfig>): Promise<void> {
  try {
    await jsm.consumers.info(stream, config.durable_name);
    if (update) await jsm.consumers.update(stream, config.durable_name, update);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.consumers.add(stream, config);
  }
}

/** Creates or updates the streams and durable consumers (idempotent; every process may call it). */
export async function ensureJobStreams(jsm: JetStreamManager, namespace: string, timings: QueueTimings): Promise<void> {
  const names = streamNames(namespace);
  const common = { storage: StorageType.File, duplicate_window: nanos(timings.dedupeWindowMs), num_replicas: 1 };
  for (const type of Object.keys(names) as WorkerType[]) {
    const spec = STREAMS[type];
    const { stream, subjects, consumer } = names[type];
    await ensureStream(jsm, { name: stream, subjects: [subjects], retention: RetentionPolicy.Workqueue, max_age: nanos(spec.maxAgeMs), max_msgs: spec.maxMsgs, ...common });
    await ensureConsumer(jsm, stream, {
      durable_name: consumer, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      max_deliver: timings.maxDeliver, ack_wait: nanos(timings.ackWaitMs), filter_subject: subjects, max_ack_pending: 10_000,
    }, { max_deliver: timings.maxDeliver, ack_wait: nanos(timings.ackWaitMs) });
  }
  const replies = replyStreamName(namespace);
  await ensureStream(jsm, { name: replies.stream, subjects: [replies.subjects], retention: RetentionPolicy.Workqueue, max_age: nanos(REPLY_MAX_AGE_MS), ...common });
  const dead = deadLetterStreamName(namespace);
  await ensureStream(jsm, { name: dead.stream, subjects: [dead.subjects], retention: RetentionPolicy.Limits, max_age: nanos(DEAD_LETTER_MAX_AGE_MS), ...common });
  const advisories = maxDeliveriesStream(namespace);
  await ensureStream(jsm, { name: advisories.stream, subjects: advisories.subjects, retention: RetentionPolicy.Workqueue, max_age: nanos(DEAD_LETTER_MAX_AGE_MS), ...common });
  await ensureConsumer(jsm, advisories.stream, {
    durable_name: DEAD_LETTERER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: nanos(timings.ackWaitMs), max_ack_pending: 1000,
  });
}

/** Creates the durable consumer of an inbox (idempotent): every reply to its subject, until handled. */
async function ensureInboxConsumer(jsm: JetStreamManager, namespace: string, name: string, timings: QueueTimings): Promise<void> {
  await ensureConsumer(jsm, replyStreamName(namespace).stream, {
    durable_name: name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(timings.ackWaitMs), filter_subject: `${namespace}pipeline.replies.${name}`, max_ack_pending: 10_000,
  });
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
  const jsm = await jetstreamManager(nc);
  const typeOfStream = new Map((Object.entries(names) as [WorkerType, { stream: string }][]).map(([type, n]) => [n.stream, type]));

  /** Stores a dead letter; under `msgId` (the message's stream and sequence) a repeat is dropped. */
  const deadLetter = async (type: WorkerType, letter: Omit<DeadLetter, 'dead_lettered_at'>, msgId: string): Promise<void> => {
    const stored: DeadLetter = { ...letter, dead_lettered_at: new Date().toISOString() };
    await js.publish(`${namespace}pipeline.deadletter.${type}`, JSON.stringify(stored), { msgID: msgId });
  };

  /**
   * A job message ran out of deliveries with no outcome: keep it on the dead-letter queue, answer its
   * dispatcher (its run fails now rather than at its timeout), and take it off its work queue.
   * Every step may be repeated (a redelivered advisory) without harm.
   */
  const deadLetterExhausted = async (advisory: MaxDeliveriesAdvisory): Promise<void> => {
    const type = typeOfStream.get(advisory.stream);
    if (!type) return;
    const stored = await jsm.streams.getMessage(advisory.stream, { seq: advisory.stream_seq }).catch((error: unknown) => {
      if (isNotFound(error)) return null;
      throw error;
    });
    if (!stored) return; // acked or removed meanwhile: nothing was given up on
    const data = stored.string();
    const reason = noOutcome(advisory.deliveries);
    await deadLetter(type, { reason, subject: stored.subject, deliveries: advisory.deliveries, data }, `${advisory.stream}-${advisory.stream_seq}`);
    const job = parseJob(data);
    if (job) await js.publish(job.reply_to, JSON.stringify(deadLetterReply(job, advisory.deliveries, reason)));
    await jsm.streams.deleteMessage(advisory.stream, advisory.stream_seq).catch(() => false);
  };

  return {
    kind: 'nats',
    async publish(job: JobMessage, msgId: string) {
      const subject = `${namespace}${subjectOf(job.type, job.id)}`;
      await js.publish(subject, JSON.stringify(job), { msgID: msgId });
    },
    async openInbox(onReply, inboxOptions = {}) {
      const name = inboxOptions.name ?? 'dispatcher';
      if (!INBOX_NAME.test(name)) throw new Error(`inbox name ${JSON.stringify(name)} must be 1-64 letters, digits, "_" or "-"`);
      await ensureInboxConsumer(jsm, namespace, name, timings);
      const consumer = await js.consumers.get(replyStreamName(namespace).stream, name);
      const stopping = new AbortController();
      // Dispatchers also give up on jobs that ran out of deliveries (decision 123): the answer is theirs.
      const advisories = await js.consumers.get(maxDeliveriesStream(namespace).stream, DEAD_LETTERER);
      const deadLetterLoop = pullLoop(nc, advisories, 16, stopping.signal, (msg) => settleOnce<MaxDeliveriesAdvisory>(msg, deadLetterExhausted));
      const loop = pullLoop(nc, consumer, 64, stopping.signal, (msg) => settleOnce<JobReply>(msg, onReply));
      return {
        subject: `${namespace}pipeline.replies.${name}`,
        async close(closeOptions = {}) {
          stopping.abort();
          await Promise.all([loop, deadLetterLoop]);
          if (closeOptions.remove) await jsm.consumers.delete(replyStreamName(namespace).stream, name).catch(() => false);
        },
      };
    },
    async consume(type: WorkerType, handler: JobHandler, consumeOptions: { concurrency?: number } = {}): Promise<JobConsumer> {
      const concurrency = Math.max(1, consumeOptions.concurrency ?? 1);
      const consumer = await js.consumers.get(names[type].stream, names[type].consumer);
      const stopping = new AbortController();
      const loop = pullLoop(nc, consumer, concurrency, stopping.signal, async (msg) => {
        const letterId = `${names[type].stream}-${msg.info.streamSequence}`;
        const letter = (reason: string) => deadLetter(type, { reason, subject: msg.subject, deliveries: msg.info.deliveryCount, data: msg.string() }, letterId);
        const job = parseJob(msg.string());
        if (!job) {
          try {
            await letter(NOT_A_JOB);
          } catch {
            return; // not termed: it comes back, and is dead-lettered then
          }
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
            deadLetter: letter,
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
    async lag() {
      // Work-queue streams drop a job once it is acked: the stream's first message is the oldest
      // job not finished, and the consumer's num_pending what no worker has taken yet.
      const now = Date.now();
      return Promise.all((Object.keys(names) as WorkerType[]).map(async (type) => {
        const { stream, consumer } = names[type];
        const [info, state] = await Promise.all([jsm.consumers.info(stream, consumer), jsm.streams.info(stream).then((s) => s.state)]);
        const firstTs = state.messages > 0 ? Date.parse(state.first_ts) : NaN;
        return { stream, pending: info.num_pending, unacked: info.num_ack_pending, oldestAgeMs: Number.isNaN(firstTs) ? null : Math.max(0, now - firstTs) };
      }));
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
    const streams = [...Object.values(streamNames(namespace)), replyStreamName(namespace), deadLetterStreamName(namespace), maxDeliveriesStream(namespace)];
    for (const { stream } of streams) await jsm.streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}


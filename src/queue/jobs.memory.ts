/**
 * The in-process job queue (embedded default): the JetStream semantics Forge relies on, in memory.
 * A broker holds one work queue per worker type; queues attached to it behave like connections
 * (closing one abandons its deliveries unacked, as a dying process would).
 *
 * Message: queued → delivered (deliveryCount + 1, ack timer) → acked | nak → queued after the delay
 *          | ack timer expires (no heartbeat) → queued again, until MAX_DELIVER deliveries → dead
 *            (kept in `dead` with the reason; the job's reply_to gets a dead_lettered reply)
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { MAX_DELIVER, STREAMS, WORKER_TYPES, subjectOf, workerTypeOf, type JobMessage, type JobReply, type WorkerType } from '../domain/jobs.ts';
import type { JobConsumer, JobHandler, JobQueue, ObjectStore } from '../engine/ports.ts';
import { CancelRegistry, NOT_A_JOB, deadLetterReply, handleDelivery, noOutcome, parseJob, type DeadLetter } from './delivery.ts';

export interface QueueTimings {
  /** How long a delivery may go without an ack or heartbeat before it is redelivered. */
  ackWaitMs: number;
  maxDeliver: number;
  /** Window in which a repeated msgId is dropped. */
  dedupeWindowMs: number;
}

export const DEFAULT_TIMINGS: QueueTimings = { ackWaitMs: 30_000, maxDeliver: MAX_DELIVER, dedupeWindowMs: 120_000 };

interface Message {
  seq: number;
  subject: string;
  data: string;
  deliveries: number;
  /** Identifies the current delivery: a late ack of an earlier one does nothing. */
  token: number;
  timer: NodeJS.Timeout | undefined;
  publishedAt: number;
}

interface Slot {
  concurrency: number;
  inflight: number;
  take: (message: Message) => void;
}

export class MemoryBroker {
  readonly timings: QueueTimings;
  private seq = 0;
  private readonly queues = new Map<WorkerType, Message[]>();
  private readonly slots = new Map<WorkerType, Slot[]>();
  private readonly seen = new Map<string, number>();
  /** Delivered and not settled yet, by type. */
  private readonly taken = new Map<WorkerType, Set<Message>>();
  /** The dead-letter queue (delivery.ts says what goes there). */
  readonly dead: DeadLetter[] = [];
  readonly wire = new EventEmitter().setMaxListeners(0);

  constructor(timings: Partial<QueueTimings> = {}) {
    this.timings = { ...DEFAULT_TIMINGS, ...timings };
  }

  publish(type: WorkerType, subject: string, data: string, msgId: string): void {
    const now = Date.now();
    for (const [id, at] of this.seen) if (now - at > this.timings.dedupeWindowMs) this.seen.delete(id);
    if (this.seen.has(msgId)) return;
    this.seen.set(msgId, now);
    this.queue(type).push({ seq: ++this.seq, subject, data, deliveries: 0, token: 0, timer: undefined, publishedAt: now });
    this.pump(type);
  }

  /** Messages waiting for a consumer (tests and metrics). */
  depth(type: WorkerType): number {
    return this.queue(type).length;
  }

  /** Waiting and taken-but-unsettled messages of a type, and the age of the oldest of them. */
  lag(type: WorkerType, now = Date.now()): { pending: number; unacked: number; oldestAgeMs: number | null } {
    const waiting = this.queue(type);
    const taken = this.takenOf(type);
    let oldest = Infinity;
    for (const message of waiting) oldest = Math.min(oldest, message.publishedAt);
    for (const message of taken) oldest = Math.min(oldest, message.publishedAt);
    return { pending: waiting.length, unacked: taken.size, oldestAgeMs: oldest === Infinity ? null : Math.max(0, now - oldest) };
  }

  private takenOf(type: WorkerType): Set<Message> {
    let set = this.taken.get(type);
    if (!set) this.taken.set(type, (set = new Set()));
    return set;
  }

  attach(type: WorkerType, slot: Slot): () => void {
    const list = this.slots.get(type) ?? [];
    list.push(slot);
    this.slots.set(type, list);
    this.pump(type);
    return () => {
      const at = list.indexOf(slot);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /** Starts the message's ack timer for a new delivery; returns the delivery's controls. */
  deliver(type: WorkerType, message: Message) {
    message.deliveries += 1;
    const token = ++message.token;
    this.takenOf(type).add(message);
    const current = () => message.token === token;
    const arm = () => {
      clearTimeout(message.timer);
      message.timer = setTimeout(() => {
        if (!current()) return;
        message.token += 1;
        this.takenOf(type).delete(message);
        this.requeue(type, message);
      }, this.timings.ackWaitMs);
      message.timer.unref();
    };
    arm();
    const settle = () => {
      if (!current()) return false;
      clearTimeout(message.timer);
      message.token += 1;
      this.takenOf(type).delete(message);
      return true;
    };
    return {
      deliveries: message.deliveries,
      ack: async () => void settle(),
      term: () => void settle(),
      nak: (delayMs: number) => {
        if (!current()) return;
        clearTimeout(message.timer);
        message.token += 1;
        // Unacked until it is offered again, as JetStream counts a nak'd message (queue lag).
        setTimeout(() => {
          this.takenOf(type).delete(message);
          this.requeue(type, message);
        }, delayMs).unref();
      },
      working: () => {
        if (current()) arm();
      },
    };
  }

  release(type: WorkerType): void {
    this.pump(type);
  }

  /** Keeps a copy of the message on the dead-letter queue. */
  deadLetter(message: Message, reason: string): void {
    this.dead.push({ reason, subject: message.subject, deliveries: message.deliveries, data: message.data, dead_lettered_at: new Date().toISOString() });
  }

  private requeue(type: WorkerType, message: Message): void {
    if (message.deliveries >= this.timings.maxDeliver) {
      const reason = noOutcome(message.deliveries);
      this.deadLetter(message, reason);
      const job = parseJob(message.data);
      if (job) this.wire.emit(job.reply_to, deadLetterReply(job, message.deliveries, reason));
      return;
    }
    this.queue(type).unshift(message);
    this.pump(type);
  }

  private queue(type: WorkerType): Message[] {
    let queue = this.queues.get(type);
    if (!queue) this.queues.set(type, (queue = []));
    return queue;
  }

  private pump(type: WorkerType): void {
    const queue = this.queue(type);
    const slots = this.slots.get(type) ?? [];
    while (queue.length > 0) {
      const slot = slots.filter((s) => s.inflight < s.concurrency).sort((a, b) => a.inflight - b.inflight)[0];
      if (!slot) return;
      const message = queue.shift();
      if (message) slot.take(message);
    }
  }
}

export function createMemoryJobQueue(broker: MemoryBroker, options: { objects?: ObjectStore } = {}): JobQueue {
  const cancels = new CancelRegistry();
  const detach: (() => void)[] = [];
  const onCancel = (runId: string, reason: string) => cancels.cancel(runId, reason);
  broker.wire.on('cancel', onCancel);
  detach.push(() => broker.wire.off('cancel', onCancel));
  const { timings } = broker;
  let closed = false;

  return {
    kind: 'memory',
    async publish(job: JobMessage, msgId: string) {
      const subject = subjectOf(job.type, job.id); // refuses an unknown type first
      broker.publish(workerTypeOf(job.type), subject, JSON.stringify(job), msgId);
    },
    async openInbox(onReply: (reply: JobReply) => Promise<void> | void) {
      const subject = `_INBOX.${randomUUID()}`;
      // In process there is no later: a reply whose handling fails is dropped (the caller has logged it).
      const listener = (reply: JobReply) => void Promise.resolve(onReply(structuredClone(reply))).catch(() => undefined);
      broker.wire.on(subject, listener);
      return { subject, close: async () => void broker.wire.off(subject, listener) };
    },
    async consume(type: WorkerType, handler: JobHandler, consumeOptions: { concurrency?: number } = {}): Promise<JobConsumer> {
      const running = new Set<Promise<void>>();
      const slot: Slot = {
        concurrency: Math.max(1, consumeOptions.concurrency ?? 1),
        inflight: 0,
        take: (message) => {
          const job = parseJob(message.data);
          const delivered = broker.deliver(type, message);
          // After close this queue is gone: its deliveries get no acks and no heartbeats.
          const delivery = {
            deliveries: delivered.deliveries,
            ack: async () => { if (!closed) await delivered.ack(); },
            term: () => { if (!closed) delivered.term(); },
            nak: (delayMs: number) => { if (!closed) delivered.nak(delayMs); },
            working: () => { if (!closed) delivered.working(); },
            deadLetter: async (reason: string) => broker.deadLetter(message, reason),
          };
          if (!job) {
            broker.deadLetter(message, NOT_A_JOB);
            delivery.term();
            return;
          }
          slot.inflight += 1;
          const work = handleDelivery({
            job, deliveryCount: delivery.deliveries, maxDeliver: timings.maxDeliver, heartbeatMs: Math.max(50, timings.ackWaitMs / 3),
            handler, control: delivery, cancels, objects: options.objects,
            reply: async (subject, reply) => {
              if (closed) throw new Error('queue closed');
              broker.wire.emit(subject, reply);
            },
          }).finally(() => {
            slot.inflight -= 1;
            running.delete(work);
            if (!closed) broker.release(type);
          });
          running.add(work);
        },
      };
      const off = broker.attach(type, slot);
      const stop = async () => {
        off();
        await Promise.allSettled([...running]);
      };
      detach.push(off);
      return { stop };
    },
    async lag() {
      return WORKER_TYPES.map((type) => ({ stream: STREAMS[type].name, ...broker.lag(type) }));
    },
    async broadcastCancel(runId: string, reason: string) {
      broker.wire.emit('cancel', runId, reason);
    },
    async close() {
      // Like a connection that goes away: deliveries in flight are neither acked nor replied.
      closed = true;
      for (const undo of detach.splice(0)) undo();
    },
  };
}

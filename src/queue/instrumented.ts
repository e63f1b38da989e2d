/**
 * Observability around either queue adapter, added by the composition roots:
 *
 * publish → a producer span `publish <type>` under the run's trace (the traceparent stored on the
 *   run), the job stamped with `published_at` and the span's `traceparent`, and
 *   forge_jobs_published_total counted.
 * consume → each delivery a consumer span `job <type>` under the publish span (a worker in another
 *   process joins the run's trace), forge_job_dispatch_latency_seconds (first deliveries:
 *   publication → start), forge_job_duration_seconds by outcome, and one structured log line when
 *   the job starts and one when it ends, with the run, job and trace ids.
 */
import { RetryableError } from '../domain/errors.ts';
import { MAX_DELIVER, type JobMessage } from '../domain/jobs.ts';
import type { JobHandler, JobQueue } from '../engine/ports.ts';
import type { StructuredLog } from '../lib/log.ts';
import type { ForgeMetrics } from '../lib/metrics.ts';
import { SpanKind, activeTraceId, contextFrom, inSpan, jobSpanAttributes, publishSpan } from '../lib/tracing.ts';


export interface QueueTelemetry {
  metrics?: ForgeMetrics;
  /** The traceparent stored on a run (undefined/null: the publish span starts a trace of its own). */
  runTraceContext?: (runId: string) => Promise<string | null | undefined>;
  log?: StructuredLog;
}

/** The ids every log line and span of a job carries. */
export function jobFields(job: JobMessage, deliveryCount?: number): Record<string, string | number> {
  return {
    job_id: job.id, job_type: job.type, run_id: job.run_id, run_attempt: job.run_attempt,
    ...(deliveryCount === undefined ? {} : { delivery: deliveryCount }),
  };
}

const messagingSystem = (queue: JobQueue) => (queue.kind === 'nats' ? 'nats' : 'forge-memory');

export function instrumentQueue(queue: JobQueue, telemetry: QueueTelemetry): JobQueue {
  const { metrics, log } = telemetry;

  function instrumentHandler(handler: JobHandler): JobHandler {
    return async (delivery) => {
      const { job, deliveryCount } = delivery;
      const started = Date.now();
      const publishedAt = job.published_at ? Date.parse(job.published_at) : NaN;
      if (deliveryCount === 1 && !Number.isNaN(publishedAt)) metrics?.dispatchLatency.observe({ job_type: job.type }, Math.max(0, started - publishedAt) / 1000);
      const fields = jobFields(job, deliveryCount);
      return inSpan(`job ${job.type}`, {
        kind: SpanKind.CONSUMER, parent: contextFrom(job.traceparent), attributes: { ...jobSpanAttributes(job, messagingSystem(queue)), 'forge.job.delivery': deliveryCount },
      }, async () => {
        const traceId = activeTraceId();
        const withTrace = traceId ? { ...fields, trace_id: traceId } : fields;
        log?.info(withTrace, 'job started');
        let outcome = 'ok';
        let threw = false;
        try {
          const result = await handler(delivery);
          // A CI job stopped by a cancel answers with its status rather than throwing.
          if (delivery.signal.aborted || (result as { status?: unknown } | null)?.status === 'cancelled') outcome = 'cancelled';
          return result;
        } catch (error) {
          threw = true;
          // As handleDelivery decides: a RetryableError on the last delivery is final (retries_exhausted).
          const retried = error instanceof RetryableError && deliveryCount < (delivery.maxDeliver ?? MAX_DELIVER);
          outcome = delivery.signal.aborted ? 'cancelled' : retried ? 'retry' : 'error';
          log?.warn({ ...withTrace, outcome, error: (error as Error)?.message ?? String(error) }, 'job failed');
          throw error;
        } finally {
          const seconds = (Date.now() - started) / 1000;
          metrics?.jobDuration.observe({ job_type: job.type, outcome }, seconds);
          if (!threw) log?.info({ ...withTrace, outcome, duration_ms: Math.round(seconds * 1000) }, 'job finished');
        }
      });
    };
  }

  return {
    kind: queue.kind,
    async publish(job, msgId) {
      const stored = await telemetry.runTraceContext?.(job.run_id).catch(() => undefined);
      await publishSpan(job, stored, messagingSystem(queue), (stamped) => queue.publish(stamped, msgId));
      metrics?.jobsPublished.inc({ job_type: job.type });
    },
    openInbox: (onReply, options) => queue.openInbox(onReply, options),
    consume: (type, handler, options) => queue.consume(type, instrumentHandler(handler), options),
    lag: () => queue.lag(),
    broadcastCancel: (runId, reason) => queue.broadcastCancel(runId, reason),
    close: () => queue.close(),
  };
}

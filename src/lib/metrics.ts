/**
 * Forge's Prometheus metrics, one set per process (a registry of its own, so tests can run several
 * servers in one process). `forge server` serves them at /metrics on its API port; `forge worker`
 * on FORGE_METRICS_PORT. Which process fills which metric:
 *
 *   forge_http_request_duration_seconds{method,route,status_code}   API
 *   forge_jobs_published_total{job_type}                             API (dispatcher)
 *   forge_queue_pending_jobs{stream}, forge_queue_unacked_jobs{stream},
 *   forge_queue_oldest_job_age_seconds{stream}                       API and workers (read from the queue at scrape)
 *   forge_job_dispatch_latency_seconds{job_type}                     workers: publication → a worker starts the job
 *   forge_job_duration_seconds{job_type,outcome}                     workers: a delivery's handling
 *   forge_step_duration_seconds{status}                              API: a step's started_at → finished_at as reported
 *
 * Queue figures are read when scraped (JetStream consumer and stream info): nothing is counted twice
 * when several API replicas are scraped, because each reads the same shared figures.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the queue says about one of its job streams at a moment. */
export interface QueueLag {
  /** The stream, e.g. pipeline-tasks. */
  stream: string;
  /** Jobs no worker has taken yet. */
  pending: number;
  /** Jobs taken and not yet acked (in progress, or waiting for redelivery). */
  unacked: number;
  /** Age of the oldest job still on the stream (taken or not), or null when it is empty. */
  oldestAgeMs: number | null;
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LONG_SECONDS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

export interface ForgeMetrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  jobsPublished: Counter<'job_type'>;
  dispatchLatency: Histogram<'job_type'>;
  jobDuration: Histogram<'job_type' | 'outcome'>;
  stepDuration: Histogram<'status'>;
  /** Reads queue lag at every scrape from `source` (added by whoever has a queue; the last one wins). */
  watchQueue(source: () => Promise<QueueLag[]>): void;
}

export function createMetrics(options: { defaults?: boolean } = {}): ForgeMetrics {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  let source: (() => Promise<QueueLag[]>) | undefined;
  let reading: Promise<QueueLag[]> | undefined;
  // One read of the queue per scrape serves all three gauges.
  const read = (): Promise<QueueLag[]> => {
    if (!source) return Promise.resolve([]);
    reading ??= source().catch(() => []).finally(() => setTimeout(() => (reading = undefined), 0));
    return reading;
  };
  const gauge = (name: string, help: string, pick: (lag: QueueLag) => number | null) => new Gauge({
    name, help, labelNames: ['stream'], registers,
    async collect() {
      this.reset();
      for (const lag of await read()) {
        const value = pick(lag);
        if (value !== null) this.set({ stream: lag.stream }, value);
      }
    },
  });
  gauge('forge_queue_pending_jobs', 'Jobs on the stream no worker has taken yet (queue lag in jobs)', (lag) => lag.pending);
  gauge('forge_queue_unacked_jobs', 'Jobs taken by a worker and not yet acknowledged', (lag) => lag.unacked);
  gauge('forge_queue_oldest_job_age_seconds', 'Age of the oldest job still on the stream (queue lag in time); absent when empty', (lag) => (lag.oldestAgeMs === null ? null : lag.oldestAgeMs / 1000));
  return {
    registry,
    httpDuration: new Histogram({ name: 'forge_http_request_duration_seconds', help: 'API request latency by route', labelNames: ['method', 'route', 'status_code'], buckets: SECONDS, registers }),
    jobsPublished: new Counter({ name: 'forge_jobs_published_total', help: 'Jobs the dispatcher published, by type', labelNames: ['job_type'], registers }),
    dispatchLatency: new Histogram({ name: 'forge_job_dispatch_latency_seconds', help: 'Time from a job\'s publication to a worker starting it', labelNames: ['job_type'], buckets: SECONDS, registers }),
    jobDuration: new Histogram({ name: 'forge_job_duration_seconds', help: 'Time a worker spent on one delivery of a job, by outcome (ok, error, retry, cancelled)', labelNames: ['job_type', 'outcome'], buckets: LONG_SECONDS, registers }),
    stepDuration: new Histogram({ name: 'forge_step_duration_seconds', help: 'Duration of pipeline steps as reported by workers, by final status', labelNames: ['status'], buckets: LONG_SECONDS, registers }),
    watchQueue(next) {
      source = next;
    },
  };
}

/**
 * Tracing through the OpenTelemetry API only: without an SDK registered (FORGE_TRACES_EXPORTER=none,
 * and every test that does not ask for one) each call here is a no-op. The SDK and exporter are set
 * up by the composition root (src/bin/telemetry.ts).
 *
 * A run is one trace: the request that created it stores its W3C `traceparent` on the run
 * (`trace_context`), every job published for the run is a span under it and carries its own
 * `traceparent` to the worker, whose job and step spans follow, and the worker's calls back to the
 * API carry the header again, so the API's handling of a status report lands in the same trace.
 */
import { context, propagation, trace, ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from '@opentelemetry/api';

export { SpanKind };

const TRACER = 'forge';

export function tracer() {
  return trace.getTracer(TRACER);
}

/** The W3C traceparent of a context (default: the active one), or undefined when it holds no recording span. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent;
}

/**
 * A context whose parent is the remote span a traceparent names, or the root context without one:
 * never whatever happens to be active (a dispatcher reconciling a run because some other request
 * nudged it must not put the run's jobs in that request's trace).
 */
export function contextFrom(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

/** What a job span needs of a job (structurally a domain JobMessage). */
export interface TracedJob {
  id: string;
  type: string;
  run_id: string;
  run_attempt: number;
}

/**
 * Publication of one job (decision 138): a producer span `publish <type>` under the run's stored
 * traceparent (`stored`; a trace of its own without one), inside which `publish` gets the job
 * stamped with `published_at` and the span's `traceparent` for the worker to continue.
 */
export async function publishSpan<J extends TracedJob>(job: J, stored: string | null | undefined, messagingSystem: string, publish: (stamped: J & { published_at: string; traceparent?: string }) => Promise<void>): Promise<void> {
  await inSpan(`publish ${job.type}`, { kind: SpanKind.PRODUCER, parent: contextFrom(stored), attributes: jobSpanAttributes(job, messagingSystem) }, async () => {
    const traceparent = traceparentOf();
    await publish({ ...job, published_at: new Date().toISOString(), ...(traceparent ? { traceparent } : {}) });
  });
}

export function jobSpanAttributes(job: TracedJob, messagingSystem: string): Attributes {
  return {
    'forge.job.id': job.id, 'forge.job.type': job.type, 'forge.run.id': job.run_id, 'forge.run.attempt': job.run_attempt,
    'messaging.system': messagingSystem,
  };
}

/** The headers that carry the active trace to another process. */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The active span's trace id, for log lines; undefined when nothing is being traced. */
export function activeTraceId(): string | undefined {
  const span = trace.getActiveSpan();
  const id = span?.spanContext().traceId;
  return id && span?.isRecording() ? id : undefined;
}

/**
 * Runs `fn` inside a new span (a child of `parent`, default the active context); the span ends when
 * `fn` settles, marked as an error when it throws.
 */
export async function inSpan<T>(name: string, options: { kind?: SpanKind; attributes?: Attributes; parent?: Context }, fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, ...(options.attributes ? { attributes: options.attributes } : {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message ?? String(error) });
    throw error;
  } finally {
    span.end();
  }
}

/** Marks a span failed without an exception (a step that exited non-zero). */
export function markFailed(span: Span, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Starts a server span for an incoming request; the caller ends it. */
export function startServerSpan(name: string, headers: Record<string, string | string[] | undefined>, attributes: Attributes): { span: Span; ctx: Context } {
  const carrier: Record<string, string> = {};
  for (const key of ['traceparent', 'tracestate']) {
    const value = headers[key];
    if (typeof value === 'string') carrier[key] = value;
  }
  const parent = propagation.extract(context.active(), carrier);
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return { span, ctx: trace.setSpan(parent, span) };
}

export { context as otelContext, SpanStatusCode };
export type { Context, Span };

/**
 * The OpenTelemetry SDK of a `forge server` or `forge worker` process (FORGE_TRACES_EXPORTER):
 * spans batched to an OTLP/HTTP (JSON) collector, or written to stdout (`console`), with W3C trace
 * context propagation and async-hooks context. `none` registers nothing: every span Forge starts is
 * then a no-op. Registration is process-wide (the OpenTelemetry API is global), so a process sets it
 * up once, from its settings, before serving. The SDK is loaded only when an exporter is set (it
 * adds about 150 ms to a process's start).
 */
import { context, propagation, trace } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { assertNever } from '../lib/assert-never.ts';
import type { TelemetrySettings } from '../settings/settings.ts';
import { VERSION } from './version.ts';

export interface Tracing {
  /** Whether spans are recorded (an exporter is set): without, nothing is worth looking up for them. */
  enabled: boolean;
  /** Sends what is buffered and stops; spans started afterwards are dropped. */
  shutdown(): Promise<void>;
}

const NOTHING: Tracing = { enabled: false, shutdown: async () => undefined };

export async function startTracing(settings: TelemetrySettings, serviceName: string, attributes: Record<string, string> = {}): Promise<Tracing> {
  if (settings.exporter === 'none') return NOTHING;
  const [{ AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, sdk] = await Promise.all([
    import('@opentelemetry/context-async-hooks'), import('@opentelemetry/core'), import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'), import('@opentelemetry/sdk-trace-base'),
  ]);
  const { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler } = sdk;
  let processor: SpanProcessor;
  switch (settings.exporter) {
    case 'console':
      processor = new SimpleSpanProcessor(new ConsoleSpanExporter());
      break;
    case 'otlp':
      // A short delay: a pipeline's spans reach the collector seconds after they end, not minutes.
      processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.otlpEndpoint, headers: settings.otlpHeaders }), { scheduledDelayMillis: 1000 });
      break;
    default:
      return assertNever(settings.exporter, 'traces exporter');
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, 'service.version': VERSION, ...attributes }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }),
    spanProcessors: [processor],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    enabled: true,
    async shutdown() {
      await provider.shutdown().catch(() => undefined);
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

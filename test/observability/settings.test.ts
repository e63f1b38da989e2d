/** The observability settings: traces exporter, OTLP endpoint and headers, sampling, the worker's metrics port. */
import { describe, expect, it } from 'vitest';
import { parseServerSettings, parseTelemetrySettings, parseWorkerSettings } from '../../src/settings/settings.ts';

const WORKER = { NATS_URL: 'nats://127.0.0.1:4222', FORGE_WORKER_TYPES: 'ci' };

describe('observability settings', () => {
  it('defaults: no traces, a local collector URL, every trace sampled; workers serve no metrics port', () => {
    expect(parseTelemetrySettings({}, {})).toEqual({ exporter: 'none', otlpEndpoint: 'http://127.0.0.1:4318/v1/traces', otlpHeaders: {}, sampleRatio: 1 });
    expect(parseServerSettings({}, {}).telemetry.exporter).toBe('none');
    expect(parseWorkerSettings({}, WORKER).metrics).toBeUndefined();
  });

  it('reads exporter, endpoint, headers and ratio from the environment, flags winning', () => {
    const env = { FORGE_TRACES_EXPORTER: 'otlp', FORGE_OTLP_ENDPOINT: 'https://otel.example:4318/v1/traces', FORGE_OTLP_HEADERS: 'x-api-key=abc=def, x-scope=team-a', FORGE_TRACE_SAMPLE_RATIO: '0.25' };
    expect(parseTelemetrySettings({}, env)).toEqual({ exporter: 'otlp', otlpEndpoint: 'https://otel.example:4318/v1/traces', otlpHeaders: { 'x-api-key': 'abc=def', 'x-scope': 'team-a' }, sampleRatio: 0.25 });
    expect(parseTelemetrySettings({ tracesExporter: 'console' }, env).exporter).toBe('console');
    expect(parseWorkerSettings({ metricsPort: '9464' }, { ...WORKER, FORGE_METRICS_HOST: '0.0.0.0' }).metrics).toEqual({ host: '0.0.0.0', port: 9464 });
  });

  it('refuses bad values naming the setting and what is allowed, without showing header values', () => {
    expect(() => parseTelemetrySettings({}, { FORGE_TRACES_EXPORTER: 'jaeger' })).toThrow(/FORGE_TRACES_EXPORTER .*must be one of none, otlp, console/);
    expect(() => parseTelemetrySettings({}, { FORGE_OTLP_ENDPOINT: 'grpc://collector:4317' })).toThrow(/FORGE_OTLP_ENDPOINT .*must use http: or https:/);
    expect(() => parseTelemetrySettings({}, { FORGE_TRACE_SAMPLE_RATIO: '1.5' })).toThrow(/FORGE_TRACE_SAMPLE_RATIO .*from 0 to 1/);
    expect(() => parseTelemetrySettings({}, { FORGE_TRACE_SAMPLE_RATIO: 'half' })).toThrow(/from 0 to 1/);
    let message = '';
    try {
      parseTelemetrySettings({}, { FORGE_OTLP_HEADERS: 'good=s3cr3t-value,bad header=s3cr3t-value' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/FORGE_OTLP_HEADERS.*"bad header" is not name=value/);
    expect(message).not.toContain('s3cr3t');
    expect(() => parseWorkerSettings({}, { ...WORKER, FORGE_METRICS_PORT: '70000' })).toThrow(/FORGE_METRICS_PORT .*port number/);
  });
});

/**
 * Jobs an Argo dispatcher pod publishes (`forge dispatch`) join the run's trace like the built-in
 * dispatcher's (decision 208): `POST /v1/runs/{id}/jobs` opens each job's `publish <type>` span
 * under the run's stored traceparent, stamps the job with that span's traceparent and its
 * publication time (the pod publishes the job as given), and counts it in forge_jobs_published_total.
 *
 * And a request whose client leaves before the response finished (an event stream closed) still
 * ends its server span (decision 209).
 *
 * An in-memory OpenTelemetry SDK is registered in this test file only (and removed after it); the
 * app runs in-process on PGlite. Without an SDK the same route is exercised by test/argo/argo-e2e.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceparentOf } from '../../src/lib/tracing.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { pgliteAdapter, type TestStore } from '../helpers/stores.ts';

describe('jobs handed to an Argo dispatcher pod are traced and counted by the API (PGlite, in-memory SDK)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let test: TestStore;
  let t: TestApp;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    test = await pgliteAdapter.open();
    t = await startTestApp(test, { deploymentWorker: false });
    // As forge server wires it: a run stores the traceparent of the request that created it.
    t.ctx.telemetry = { traceparent: () => traceparentOf(), stepFinished: () => undefined };
  });
  afterAll(async () => {
    await t?.close();
    await test?.close();
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
  });

  it('stamps each job with published_at and a traceparent in the run\'s trace, exports the publish span there, and counts it', async () => {
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const created = await t.app.inject({
      method: 'POST', url: '/v1/runs',
      headers: { authorization: `Bearer ${await t.token('alice', ['developer'])}`, traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` },
      payload: { repository: 'acme/traced', branch: 'main', commit_sha: sha(), trigger_type: 'push' },
    });
    expect(created.statusCode).toBe(201);
    const runId = (created.json() as { id: string }).id;
    const run = await t.ctx.store.getRun(runId);
    expect(run!.trace_context).toMatch(new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-01$`));
    const runSpanId = run!.trace_context!.split('-')[2];

    const before = Date.now();
    const answer = await t.app.inject({
      method: 'POST', url: `/v1/runs/${runId}/jobs`,
      headers: { authorization: `Bearer ${await t.token('forge-dispatcher', ['service-account'])}` },
      payload: { stage: 'discovery' },
    });
    expect(answer.statusCode, answer.body).toBe(200);
    const { jobs } = answer.json() as { jobs: { id: string; type: string; published_at?: string; traceparent?: string }[] };
    expect(jobs).toHaveLength(1);
    const [job] = jobs;
    expect(Date.parse(job!.published_at!)).toBeGreaterThanOrEqual(before - 1000);
    expect(job!.traceparent).toMatch(new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-01$`));

    const publish = exporter.getFinishedSpans().find((s) => s.name === 'publish discovery');
    expect(publish).toBeDefined();
    expect(publish!.spanContext().traceId).toBe(callerTrace);
    // Under the run's stored span (the creating request), not under the pod's request.
    expect(publish!.parentSpanContext?.spanId).toBe(runSpanId);
    expect(job!.traceparent!.split('-')[2]).toBe(publish!.spanContext().spanId);
    expect(publish!.attributes).toMatchObject({ 'forge.job.id': job!.id, 'forge.job.type': 'discovery', 'forge.run.id': runId, 'messaging.system': 'nats' });

    // Asked again at once (a pod whose answer was lost): the same job with the same message id, so
    // JetStream drops the copy if the first went out (decision 212); after a minute, nothing.
    const askAgain = async () => (await t.app.inject({
      method: 'POST', url: `/v1/runs/${runId}/jobs`,
      headers: { authorization: `Bearer ${await t.token('forge-dispatcher', ['service-account'])}` },
      payload: { stage: 'discovery' },
    })).json() as { message: string; jobs: { id: string; msg_id: string }[]; awaiting: string[] };
    const again = await askAgain();
    expect(again).toMatchObject({ message: 'discovery job published earlier (offered again)', awaiting: [job!.id] });
    expect(again.jobs.map((j) => [j.id, j.msg_id])).toEqual([[job!.id, `discovery-${runId}-1`]]);
    t.clock.advance(61_000);
    expect(await askAgain()).toMatchObject({ message: 'discovery job published earlier', jobs: [], awaiting: [job!.id] });
    // Counted per hand-out: the first and the one offered again.
    const metrics = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^forge_jobs_published_total\{job_type="discovery"\} 2$/m);
  });

  it('ends the server span of a request whose client left before the response finished (an event stream closed)', async () => {
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/events`, { headers: { authorization: `Bearer ${await t.token('alice', ['developer'])}` }, signal: controller.signal });
    expect(response.status).toBe(200);
    controller.abort();
    const deadline = Date.now() + 5000;
    let span = exporter.getFinishedSpans().find((s) => s.name === 'GET /v1/events');
    while (!span && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      span = exporter.getFinishedSpans().find((s) => s.name === 'GET /v1/events');
    }
    expect(span?.attributes).toMatchObject({ 'forge.request.aborted': true });
  });
});


/**
 * Observability end to end, with `forge server` and `forge worker` as separate processes on NATS
 * JetStream: both export traces over OTLP/HTTP to a collector played by this test (an in-process
 * HTTP receiver of OTLP JSON), the worker serves /metrics on FORGE_METRICS_PORT.
 *
 * One run of a one-step project, then:
 * - traces: one trace from the API request that created the run, through the dispatcher's publish
 *   spans (API process), to the worker's job and step spans (worker process), and back to the API's
 *   handling of the worker's status reports: every span of the run has the run's trace id, and the
 *   parent links cross both processes.
 * - logs: the worker's JSON lines carry run, job, task and step ids and the trace id.
 * - metrics: queue lag, dispatch latency, job and step durations, API latency by route, on the
 *   process that measures each.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { deleteJobStreams, streamNames } from '../../src/queue/jobs.nats.ts';
import { freePort } from '../faults/support.ts';
import { killAllForgeProcesses, spawnForgeProcess, type ForgeProcess } from '../helpers/forge-process.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { gitUrlTemplate, seedOneStepProject } from '../helpers/repositories.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
  status?: { code?: number; message?: string };
}
interface ReceivedSpan extends OtlpSpan {
  service: string;
}

/** A collector: every span POSTed as OTLP JSON to /v1/traces, with its resource's service.name. */
function startCollector(): Promise<{ server: Server; url: string; spans: ReceivedSpan[]; requests: { contentType: string | undefined; headers: Record<string, unknown> }[] }> {
  const spans: ReceivedSpan[] = [];
  const requests: { contentType: string | undefined; headers: Record<string, unknown> }[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      requests.push({ contentType: request.headers['content-type'], headers: request.headers });
      if (request.method !== 'POST' || request.url !== '/v1/traces') {
        response.writeHead(404).end();
        return;
      }
      const doc = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const resourceSpans of doc.resourceSpans) {
        const service = resourceSpans.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
        for (const scope of resourceSpans.scopeSpans) for (const span of scope.spans) spans.push({ ...span, service });
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    resolve({ server, url: `http://127.0.0.1:${port}/v1/traces`, spans, requests });
  }));
}

const attr = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value?.stringValue ?? (value?.intValue === undefined ? undefined : String(value.intValue));
};

/** The value of a Prometheus sample `name{labels}` in an exposition text (labels: a subset to match). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) return Number(line.split(' ').at(-1));
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(natsUnavailable !== undefined)('observability: traces API → worker, structured logs, metrics', () => {
  const namespace = `otel-${randomUUID().slice(0, 8)}.`;
  const repository = 'acme/observed';
  let dataDir: string;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let server: ForgeProcess;
  let worker: WorkerProcess;
  let apiUrl: string;
  let workerMetricsUrl: string;
  let token: string;
  let commit: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'forge-otel-'));
    collector = await startCollector();
    commit = await seedOneStepProject(dataDir, repository, 'echo observed step output');
    const traces = { FORGE_TRACES_EXPORTER: 'otlp', FORGE_OTLP_ENDPOINT: collector.url, FORGE_OTLP_HEADERS: 'x-collector-key=k1' };
    const port = await freePort();
    server = spawnForgeProcess('server', ['server'], {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(),
      FORGE_DATA_DIR: dataDir, FORGE_PORT: String(port), FORGE_WORKERS: 'none', NATS_URL: TEST_NATS_URL, FORGE_NATS_NAMESPACE: namespace,
      FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(dataDir), FORGE_RATE_LIMITS: 'off', FORGE_LOG_LEVEL: 'info', ...traces,
    }, /is serving (http\S+)/);
    apiUrl = (await server.ready)[1]!;
    const metricsPort = await freePort();
    worker = spawnWorkerProcess('worker', {
      ...workerEnv({ name: 'w1', natsUrl: TEST_NATS_URL, apiUrl, dataDir, ackWait: '10s', concurrency: 2, namespace }),
      FORGE_METRICS_PORT: String(metricsPort), ...traces,
    });
    await worker.ready;
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}`;
    token = await (await openDevIssuer(dataDir)).sign({ sub: 'alice', roles: ['developer'], ttlSeconds: 600 });
  }, 60_000);

  afterAll(async () => {
    await killAllWorkerProcesses();
    await killAllForgeProcesses();
    await new Promise((resolve) => collector?.server.close(resolve));
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('one trace from POST /v1/runs through the dispatcher to the worker\'s steps and back; ids in the worker\'s log lines; metrics on both processes', async () => {
    const created = await fetch(`${apiUrl}/v1/runs`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ repository, branch: 'main', commit_sha: commit, trigger_type: 'push' }),
    });
    expect(created.status).toBe(201);
    const runId = ((await created.json()) as { id: string }).id;
    let tree: { status: string; phases: { tasks: { id: string; steps: { id: string; step_name: string }[] }[] }[] } | undefined;
    for (let i = 0; i < 300; i++) {
      tree = (await (await fetch(`${apiUrl}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${token}` } })).json()) as typeof tree;
      if (tree && ['success', 'failed', 'cancelled'].includes(tree.status)) break;
      await sleep(100);
    }
    expect(tree?.status, `${server.output()}\n${worker.output()}`).toBe('success');
    const task = tree!.phases[0]!.tasks[0]!;
    const step = task.steps[0]!;

    // Spans arrive in batches (1 s): wait for the last ones of each process, the API's handling of
    // the task report and the worker's CI job.
    const ofRun = () => collector.spans.filter((s) => attr(s, 'forge.run.id') === runId || attr(s, 'http.route') === '/v1/runs');
    const last = () => collector.spans.some((s) => s.service === 'forge-api' && attr(s, 'http.route') === '/v1/tasks/:id/status')
      && collector.spans.some((s) => s.service === 'forge-worker' && s.name === 'job ci');
    for (let i = 0; i < 100 && !last(); i++) await sleep(100);
    const spans = collector.spans;
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const request = spans.find((s) => s.service === 'forge-api' && s.name === 'POST /v1/runs');
    expect(request, JSON.stringify(ofRun().map((s) => s.name))).toBeDefined();
    expect(request!.kind).toBe(2); // SERVER
    const traceId = request!.traceId;

    const publishDiscovery = spans.find((s) => s.name === 'publish discovery' && attr(s, 'forge.run.id') === runId);
    const publishCi = spans.find((s) => s.name === 'publish ci' && attr(s, 'forge.job.id') === task.id);
    const jobDiscovery = spans.find((s) => s.name === 'job discovery' && attr(s, 'forge.run.id') === runId);
    const jobCi = spans.find((s) => s.name === 'job ci' && attr(s, 'forge.job.id') === task.id);
    const stepSpan = spans.find((s) => s.name === 'step s1' && attr(s, 'forge.step.id') === step.id);
    for (const [name, span] of Object.entries({ publishDiscovery, publishCi, jobDiscovery, jobCi, stepSpan })) {
      expect(span, `${name} missing; spans: ${spans.map((s) => `${s.service}:${s.name}`).join(', ')}`).toBeDefined();
      expect(span!.traceId, name).toBe(traceId);
    }
    // Processes: the dispatcher's spans in the API, the job and step spans in the worker.
    expect([publishDiscovery!.service, publishCi!.service]).toEqual(['forge-api', 'forge-api']);
    expect([jobDiscovery!.service, jobCi!.service, stepSpan!.service]).toEqual(['forge-worker', 'forge-worker', 'forge-worker']);
    // Parent links: request ← publish discovery (through the run's stored traceparent) ← job discovery;
    // publish ci ← job ci ← step s1; the worker's status reports are API spans under the step / job.
    expect(publishDiscovery!.parentSpanId).toBe(request!.spanId);
    expect(publishCi!.parentSpanId).toBe(request!.spanId);
    expect(jobDiscovery!.parentSpanId).toBe(publishDiscovery!.spanId);
    expect(jobCi!.parentSpanId).toBe(publishCi!.spanId);
    expect(jobCi!.kind).toBe(5); // CONSUMER
    expect(publishCi!.kind).toBe(4); // PRODUCER
    expect(stepSpan!.parentSpanId).toBe(jobCi!.spanId);
    expect(attr(stepSpan!, 'forge.step.status')).toBe('success');
    const stepReports = spans.filter((s) => s.service === 'forge-api' && attr(s, 'http.route') === '/v1/steps/:id/status' && attr(s, 'forge.step.id') === step.id);
    expect(stepReports.length).toBe(2); // running, success
    for (const report of stepReports) {
      expect(report.traceId).toBe(traceId);
      expect(report.parentSpanId).toBe(stepSpan!.spanId);
    }
    const claim = spans.find((s) => s.service === 'forge-api' && attr(s, 'http.route') === '/v1/tasks/:id/claim' && attr(s, 'forge.task.id') === task.id);
    expect(claim?.parentSpanId).toBe(jobCi!.spanId);
    // Every span of the run's work is in its trace (reads of the run, this test's polling, are
    // traces of their own); nothing dangles (each parent was received).
    for (const span of spans.filter((s) => attr(s, 'forge.run.id') === runId && attr(s, 'http.request.method') !== 'GET')) expect(span.traceId, span.name).toBe(traceId);
    for (const span of spans.filter((s) => s.traceId === traceId && s.parentSpanId)) expect(byId.has(span.parentSpanId!), `${span.name}'s parent`).toBe(true);
    // The exporter sent JSON with the configured header.
    expect(collector.requests[0]?.contentType).toContain('application/json');
    expect(collector.requests[0]?.headers['x-collector-key']).toBe('k1');

    // Structured logs: the worker's JSON lines for this run carry the ids and the trace id.
    const lines = worker.output().split('\n').map((line) => line.replace(/^\[worker stdout\] /, '')).filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const jobDone = lines.find((l) => l.msg === 'job finished' && l.job_id === task.id);
    expect(jobDone).toMatchObject({ job_type: 'ci', run_id: runId, run_attempt: 1, delivery: 1, outcome: 'ok', trace_id: traceId, service: 'forge-worker' });
    expect(typeof jobDone!.duration_ms).toBe('number');
    const stepDone = lines.find((l) => l.msg === 'step finished' && l.step_id === step.id);
    expect(stepDone).toMatchObject({ run_id: runId, task_id: task.id, step: 's1', status: 'success', exit_code: 0, attempt: 1 });
    expect(lines.find((l) => l.msg === 'job started' && l.job_type === 'discovery' && l.run_id === runId)).toBeDefined();

    // Metrics. The worker: dispatch latency and job durations of what it ran, queue lag, probes.
    const workerMetrics = await (await fetch(`${workerMetricsUrl}/metrics`)).text();
    expect(sample(workerMetrics, 'forge_job_dispatch_latency_seconds_count', { job_type: 'ci' })).toBe(1);
    expect(sample(workerMetrics, 'forge_job_dispatch_latency_seconds_count', { job_type: 'discovery' })).toBe(1);
    expect(sample(workerMetrics, 'forge_job_duration_seconds_count', { job_type: 'ci', outcome: 'ok' })).toBe(1);
    expect(sample(workerMetrics, 'forge_queue_pending_jobs', { stream: streamNames(namespace).ci.stream })).toBe(0);
    expect(sample(workerMetrics, 'forge_queue_unacked_jobs', { stream: streamNames(namespace).ci.stream })).toBe(0);
    expect((await fetch(`${workerMetricsUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${workerMetricsUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${workerMetricsUrl}/elsewhere`)).status).toBe(404);
    // The API: jobs published by type, step durations from the workers' reports, latency by route.
    const apiMetrics = await (await fetch(`${apiUrl}/metrics`)).text();
    expect(sample(apiMetrics, 'forge_jobs_published_total', { job_type: 'discovery' })).toBe(1);
    expect(sample(apiMetrics, 'forge_jobs_published_total', { job_type: 'ci' })).toBe(1);
    expect(sample(apiMetrics, 'forge_step_duration_seconds_count', { status: 'success' })).toBe(1);
    expect(sample(apiMetrics, 'forge_http_request_duration_seconds_count', { method: 'POST', route: '/v1/runs', status_code: '201' })).toBe(1);
    expect(sample(apiMetrics, 'forge_http_request_duration_seconds_count', { method: 'PUT', route: '/v1/steps/:id/status', status_code: '200' })).toBe(2);
    expect(sample(apiMetrics, 'forge_queue_pending_jobs', { stream: streamNames(namespace).discovery.stream })).toBe(0);
  }, 60_000);
});

/** Health, readiness, metrics, OpenAPI, the SSE stream, rate limits and internal errors. */
import { validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { STORE_ADAPTERS, type TestStore } from '../helpers/stores.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { rewriteEncodedRepository } from '../../src/api/app.ts';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from '../../src/store/db.ts';
import { storeOver } from '../../src/store/store.ts';

describe.each(STORE_ADAPTERS)('platform endpoints on $name', (adapter) => {
  let test: TestStore;
  let t: TestApp;
  let dev: string;

  beforeAll(async () => {
    if (adapter.unavailable) return;
    test = await adapter.open();
    t = await startTestApp(test, {
      rateLimits: { runCreate: { max: 3, windowMs: 60_000 }, releaseLookup: { max: 5, windowMs: 60_000 }, deploymentCreate: { max: 2, windowMs: 60_000 } },
    });
    dev = await t.token('alice', ['developer', 'operator']);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await t?.close();
    await test?.close();
  });
  beforeEach((context) => {
    if (adapter.unavailable) context.skip(adapter.unavailable);
  });

  const url = () => {
    const address = t.app.server.address();
    if (!address || typeof address === 'string') throw new Error('not listening');
    return `http://127.0.0.1:${address.port}`;
  };

  it('serves /healthz, /readyz and Prometheus /metrics without a token', async () => {
    expect((await t.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await t.app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready', store: adapter.name });
    await t.app.inject({ url: '/v1/runs', headers: { authorization: `Bearer ${dev}` } });
    const metrics = await t.app.inject({ url: '/metrics' });
    expect(metrics.headers['content-type']).toContain('text/plain');
    expect(metrics.body).toContain('forge_http_request_duration_seconds_bucket{');
    expect(metrics.body).toContain('route="/v1/runs"');
    expect(metrics.body).toContain('process_cpu_user_seconds_total');
  });

  it('publishes an OpenAPI 3.1 document that a parser validates, covering every route', async () => {
    const res = await t.app.inject({ url: '/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(doc));
    expect(result.valid, JSON.stringify((result as { errors?: unknown }).errors)).toBe(true);
    const paths = Object.keys(doc.paths).sort();
    expect(paths).toEqual([
      '/v1/approvals', '/v1/approvals/{id}', '/v1/approvals/{release_id}/{environment}', '/v1/audit', '/v1/auth/github',
      '/v1/deployments', '/v1/deployments/{environment}/{owner}/{name}/{project}', '/v1/deployments/{environment}/{owner}/{name}/{project}/history',
      '/v1/deployments/{environment}/{owner}/{name}/{project}/rollback-target', '/v1/deployments/{id}', '/v1/environments',
      '/v1/events', '/v1/job-replies', '/v1/me', '/v1/projects', '/v1/release-builds', '/v1/release-builds/{id}', '/v1/releases', '/v1/releases/{owner}/{name}/{project}', '/v1/releases/{owner}/{name}/{project}/{ref}',
      '/v1/releases/{owner}/{name}/{project}/{ref}/signatures', '/v1/retention',
      '/v1/runs', '/v1/runs/{id}', '/v1/runs/{id}/jobs', '/v1/runs/{id}/release-builds', '/v1/runs/{id}/retry', '/v1/steps/{id}/logs', '/v1/steps/{id}/logs/index', '/v1/steps/{id}/logs/search',
      '/v1/steps/{id}/status', '/v1/tasks/{id}/claim', '/v1/tasks/{id}/status',
      '/v1/webhooks/github',
    ]);
    expect(doc.paths['/v1/runs'].post.responses['201']).toBeDefined();
    expect(doc.paths['/v1/runs'].post.responses['422']).toBeDefined();
  });

  it('streams events over SSE, filtered by type', async () => {
    const controller = new AbortController();
    const res = await fetch(`${url()}/v1/events?types=pipeline.run.created`, { headers: { authorization: `Bearer ${dev}` }, signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const commit = sha();
    await t.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}` }, payload: { repository: 'acme/sse', branch: 'main', commit_sha: commit, trigger_type: 'push' } });
    let text = '';
    while (!text.includes(commit)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const frame = text.split('\n\n').find((f) => f.includes(commit))!;
    expect(frame).toContain('event: pipeline.run.created');
    const envelope = JSON.parse(frame.split('\n').find((l) => l.startsWith('data: '))!.slice(6));
    expect(envelope).toMatchObject({ event_type: 'pipeline.run.created', timestamp: expect.any(String), data: { repository: 'acme/sse', commit_sha: commit } });
    const unauth = await fetch(`${url()}/v1/events`);
    expect(unauth.status).toBe(401);
  });

  it('rate-limits run creation per repository with 429 rate_limited and Retry-After', async () => {
    const create = (repository: string) => t.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}` }, payload: { repository, branch: 'main', commit_sha: sha(), trigger_type: 'push' } });
    for (let i = 0; i < 3; i++) expect((await create('acme/limited')).statusCode).toBe(201);
    const limited = await create('acme/limited');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error).toMatchObject({ code: 'rate_limited', details: { limit: 3, window_seconds: 60 } });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await create('acme/other')).statusCode).toBe(201);
  });

  it('rate-limits release lookups globally', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await t.app.inject({ url: '/v1/releases/acme/shop/api/1', headers: { authorization: `Bearer ${dev}` } })).statusCode);
    expect(codes.slice(0, 5).every((c) => c === 404)).toBe(true);
    expect(codes.slice(5)).toEqual([429, 429]);
  });

  it('authenticates whatever spelling of the path reaches a /v1 route', async () => {
    for (const url of ['/%761/runs', '/v%31/runs', '/v1/%72uns', '/v1/releases/acme/shop/%61pi']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(401);
    }
    const post = await t.app.inject({ method: 'POST', url: '/%761/runs', payload: { repository: 'a/b', branch: 'main', commit_sha: sha(), trigger_type: 'push' } });
    expect(post.statusCode).toBe(401);
  });

  it('answers unknown routes with the standard 404 body', async () => {
    const res = await t.app.inject({ url: '/v1/nothing', headers: { authorization: `Bearer ${dev}` } });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('not_found');
  });

  it('hides internals of unexpected errors behind 500 internal_error', async () => {
    const original = t.ctx.store.getRun;
    t.ctx.store.getRun = async () => {
      throw new Error('secret connection string postgres://admin:hunter2@db');
    };
    try {
      const res = await t.app.inject({ url: '/v1/runs/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11', headers: { authorization: `Bearer ${dev}` } });
      expect(res.statusCode).toBe(500);
      expect(res.json().error.code).toBe('internal_error');
      expect(res.body).not.toContain('hunter2');
    } finally {
      t.ctx.store.getRun = original;
    }
  });

  it('rewrites only the repository segment when it is URL-encoded', () => {
    expect(rewriteEncodedRepository('/v1/releases/acme%2Fshop/api/1')).toBe('/v1/releases/acme/shop/api/1');
    expect(rewriteEncodedRepository('/v1/releases/acme/shop/api/release%2F1')).toBe('/v1/releases/acme/shop/api/release%2F1');
    expect(rewriteEncodedRepository('/v1/deployments/dev/acme%2fshop/api/history?limit=1')).toBe('/v1/deployments/dev/acme/shop/api/history?limit=1');
    expect(rewriteEncodedRepository('/v1/runs/x%2Fy')).toBe('/v1/runs/x%2Fy');
  });
});

describe('when PostgreSQL is unreachable', () => {
  it('answers 503 service_unavailable (readiness and API), not 500', async () => {
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/nowhere', connectionTimeoutMillis: 1000 });
    pool.on('error', () => undefined);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const down = storeOver(db, 'postgres');
    const t = await startTestApp({ store: down, db, close: () => db.destroy() });
    try {
      const token = await t.token('alice', ['developer']);
      const ready = await t.app.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().error.code).toBe('service_unavailable');
      const runs = await t.app.inject({ url: '/v1/runs', headers: { authorization: `Bearer ${token}` } });
      expect(runs.statusCode).toBe(503);
      expect(runs.json().error.code).toBe('service_unavailable');
      expect(runs.headers['retry-after']).toBe('5');
    } finally {
      await t.close();
      await db.destroy();
    }
  });
});

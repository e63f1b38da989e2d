/**
 * POST /v1/webhooks/github with GitHub's own example payloads (@octokit/webhooks-examples), signed
 * like GitHub signs them, against every store adapter. The routes are mounted on a Fastify app with
 * the API's error handler, as app.ts mounts route plugins.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubRoutes } from '../../src/api/github.routes.ts';
import { handleError } from '../../src/api/errors.ts';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { apiSuite, sha } from '../helpers/app.ts';

const SECRET = 'It\'s a Secret to Everybody';
type Payload = Record<string, unknown>;
const definitions = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('@octokit/webhooks-examples'), 'utf8')) as { name: string; examples: Payload[] }[];

/** A deep copy of GitHub's first example of `event` that passes `filter`. */
function example(event: string, filter: (p: Payload) => boolean = () => true): Payload {
  const found = definitions.find((d) => d.name === event)?.examples.find(filter);
  if (!found) throw new Error(`no example ${event}`);
  return structuredClone(found);
}
const branchPush = () => ({ ...example('push', (p) => p.ref === 'refs/heads/master'), after: sha() });
const prEvent = (action: string) => {
  const payload = example('pull_request', (p) => p.action === action);
  (payload.pull_request as { head: { sha: string } }).head.sha = sha();
  return payload;
};
const signature = (body: string, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

async function mount(secret: string | undefined, ctx: Parameters<typeof githubRoutes>[0]['ctx']): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setErrorHandler(handleError);
  await app.register(githubRoutes({ ctx, webhookSecret: secret, registeredRepositories: [], signPlatformToken: undefined }));
  return app;
}

describe.each(STORE_ADAPTERS)('GitHub webhook on $name', (adapter) => {
  const s = apiSuite(adapter, {});
  let app: FastifyInstance;
  beforeAll(async () => {
    if (adapter.unavailable) return;
    app = await mount(SECRET, s.t.ctx);
  });
  afterAll(() => app?.close());

  const deliver = (event: string, payload: Payload, options: { delivery?: string; sign?: string | null; contentType?: string; body?: string } = {}) => {
    const body = options.body ?? JSON.stringify(payload);
    return app.inject({
      method: 'POST', url: '/v1/webhooks/github', payload: body,
      headers: {
        'content-type': options.contentType ?? 'application/json',
        'x-github-event': event,
        'x-github-delivery': options.delivery ?? randomUUID(),
        ...(options.sign === null ? {} : { 'x-hub-signature-256': options.sign ?? signature(body) }),
      },
    });
  };
  const runs = async () => (await s.t.ctx.store.listRuns({ limit: 50, offset: 0 })).rows;

  it('a branch push creates a push run for the pushed commit, once per delivery and once per commit', async () => {
    const payload = branchPush();
    const delivery = randomUUID();
    const first = await deliver('push', payload, { delivery });
    expect(first.statusCode).toBe(201);
    const { run_id: runId } = first.json<{ status: string; run_id: string }>();
    expect(first.json()).toEqual({ status: 'created', run_id: runId });
    expect(await runs()).toMatchObject([{
      id: runId, repository: 'Codertocat/Hello-World', branch: 'master', commit_sha: payload.after,
      trigger_type: 'push', triggered_by: 'Codertocat', status: 'pending', github_context: null,
    }]);

    const redelivered = await deliver('push', payload, { delivery });
    expect([redelivered.statusCode, redelivered.json()]).toEqual([200, { status: 'duplicate', run_id: runId }]);
    const samePushAgain = await deliver('push', payload);
    expect([samePushAgain.statusCode, samePushAgain.json()]).toEqual([200, { status: 'exists', run_id: runId }]);
    expect(await runs()).toHaveLength(1);
  });

  it('refuses a missing or wrong signature with 401 in the standard error body, creating nothing', async () => {
    const payload = branchPush();
    const body = JSON.stringify(payload);
    for (const sign of [null, signature(body, 'another secret'), signature(`${body} `), 'sha256=', 'sha1=abc']) {
      const res = await deliver('push', payload, { sign });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ error: { code: 'authentication_required', message: expect.stringContaining('X-Hub-Signature-256'), details: {} } });
    }
    expect(await runs()).toHaveLength(0);
  });

  it('a pull request opened, synchronized or reopened creates a pull_request run with its number', async () => {
    for (const action of ['opened', 'synchronize', 'reopened']) {
      const payload = prEvent(action);
      const res = await deliver('pull_request', payload);
      expect(res.statusCode).toBe(201);
      const run = (await runs()).find((r) => r.id === res.json().run_id);
      expect(run).toMatchObject({
        repository: 'Codertocat/Hello-World', branch: 'changes', trigger_type: 'pull_request', triggered_by: 'Codertocat',
        commit_sha: (payload.pull_request as { head: { sha: string } }).head.sha, github_context: { pr_number: 2 },
      });
    }
  });

  it('other pull request actions, forks, tag pushes, branch deletions and other events are ignored with a reason', async () => {
    const fork = prEvent('opened');
    (fork.pull_request as { head: { repo: { full_name: string } } }).head.repo.full_name = 'mallory/Hello-World';
    const cases: [string, Payload, RegExp][] = [
      ['pull_request', prEvent('closed'), /action closed/],
      ['pull_request', fork, /forks/],
      ['push', example('push', (p) => p.ref === 'refs/tags/simple-tag' && p.created === true), /tag pushes/],
      ['push', example('push', (p) => p.deleted === true), /deleted/],
      ['push', { ...branchPush(), deleted: true, after: '0'.repeat(40) }, /deleted/],
      ['issues', example('issues'), /event issues/],
    ];
    for (const [event, payload, reason] of cases) {
      const res = await deliver(event, payload);
      expect(res.statusCode, `${event} ${String(payload.action ?? payload.ref)}`).toBe(202);
      expect(res.json()).toEqual({ status: 'ignored', reason: expect.stringMatching(reason) });
    }
    expect(await runs()).toHaveLength(0);
  });

  it('answers ping with 200', async () => {
    const res = await deliver('ping', example('ping'));
    expect([res.statusCode, res.json()]).toEqual([200, { status: 'pong' }]);
  });

  it('takes form-encoded deliveries too, and refuses a signed body that is not JSON', async () => {
    const payload = branchPush();
    const form = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const res = await deliver('push', payload, { body: form, contentType: 'application/x-www-form-urlencoded' });
    expect(res.statusCode).toBe(201);

    const broken = await deliver('push', payload, { body: '{"ref":' });
    expect([broken.statusCode, broken.json().error.code]).toEqual([422, 'validation_error']);
    const noDelivery = await app.inject({ method: 'POST', url: '/v1/webhooks/github', payload: '{}', headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signature('{}') } });
    expect([noDelivery.statusCode, noDelivery.json().error.details]).toEqual([422, { missing: 'x-github-delivery' }]);
  });

  it('answers 503 when no secret is configured, and leaves JSON parsing of the other route alone', async () => {
    const unconfigured = await mount(undefined, s.t.ctx);
    try {
      const body = JSON.stringify(branchPush());
      const res = await unconfigured.inject({ method: 'POST', url: '/v1/webhooks/github', payload: body, headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': signature(body) } });
      expect([res.statusCode, res.json().error.code]).toEqual([503, 'service_unavailable']);
    } finally {
      await unconfigured.close();
    }
    // The token exchange beside it still gets a parsed, validated JSON body.
    const exchange = await app.inject({ method: 'POST', url: '/v1/auth/github', payload: { token: 'x' } });
    expect([exchange.statusCode, exchange.json().error.code]).toEqual([503, 'service_unavailable']);
    const invalid = await app.inject({ method: 'POST', url: '/v1/auth/github', payload: { audience: 'forge' } });
    expect(invalid.statusCode).toBe(422);
  });
});

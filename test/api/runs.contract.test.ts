/** /v1/runs and the internal task/step endpoints, against every store adapter. */
import { beforeAll, describe, expect, it } from 'vitest';
import { recordDiscovery, type DiscoveryPlan } from '../../src/engine/runs.ts';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { apiSuite, sha, type TestApp } from '../helpers/app.ts';

const plan: DiscoveryPlan = {
  projects: [
    { name: 'api', path: 'services/api', phases: { check: [{ name: 'lint', action: 'script', run: 'npm run lint' }], test: [{ name: 'unit', action: 'earthly', target: '+test' }, { name: 'int', action: 'earthly', target: '+int' }] } },
    { name: 'web', path: 'web', phases: { test: [{ name: 'unit', action: 'earthly', target: '+test' }] } },
  ],
  phaseGroups: [{ group: 1, phases: ['check'] }, { group: 2, phases: ['test'] }, { group: 3, phases: ['publish'] }],
};

describe.each(STORE_ADAPTERS)('runs API on $name', (adapter) => {
  const s = apiSuite(adapter, { dev: ['alice', ['developer']], svc: ['ci-bot', ['service-account']], viewer: ['victor', []] });
  const { call } = s;
  let t: TestApp;
  let dev = '', svc = '', viewer = '';
  beforeAll(() => {
    if (adapter.unavailable) return;
    t = s.t;
    ({ dev = '', svc = '', viewer = '' } = s.tokens);
  });

  const newRun = async (overrides: Record<string, unknown> = {}) => {
    const res = await call('POST', '/v1/runs', dev, { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push', ...overrides });
    expect(res.statusCode).toBe(201);
    return res.json<{ id: string; status: string; started_at: string }>();
  };

  it('creates a run: 201 {id, status: pending, started_at}, then returns the same run for the same commit', async () => {
    const commit = sha();
    const body = { repository: 'acme/shop', branch: 'main', commit_sha: commit, trigger_type: 'push' };
    const first = await call('POST', '/v1/runs', dev, body);
    expect(first.statusCode).toBe(201);
    const run = first.json();
    expect(Object.keys(run).sort()).toEqual(['id', 'started_at', 'status']);
    expect(run.status).toBe('pending');
    expect(new Date(run.started_at).toISOString()).toBe(run.started_at);
    const again = await call('POST', '/v1/runs', dev, { ...body, branch: 'other' });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(run.id);
    const list = await call('GET', '/v1/runs?repository=acme/shop', viewer);
    expect(list.json().total).toBe(1);
  });

  it('creates exactly one run under concurrent identical requests', async () => {
    const body = { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' };
    const results = await Promise.all(Array.from({ length: 10 }, () => call('POST', '/v1/runs', dev, body)));
    expect(new Set(results.map((r) => r.json().id)).size).toBe(1);
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(1);
  });

  it('records triggered_by from the token, and refuses acting for someone else unless service account', async () => {
    const mine = await newRun();
    expect((await call('GET', `/v1/runs/${mine.id}`, viewer)).json().triggered_by).toBe('alice');
    const other = await call('POST', '/v1/runs', dev, { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push', triggered_by: 'mallory' });
    expect(other.statusCode).toBe(403);
    const bot = await call('POST', '/v1/runs', svc, { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'pull_request', triggered_by: 'octocat', github_context: { pr_number: 7 } });
    expect(bot.statusCode).toBe(201);
    const got = (await call('GET', `/v1/runs/${bot.json().id}`, viewer)).json();
    expect(got).toMatchObject({ triggered_by: 'octocat', trigger_type: 'pull_request', github_context: { pr_number: 7 } });
  });

  it.each([
    ['missing repository', { branch: 'main', commit_sha: sha('x'), trigger_type: 'push' }, 'repository'],
    ['path traversal in repository', { repository: '../etc', branch: 'main', commit_sha: sha('x'), trigger_type: 'push' }, 'repository'],
    ['dot-dot repository name', { repository: 'acme/..', branch: 'main', commit_sha: sha('x'), trigger_type: 'push' }, 'repository'],
    ['NUL in branch', { repository: 'acme/shop', branch: 'ma\u0000in', commit_sha: sha('x'), trigger_type: 'push' }, 'branch'],
    ['.. in branch', { repository: 'acme/shop', branch: 'feature/../main', commit_sha: sha('x'), trigger_type: 'push' }, 'branch'],
    ['absolute branch', { repository: 'acme/shop', branch: '/main', commit_sha: sha('x'), trigger_type: 'push' }, 'branch'],
    ['short sha', { repository: 'acme/shop', branch: 'main', commit_sha: 'def456', trigger_type: 'push' }, 'commit_sha'],
    ['unknown trigger type', { repository: 'acme/shop', branch: 'main', commit_sha: sha('x'), trigger_type: 'cron' }, 'trigger_type'],
    ['unknown field', { repository: 'acme/shop', branch: 'main', commit_sha: sha('x'), trigger_type: 'push', colour: 'red' }, ''],
    ['an array for a string', { repository: ['acme/shop'], branch: 'main', commit_sha: sha('x'), trigger_type: 'push' }, 'repository'],
    ['a number for a string', { repository: 'acme/shop', branch: 123, commit_sha: sha('x'), trigger_type: 'push' }, 'branch'],
  ])('rejects %s with 422 validation_error and writes nothing', async (_name, body, field) => {
    const res = await call('POST', '/v1/runs', dev, body);
    expect(res.statusCode).toBe(422);
    const error = res.json().error;
    expect(error.code).toBe('validation_error');
    expect(error.message).toContain(field);
    expect(Array.isArray(error.details.errors)).toBe(true);
    expect((await call('GET', '/v1/runs', viewer)).json().total).toBe(0);
  });

  it('answers malformed JSON with 422, a wrong content type with 415, and a body over 1 MiB with 413', async () => {
    const bad = await t.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}`, 'content-type': 'application/json' }, payload: '{"repository":' });
    expect(bad.statusCode).toBe(422);
    expect(bad.json().error.code).toBe('validation_error');
    const text = await t.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}`, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('validation_error');
    const huge = await t.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}`, 'content-type': 'application/json' }, payload: JSON.stringify({ repository: 'a/b', pad: 'x'.repeat(1_100_000) }) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error.code).toBe('payload_too_large');
  });

  it('needs a valid bearer token (401 authentication_required) and the right role (403 permission_denied)', async () => {
    const none = await call('GET', '/v1/runs');
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('authentication_required');
    expect(none.headers['www-authenticate']).toBe('Bearer');
    const garbage = await call('GET', '/v1/runs', 'not-a-jwt');
    expect(garbage.statusCode).toBe(401);
    const forbidden = await call('POST', '/v1/runs', viewer, { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error).toMatchObject({ code: 'permission_denied', details: { permission: 'runs:create' } });
  });

  it('gets a run with nested phases → tasks → steps; 404 for an unknown id; 422 for a malformed id', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const res = await call('GET', `/v1/runs/${run.id}`, viewer);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ id: run.id, repository: 'acme/shop', branch: 'main', status: 'pending', completed_at: null });
    expect(body.phases.map((p: { name: string; group_number: number; status: string }) => [p.name, p.group_number, p.status])).toEqual([
      ['check', 1, 'pending'], ['test', 2, 'pending'], ['publish', 3, 'skipped'],
    ]);
    const testPhase = body.phases[1];
    expect(testPhase.tasks.map((x: { project_name: string }) => x.project_name)).toEqual(['api', 'web']);
    expect(testPhase.tasks[0].steps.map((s: { step_name: string; target: string }) => [s.step_name, s.target])).toEqual([['int', '+int'], ['unit', '+test']]);
    expect((await call('GET', '/v1/runs/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11', viewer)).json().error.code).toBe('not_found');
    expect((await call('GET', '/v1/runs/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11', viewer)).statusCode).toBe(404);
    expect((await call('GET', '/v1/runs/not-a-uuid', viewer)).statusCode).toBe(422);
  });

  it('moves statuses from worker reports: step start → task/phase/run running; all success → run success', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const tree = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    const tasks = tree.phases.flatMap((p: { tasks: unknown[] }) => p.tasks) as { id: string; steps: { id: string }[] }[];
    const first = tasks[0]!;
    const started = await call('PUT', `/v1/steps/${first.steps[0]!.id}/status`, svc, { status: 'running' });
    expect(started.statusCode).toBe(200);
    expect(started.json().status).toBe('running');
    let now = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    expect([now.status, now.phases[0].status, now.phases[0].tasks[0].status]).toEqual(['running', 'running', 'running']);
    for (const task of tasks) {
      for (const step of task.steps) {
        await call('PUT', `/v1/steps/${step.id}/status`, svc, { status: 'running' });
        const done = await call('PUT', `/v1/steps/${step.id}/status`, svc, { status: 'success', exit_code: 0, logs_s3_key: `pipeline-runs/${run.id}/logs/x/${step.id}.log` });
        expect(done.statusCode).toBe(200);
        expect(done.json()).toMatchObject({ status: 'success', exit_code: 0 });
      }
      const res = await call('PUT', `/v1/tasks/${task.id}/status`, svc, { status: 'success' });
      expect(res.statusCode).toBe(200);
    }
    now = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    expect(now.status).toBe('success');
    expect(now.completed_at).not.toBeNull();
    expect(now.phases.map((p: { status: string }) => p.status)).toEqual(['success', 'success', 'skipped']);
  });

  it('fails fast: one failed step fails its task, phase and run, and skips what never started', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const tree = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    const step = tree.phases[0].tasks[0].steps[0];
    await call('PUT', `/v1/steps/${step.id}/status`, svc, { status: 'running' });
    const failed = await call('PUT', `/v1/steps/${step.id}/status`, svc, { status: 'failed', exit_code: 2 });
    expect(failed.statusCode).toBe(200);
    const now = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    expect(now.status).toBe('failed');
    expect(now.phases.map((p: { status: string }) => p.status)).toEqual(['failed', 'skipped', 'skipped']);
    expect(now.phases[0].tasks[0]).toMatchObject({ status: 'failed', error: 'step lint failed with exit code 2' });
    expect(now.phases[1].tasks.every((x: { status: string }) => x.status === 'skipped')).toBe(true);
    // A late report for a finished run is a conflict, not a silent change.
    const late = await call('PUT', `/v1/tasks/${now.phases[1].tasks[0].id}/status`, svc, { status: 'running' });
    expect(late.statusCode).toBe(409);
    // Repeating what is recorded (a redelivered report) is accepted, and changes nothing.
    const repeat = await call('PUT', `/v1/steps/${step.id}/status`, svc, { status: 'failed', exit_code: 9 });
    expect(repeat.statusCode).toBe(200);
    expect(repeat.json().exit_code).toBe(2);
  });

  it('stops running siblings at fail-fast: failed with the reason, and refuses their later reports', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const test = (await call('GET', `/v1/runs/${run.id}`, viewer)).json().phases[0];
    const check = test.tasks[0];
    await call('PUT', `/v1/tasks/${check.id}/status`, svc, { status: 'running' });
    await call('PUT', `/v1/tasks/${check.id}/status`, svc, { status: 'success' });
    const [api, web] = (await call('GET', `/v1/runs/${run.id}`, viewer)).json().phases[1].tasks;
    await call('PUT', `/v1/steps/${api.steps[0].id}/status`, svc, { status: 'running' });
    await call('PUT', `/v1/steps/${web.steps[0].id}/status`, svc, { status: 'running' });
    await call('PUT', `/v1/steps/${web.steps[0].id}/status`, svc, { status: 'failed', exit_code: 1 });
    const now = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    expect(now.status).toBe('failed');
    const apiNow = now.phases[1].tasks[0];
    expect(apiNow).toMatchObject({ status: 'failed', error: 'stopped: another task failed (fail-fast)' });
    expect(apiNow.steps.map((s: { status: string }) => s.status)).toEqual(['failed', 'skipped']);
    expect((await call('PUT', `/v1/steps/${api.steps[0].id}/status`, svc, { status: 'success', exit_code: 0 })).statusCode).toBe(409);
    expect((await call('PUT', `/v1/tasks/${api.id}/status`, svc, { status: 'success' })).statusCode).toBe(409);
  });

  it('never deadlocks: concurrent failures, starts and a cancel on one run all answer 2xx or 409', async () => {
    for (let round = 0; round < 5; round++) {
      const run = await newRun();
      await recordDiscovery(t.ctx, run.id, plan);
      const tree = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
      const steps = tree.phases.flatMap((p: { tasks: { steps: { id: string }[] }[] }) => p.tasks.flatMap((x) => x.steps)) as { id: string }[];
      const tasks = tree.phases.flatMap((p: { tasks: { id: string }[] }) => p.tasks) as { id: string }[];
      const results = await Promise.all([
        ...steps.map((s) => call('PUT', `/v1/steps/${s.id}/status`, svc, { status: 'running' })),
        ...tasks.map((x) => call('PUT', `/v1/tasks/${x.id}/status`, svc, { status: 'failed', error: 'boom' })),
        call('DELETE', `/v1/runs/${run.id}`, dev),
      ]);
      for (const r of results) expect([200, 204, 409], r.body).toContain(r.statusCode);
      const final = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
      expect(['failed', 'cancelled']).toContain(final.status);
      const open = final.phases.flatMap((p: { tasks: { status: string; steps: { status: string }[] }[] }) =>
        p.tasks.flatMap((x) => [x.status, ...x.steps.map((s) => s.status)])).filter((s: string) => s === 'pending' || s === 'running');
      expect(open).toEqual([]);
    }
  });

  it('refuses illegal transitions with 409 and accepts repeated identical reports', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const task = (await call('GET', `/v1/runs/${run.id}`, viewer)).json().phases[0].tasks[0];
    const early = await call('PUT', `/v1/tasks/${task.id}/status`, svc, { status: 'success' });
    expect(early.statusCode).toBe(409);
    expect(early.json().error).toMatchObject({ code: 'conflict', details: { status: 'pending', requested: 'success' } });
    expect((await call('PUT', `/v1/tasks/${task.id}/status`, svc, { status: 'running' })).statusCode).toBe(200);
    expect((await call('PUT', `/v1/tasks/${task.id}/status`, svc, { status: 'running' })).statusCode).toBe(200);
    expect((await call('PUT', `/v1/tasks/${task.id}/status`, svc, { status: 'skipped' })).statusCode).toBe(422);
    expect((await call('PUT', `/v1/tasks/${task.id}/status`, svc, { status: 'failed', error: 'bad\u0000byte' })).statusCode).toBe(422);
    expect((await call('PUT', `/v1/steps/${task.steps[0].id}/status`, svc, { status: 'running', exit_code: 1e300 })).statusCode).toBe(422);
    expect((await call('PUT', '/v1/tasks/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11/status', svc, { status: 'running' })).statusCode).toBe(404);
  });

  it('lets only service accounts call the internal status endpoints (403 for users, even operators)', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const task = (await call('GET', `/v1/runs/${run.id}`, viewer)).json().phases[0].tasks[0];
    const operator = await t.token('olga', ['operator', 'developer', 'approver']);
    for (const token of [dev, operator, viewer]) {
      const res = await call('PUT', `/v1/tasks/${task.id}/status`, token, { status: 'running' });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('permission_denied');
      expect((await call('PUT', `/v1/steps/${task.steps[0].id}/status`, token, { status: 'running' })).statusCode).toBe(403);
    }
  });

  it('cancels a running run: 204, run cancelled, unstarted work skipped; a finished run is 409', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const step = (await call('GET', `/v1/runs/${run.id}`, viewer)).json().phases[0].tasks[0].steps[0];
    await call('PUT', `/v1/steps/${step.id}/status`, svc, { status: 'running' });
    expect((await call('DELETE', `/v1/runs/${run.id}`, viewer)).statusCode).toBe(403);
    const res = await t.app.inject({ method: 'DELETE', url: `/v1/runs/${run.id}`, headers: { authorization: `Bearer ${dev}`, 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    const now = (await call('GET', `/v1/runs/${run.id}`, viewer)).json();
    expect(now).toMatchObject({ status: 'cancelled', error_code: 'cancelled', error_message: 'cancelled by alice' });
    expect(now.phases.map((p: { status: string }) => p.status)).toEqual(['failed', 'skipped', 'skipped']);
    expect((await call('DELETE', `/v1/runs/${run.id}`, dev)).statusCode).toBe(204);
    const done = await newRun();
    await recordDiscovery(t.ctx, done.id, { projects: [], phaseGroups: [] });
    await call('DELETE', `/v1/runs/${done.id}`, dev);
    expect((await call('DELETE', '/v1/runs/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11', dev)).statusCode).toBe(404);
  });

  it('emits pipeline.run.created and pipeline.run.completed through the outbox', async () => {
    const seen: { event_type: string; data: Record<string, unknown> }[] = [];
    const unsubscribe = t.bus.subscribe((e) => seen.push(e as never));
    const run = await newRun();
    await call('DELETE', `/v1/runs/${run.id}`, dev);
    await t.relay.drain();
    unsubscribe();
    const mine = seen.filter((e) => e.data.run_id === run.id);
    expect(mine.map((e) => e.event_type)).toEqual(['pipeline.run.created', 'pipeline.run.completed']);
    expect(mine[0]!.data).toMatchObject({ repository: 'acme/shop' });
    expect(mine[1]!.data).toMatchObject({ status: 'cancelled' });
    expect(typeof mine[1]!.data.duration_seconds).toBe('number');
  });
});

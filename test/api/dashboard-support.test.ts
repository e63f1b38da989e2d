/**
 * What the dashboard reads beyond the seed, against every store adapter: GET /v1/me, GET
 * /v1/projects (releases, active deployments, their approvers) and a step log's line index and
 * search (GET /v1/steps/{id}/logs/index|search) over a files object store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, type EnvironmentPolicy } from '../../src/domain/policy.ts';
import { recordDiscovery, type DiscoveryPlan } from '../../src/engine/runs.ts';
import type { ObjectStore } from '../../src/engine/ports.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import { StepLog } from '../../src/worker/step-log.ts';
import { apiSuite, sha, type TestApp } from '../helpers/app.ts';
import { settledDeployment } from '../helpers/runs.ts';
import { STORE_ADAPTERS } from '../helpers/stores.ts';

const objectsDir = mkdtempSync(join(tmpdir(), 'forge-dashboard-objects-'));
const objects: ObjectStore = createFileObjectStore(objectsDir);
afterAll(() => rmSync(objectsDir, { recursive: true, force: true }));

// Any release may go anywhere; production needs two approvers.
const environments: EnvironmentPolicy[] = DEFAULT_POLICIES.map((p) => ({
  ...p, allowed_triggers: ['branch_push', 'tag', 'manual'], allowed_branches: ['*'],
  ...(p.name === 'production' ? { approvals_required: 2 } : {}),
}));

const plan: DiscoveryPlan = {
  projects: [{ name: 'api', path: 'services/api', phases: { test: [{ name: 'unit', action: 'script', run: 'npm test' }, { name: 'lint', action: 'script', run: 'npm run lint' }] } }],
  phaseGroups: [{ group: 1, phases: ['test'] }],
};

describe.each(STORE_ADAPTERS)('dashboard support API on $name', (adapter) => {
  const s = apiSuite(adapter, {
    dev: ['alice', ['developer']], svc: ['release-bot', ['service-account']], bob: ['bob', ['approver']], carol: ['carol', ['approver']],
    dave: ['dave', ['approver']], operator: ['olga', ['operator']], viewer: ['victor', []],
  }, { objects, environments });
  const { call } = s;
  let t: TestApp;
  const tk = { dev: '', svc: '', bob: '', carol: '', dave: '', operator: '', viewer: '' };
  beforeAll(() => {
    if (adapter.unavailable) return;
    t = s.t;
    for (const name of Object.keys(tk) as (keyof typeof tk)[]) tk[name] = s.tokens[name] ?? '';
  });

  describe('GET /v1/me', () => {
    it('says who the token is: subject, username, roles and the permissions they grant, in catalogue order', async () => {
      const me = await call('GET', '/v1/me', tk.dev);
      expect(me.statusCode).toBe(200);
      expect(me.json()).toEqual({
        subject: 'alice', username: 'alice', roles: ['developer'],
        permissions: ['read', 'runs:create', 'runs:cancel', 'releases:create', 'deployments:create:dev'],
      });
      const named = await t.issuer.sign({ sub: 'u-7f3a', roles: ['approver', 'developer'], preferredUsername: 'Bob Builder' });
      expect((await call('GET', '/v1/me', named)).json()).toEqual({
        subject: 'u-7f3a', username: 'Bob Builder', roles: ['approver', 'developer'],
        permissions: ['read', 'runs:create', 'runs:cancel', 'releases:create', 'deployments:create:dev', 'approvals:create', 'approvals:revoke'],
      });
      expect((await call('GET', '/v1/me', tk.viewer)).json()).toEqual({ subject: 'victor', username: 'victor', roles: [], permissions: ['read'] });
    });

    it('needs a token (401 in the error body format)', async () => {
      const res = await call('GET', '/v1/me');
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json()).toEqual({ error: { code: 'authentication_required', message: expect.any(String), details: { reason: 'missing_token' } } });
    });
  });

  describe('GET /v1/projects', () => {
    const release = async (repository: string, project: string) => {
      const res = await call('POST', '/v1/releases', tk.svc, { repository, project, commit_sha: sha(), artifacts: [], trigger: { type: 'branch_push', branch: 'main' } });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string; release_number: number }>();
    };
    const deployed = async (release_id: string, environment: string) => {
      const res = await call('POST', '/v1/deployments', tk.operator, { release_id, environment });
      expect(res.statusCode, res.body).toBe(201);
      const done = await settledDeployment(async () => (await call('GET', `/v1/deployments/${res.json().id}`, tk.viewer)).json<{ status: string; id: string }>());
      expect(done.status).toBe('active');
      return done;
    };
    const approve = async (release_id: string, environment: string, token: string) => {
      const res = await call('POST', '/v1/approvals', token, { release_id, environment, justification: 'looks good' });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ approval_id: string }>();
    };

    it('is empty before any release', async () => {
      const res = await call('GET', '/v1/projects', tk.viewer);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ projects: [] });
      expect((await call('GET', '/v1/projects')).statusCode).toBe(401);
    });

    it('lists every released project by repository then project (bytewise), with its latest release and what is deployed where', async () => {
      const api1 = await release('acme/shop', 'api');
      const api2 = await release('acme/shop', 'api');
      const api3 = await release('acme/shop', 'api');
      await release('acme/shop', 'web');
      const cli = await release('Zeta/tools', 'cli');
      await release('acme/shop', 'api-gateway');

      await deployed(api2.id, 'dev');
      const dev = await deployed(api3.id, 'dev');
      await deployed(api3.id, 'staging');
      const staging = await deployed(api1.id, 'staging'); // a rollback: api1 is older than api3
      await approve(api3.id, 'production', tk.bob);
      const revoked = await approve(api3.id, 'production', tk.dave);
      await approve(api3.id, 'production', tk.carol);
      expect((await call('DELETE', `/v1/approvals/${revoked.approval_id}`, tk.dave)).statusCode).toBe(200);
      // Approvals of other releases or environments do not count.
      await approve(api2.id, 'production', tk.dave);
      await approve(api3.id, 'staging', tk.dave);
      const production = await deployed(api3.id, 'production');

      const res = await call('GET', '/v1/projects', tk.viewer);
      expect(res.statusCode).toBe(200);
      const { projects } = res.json<{ projects: { repository: string; project: string; releases: number; latest_release: Record<string, unknown>; deployments: Record<string, unknown>[] }[] }>();
      expect(projects.map((p) => [p.repository, p.project, p.releases])).toEqual([
        ['Zeta/tools', 'cli', 1], ['acme/shop', 'api', 3], ['acme/shop', 'api-gateway', 1], ['acme/shop', 'web', 1],
      ]);
      const stored = (await call('GET', `/v1/releases/acme/shop/api/3`, tk.viewer)).json();
      const api = projects[1]!;
      expect(api.latest_release).toEqual({ id: api3.id, release_number: 3, commit_sha: stored.commit_sha, created_at: stored.created_at });
      expect(projects[0]!.latest_release).toMatchObject({ id: cli.id, release_number: 1 });
      expect(projects[0]!.deployments).toEqual([]);
      const view = (d: { id: string }, release_id: string, release_number: number, rollback: boolean, approved_by: string[]) => ({
        deployment_id: d.id, id: d.id, release_id, release_number, deployed_by: 'olga',
        deployed_at: expect.any(String), gitops_commit_sha: expect.stringMatching(/^[0-9a-f]{40}$/), rollback, approved_by,
      });
      // In the order of the environment policies: dev, staging, production.
      expect(api.deployments).toEqual([
        { environment: 'dev', ...view(dev, api3.id, 3, false, []) },
        { environment: 'staging', ...view(staging, api1.id, 1, true, []) },
        { environment: 'production', ...view(production, api3.id, 3, false, ['bob', 'carol']) },
      ]);

      // An approval that expired since still approved what is deployed; the deployment is unchanged.
      t.clock.advance(48 * 3600_000);
      const later = (await call('GET', '/v1/projects', tk.viewer)).json();
      expect(later.projects[1].deployments[2]).toMatchObject({ environment: 'production', approved_by: ['bob', 'carol'] });
    });

    it('is in the OpenAPI document, described as beyond the seed', async () => {
      const doc = (await call('GET', '/v1/openapi.json')).json();
      expect(doc.paths['/v1/projects'].get.summary).toMatch(/beyond the seed/);
      expect(doc.paths['/v1/me'].get.summary).toMatch(/beyond the seed/);
      expect(doc.paths['/v1/steps/{id}/logs/index'].get.summary).toMatch(/beyond the seed/);
      expect(doc.paths['/v1/steps/{id}/logs/search'].get.summary).toMatch(/beyond the seed/);
    });
  });

  describe('GET /v1/steps/{id}/logs/index and /search', () => {
    /** A run whose first step runs with a log key; the second has none yet. */
    const runningStep = async () => {
      const run = await call('POST', '/v1/runs', tk.dev, { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' });
      await recordDiscovery(t.ctx, run.json().id, plan);
      const tree = (await call('GET', `/v1/runs/${run.json().id}`, tk.viewer)).json();
      const [step, quiet] = tree.phases[0].tasks[0].steps as { id: string }[];
      const key = `pipeline-runs/${run.json().id}/logs/test/api/${step!.id}.log`;
      expect((await call('PUT', `/v1/steps/${step!.id}/status`, tk.svc, { status: 'running', logs_s3_key: key })).statusCode).toBe(200);
      return { step: step!.id, quiet: quiet!.id, key };
    };

    it('indexes and searches a running step\'s log, then its whole log once the step ended', async () => {
      const { step, key } = await runningStep();
      const log = new StepLog(objects, key, 60_000);
      for (let i = 0; i < 2500; i++) log.write(`\x1b[32m[info]\x1b[0m line ${i}${i % 1000 === 7 ? ' \x1b[31mWARN\x1b[0ming: disk' : ''}\n`);
      log.write('partial');
      await log.flush();

      const index = await call('GET', `/v1/steps/${step}/logs/index`, tk.viewer);
      expect(index.statusCode).toBe(200);
      const body = index.json();
      expect(body).toMatchObject({ step_id: step, key, complete: false, lines: 2501, every: 1000 });
      expect(body.checkpoints).toHaveLength(3);
      // A checkpoint is where a ranged read of the log starts at that line.
      const at1000 = (await call('GET', `/v1/steps/${step}/logs?offset=${body.checkpoints[1]}&limit=40`, tk.viewer)).json();
      expect(at1000.text.startsWith('\x1b[32m[info]\x1b[0m line 1000\n')).toBe(true);

      const search = await call('GET', `/v1/steps/${step}/logs/search?q=warning:%20DISK`, tk.viewer);
      expect(search.statusCode).toBe(200);
      expect(search.json()).toEqual({
        step_id: step, query: 'warning: DISK', truncated: false, complete: false, size: body.size,
        matches: [7, 1007, 2007].map((i) => ({ line: i + 1, offset: expect.any(Number), text: `[info] line ${i} WARNing: disk` })),
      });
      expect((await call('GET', `/v1/steps/${step}/logs/search?q=WARNING&case=1`, tk.viewer)).json().matches).toEqual([]);
      const capped = (await call('GET', `/v1/steps/${step}/logs/search?q=line&limit=2`, tk.viewer)).json();
      expect(capped).toMatchObject({ truncated: true, matches: [{ line: 1, offset: 0, text: '[info] line 0' }, { line: 2 }] });

      log.write(' line\n');
      await log.finish('--- step succeeded');
      expect((await call('PUT', `/v1/steps/${step}/status`, tk.svc, { status: 'success', exit_code: 0 })).statusCode).toBe(200);
      const done = (await call('GET', `/v1/steps/${step}/logs/index`, tk.viewer)).json();
      expect(done).toMatchObject({ complete: true, lines: 2502, checkpoints: body.checkpoints });
      expect((await call('GET', `/v1/steps/${step}/logs/search?q=partial%20line`, tk.viewer)).json())
        .toMatchObject({ complete: true, matches: [{ line: 2501, text: 'partial line' }] });
    });

    it('answers for a step with no log yet: nothing to index or find', async () => {
      const { quiet } = await runningStep();
      expect((await call('GET', `/v1/steps/${quiet}/logs/index`, tk.viewer)).json())
        .toEqual({ step_id: quiet, key: null, size: 0, complete: false, lines: 0, every: 1000, checkpoints: [] });
      expect((await call('GET', `/v1/steps/${quiet}/logs/search?q=x`, tk.viewer)).json())
        .toEqual({ step_id: quiet, query: 'x', matches: [], truncated: false, size: 0, complete: false });
    });

    it('refuses an unknown step (404), a bad id, q, limit or case (422), and callers without a token (401)', async () => {
      const { step } = await runningStep();
      const unknown = await call('GET', '/v1/steps/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11/logs/index', tk.viewer);
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toEqual({ error: { code: 'not_found', message: 'step not found', details: { id: '8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11' } } });
      expect((await call('GET', '/v1/steps/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11/logs/search?q=x', tk.viewer)).statusCode).toBe(404);
      for (const query of ['', '?q=', `?q=${'x'.repeat(201)}`, '?q=x&limit=0', '?q=x&limit=1001', '?q=x&limit=ten', '?q=x&case=2', '?q=x&case=true']) {
        const res = await call('GET', `/v1/steps/${step}/logs/search${query}`, tk.viewer);
        expect(res.statusCode, query).toBe(422);
        expect(res.json().error.code, query).toBe('validation_error');
      }
      expect((await call('GET', `/v1/steps/${step}/logs/search?q=${'x'.repeat(200)}&limit=1000&case=1`, tk.viewer)).statusCode).toBe(200);
      expect((await call('GET', '/v1/steps/not-a-uuid/logs/index', tk.viewer)).statusCode).toBe(422);
      expect((await call('GET', `/v1/steps/${step}/logs/index`)).statusCode).toBe(401);
      expect((await call('GET', `/v1/steps/${step}/logs/search?q=x`)).statusCode).toBe(401);
    });
  });
});

/** /v1/releases: numbering, idempotency, aliases, lookups, listing — against every store adapter. */
import { beforeAll, describe, expect, it } from 'vitest';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { apiSuite, sha, type TestApp } from '../helpers/app.ts';

describe.each(STORE_ADAPTERS)('releases API on $name', (adapter) => {
  const s = apiSuite(adapter, { dev: ['alice', ['developer']], svc: ['release-bot', ['service-account']], viewer: ['victor', []] });
  const { call } = s;
  let t: TestApp;
  let dev = '', svc = '', viewer = '';
  beforeAll(() => {
    if (adapter.unavailable) return;
    t = s.t;
    ({ dev = '', svc = '', viewer = '' } = s.tokens);
  });
  const release = (body: Record<string, unknown>, token = svc) =>
    call('POST', '/v1/releases', token, { repository: 'acme/shop', project: 'api', artifacts: [], ...body });

  it('creates release 1, then 2, with the seed response and canonical id', async () => {
    const commit = sha();
    const first = await release({ commit_sha: commit, artifacts: [{ name: 'api-server', type: 'container', tracking_oci_uri: `tracking.test/acme/shop/api/api-server:sha-${commit}`, primary_published_uri: 'ecr.test/api:v1', tracking_oci_digest: `sha256:${'a'.repeat(64)}` }] });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toEqual({
      id: expect.any(String), release_number: 1,
      oci_uri: `registry.test/releases/acme/shop/api:${commit}`, canonical_id: `acme/shop/api/${commit}`,
    });
    const second = await release({ commit_sha: sha() });
    expect(second.json().release_number).toBe(2);
    const other = await release({ commit_sha: sha(), project: 'web' });
    expect(other.json().release_number).toBe(1);
  });

  it('returns the existing release for the same (repository, project, commit): same id and number, 200', async () => {
    const commit = sha();
    const a = await release({ commit_sha: commit });
    const b = await release({ commit_sha: commit.toUpperCase() });
    expect(b.statusCode).toBe(200);
    expect(b.json()).toEqual(a.json());
    expect((await release({ commit_sha: sha() })).json().release_number).toBe(2);
  });

  it('numbers 100 concurrent creates on one project exactly 1..100', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, () => release({ commit_sha: sha() })));
    expect(results.every((r) => r.statusCode === 201)).toBe(true);
    const numbers = results.map((r) => r.json().release_number as number).sort((x, y) => x - y);
    expect(numbers).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it('keeps numbers gap-free when an attempt in between fails', async () => {
    await release({ commit_sha: sha(), aliases: ['stable'] });
    const failed = await release({ commit_sha: sha(), aliases: ['stable'] });
    expect(failed.statusCode).toBe(409);
    expect(failed.json().error.code).toBe('conflict');
    const next = await release({ commit_sha: sha() });
    expect(next.json().release_number).toBe(2);
    expect((await call('GET', '/v1/releases/acme/shop/api', viewer)).json().total).toBe(2);
  });

  it('creates the numeric alias always, a branch alias for branch pushes, a tag alias only for a valid tag', async () => {
    const c1 = sha();
    await release({ commit_sha: c1, trigger: { type: 'branch_push', branch: 'main' } });
    const r1 = (await call('GET', '/v1/releases/acme/shop/api/1', viewer)).json();
    expect(r1.aliases).toEqual([{ alias: 'main-1', alias_type: 'branch' }, { alias: '1', alias_type: 'numeric' }]);
    expect(r1.trigger).toMatchObject({ trigger_type: 'branch_push', branch: 'main', tag: null, triggered_by: 'release-bot' });
    await release({ commit_sha: sha(), trigger: { type: 'tag', tag: 'api/v1.2.0' }, tagging_strategy: 'monorepo' });
    expect((await call('GET', '/v1/releases/acme/shop/api/v1.2.0', viewer)).json().release_number).toBe(2);
    // Another project's monorepo tag is not valid for this project: no tag alias.
    await release({ commit_sha: sha(), trigger: { type: 'tag', tag: 'web/v9.0.0' }, tagging_strategy: 'monorepo' });
    const r3 = (await call('GET', '/v1/releases/acme/shop/api/3', viewer)).json();
    expect(r3.aliases).toEqual([{ alias: '3', alias_type: 'numeric' }]);
    // tag-all: a bare v* tag aliases; a non-v tag does not.
    await release({ commit_sha: sha(), trigger: { type: 'tag', tag: 'v2.0.0' }, tagging_strategy: 'tag-all' });
    expect((await call('GET', '/v1/releases/acme/shop/api/v2.0.0', viewer)).json().release_number).toBe(4);
    await release({ commit_sha: sha(), trigger: { type: 'tag', tag: 'nightly' }, tagging_strategy: 'tag-all' });
    expect((await call('GET', '/v1/releases/acme/shop/api/5', viewer)).json().aliases).toHaveLength(1);
  });

  it('refuses a tag alias already used by another release of the project (409) and a numeric custom alias (422)', async () => {
    await release({ commit_sha: sha(), trigger: { type: 'tag', tag: 'v1.0.0' } });
    const dup = await release({ commit_sha: sha(), trigger: { type: 'tag', tag: 'v1.0.0' } });
    expect(dup.statusCode).toBe(409);
    const numeric = await release({ commit_sha: sha(), aliases: ['7'] });
    expect(numeric.statusCode).toBe(422);
    expect((await release({ commit_sha: sha() })).json().release_number).toBe(2);
  });

  it('resolves {release-id} as alias, then number, then full or prefix SHA; ambiguous prefix 409; else 404', async () => {
    const c1 = 'abc1230000000000000000000000000000000001';
    const c2 = 'abc1240000000000000000000000000000000002';
    await release({ commit_sha: c1 });
    await release({ commit_sha: c2, aliases: ['candidate'] });
    expect((await call('GET', '/v1/releases/acme/shop/api/candidate', viewer)).json().commit_sha).toBe(c2);
    expect((await call('GET', '/v1/releases/acme/shop/api/1', viewer)).json().commit_sha).toBe(c1);
    expect((await call('GET', `/v1/releases/acme/shop/api/${c1}`, viewer)).json().release_number).toBe(1);
    expect((await call('GET', '/v1/releases/acme/shop/api/abc124', viewer)).json().release_number).toBe(2);
    const ambiguous = await call('GET', '/v1/releases/acme/shop/api/abc12', viewer);
    expect(ambiguous.statusCode).toBe(409);
    expect(ambiguous.json().error.details.candidates).toHaveLength(2);
    const missing = await call('GET', '/v1/releases/acme/shop/api/ffff', viewer);
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'not_found', message: expect.stringContaining('ffff'), details: expect.objectContaining({ ref: 'ffff' }) } });
    expect((await call('GET', '/v1/releases/acme/shop/api/99', viewer)).statusCode).toBe(404);
  });

  it('an alias that is also another release\'s SHA prefix resolves as the alias first', async () => {
    const aliased = sha();
    await release({ commit_sha: aliased, aliases: ['beef'] });
    await release({ commit_sha: `beef${'0'.repeat(36)}` });
    expect((await call('GET', '/v1/releases/acme/shop/api/beef', viewer)).json().commit_sha).toBe(aliased);
    expect((await call('GET', '/v1/releases/acme/shop/api/beef0', viewer)).json().release_number).toBe(2);
  });

  it('accepts {repo} URL-encoded as one segment, and aliases with a slash when encoded', async () => {
    const commit = sha();
    await release({ commit_sha: commit, trigger: { type: 'branch_push', branch: 'release/1.2' } });
    const encoded = await call('GET', '/v1/releases/acme%2Fshop/api/1', viewer);
    expect(encoded.statusCode).toBe(200);
    expect(encoded.json().commit_sha).toBe(commit);
    expect((await call('GET', `/v1/releases/acme%2Fshop/api/${encodeURIComponent('release/1.2-1')}`, viewer)).json().commit_sha).toBe(commit);
    expect((await call('GET', '/v1/releases/acme%2Fshop/api', viewer)).json().total).toBe(1);
  });

  it('lists releases newest first with limit/offset/total and full entries', async () => {
    for (let i = 0; i < 5; i++) await release({ commit_sha: sha() });
    const page = (await call('GET', '/v1/releases/acme/shop/api?limit=2&offset=1', viewer)).json();
    expect(page).toMatchObject({ total: 5, limit: 2, offset: 1 });
    expect(page.releases.map((r: { release_number: number }) => r.release_number)).toEqual([4, 3]);
    expect(page.releases[0]).toHaveProperty('aliases');
    expect(page.releases[0]).toHaveProperty('artifacts');
    const defaults = (await call('GET', '/v1/releases/acme/shop/api', viewer)).json();
    expect(defaults).toMatchObject({ limit: 20, offset: 0 });
    expect((await call('GET', '/v1/releases/acme/shop/api?limit=0', viewer)).statusCode).toBe(422);
    expect((await call('GET', '/v1/releases/acme/shop/api?limit=abc', viewer)).statusCode).toBe(422);
  });

  it('returns artifacts on get, and validates every field of the body', async () => {
    const commit = sha();
    const artifact = { name: 'api-server', type: 'container', tracking_oci_uri: `tracking.test/acme/shop/api/api-server:sha-${commit}`, primary_published_uri: 'ecr.test/api:v1' };
    await release({ commit_sha: commit, artifacts: [artifact] });
    const got = (await call('GET', '/v1/releases/acme/shop/api/1', viewer)).json();
    expect(got.artifacts).toEqual([expect.objectContaining({ artifact_name: 'api-server', artifact_type: 'container', tracking_oci_uri: artifact.tracking_oci_uri, primary_published_uri: 'ecr.test/api:v1' })]);
    expect(got).toMatchObject({ repository: 'acme/shop', project: 'api', commit_sha: commit, created_by: 'release-bot', pipeline_run_id: null });
    for (const bad of [
      { commit_sha: sha(), project: 'API' },
      { commit_sha: sha(), project: '../etc' },
      { commit_sha: sha(), repository: 'acme' },
      { commit_sha: 'xyz' },
      { commit_sha: sha(), artifacts: [{ ...artifact, type: 'rpm' }] },
      { commit_sha: sha(), artifacts: [artifact, artifact] },
      { commit_sha: sha(), aliases: ['../x'] },
      { commit_sha: sha(), trigger: { type: 'tag' } },
      { commit_sha: sha(), pipeline_run_id: '8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11' },
    ]) {
      const res = await release(bad);
      expect(res.statusCode, JSON.stringify(bad)).toBe(422);
      expect(res.json().error.code).toBe('validation_error');
    }
    expect((await call('GET', '/v1/releases/acme/shop/api', viewer)).json().total).toBe(1);
  });

  it('links a release to its pipeline run and derives a branch_push trigger from it', async () => {
    const commit = sha();
    const run = (await call('POST', '/v1/runs', dev, { repository: 'acme/shop', branch: 'main', commit_sha: commit, trigger_type: 'push' })).json();
    const res = await release({ commit_sha: commit, pipeline_run_id: run.id });
    expect(res.statusCode).toBe(201);
    const got = (await call('GET', '/v1/releases/acme/shop/api/1', viewer)).json();
    expect(got).toMatchObject({ pipeline_run_id: run.id, trigger: { trigger_type: 'branch_push', branch: 'main' } });
    const mismatch = await release({ commit_sha: sha(), pipeline_run_id: run.id });
    expect(mismatch.statusCode).toBe(422);
  });

  it('leaves out a generated branch alias that a custom alias already took, instead of blocking the release', async () => {
    await release({ commit_sha: sha(), aliases: ['main-2'] });
    const second = await release({ commit_sha: sha(), trigger: { type: 'branch_push', branch: 'main' } });
    expect(second.statusCode).toBe(201);
    expect((await call('GET', '/v1/releases/acme/shop/api/2', viewer)).json().aliases).toEqual([{ alias: '2', alias_type: 'numeric' }]);
    expect((await call('GET', '/v1/releases/acme/shop/api/main-2', viewer)).json().release_number).toBe(1);
  });

  it('lets only service accounts and operators record a trigger or pipeline run (a developer\'s release is manual)', async () => {
    const res = await release({ commit_sha: sha(), trigger: { type: 'branch_push', branch: 'main' } }, dev);
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatchObject({ code: 'permission_denied', details: { fields: ['trigger'] } });
    expect((await call('GET', '/v1/releases/acme/shop/api', viewer)).json().total).toBe(0);
  });

  it('lets developers create manual releases but not viewers; emits release.created', async () => {
    const seen: { event_type: string; data: Record<string, unknown> }[] = [];
    const off = t.bus.subscribe((e) => seen.push(e as never));
    expect((await release({ commit_sha: sha() }, viewer)).statusCode).toBe(403);
    const manual = await release({ commit_sha: sha() }, dev);
    expect(manual.statusCode).toBe(201);
    expect((await call('GET', '/v1/releases/acme/shop/api/1', viewer)).json().trigger.trigger_type).toBe('manual');
    await t.relay.drain();
    off();
    expect(seen.filter((e) => e.event_type === 'release.created').map((e) => e.data)).toEqual([
      { release_id: manual.json().id, repository: 'acme/shop', project: 'api', commit_sha: expect.any(String), release_number: 1 },
    ]);
  });
});

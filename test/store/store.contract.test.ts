/** The store port's contract, run against embedded PGlite and real PostgreSQL. */
import { randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Release } from '../../src/domain/entities.ts';
import { envelope } from '../../src/domain/entities.ts';
import type { Database } from '../../src/store/db.ts';
import { loadMigrations, migrate } from '../../src/store/migrate.ts';
import { STORE_ADAPTERS, truncateAll, type TestStore } from '../helpers/stores.ts';
import { storeOver } from '../../src/store/store.ts';
import { sha } from '../helpers/app.ts';

const release = (over: Partial<Release> = {}): Release => ({
  id: randomUUID(), repository: 'acme/shop', project: 'api', commit_sha: sha(), release_number: 1, pipeline_run_id: null,
  oci_uri: 'r/acme/shop/api:x', oci_digest: null, created_at: new Date(), created_by: 'alice', ...over,
});

describe.each(STORE_ADAPTERS)('store contract on $name', (adapter) => {
  let test: TestStore;

  beforeAll(async () => {
    if (!adapter.unavailable) test = await adapter.open();
  });
  afterAll(async () => {
    await test?.close();
  });
  beforeEach(async (context) => {
    if (adapter.unavailable) context.skip(adapter.unavailable);
    await truncateAll(test);
  });

  it('records every migration once and applies nothing on a second run', async () => {
    const versions = (await test.db.selectFrom('forge_migrations').select('version').orderBy('version').execute()).map((r) => r.version);
    expect(versions).toEqual(loadMigrations().map((m) => m.version));
    expect(await migrate(test.db)).toEqual([]);
  });

  it('rolls a failed transaction back whole: no release, no counter bump', async () => {
    const { store } = test;
    await expect(store.transaction(async (tx) => {
      const last = await tx.lockReleaseCounter('acme/shop', 'api');
      await tx.insertRelease(release({ release_number: last + 1 }));
      await tx.setReleaseCounter('acme/shop', 'api', last + 1);
      throw new Error('publisher failed');
    })).rejects.toThrow('publisher failed');
    expect(await store.listReleases('acme/shop', 'api', 10, 0)).toEqual({ rows: [], total: 0 });
    expect(await store.transaction((tx) => tx.lockReleaseCounter('acme/shop', 'api'))).toBe(0);
  });

  it('isolates concurrent transactions (PGlite: one session, serialised by the dialect)', async () => {
    const { store } = test;
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.transaction(async (tx) => {
      const last = await tx.lockReleaseCounter('acme/shop', 'api');
      await tx.insertRelease(release({ release_number: last + 1 }));
      await tx.setReleaseCounter('acme/shop', 'api', last + 1);
      if (i % 2 === 1) throw new Error('odd attempts fail');
    })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    const numbers = (await store.listReleases('acme/shop', 'api', 50, 0)).rows.map((r) => r.release_number).sort((a, b) => a - b);
    expect(numbers).toEqual([1, 2, 3, 4, 5]);
  });

  it('enforces the seed unique constraints', async () => {
    const { store } = test;
    const r = release();
    await store.insertRelease(r);
    await expect(store.insertRelease(release({ commit_sha: r.commit_sha, release_number: 2 }))).rejects.toMatchObject({ code: '23505' });
    await expect(store.insertRelease(release({ release_number: 1 }))).rejects.toMatchObject({ code: '23505' });
    await store.insertAliases([{ id: randomUUID(), release_id: r.id, repository: r.repository, project: r.project, alias: 'v1', alias_type: 'tag' }]);
    const r2 = release({ release_number: 2 });
    await store.insertRelease(r2);
    await expect(store.insertAliases([{ id: randomUUID(), release_id: r2.id, repository: r.repository, project: r.project, alias: 'v1', alias_type: 'tag' }])).rejects.toMatchObject({ code: '23505' });
    await expect(sql`INSERT INTO pipeline_runs (id, repository, branch, commit_sha, triggered_by, trigger_type, status, started_at) VALUES (${randomUUID()}, 'a/b', 'main', 'x', 'y', 'cron', 'pending', now())`.execute(test.db)).rejects.toMatchObject({ code: '23514' });
  });

  it('allows at most one active deployment per environment + project', async () => {
    const { store } = test;
    const r = release();
    await store.insertRelease(r);
    const base = { release_id: r.id, repository: r.repository, project: r.project, environment: 'dev', deployed_at: new Date(), deployed_by: 'a', gitops_commit_sha: null, approval_id: null, error: null, dispatched_at: null, attempts: 0, finished_at: null, rollback_from_release_id: null, freeze_override: null } as const;
    await store.insertDeployment({ ...base, id: randomUUID(), status: 'active' });
    await expect(store.insertDeployment({ ...base, id: randomUUID(), status: 'active' })).rejects.toMatchObject({ code: '23505' });
    await store.insertDeployment({ ...base, id: randomUUID(), status: 'active', environment: 'staging' });
    await store.insertDeployment({ ...base, id: randomUUID(), status: 'superseded' });
  });

  it('withLock excludes across stores on one database (as across processes), per key', async () => {
    const { store } = test;
    // A second store over the same database, as another process would have (PGlite is one process).
    const other = test.url ? storeOver(new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: test.url, max: 3 }) }) }), 'postgres') : store;
    try {
      const spans: [string, number, number][] = [];
      const work = (who: string, s: typeof store, key: string) => s.withLock(key, async () => {
        const start = performance.now();
        await new Promise((r) => setTimeout(r, 30));
        spans.push([`${who}:${key}`, start, performance.now()]);
      });
      await Promise.all([
        ...Array.from({ length: 4 }, (_, i) => work(`a${i}`, store, 'target-1')),
        ...Array.from({ length: 4 }, (_, i) => work(`b${i}`, other, 'target-1')),
        work('c', other, 'target-2'),
      ]);
      const same = spans.filter(([name]) => name.endsWith(':target-1')).sort((x, y) => x[1] - y[1]);
      for (let i = 1; i < same.length; i++) expect(same[i]![1]).toBeGreaterThanOrEqual(same[i - 1]![2] - 1);
      expect(spans).toHaveLength(9);
    } finally {
      if (other !== store) await other.close();
    }
  });

  it('relays outbox events in order, once, even with concurrent relays', async () => {
    const { store } = test;
    const events = Array.from({ length: 30 }, (_, i) => envelope('pipeline.run.created', { run_id: String(i), repository: 'a/b', commit_sha: 'c' }, new Date()));
    await store.transaction((tx) => tx.insertEvents(events));
    const delivered: string[] = [];
    const relay = () => store.relayEvents(7, async (batch) => {
      for (const e of batch) delivered.push((e.envelope.data as { run_id: string }).run_id);
    });
    let more = true;
    while (more) more = (await Promise.all([relay(), relay(), relay()])).some((n) => n > 0);
    expect(delivered.sort((a, b) => Number(a) - Number(b))).toEqual(events.map((_, i) => String(i)));
    // A failing delivery leaves the events for the next pass.
    await store.transaction((tx) => tx.insertEvents(events.slice(0, 2)));
    await expect(store.relayEvents(10, async () => { throw new Error('nats down'); })).rejects.toThrow('nats down');
    expect(await store.relayEvents(10, async () => undefined)).toBe(2);
  });
});

describe('migrations on real PostgreSQL', () => {
  const postgres = STORE_ADAPTERS.find((a) => a.name === 'postgres')!;
  it('are safe when two processes migrate at once', async (context) => {
    if (postgres.unavailable) context.skip(postgres.unavailable);
    const fresh = await postgres.open();
    try {
      // Drop everything the helper migrated, then race two independent connections.
      await sql`DROP SCHEMA public CASCADE; CREATE SCHEMA public`.execute(fresh.db);
      const make = () => new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: fresh.url, max: 2 }) }) });
      const a = make();
      const b = make();
      const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
      expect([...ra, ...rb].sort()).toEqual(loadMigrations().map((m) => m.version));
      await Promise.all([a.destroy(), b.destroy()]);
    } finally {
      await fresh.close();
    }
  });
});

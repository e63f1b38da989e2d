/**
 * The store adapters every contract suite runs against: embedded PGlite and real PostgreSQL.
 * Each call to `open()` gives a fresh, migrated, empty database (PGlite in memory from the
 * template; PostgreSQL: a new database on the server, dropped on close).
 *
 * PostgreSQL comes from TEST_DATABASE_URL, DATABASE_URL, or postgres://postgres@127.0.0.1:5432/postgres.
 * When it cannot be reached the PostgreSQL suites are skipped locally, but FAIL when CI=true.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { inject } from 'vitest';
import type { Store } from '../../src/engine/ports.ts';
import type { Database } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { PGliteDialect } from '../../src/store/pglite.dialect.ts';
import { storeOver } from '../../src/store/store.ts';
import { preparedPool } from '../../src/store/prepared-pool.ts';
import { forgetCachedReleases } from '../../src/engine/releases.ts';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestStore {
  store: Store;
  db: Kysely<Database>;
  /** For PostgreSQL: the URL of this test's own database. */
  url?: string;
  close(): Promise<void>;
}

export interface StoreAdapter {
  name: 'pglite' | 'postgres';
  /** undefined when usable; otherwise why not. */
  unavailable: string | undefined;
  open(): Promise<TestStore>;
}

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${TEST_DATABASE_URL.replace(/:[^:@/]*@/, ':***@')} is not reachable: ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const postgresProblem = await probePostgres();
if (postgresProblem && process.env.CI === 'true') {
  throw new Error(`CI=true and the real-PostgreSQL suites cannot run: ${postgresProblem}`);
}

export const pgliteAdapter: StoreAdapter = {
  name: 'pglite',
  unavailable: undefined,
  async open() {
    const template = readFileSync(inject('pgliteTemplate'));
    const pglite = new PGlite({ loadDataDir: new Blob([template]) });
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return { store: storeOver(db, 'pglite'), db, close: () => db.destroy() };
  },
};

export const postgresAdapter: StoreAdapter = {
  name: 'postgres',
  unavailable: postgresProblem,
  async open() {
    const name = `forge_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
    pool.on('error', () => undefined);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparedPool(pool) }) });
    await migrate(db);
    return {
      store: storeOver(db, 'postgres'), db, url: url.toString(),
      async close() {
        await db.destroy();
        const cleanup = new pg.Client({ connectionString: TEST_DATABASE_URL });
        await cleanup.connect();
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await cleanup.end();
      },
    };
  },
};

export const STORE_ADAPTERS: StoreAdapter[] = [pgliteAdapter, postgresAdapter];

/** Empties every table (between tests of one file), and what the engine cached of them. */
export async function truncateAll({ db, store }: Pick<TestStore, 'db' | 'store'>): Promise<void> {
  forgetCachedReleases(store);
  await sql`TRUNCATE pipeline_runs, phase_executions, task_executions, step_executions, releases, release_counters,
    release_aliases, release_triggers, release_artifacts, release_approvals, deployments, audit_log, event_outbox RESTART IDENTITY CASCADE`.execute(db);
}

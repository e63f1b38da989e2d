/**
 * The store port's two adapters: embedded PGlite in the data dir (DATABASE_URL unset) and
 * PostgreSQL through `pg`. Both run the same Kysely code; only the dialect differs.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Repos, Store } from '../engine/ports.ts';
import type { Database } from './db.ts';
import { deploymentRepos } from './deployment.store.ts';
import { migrate } from './migrate.ts';
import { outboxRepos, relayEvents } from './outbox.store.ts';
import { PGliteDialect } from './pglite.dialect.ts';
import { preparedPool } from './prepared-pool.ts';
import { KeyedMutex } from '../lib/keyed-mutex.ts';
import { Semaphore } from '../lib/semaphore.ts';
import { releaseRepos } from './release.store.ts';
import { releaseBuildRepos } from './release-build.store.ts';
import { retentionRepos } from './retention.store.ts';
import { runRepos } from './run.store.ts';

/** SQLSTATE 40P01 (deadlock detected) and 40001 (serialization failure). */
function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === '40P01' || code === '40001';
}

function repos(db: Kysely<Database>): Repos {
  return { ...runRepos(db), ...releaseRepos(db), ...releaseBuildRepos(db), ...deploymentRepos(db), ...outboxRepos(db), ...retentionRepos(db) };
}

/**
 * `lockHolders`: how many `withLock` holders may keep a pooled connection at once (PostgreSQL). A
 * holder keeps its connection for the lock and needs others for its work, so holders of many
 * different keys at once could take every connection of the pool and wait for one forever; the
 * rest wait in the process until a holder is done. Default 2; openStore gives a quarter of the pool.
 */
export function storeOver(db: Kysely<Database>, kind: Store['kind'], options: { lockHolders?: number } = {}): Store {
  const local = new KeyedMutex();
  const holders = new Semaphore(options.lockHolders ?? 2);
  return {
    kind,
    ...repos(db),
    async transaction(fn) {
      try {
        return await db.transaction().execute((trx) => fn(repos(trx)));
      } catch (error) {
        // A deadlock or serialization failure rolled everything back: one more try is safe.
        if (!isRetryable(error)) throw error;
        return db.transaction().execute((trx) => fn(repos(trx)));
      }
    },
    relayEvents: relayEvents(db),
    withLock(key, fn) {
      if (kind === 'pglite') return local.run(key, fn);
      // Waiters of this process queue here first, so each holds a pooled connection only once it is
      // next: many waiters on one key can never take every connection from the lock's holder.
      return local.run(key, () => holders.run(() => db.connection().execute(async (conn) => {
        await sql`SELECT pg_advisory_lock(hashtextextended(${key}, 0))`.execute(conn);
        try {
          return await fn();
        } finally {
          await sql`SELECT pg_advisory_unlock(hashtextextended(${key}, 0))`.execute(conn);
        }
      })));
    },
    async tryWithLock(key, fn) {
      if (kind === 'pglite') return local.busy(key) ? { locked: false as const } : { locked: true as const, value: await local.run(key, fn) };
      if (local.busy(key)) return { locked: false as const };
      return holders.run(() => db.connection().execute(async (conn) => {
        const got = await sql<{ ok: boolean }>`SELECT pg_try_advisory_lock(hashtextextended(${key}, 0)) AS ok`.execute(conn);
        if (got.rows[0]?.ok !== true) return { locked: false as const };
        try {
          return { locked: true as const, value: await fn() };
        } finally {
          await sql`SELECT pg_advisory_unlock(hashtextextended(${key}, 0))`.execute(conn);
        }
      }));
    },
    async ping() {
      await sql`SELECT 1`.execute(db);
    },
    close: () => db.destroy(),
  };
}

export interface OpenStoreOptions {
  /** PostgreSQL URL; when absent the embedded PGlite database in `dataDir` is used. */
  databaseUrl?: string | undefined;
  dataDir?: string;
  /** An already-open PGlite (tests load a migrated template into memory). */
  pglite?: PGlite;
  poolSize?: number;
  migrate?: boolean;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  let db: Kysely<Database>;
  let kind: Store['kind'];
  if (options.databaseUrl !== undefined) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 20 });
    // An idle client that loses its server must not crash the process; the next query reports it.
    pool.on('error', () => {});
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparedPool(pool) }) });
    kind = 'postgres';
  } else {
    let pglite = options.pglite;
    if (pglite === undefined) {
      if (options.dataDir === undefined) throw new Error('openStore needs databaseUrl, dataDir or pglite');
      mkdirSync(options.dataDir, { recursive: true });
      pglite = new PGlite(join(options.dataDir, 'pglite'));
    }
    db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    kind = 'pglite';
  }
  if (options.migrate !== false) {
    try {
      await migrate(db);
    } catch (error) {
      await db.destroy();
      throw error;
    }
  }
  return storeOver(db, kind, { lockHolders: Math.max(1, Math.floor((options.poolSize ?? 20) / 4)) });
}

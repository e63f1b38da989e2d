/**
 * The pooled connections behind Kysely when PostgreSQL ends a session (restart, failover,
 * pg_terminate_backend) while a connection is checked out between statements: the process must not
 * crash on the client's 'error' event, the holder sees the failure on its next statement, and the
 * pool hands out a working connection afterwards (fault 6 found the crash).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preparedPool } from '../../src/store/prepared-pool.ts';
import { TEST_DATABASE_URL, postgresAdapter } from '../helpers/stores.ts';
import { eventually } from '../helpers/runs.ts';

describe.skipIf(postgresAdapter.unavailable !== undefined)('preparedPool when the server ends a checked-out session', () => {
  let pool: pg.Pool;
  let admin: pg.Client;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2 });
    pool.on('error', () => {});
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end();
    await pool?.end();
  });

  it('does not crash the process; the next statement fails; a fresh connection works', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const prepared = preparedPool(pool);
      const held = await prepared.connect();
      const { rows: [me] } = await held.query('SELECT pg_backend_pid() AS pid', []) as unknown as { rows: { pid: number }[] };
      await admin.query('SELECT pg_terminate_backend($1)', [me!.pid]);
      // The termination notice reaches the idle, checked-out client as an 'error' event.
      await eventually(async () => (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [me!.pid])).rows[0].n as number, (n) => n === 0, 5000);
      await new Promise((r) => setTimeout(r, 200));
      expect(uncaught).toEqual([]);
      await expect(held.query('SELECT 1', [])).rejects.toThrow();
      held.release();
      const fresh = await prepared.connect();
      const { rows } = await fresh.query('SELECT 1 AS one', []) as unknown as { rows: { one: number }[] };
      expect(rows).toEqual([{ one: 1 }]);
      fresh.release();
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});

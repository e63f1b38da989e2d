/**
 * Before any test file runs: a migrated PGlite database is made once and dumped, so each test file
 * loads it in ~1 s instead of creating one in ~5 s. Cached on disk by the migrations' content hash.
 * And the dashboard (web/ → dist/web) is built when it is missing or stale.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { loadMigrations, migrate } from '../src/store/migrate.ts';
import { PGliteDialect } from '../src/store/pglite.dialect.ts';
import type { Database } from '../src/store/db.ts';
import { ensureWebBuilt } from './helpers/web.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const hash = createHash('sha256').update(JSON.stringify(loadMigrations())).digest('hex').slice(0, 16);
  const dir = join(process.cwd(), 'node_modules', '.cache', 'forge-test');
  const file = join(dir, `pglite-${hash}.tar`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const pg = new PGlite();
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pg) });
    await migrate(db);
    const dump = await pg.dumpDataDir('none');
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, Buffer.from(await dump.arrayBuffer()));
    renameSync(tmp, file);
    await db.destroy();
  }
  readFileSync(file); // fail early if unreadable
  // The dashboard's browser tests load dist/web; build it when web/ changed since the last build.
  await ensureWebBuilt();
  project.provide('pgliteTemplate', file);
}

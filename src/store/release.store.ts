/** Releases with their aliases, trigger, artifacts and the per-project release counter. */
import { sql, type Kysely } from 'kysely';
import type { Release, ReleaseAlias, ReleaseArtifact, ReleaseTrigger } from '../domain/entities.ts';
import type { Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';

type ReleaseRepos = Pick<
  Repos,
  | 'lockReleaseCounter' | 'setReleaseCounter' | 'insertRelease' | 'insertAliases' | 'insertTrigger' | 'insertArtifacts'
  | 'getRelease' | 'findReleaseByCommit' | 'findReleaseByAlias' | 'findReleaseByNumber' | 'findReleasesByShaPrefix'
  | 'listReleases' | 'listAliases' | 'listArtifacts' | 'listTriggers'
>;

const byIds = (ids: string[]) => sql<string>`ANY(${ids}::uuid[])`;

export function releaseRepos(db: Kysely<Database>): ReleaseRepos {
  const releases = () => db.selectFrom('releases').selectAll();
  return {
    async lockReleaseCounter(repository, project) {
      await db.insertInto('release_counters').values({ repository, project, last_number: 0 })
        .onConflict((oc) => oc.columns(['repository', 'project']).doNothing()).execute();
      const row = await db.selectFrom('release_counters').select('last_number')
        .where('repository', '=', repository).where('project', '=', project).forUpdate().executeTakeFirstOrThrow();
      return row.last_number;
    },
    async setReleaseCounter(repository, project, last) {
      await db.updateTable('release_counters').set({ last_number: last })
        .where('repository', '=', repository).where('project', '=', project).execute();
    },
    async insertRelease(release) {
      await db.insertInto('releases').values(release).execute();
    },
    async insertAliases(rows) {
      if (rows.length > 0) await db.insertInto('release_aliases').values(rows).execute();
    },
    async insertTrigger(row) {
      await db.insertInto('release_triggers').values(row).execute();
    },
    async insertArtifacts(rows) {
      if (rows.length > 0) await db.insertInto('release_artifacts').values(rows).execute();
    },
    async getRelease(id) {
      return (await releases().where('id', '=', id).executeTakeFirst()) as Release | undefined;
    },
    async findReleaseByCommit(repository, project, commitSha) {
      return (await releases().where('repository', '=', repository).where('project', '=', project)
        .where('commit_sha', '=', commitSha).executeTakeFirst()) as Release | undefined;
    },
    async findReleaseByAlias(repository, project, alias) {
      return (await db.selectFrom('release_aliases as a').innerJoin('releases as r', 'r.id', 'a.release_id')
        .selectAll('r').where('a.repository', '=', repository).where('a.project', '=', project)
        .where('a.alias', '=', alias).executeTakeFirst()) as Release | undefined;
    },
    async findReleaseByNumber(repository, project, releaseNumber) {
      return (await releases().where('repository', '=', repository).where('project', '=', project)
        .where('release_number', '=', releaseNumber).executeTakeFirst()) as Release | undefined;
    },
    async findReleasesByShaPrefix(repository, project, prefix, limit) {
      // Prefix as a range: uses the (repository, project, commit_sha) unique index.
      const upper = `${prefix}g`;
      return releases().where('repository', '=', repository).where('project', '=', project)
        .where('commit_sha', '>=', prefix).where('commit_sha', '<', upper)
        .orderBy('release_number', 'desc').limit(limit).execute() as Promise<Release[]>;
    },
    async listReleases(repository, project, limit, offset) {
      const base = db.selectFrom('releases').where('repository', '=', repository).where('project', '=', project);
      const [rows, count] = await Promise.all([
        base.selectAll().orderBy('release_number', 'desc').limit(limit).offset(offset).execute(),
        base.select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow(),
      ]);
      return { rows: rows as Release[], total: count.total };
    },
    async listAliases(releaseIds) {
      if (releaseIds.length === 0) return [];
      return db.selectFrom('release_aliases').selectAll().where('release_id', '=', byIds(releaseIds))
        .orderBy('alias_type').orderBy('alias').execute() as Promise<ReleaseAlias[]>;
    },
    async listArtifacts(releaseIds) {
      if (releaseIds.length === 0) return [];
      return db.selectFrom('release_artifacts').selectAll().where('release_id', '=', byIds(releaseIds))
        .orderBy('artifact_name').execute() as Promise<ReleaseArtifact[]>;
    },
    async listTriggers(releaseIds) {
      if (releaseIds.length === 0) return [];
      return db.selectFrom('release_triggers').selectAll().where('release_id', '=', byIds(releaseIds))
        .execute() as Promise<ReleaseTrigger[]>;
    },
  };
}

/** Releases with their aliases, trigger, artifacts and the per-project release counter. */
import { sql, type Kysely } from 'kysely';
import type { ReleaseRecord, Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';

type ReleaseRepos = Pick<
  Repos,
  | 'lockReleaseCounter' | 'setReleaseCounter' | 'insertRelease' | 'insertAliases' | 'insertTrigger' | 'insertArtifacts'
  | 'getRelease' | 'findReleaseByCommit' | 'findReleaseByAlias' | 'findReleaseByNumber' | 'findReleasesByShaPrefix'
  | 'listReleases' | 'findTakenAliases' | 'listProjects'
>;

type Row = Omit<ReleaseRecord, 'artifacts' | 'trigger'> & {
  artifacts: (Omit<ReleaseRecord['artifacts'][number], 'created_at'> & { created_at: string })[];
  trigger: (Omit<NonNullable<ReleaseRecord['trigger']>, 'triggered_at'> & { triggered_at: string }) | null;
};

/** JSON aggregates carry timestamps as text; records carry Dates like every other read. */
function hydrate(row: Row): ReleaseRecord {
  return {
    ...row,
    artifacts: row.artifacts.map((a) => ({ ...a, created_at: new Date(a.created_at) })),
    trigger: row.trigger ? { ...row.trigger, triggered_at: new Date(row.trigger.triggered_at) } : null,
  };
}

export function releaseRepos(db: Kysely<Database>): ReleaseRepos {
  /** A release with its aliases, artifacts and trigger, in one round trip. */
  const records = () => db.selectFrom('releases as r').selectAll('r').select([
    sql<Row['aliases']>`COALESCE((SELECT json_agg(json_build_object('alias', a.alias, 'alias_type', a.alias_type) ORDER BY a.alias_type, a.alias)
      FROM release_aliases a WHERE a.release_id = r.id), '[]'::json)`.as('aliases'),
    sql<Row['artifacts']>`COALESCE((SELECT json_agg(json_build_object('id', x.id, 'artifact_name', x.artifact_name, 'artifact_type', x.artifact_type,
      'tracking_oci_uri', x.tracking_oci_uri, 'tracking_oci_digest', x.tracking_oci_digest, 'primary_published_uri', x.primary_published_uri,
      'created_at', x.created_at) ORDER BY x.artifact_name) FROM release_artifacts x WHERE x.release_id = r.id), '[]'::json)`.as('artifacts'),
    sql<Row['trigger']>`(SELECT json_build_object('trigger_type', t.trigger_type, 'branch', t.branch, 'tag', t.tag,
      'triggered_by', t.triggered_by, 'triggered_at', t.triggered_at) FROM release_triggers t WHERE t.release_id = r.id)`.as('trigger'),
  ]);
  const one = async (query: ReturnType<typeof records>) => {
    const row = await query.executeTakeFirst();
    return row ? hydrate(row as unknown as Row) : undefined;
  };
  const many = async (query: ReturnType<typeof records>) => (await query.execute()).map((row) => hydrate(row as unknown as Row));
  const project = (repository: string, name: string) => records().where('r.repository', '=', repository).where('r.project', '=', name);
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
    getRelease: (id) => one(records().where('r.id', '=', id)),
    findReleaseByCommit: (repository, name, commitSha) => one(project(repository, name).where('r.commit_sha', '=', commitSha)),
    findReleaseByAlias: (repository, name, alias) => one(project(repository, name).where('r.id', '=', (eb) =>
      eb.selectFrom('release_aliases as ra').select('ra.release_id')
        .where('ra.repository', '=', repository).where('ra.project', '=', name).where('ra.alias', '=', alias))),
    findReleaseByNumber: (repository, name, releaseNumber) => one(project(repository, name).where('r.release_number', '=', releaseNumber)),
    // Prefix as a range, so the (repository, project, commit_sha) unique index serves it.
    findReleasesByShaPrefix: (repository, name, prefix, limit) => many(project(repository, name)
      .where('r.commit_sha', '>=', prefix).where('r.commit_sha', '<', `${prefix}g`).orderBy('r.release_number', 'desc').limit(limit)),
    async findTakenAliases(repository, name, aliases) {
      if (aliases.length === 0) return [];
      const rows = await db.selectFrom('release_aliases').select('alias').where('repository', '=', repository)
        .where('project', '=', name).where('alias', '=', sql<string>`ANY(${aliases}::text[])`).execute();
      return rows.map((r) => r.alias);
    },
    async listProjects() {
      // The latest release of each project is the one with the highest number (numbers only grow);
      // the unique (repository, project, release_number) index serves the grouping and the join.
      const rows = await db.selectFrom('releases as r')
        .innerJoin(
          (eb) => eb.selectFrom('releases').groupBy(['repository', 'project'])
            .select(['repository', 'project', sql<number>`count(*)::int`.as('releases'), sql<number>`max(release_number)`.as('latest_number')])
            .as('c'),
          (join) => join.onRef('c.repository', '=', 'r.repository').onRef('c.project', '=', 'r.project').onRef('c.latest_number', '=', 'r.release_number'),
        )
        .select(['r.repository', 'r.project', 'c.releases', 'r.id', 'r.release_number', 'r.commit_sha', 'r.created_at'])
        // Bytewise, so PGlite and a PostgreSQL with any default collation give the same order.
        .orderBy(sql`r.repository COLLATE "C"`).orderBy(sql`r.project COLLATE "C"`)
        .execute();
      return rows.map((r) => ({
        repository: r.repository, project: r.project, releases: r.releases,
        latest: { id: r.id, release_number: r.release_number, commit_sha: r.commit_sha, created_at: r.created_at },
      }));
    },
    async listReleases(repository, name, limit, offset) {
      const [rows, count] = await Promise.all([
        many(project(repository, name).orderBy('r.release_number', 'desc').limit(limit).offset(offset)),
        db.selectFrom('releases').where('repository', '=', repository).where('project', '=', name)
          .select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow(),
      ]);
      return { rows, total: count.total };
    },
  };
}

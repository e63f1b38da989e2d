/** Release builds: the release phase of a project in a run attempt, or a manual release. */
import type { Kysely } from 'kysely';
import type { ReleaseBuild } from '../domain/entities.ts';
import type { Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';
import { jsonb } from './json.ts';

type ReleaseBuildRepos = Pick<
  Repos,
  'insertReleaseBuild' | 'getReleaseBuild' | 'updateReleaseBuild' | 'listRunReleaseBuilds' | 'findActiveReleaseBuild' | 'listActiveReleaseBuildIds'
>;

const UNFINISHED = ['pending', 'building', 'releasing'] as const;

export function releaseBuildRepos(db: Kysely<Database>): ReleaseBuildRepos {
  const select = () => db.selectFrom('release_builds').selectAll();
  return {
    async insertReleaseBuild(build) {
      await db.insertInto('release_builds').values({
        ...build, trigger: jsonb(build.trigger), plan: jsonb(build.plan), artifacts: jsonb(build.artifacts),
      }).execute();
    },
    async getReleaseBuild(id, opts) {
      let query = select().where('id', '=', id);
      if (opts?.forUpdate) query = query.forUpdate();
      return (await query.executeTakeFirst()) as ReleaseBuild | undefined;
    },
    async updateReleaseBuild(id, patch) {
      const { trigger, plan, artifacts, ...rest } = patch;
      await db.updateTable('release_builds').set({
        ...rest,
        ...(trigger !== undefined ? { trigger: jsonb(trigger) } : {}),
        ...(plan !== undefined ? { plan: jsonb(plan) } : {}),
        ...(artifacts !== undefined ? { artifacts: jsonb(artifacts) } : {}),
      }).where('id', '=', id).execute();
    },
    async listRunReleaseBuilds(runId) {
      return (await select().where('pipeline_run_id', '=', runId).orderBy('project').orderBy('run_attempt').execute()) as ReleaseBuild[];
    },
    async findActiveReleaseBuild(repository, project, commitSha) {
      return (await select().where('repository', '=', repository).where('project', '=', project)
        .where('commit_sha', '=', commitSha).where('status', 'in', UNFINISHED).executeTakeFirst()) as ReleaseBuild | undefined;
    },
    async listActiveReleaseBuildIds(limit) {
      const rows = await db.selectFrom('release_builds').select('id').where('status', 'in', UNFINISHED).orderBy('created_at').limit(limit).execute();
      return rows.map((r) => r.id);
    },
  };
}

/** Deployments and approvals. */
import { sql, type Kysely } from 'kysely';
import type { Deployment, ReleaseApproval } from '../domain/entities.ts';
import type { Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';

type DeploymentRepos = Pick<
  Repos,
  | 'lock' | 'insertDeployment' | 'updateDeployment' | 'supersedeActive'
  | 'findActiveDeployment' | 'listDeployments'
  | 'insertApproval' | 'getApproval' | 'listApprovals' | 'updateApproval'
>;

export function deploymentRepos(db: Kysely<Database>): DeploymentRepos {
  const target = (environment: string, repository: string, project: string) =>
    db.selectFrom('deployments').where('environment', '=', environment)
      .where('repository', '=', repository).where('project', '=', project);
  return {
    async lock(key) {
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(db);
    },
    async insertDeployment(row) {
      await db.insertInto('deployments').values(row).execute();
    },
    async updateDeployment(id, patch) {
      await db.updateTable('deployments').set(patch).where('id', '=', id).execute();
    },
    async supersedeActive(environment, repository, project, exceptId) {
      await db.updateTable('deployments').set({ status: 'superseded' })
        .where('environment', '=', environment).where('repository', '=', repository).where('project', '=', project)
        .where('status', '=', 'active').where('id', '!=', exceptId).execute();
    },
    async findActiveDeployment(environment, repository, project) {
      return (await target(environment, repository, project).selectAll().where('status', '=', 'active')
        .executeTakeFirst()) as Deployment | undefined;
    },
    async listDeployments(environment, repository, project, limit, offset) {
      const base = target(environment, repository, project);
      const [rows, count] = await Promise.all([
        base.selectAll().orderBy('deployed_at', 'desc').orderBy('id').limit(limit).offset(offset).execute(),
        base.select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow(),
      ]);
      return { rows: rows as Deployment[], total: count.total };
    },
    async insertApproval(row) {
      await db.insertInto('release_approvals').values(row).execute();
    },
    async getApproval(id, opts) {
      let query = db.selectFrom('release_approvals').selectAll().where('id', '=', id);
      if (opts?.forUpdate) query = query.forUpdate();
      return (await query.executeTakeFirst()) as ReleaseApproval | undefined;
    },
    async listApprovals(releaseId, environment) {
      return db.selectFrom('release_approvals').selectAll().where('release_id', '=', releaseId)
        .where('environment', '=', environment).orderBy('approved_at', 'desc').orderBy('id').execute() as Promise<ReleaseApproval[]>;
    },
    async updateApproval(id, patch) {
      await db.updateTable('release_approvals').set(patch).where('id', '=', id).execute();
    },
  };
}

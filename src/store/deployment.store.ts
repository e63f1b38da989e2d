/** Deployments and approvals. */
import { sql, type Kysely } from 'kysely';
import type { AuditEntry, Deployment, ReleaseApproval } from '../domain/entities.ts';
import type { ActiveDeployment, Repos } from '../engine/ports.ts';
import type { Database } from './db.ts';
import { jsonb } from './json.ts';

type DeploymentRepos = Pick<
  Repos,
  | 'lock' | 'insertDeployment' | 'getDeployment' | 'updateDeployment' | 'supersedeActive'
  | 'findActiveDeployment' | 'listDeployments' | 'listPendingDeployments' | 'listPendingDeploymentIds' | 'listDeploymentsOfReleases' | 'findRollbackRelease'
  | 'insertAudit' | 'listAudit'
  | 'insertApproval' | 'getApproval' | 'listApprovals' | 'updateApproval'
  | 'listActiveDeployments' | 'listApprovalsOfReleases'
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
    async getDeployment(id, opts) {
      let query = db.selectFrom('deployments').selectAll().where('id', '=', id);
      if (opts?.forUpdate) query = query.forUpdate();
      return (await query.executeTakeFirst()) as Deployment | undefined;
    },
    async listPendingDeployments(environment, repository, project) {
      return (await target(environment, repository, project).selectAll().where('status', '=', 'pending')
        .orderBy('deployed_at').orderBy('id').execute()) as Deployment[];
    },
    async listPendingDeploymentIds(limit) {
      // The oldest pending deployment of each target: the one in flight, or the next to go.
      const rows = await db.selectFrom('deployments').distinctOn(['environment', 'repository', 'project']).select('id')
        .where('status', '=', 'pending').orderBy('environment').orderBy('repository').orderBy('project')
        .orderBy('deployed_at').orderBy('id').limit(limit).execute();
      return rows.map((r) => r.id);
    },
    async listDeploymentsOfReleases(releaseIds) {
      if (releaseIds.length === 0) return [];
      return (await db.selectFrom('deployments').selectAll().where('release_id', '=', sql<string>`ANY(${releaseIds}::uuid[])`)
        .orderBy('deployed_at').orderBy('id').execute()) as Deployment[];
    },
    async findRollbackRelease(environment, repository, project, belowNumber) {
      const row = await db.selectFrom('deployments as d').innerJoin('releases as r', 'r.id', 'd.release_id')
        .select('r.id').where('d.environment', '=', environment).where('d.repository', '=', repository)
        .where('d.project', '=', project).where('d.status', '=', 'superseded').where('d.gitops_commit_sha', 'is not', null)
        .where('r.release_number', '<', belowNumber).orderBy('r.release_number', 'desc').limit(1).executeTakeFirst();
      return row?.id;
    },
    async insertAudit(entries) {
      if (entries.length === 0) return;
      await db.insertInto('audit_log').values(entries.map((e) => ({ ...e, details: jsonb(e.details) }))).execute();
    },
    async listAudit(filter, limit, offset) {
      let base = db.selectFrom('audit_log');
      for (const key of ['repository', 'project', 'environment', 'release_id', 'deployment_id', 'action'] as const) {
        const value = filter[key];
        if (value !== undefined) base = base.where(key, '=', value);
      }
      const [rows, count] = await Promise.all([
        base.selectAll().select(sql<string>`id::text`.as('id')).orderBy('audit_log.id', 'desc').limit(limit).offset(offset).execute(),
        base.select(sql<number>`count(*)::int`.as('total')).executeTakeFirstOrThrow(),
      ]);
      return { rows: rows as unknown as AuditEntry[], total: count.total };
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
    async listActiveDeployments() {
      return db.selectFrom('deployments as d').innerJoin('releases as r', 'r.id', 'd.release_id')
        .selectAll('d').select('r.release_number').where('d.status', '=', 'active')
        .orderBy(sql`d.repository COLLATE "C"`).orderBy(sql`d.project COLLATE "C"`).orderBy(sql`d.environment COLLATE "C"`)
        .execute() as Promise<ActiveDeployment[]>;
    },
    async listApprovalsOfReleases(releaseIds) {
      if (releaseIds.length === 0) return [];
      return db.selectFrom('release_approvals').selectAll().where('release_id', '=', sql<string>`ANY(${releaseIds}::uuid[])`)
        .orderBy('approved_at').orderBy('id').execute() as Promise<ReleaseApproval[]>;
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

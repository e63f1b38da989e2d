/**
 * Retention (issue 9): finished runs past the run age go with their phases, tasks, steps, release
 * builds and objects; step logs past the log age go and read 410; releases, deployments, approvals
 * and the audit trail stay; unfinished runs are never touched. On PGlite and real PostgreSQL, with
 * the files object store and (when FORGE_TEST_S3_* is set) S3 on Ceph. The clock is the test app's,
 * moved forward instead of waiting.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runObjectsPrefix, stepLogKey } from '../../src/domain/logs.ts';
import { resultKey } from '../../src/domain/jobs.ts';
import type { ObjectStore } from '../../src/engine/ports.ts';
import { readStepLog } from '../../src/engine/logs.ts';
import { applyRetention, startRetentionJob } from '../../src/engine/retention.ts';
import { openStore } from '../../src/store/store.ts';
import { cancelRun, createRun, getRunTree, recordDiscovery, retryRun, type DiscoveryPlan } from '../../src/engine/runs.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { objectStoreAdapters } from '../helpers/object-stores.ts';
import { STORE_ADAPTERS, truncateAll, type TestStore } from '../helpers/stores.ts';

const DAY = 86_400_000;
const AGES = { runsOlderThanMs: 90 * DAY, logsOlderThanMs: 30 * DAY };
const PLAN: DiscoveryPlan = {
  projects: [
    { name: 'api', path: 'services/api', phases: { test: [{ name: 'unit', action: 'run', run: 'npm test' }, { name: 'lint', action: 'run', run: 'npm run lint' }] } },
    { name: 'web', path: 'services/web', phases: { test: [{ name: 'unit', action: 'run', run: 'npm test' }] } },
  ],
  phaseGroups: [{ group: 1, phases: ['test'] }],
};
const objectAdapters = objectStoreAdapters('retention');

describe.each(STORE_ADAPTERS)('retention on $name', (adapter) => {
  describe.each(objectAdapters)('with the $name object store', (objectAdapter) => {
    const skip = adapter.unavailable ?? objectAdapter.unavailable;
    let test: TestStore;
    let t: TestApp;
    let objects: ObjectStore;
    let disposeObjects: () => Promise<void>;

    beforeAll(async () => {
      if (skip) return;
      test = await adapter.open();
      const opened = await objectAdapter.open();
      objects = opened.store;
      disposeObjects = opened.dispose;
      t = await startTestApp(test, { deploymentWorker: false, objects });
    });
    afterAll(async () => {
      await t?.close();
      await objects?.close();
      await disposeObjects?.();
      await test?.close();
    });
    beforeEach(async () => {
      if (skip) return;
      await truncateAll(test);
    });

    /** A run with two tasks and three steps, each step with a log object, plus a job result object; cancelled (finished) unless `finish` is false. */
    async function seedRun(repository = 'acme/shop', finish = true) {
      const { run } = await createRun(t.ctx, { repository, branch: 'main', commit_sha: sha(), trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
      await recordDiscovery(t.ctx, run.id, PLAN);
      const tree = await getRunTree(t.ctx, run.id);
      const keys: string[] = [];
      for (const task of tree.phases.flatMap((p) => p.tasks)) {
        for (const step of task.steps) {
          const key = stepLogKey(run.id, 'test', task.project_name, step.step_name, 1);
          await objects.put(key, `log of ${task.project_name}/${step.step_name}\n`);
          // An earlier attempt's log beside it, which no step row points at any more.
          await objects.put(stepLogKey(run.id, 'test', task.project_name, step.step_name, 2), 'attempt 2\n');
          await t.ctx.store.updateStep(step.id, { logs_s3_key: key, status: 'success', completed_at: t.clock.now() });
          keys.push(key);
        }
      }
      const result = resultKey(run.id, 'discovery', run.id);
      await objects.put(result, '{"projects":[]}');
      if (finish) await cancelRun(t.ctx, run.id, 'alice');
      const stepIds = tree.phases.flatMap((p) => p.tasks).flatMap((task) => task.steps.map((s) => s.id));
      return { id: run.id, keys, result, stepIds };
    }

    /** A release built by the run, deployed with an approval and an audit row: the audit trail retention must keep. */
    async function seedRelease(runId: string) {
      const releaseId = randomUUID();
      const now = t.clock.now();
      await t.ctx.store.insertRelease({
        id: releaseId, repository: 'acme/shop', project: 'api', commit_sha: sha(), release_number: 1, pipeline_run_id: runId,
        oci_uri: 'registry.test/releases/acme/shop/api:1', oci_digest: null, created_at: now, created_by: 'alice',
      });
      const approvalId = randomUUID();
      await t.ctx.store.insertApproval({
        id: approvalId, release_id: releaseId, environment: 'production', approver: 'bob', approved_at: now, expires_at: null,
        justification: 'ship it', status: 'active', revoked_at: null, revoked_by: null,
      });
      const deploymentId = randomUUID();
      await t.ctx.store.insertDeployment({
        id: deploymentId, release_id: releaseId, repository: 'acme/shop', project: 'api', environment: 'production', status: 'active',
        deployed_at: now, deployed_by: 'alice', gitops_commit_sha: 'a'.repeat(40), approval_id: approvalId, error: null,
        dispatched_at: now, attempts: 1, finished_at: now, rollback_from_release_id: null, freeze_override: null,
      });
      await t.ctx.store.insertAudit([{
        at: now, actor: 'alice', action: 'deployment.activated', environment: 'production', repository: 'acme/shop', project: 'api',
        release_id: releaseId, deployment_id: deploymentId, approval_id: approvalId, details: {},
      }]);
      return { releaseId, approvalId, deploymentId };
    }

    const count = async (table: 'pipeline_runs' | 'phase_executions' | 'task_executions' | 'step_executions' | 'releases' | 'deployments' | 'release_approvals' | 'audit_log') =>
      (await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(table)}`.execute(test.db)).rows[0]?.n;
    const keysUnder = async (runId: string) => (await objects.list(`pipeline-runs/${runId}/`)).map((o) => o.key);

    it.skipIf(skip)('deletes finished runs past the run age with their rows and objects; keeps younger and unfinished runs, releases, deployments, approvals and audit', async () => {
      const old = await seedRun();
      const built = await seedRelease(old.id);
      const oldButRunning = await seedRun('acme/shop', false);
      t.clock.advance(60 * DAY);
      const young = await seedRun();
      t.clock.advance(31 * DAY);

      const report = await applyRetention(t.ctx, AGES);

      expect(report).toMatchObject({
        dry_run: false, runs_deleted: 1, steps_deleted: 3,
        // The young run (31 days) lost its logs but not its row.
        runs_logs_expired: 1, steps_logs_expired: 3,
        // old: 3 logs + 3 earlier attempts + 1 result; young: 3 logs + 3 earlier attempts.
        objects_deleted: 13,
      });
      expect(report.bytes_deleted).toBeGreaterThan(0);
      expect(await t.ctx.store.getRun(old.id)).toBeUndefined();
      expect(await keysUnder(old.id)).toEqual([]);
      // The unfinished run is older than both ages and untouched.
      expect((await t.ctx.store.getRun(oldButRunning.id))?.status).toBe('pending');
      expect(await keysUnder(oldButRunning.id)).toHaveLength(7);
      // Two runs left, each with 2 phases' worth of rows: 1 phase, 2 tasks, 3 steps.
      expect([await count('pipeline_runs'), await count('phase_executions'), await count('task_executions'), await count('step_executions')]).toEqual([2, 2, 4, 6]);
      // The audit trail: the release stays (its run is gone), with its approval, deployment and audit row.
      const release = await t.ctx.store.getRelease(built.releaseId);
      expect(release).toMatchObject({ id: built.releaseId, pipeline_run_id: null });
      expect(await t.ctx.store.getDeployment(built.deploymentId)).toMatchObject({ status: 'active', approval_id: built.approvalId });
      expect(await t.ctx.store.getApproval(built.approvalId)).toMatchObject({ status: 'active' });
      expect(await count('audit_log')).toBe(1);
      // The young run's results stay; its logs went.
      expect(await keysUnder(young.id)).toEqual([young.result]);

      const event = await sql<{ envelope: { data: Record<string, unknown> } }>`SELECT envelope FROM event_outbox WHERE event_type = 'retention.applied'`.execute(test.db);
      expect(event.rows).toHaveLength(1);
      expect(event.rows[0]?.envelope.data).toMatchObject({ runs_deleted: 1, steps_deleted: 3, runs_logs_expired: 1, objects_deleted: 13 });

      // A second pass finds nothing, and says nothing.
      expect(await applyRetention(t.ctx, AGES)).toMatchObject({ runs_deleted: 0, runs_logs_expired: 0, objects_deleted: 0, bytes_deleted: 0 });
      expect((await sql`SELECT 1 FROM event_outbox WHERE event_type = 'retention.applied'`.execute(test.db)).rows).toHaveLength(1);
    });

    it.skipIf(skip)('an expired step log reads 410 naming when it went; the run view shows the mark; a retry clears it', async () => {
      const run = await seedRun();
      t.clock.advance(30 * DAY + 1000);
      const report = await applyRetention(t.ctx, AGES);
      expect(report).toMatchObject({ runs_deleted: 0, runs_logs_expired: 1, steps_logs_expired: 3, objects_deleted: 6 });

      const tree = await getRunTree(t.ctx, run.id);
      expect(tree.logs_expired_at).toBeInstanceOf(Date);
      const steps = tree.phases.flatMap((p) => p.tasks).flatMap((task) => task.steps);
      expect(steps.every((s) => s.logs_s3_key === null && s.logs_expired_at instanceof Date)).toBe(true);
      const stepId = run.stepIds[0] ?? '';
      await expect(readStepLog(t.ctx.store, objects, stepId, 0, 1024)).rejects.toMatchObject({ code: 'gone', details: { step_id: stepId } });

      const token = await t.token('carol', ['developer']);
      const res = await t.app.inject({ url: `/v1/steps/${stepId}/logs`, headers: { authorization: `Bearer ${token}` } });
      expect(res.statusCode).toBe(410);
      expect(res.json()).toMatchObject({ error: { code: 'gone', details: { step_id: stepId } } });
      expect(res.json().error.message).toMatch(/expired: the retention job deleted it at .*FORGE_LOG_RETENTION/);
      const view = await t.app.inject({ url: `/v1/runs/${run.id}`, headers: { authorization: `Bearer ${token}` } });
      expect(view.json()).toMatchObject({ logs_expired_at: expect.any(String) });
      expect(view.json().phases[0].tasks[0].steps[0]).toMatchObject({ logs_s3_key: null, logs_expired_at: expect.any(String) });

      // A retry runs the tasks again: they are not "expired" any more, and the run's next logs expire in their turn.
      await retryRun(t.ctx, run.id, 'alice');
      const retried = await getRunTree(t.ctx, run.id);
      expect(retried.logs_expired_at).toBeNull();
      expect(retried.phases.flatMap((p) => p.tasks).flatMap((task) => task.steps).every((s) => s.logs_expired_at === null)).toBe(true);
      expect(await readStepLog(t.ctx.store, objects, stepId, 0, 1024)).toMatchObject({ key: null, text: '' });
    });

    it.skipIf(skip)('a dry run counts exactly what a real pass then deletes, and deletes nothing', async () => {
      await seedRun();
      await seedRun();
      t.clock.advance(60 * DAY);
      await seedRun();
      t.clock.advance(31 * DAY);
      const before = (await objects.list('pipeline-runs/')).length;

      const dry = await applyRetention(t.ctx, { ...AGES, dryRun: true });
      expect(dry).toMatchObject({ dry_run: true, runs_deleted: 2, steps_deleted: 6, runs_logs_expired: 1, steps_logs_expired: 3, objects_deleted: 20 });
      expect((await objects.list('pipeline-runs/')).length).toBe(before);
      expect(await count('pipeline_runs')).toBe(3);
      expect((await sql`SELECT 1 FROM event_outbox WHERE event_type = 'retention.applied'`.execute(test.db)).rows).toHaveLength(0);

      const real = await applyRetention(t.ctx, AGES);
      const { dry_run: _d, started_at: _s, finished_at: _f, runs_older_than: _r, logs_older_than: _l, ...counts } = dry;
      expect(real).toMatchObject({ ...counts, dry_run: false });
    });

    it.skipIf(skip)('works through more runs than one batch', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await seedRun(`acme/batch-${i}`)).id);
      t.clock.advance(91 * DAY);
      const report = await applyRetention(t.ctx, { ...AGES, batchSize: 2 });
      expect(report).toMatchObject({ runs_deleted: 7, steps_deleted: 21, objects_deleted: 49 });
      expect(await count('pipeline_runs')).toBe(0);
      for (const id of ids) expect(await keysUnder(id)).toEqual([]);
    });

    it.skipIf(skip)('with run retention off only logs go; with both off nothing does', async () => {
      const run = await seedRun();
      t.clock.advance(365 * DAY);
      expect(await applyRetention(t.ctx, { runsOlderThanMs: undefined, logsOlderThanMs: undefined })).toMatchObject({
        runs_older_than: null, logs_older_than: null, runs_deleted: 0, runs_logs_expired: 0, objects_deleted: 0,
      });
      expect(await applyRetention(t.ctx, { runsOlderThanMs: undefined, logsOlderThanMs: 30 * DAY })).toMatchObject({ runs_deleted: 0, runs_logs_expired: 1 });
      expect(await t.ctx.store.getRun(run.id)).toBeDefined();
    });

    it.skipIf(skip)('keeps a run with a release build still going, and a run retried after it was listed; a finished build goes with its run', async () => {
      const building = await seedRun();
      const finishedBuild = await seedRun();
      const retried = await seedRun();
      const build = (runId: string, status: 'building' | 'success') => t.ctx.store.insertReleaseBuild({
        id: randomUUID(), repository: 'acme/shop', project: 'api', commit_sha: sha(), branch: 'main', pipeline_run_id: runId, run_attempt: 1,
        trigger: { type: 'branch_push', branch: 'main' }, status, plan: null, artifacts: {}, release_id: null, error_message: null,
        created_by: 'alice', created_at: t.clock.now(), updated_at: t.clock.now(), finished_at: null, plan_dispatched_at: null, release_dispatched_at: null,
      });
      await build(building.id, 'building');
      await build(finishedBuild.id, 'success');
      t.clock.advance(91 * DAY);
      // A run with a build going is not even listed (nor counted by a dry run). Listed as finished,
      // then retried before the delete: the delete re-checks and leaves it, and hands over for
      // object deletion only the runs it deletes (while they are locked).
      const listed = await t.ctx.store.listFinishedRuns({ before: t.clock.now(), limit: 10 });
      expect(listed.map((r) => r.id).sort()).toEqual([finishedBuild.id, retried.id].sort());
      await retryRun(t.ctx, retried.id, 'alice');
      const handed: string[][] = [];
      const deleted = await t.ctx.store.transaction((tx) => tx.deleteFinishedRuns([...listed.map((r) => r.id), building.id], async (doomed) => void handed.push(doomed)));
      expect(deleted).toEqual({ ids: [finishedBuild.id], steps: 3 });
      expect(handed).toEqual([[finishedBuild.id]]);
      // A whole pass leaves the objects of the run with a build going and of the retried run.
      const before = { building: (await t.ctx.objects!.list(runObjectsPrefix(building.id))).length, retried: (await t.ctx.objects!.list(runObjectsPrefix(retried.id))).length };
      expect(before.building).toBeGreaterThan(0);
      expect(before.retried).toBeGreaterThan(0);
      await applyRetention(t.ctx, { runsOlderThanMs: 90 * DAY, logsOlderThanMs: 30 * DAY });
      expect((await t.ctx.objects!.list(runObjectsPrefix(building.id))).length).toBe(before.building);
      expect((await t.ctx.objects!.list(runObjectsPrefix(retried.id))).length).toBe(before.retried);
      expect((await sql`SELECT 1 FROM release_builds WHERE pipeline_run_id = ${finishedBuild.id}`.execute(test.db)).rows).toHaveLength(0);
      expect(await t.ctx.store.getRun(building.id)).toBeDefined();
      expect((await t.ctx.store.getRun(retried.id))?.status).toBe('pending');
    });

    it.skipIf(skip)('a pass asked for while another runs is refused at once (409 over the API), not queued behind it', async () => {
      await seedRun();
      t.clock.advance(91 * DAY);
      const operator = await t.token('olga', ['operator']);
      const whileHeld = async () => {
        await expect(applyRetention(t.ctx, { runsOlderThanMs: 90 * DAY, logsOlderThanMs: undefined })).rejects.toMatchObject({ code: 'conflict', details: { lock: 'retention' } });
        return t.app.inject({ method: 'POST', url: '/v1/retention', headers: { authorization: `Bearer ${operator}` }, payload: {} });
      };
      // Held in this process, and (PostgreSQL) by another process's session on the same database.
      const answers = [await t.ctx.store.withLock('retention', whileHeld)];
      if (test.url) {
        const other = await openStore({ databaseUrl: test.url, migrate: false, poolSize: 2 });
        try {
          answers.push(await other.withLock('retention', whileHeld));
        } finally {
          await other.close();
        }
      }
      for (const answer of answers) {
        expect(answer.statusCode).toBe(409);
        expect(answer.json().error).toMatchObject({ code: 'conflict', details: { lock: 'retention' } });
      }
      expect(await count('pipeline_runs')).toBe(1);
      expect(await applyRetention(t.ctx, { runsOlderThanMs: 90 * DAY, logsOlderThanMs: undefined })).toMatchObject({ runs_deleted: 1 });
    });

    it.skipIf(skip)('POST /v1/retention: operators run it (dry or not); others are refused', async () => {
      await seedRun();
      t.clock.advance(91 * DAY);
      const operator = await t.token('olga', ['operator']);
      const developer = await t.token('dave', ['developer']);
      const refused = await t.app.inject({ method: 'POST', url: '/v1/retention', headers: { authorization: `Bearer ${developer}` }, payload: {} });
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error).toMatchObject({ code: 'permission_denied', details: { permission: 'retention:run', roles_granting: ['operator'] } });

      const dry = await t.app.inject({ method: 'POST', url: '/v1/retention', headers: { authorization: `Bearer ${operator}` }, payload: { dry_run: true } });
      expect(dry.statusCode).toBe(200);
      expect(dry.json()).toMatchObject({ dry_run: true, runs_deleted: 1, steps_deleted: 3, objects_deleted: 7 });
      expect(await count('pipeline_runs')).toBe(1);

      const real = await t.app.inject({ method: 'POST', url: '/v1/retention', headers: { authorization: `Bearer ${operator}` }, payload: {} });
      expect(real.statusCode).toBe(200);
      expect(real.json()).toMatchObject({ dry_run: false, runs_deleted: 1, steps_deleted: 3, objects_deleted: 7, runs_older_than: expect.any(String) });
      expect(await count('pipeline_runs')).toBe(0);
    });

    it.skipIf(skip)('the server job runs a pass on its own, and stops cleanly', async () => {
      await seedRun();
      t.clock.advance(91 * DAY);
      const passes: number[] = [];
      const job = startRetentionJob(t.ctx, { ...AGES, intervalMs: 60_000 }, { firstAfterMs: 1, onPass: (r) => passes.push(r.runs_deleted) });
      for (let i = 0; i < 200 && passes.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      await job.stop();
      expect(passes).toEqual([1]);
      expect(await count('pipeline_runs')).toBe(0);
    });
  });
});

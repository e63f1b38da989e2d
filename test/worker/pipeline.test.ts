/**
 * A push to a finished PipelineRun, end to end, on both queues (in-process + PGlite, NATS
 * JetStream + PostgreSQL): the real API over HTTP, the dispatcher, discovery and CI workers with a
 * git cache, real CUE, real shell steps, logs in the object store. Digest §8 behaviours 16–19,
 * 21, 24, 28.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobQueue } from '../../src/engine/ports.ts';
import { startDispatcher, type Dispatcher } from '../../src/engine/dispatcher.ts';
import { getRunTree, type RunTree } from '../../src/engine/runs.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';
import { connectNatsJobs, deleteJobStreams } from '../../src/queue/jobs.nats.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import { createGitWorkspaces, seedRepository } from '../../src/worker/git-workspace.ts';
import { httpInternalApi } from '../../src/worker/internal-api.ts';
import { startWorkers } from '../../src/worker/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { finishedRun } from '../helpers/runs.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { pgliteAdapter, postgresAdapter, type TestStore } from '../helpers/stores.ts';

const REPO_CUE = `forgeVersion: "0.1.0"
tagging: strategy: "monorepo"
phases: {
	check: {group: 1}
	test: {group: 2}
	publish: {group: 3}
}
`;

function project(name: string, phases: Record<string, string[]>): string {
  const body = Object.entries(phases).map(([phase, runs]) =>
    `\t${phase}: steps: [${runs.map((run, i) => `{name: "s${i + 1}", action: "script", run: ${JSON.stringify(run)}}`).join(', ')}]`).join('\n');
  return `name: "${name}"\nphases: {\n${body}\n}\n`;
}

/** Writes a monorepo and commits it to the bare repository the workers clone from. */
async function commit(gitRoot: string, repository: string, files: Record<string, string>): Promise<string> {
  const source = mkdtempSync(join(tmpdir(), 'forge-src-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(source, path, '..'), { recursive: true });
    writeFileSync(join(source, path), text);
  }
  const { commitSha } = await seedRepository({ bareDir: join(gitRoot, `${repository}.git`), sourceDir: source, message: 'test' });
  rmSync(source, { recursive: true, force: true });
  return commitSha;
}

const combos = [
  { name: 'in-process queue + PGlite', store: pgliteAdapter, queue: 'memory' as const, skip: undefined as string | undefined },
  { name: 'NATS JetStream + PostgreSQL', store: postgresAdapter, queue: 'nats' as const, skip: natsUnavailable ?? postgresAdapter.unavailable },
];

for (const combo of combos) {
  describe.skipIf(combo.skip !== undefined)(`pipeline execution on ${combo.name}`, () => {
    let test: TestStore;
    let t: TestApp;
    let dispatcher: Dispatcher;
    let workers: { stop(): Promise<void> };
    const queues: JobQueue[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'forge-pipeline-'));
    const gitRoot = join(dir, 'git');
    const namespace = `p${randomUUID().slice(0, 8)}.`;
    let dev = '';
    let objectsRoot = '';

    beforeAll(async () => {
      test = await combo.store.open();
      t = await startTestApp(test, { deploymentWorker: false });
      await t.app.listen({ host: '127.0.0.1', port: 0 });
      const address = t.app.server.address();
      const baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      objectsRoot = join(dir, 'objects');
      const objects = createFileObjectStore(objectsRoot);
      const broker = new MemoryBroker({ ackWaitMs: 5000 });
      const open = () => (combo.queue === 'memory'
        ? Promise.resolve(createMemoryJobQueue(broker, { objects }))
        : connectNatsJobs(TEST_NATS_URL, { namespace, timings: { ackWaitMs: 5000 }, objects }));
      const dispatcherQueue = await open();
      const workerQueue = await open();
      queues.push(dispatcherQueue, workerQueue);
      t.ctx.objects = objects;
      dispatcher = await startDispatcher(t.ctx, { queue: dispatcherQueue, objects, sweepMs: 500 });
      t.ctx.runChanged = (id) => dispatcher.nudge(id);
      const service = await t.token('forge-worker', ['service-account']);
      workers = await startWorkers({
        queue: workerQueue, objects, flushMs: 100,
        api: httpInternalApi({ baseUrl, token: async () => service }),
        workspaces: createGitWorkspaces({ cacheDir: join(dir, 'cache'), urlTemplate: `file://${gitRoot}/{repository}.git` }),
      }, ['discovery', 'ci'], 4);
      dev = await t.token('alice', ['developer']);
    });

    afterAll(async () => {
      await workers?.stop();
      await dispatcher?.stop();
      for (const q of queues) await q.close();
      if (combo.queue === 'nats') await deleteJobStreams(TEST_NATS_URL, namespace);
      await t?.close();
      await test?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const createRun = async (repository: string, sha: string) => {
      const res = await t.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}` }, payload: { repository, branch: 'main', commit_sha: sha, trigger_type: 'push' } });
      expect(res.statusCode).toBe(201);
      return res.json<{ id: string; status: string }>().id;
    };
    const finished = (id: string, timeoutMs = 60_000) => finishedRun(t.ctx, id, timeoutMs);
    const logOf = async (stepId: string) => {
      const res = await t.app.inject({ method: 'GET', url: `/v1/steps/${stepId}/logs?limit=100000`, headers: { authorization: `Bearer ${dev}` } });
      expect(res.statusCode).toBe(200);
      return res.json<{ text: string; complete: boolean; key: string }>();
    };
    const steps = (tree: RunTree) => tree.phases.flatMap((p) => p.tasks.flatMap((task) => task.steps.map((s) => ({ phase: p.phase_name, project: task.project_name, task, ...s }))));

    it('runs every group in order, all tasks of a group in parallel, and stores each step log', async () => {
      const sha = await commit(gitRoot, 'acme/shop', {
        '.forge/repo.cue': REPO_CUE,
        'services/api/.forge/project.cue': project('api', { check: ['echo api-check'], test: ['sleep 0.5; echo api-test $FORGE_PROJECT', 'echo second'] }),
        'services/web/.forge/project.cue': project('web', { check: ['echo web-check'], test: ['sleep 0.5; echo web-test'] }),
      });
      const id = await createRun('acme/shop', sha);
      const tree = await finished(id);
      expect(tree.status).toBe('success');
      expect(tree.phases.map((p) => [p.phase_name, p.status])).toEqual([['check', 'success'], ['test', 'success'], ['publish', 'skipped']]);
      const [check, testPhase] = tree.phases;
      // Group 2 started only after every task of group 1 finished.
      const checkDone = Math.max(...check!.tasks.map((task) => task.completed_at!.getTime()));
      expect(Math.min(...testPhase!.tasks.map((task) => task.started_at!.getTime()))).toBeGreaterThanOrEqual(checkDone);
      // Both test tasks ran at once: each sleeps 0.5 s, and they overlap.
      const [a, b] = testPhase!.tasks;
      expect(a!.started_at!.getTime()).toBeLessThan(b!.completed_at!.getTime());
      expect(b!.started_at!.getTime()).toBeLessThan(a!.completed_at!.getTime());
      for (const step of steps(tree)) {
        expect(step.status).toBe('success');
        expect(step.exit_code).toBe(0);
        expect(step.logs_s3_key).toBe(`pipeline-runs/${id}/logs/${step.phase}/${step.project}/${step.step_name}.log`);
      }
      const apiTest = steps(tree).find((s) => s.project === 'api' && s.phase === 'test' && s.step_name === 's1')!;
      expect(await logOf(apiTest.id)).toMatchObject({ text: 'api-test api\n', complete: true });
    });

    it('fails fast: the failing step fails task, phase and run, kills the running sibling, skips later groups', async () => {
      const sha = await commit(gitRoot, 'acme/failfast', {
        '.forge/repo.cue': REPO_CUE,
        'a/.forge/project.cue': project('a', { test: ['echo about to fail; sleep 1; exit 3'], publish: ['echo never'] }),
        'b/.forge/project.cue': project('b', { test: ['echo started; sleep 30; echo never'] }),
      });
      const started = Date.now();
      const tree = await finished(await createRun('acme/failfast', sha));
      expect(Date.now() - started).toBeLessThan(25_000);
      expect(tree.status).toBe('failed');
      const all = steps(tree);
      const failing = all.find((s) => s.project === 'a' && s.phase === 'test')!;
      expect(failing).toMatchObject({ status: 'failed', exit_code: 3 });
      expect(failing.task.error).toBe('step s1 failed with exit code 3');
      const sibling = all.find((s) => s.project === 'b')!;
      expect(sibling.status).toBe('failed');
      expect(sibling.task.error).toMatch(/fail-fast/);
      expect(tree.phases.map((p) => [p.phase_name, p.status])).toEqual([['check', 'skipped'], ['test', 'failed'], ['publish', 'skipped']]);
      // The sibling's process was killed and its log kept, ending with why.
      let log = await logOf(sibling.id);
      for (let i = 0; i < 50 && !log.complete; i++) {
        await new Promise((r) => setTimeout(r, 100));
        log = await logOf(sibling.id);
      }
      expect(log.text).toMatch(/^started\n--- step stopped: another task failed \(fail-fast\)\n$/);
      expect((await logOf(failing.id)).text).toMatch(/^about to fail\n--- step failed after \d.*3.*\n$/);
    });

    it('DELETE /v1/runs/{id} on a running run answers 204, kills its steps and leaves it cancelled', async () => {
      const sha = await commit(gitRoot, 'acme/cancel', {
        '.forge/repo.cue': REPO_CUE,
        'svc/.forge/project.cue': project('svc', { check: ['echo running; sleep 30'], test: ['echo never'] }),
      });
      const id = await createRun('acme/cancel', sha);
      // Running, and its process has printed (a step is `running` just before its process starts).
      for (let i = 0; i < 300; i++) {
        const running = steps(await getRunTree(t.ctx, id)).find((s) => s.status === 'running');
        if (running && (await logOf(running.id)).text.includes('running')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/runs/${id}`, headers: { authorization: `Bearer ${dev}` } });
      expect(res.statusCode).toBe(204);
      const tree = await finished(id, 10_000);
      expect(tree.status).toBe('cancelled');
      expect(tree.phases.map((p) => p.status)).toEqual(['failed', 'skipped', 'skipped']);
      const step = steps(tree)[0]!;
      let log = await logOf(step.id);
      for (let i = 0; i < 50 && !log.complete; i++) {
        await new Promise((r) => setTimeout(r, 100));
        log = await logOf(step.id);
      }
      expect(log.text).toBe('running\n--- step stopped: cancelled by alice\n');
    });

    it('POST /v1/runs/{id}/retry re-runs only what did not succeed, as attempt 2, keeping attempt 1\'s logs', async () => {
      const marker = join(dir, `fixed-${randomUUID()}`);
      const sha = await commit(gitRoot, 'acme/retry', {
        '.forge/repo.cue': REPO_CUE,
        'a/.forge/project.cue': project('a', { check: ['echo a-check'], test: ['echo a-test'] }),
        'b/.forge/project.cue': project('b', { check: [`echo trying; sleep 2; test -f ${marker}`], test: ['echo b-test'] }),
      });
      const id = await createRun('acme/retry', sha);
      const retry = () => t.app.inject({ method: 'POST', url: `/v1/runs/${id}/retry`, headers: { authorization: `Bearer ${dev}` } });
      const first = await finished(id);
      expect(first).toMatchObject({ status: 'failed', attempt: 1 });
      const taskOf = (tree: RunTree, phase: string, project: string) =>
        tree.phases.find((p) => p.phase_name === phase)!.tasks.find((task) => task.project_name === project)!;
      expect(taskOf(first, 'check', 'a')).toMatchObject({ status: 'success', attempt: 1 });
      expect(taskOf(first, 'check', 'b')).toMatchObject({ status: 'failed', attempt: 1, error: 'step s1 failed with exit code 1' });
      const oldKey = taskOf(first, 'check', 'b').steps[0]!.logs_s3_key!;
      expect(oldKey).toBe(`pipeline-runs/${id}/logs/check/b/s1.log`);

      writeFileSync(marker, 'fixed');
      const res = await retry();
      expect(res.statusCode).toBe(202);
      const body = res.json<{ attempt: number; status: string; phases: { name: string; status: string; tasks: { project_name: string; status: string }[] }[] }>();
      expect(body).toMatchObject({ attempt: 2, status: 'pending' });
      expect(body.phases.map((p) => [p.name, p.status])).toEqual([['check', 'pending'], ['test', 'pending'], ['publish', 'skipped']]);
      expect(body.phases[0]!.tasks.map((task) => [task.project_name, task.status]).sort()).toEqual([['a', 'success'], ['b', 'pending']]);
      // A second retry while the first runs is refused.
      expect((await retry()).statusCode).toBe(409);

      const second = await finished(id);
      expect(second).toMatchObject({ status: 'success', attempt: 2, error_code: null });
      const aCheck = taskOf(second, 'check', 'a');
      expect(aCheck).toMatchObject({ status: 'success', attempt: 1 });
      expect(aCheck.completed_at).toEqual(taskOf(first, 'check', 'a').completed_at);
      expect(taskOf(second, 'check', 'b')).toMatchObject({ status: 'success', attempt: 2 });
      const newKey = taskOf(second, 'check', 'b').steps[0]!.logs_s3_key!;
      expect(newKey).toBe(`pipeline-runs/${id}/logs/check/b/s1.attempt-2.log`);
      expect((await logOf(taskOf(second, 'check', 'b').steps[0]!.id)).text).toBe('trying\n');
      expect(existsSync(join(objectsRoot, oldKey))).toBe(true);
      for (const project of ['a', 'b']) expect(taskOf(second, 'test', project).status).toBe('success');

      const again = await retry();
      expect(again.statusCode).toBe(409);
      expect(again.json<{ error: { code: string; message: string } }>().error.message).toMatch(/succeeded; there is nothing to retry/);
      expect((await t.app.inject({ method: 'POST', url: `/v1/runs/${randomUUID()}/retry`, headers: { authorization: `Bearer ${dev}` } })).statusCode).toBe(404);
    });

    it('a phase timeout stops the step, keeps its log with the reason, and fails the run (behaviour 22)', async () => {
      const sha = await commit(gitRoot, 'acme/slow', {
        '.forge/repo.cue': REPO_CUE.replace('check: {group: 1}', 'check: {group: 1, timeout: "2s"}'),
        'svc/.forge/project.cue': project('svc', { check: ['echo working; sleep 30'], test: ['echo never'] }),
      });
      const started = Date.now();
      const tree = await finished(await createRun('acme/slow', sha));
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(tree.status).toBe('failed');
      const [step] = steps(tree);
      expect(step).toMatchObject({ status: 'failed', phase: 'check' });
      expect(step!.task.error).toBe("step s1 failed: timed out: phase check allows 2s");
      expect(tree.phases.map((p) => p.status)).toEqual(['failed', 'skipped', 'skipped']);
      const log = await logOf(step!.id);
      expect(log.text).toMatch(/^working\n--- step failed after [\dms]+: timed out: phase check allows 2s\n$/);
    });

    it('fails the run with the configuration problems when discovery finds invalid config', async () => {
      const sha = await commit(gitRoot, 'acme/broken', {
        '.forge/repo.cue': REPO_CUE,
        'svc/.forge/project.cue': 'name: "svc"\nphases: deploy: steps: []\n',
      });
      const tree = await finished(await createRun('acme/broken', sha));
      expect(tree).toMatchObject({ status: 'failed', error_code: 'invalid_config' });
      expect(tree.error_message).toMatch(/svc\/\.forge\/project\.cue:2:\d+: .*phase "deploy"/);
      expect(tree.phases).toEqual([]);
    });
  });
}

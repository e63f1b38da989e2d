/**
 * The dispatcher's watchdog with nobody taking the jobs (digest §8 behaviour 22), on both queues:
 * no discovery reply within the discovery job timeout fails the run; no CI result within the
 * task's timeout fails the task, its phase and the run with a timeout error. And the routing of
 * behaviour 20 as the dispatcher publishes: discovery → pipeline.discovery.*, ci → pipeline.tasks.*.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDispatcher, type Dispatcher } from '../../src/engine/dispatcher.ts';
import type { JobQueue } from '../../src/engine/ports.ts';
import { createRun, getRunTree, recordDiscovery, type RunTree } from '../../src/engine/runs.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';
import { connectNatsJobs, deleteJobStreams } from '../../src/queue/jobs.nats.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { pgliteAdapter, postgresAdapter, type TestStore } from '../helpers/stores.ts';

const combos = [
  { name: 'in-process queue + PGlite', store: pgliteAdapter, queue: 'memory' as const, skip: undefined as string | undefined },
  { name: 'NATS JetStream + PostgreSQL', store: postgresAdapter, queue: 'nats' as const, skip: natsUnavailable ?? postgresAdapter.unavailable },
];

for (const combo of combos) {
  describe.skipIf(combo.skip !== undefined)(`dispatcher watchdog on ${combo.name}`, () => {
    let test: TestStore;
    let t: TestApp;
    let queue: JobQueue;
    let dispatcher: Dispatcher;
    const namespace = `d${randomUUID().slice(0, 8)}.`;

    beforeAll(async () => {
      test = await combo.store.open();
      t = await startTestApp(test, { deploymentWorker: false });
      queue = combo.queue === 'memory'
        ? createMemoryJobQueue(new MemoryBroker({ ackWaitMs: 5000 }))
        : await connectNatsJobs(TEST_NATS_URL, { namespace, timings: { ackWaitMs: 5000 } });
      // Nobody consumes: every job published here waits forever.
      dispatcher = await startDispatcher(t.ctx, { queue, sweepMs: 100, jobTimeoutsMs: { discovery: 400, ci: 600 } });
      t.ctx.runChanged = (id) => dispatcher.nudge(id);
    });

    afterAll(async () => {
      await dispatcher?.stop();
      await queue?.close();
      if (combo.queue === 'nats') await deleteJobStreams(TEST_NATS_URL, namespace);
      await t?.close();
      await test?.close();
    });

    const settled = async (id: string): Promise<RunTree> => {
      for (let i = 0; i < 200; i++) {
        const tree = await getRunTree(t.ctx, id);
        if (['success', 'failed', 'cancelled'].includes(tree.status)) return tree;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`run ${id} did not finish`);
    };
    const newRun = async () => (await createRun(t.ctx, {
      repository: 'acme/watchdog', branch: 'main', commit_sha: sha(), trigger_type: 'push',
    }, { actor: 'alice', mayActForOthers: false })).run.id;

    it('fails a run whose discovery job gets no reply within the discovery timeout', async () => {
      const id = await newRun();
      const tree = await settled(id);
      expect(tree).toMatchObject({ status: 'failed', error_code: 'timeout', error_message: 'discovery did not finish within 400ms' });
      expect(tree.phases).toEqual([]);
    });

    it('fails a task with no result within its timeout: the task, its phase and the run, later phases skipped', async () => {
      const id = await newRun();
      await recordDiscovery(t.ctx, id, {
        projects: [{ name: 'api', path: 'services/api', phases: { test: [{ name: 'unit', action: 'script', run: 'true' }], build: [{ name: 'b', action: 'script', run: 'true' }] } }],
        phaseGroups: [{ group: 1, phases: ['test'] }, { group: 2, phases: ['build'] }],
      });
      const tree = await settled(id);
      expect(tree.status).toBe('failed');
      expect(tree.phases.map((p) => [p.phase_name, p.status])).toEqual([['test', 'failed'], ['build', 'skipped']]);
      const task = tree.phases[0]!.tasks[0]!;
      expect(task).toMatchObject({ status: 'failed', error: 'timed out: no result within 600ms (phase test)' });
      expect(task.dispatched_at).not.toBeNull();
      expect(tree.phases[1]!.tasks[0]!.dispatched_at).toBeNull();
    });
  });
}

describe('dispatcher warnings name the run (in-process queue + PGlite)', () => {
  it('a reconcile that fails (the queue refuses the publish) is logged with the run\'s id as run_id', async () => {
    const test = await pgliteAdapter.open();
    const t = await startTestApp(test, { deploymentWorker: false });
    const inner = createMemoryJobQueue(new MemoryBroker({ ackWaitMs: 5000 }));
    const queue: JobQueue = { ...inner, kind: inner.kind, publish: async () => { throw new Error('NATS is away'); } };
    const warnings: { message: string; error: unknown; fields: Record<string, string> | undefined }[] = [];
    const dispatcher = await startDispatcher(t.ctx, { queue, sweepMs: 60_000, log: (message, error, fields) => void warnings.push({ message, error, fields }) });
    try {
      t.ctx.runChanged = (id) => dispatcher.nudge(id);
      const { run } = await createRun(t.ctx, { repository: 'acme/warned', branch: 'main', commit_sha: sha(), trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
      await dispatcher.idle();
      expect(warnings).toContainEqual({ message: 'dispatcher step failed', error: expect.objectContaining({ message: 'NATS is away' }), fields: { run_id: run.id } });
    } finally {
      await dispatcher.stop();
      await inner.close();
      await t.close();
      await test.close();
    }
  });
});

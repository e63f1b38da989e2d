/**
 * Two API replicas' dispatchers on one PostgreSQL database (each with its own connection pool, as
 * two `forge server` processes have) nudged about the same runs at the same moment: each job is
 * published once. Publishing is slowed down so that, without the run's cross-process dispatch lock
 * (decision 135), both replicas read the run before either marks it dispatched and both publish.
 * The count is of publish calls, before the queue's own deduplication.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDispatcher, type Dispatcher } from '../../src/engine/dispatcher.ts';
import type { EngineContext } from '../../src/engine/context.ts';
import type { JobQueue, Store } from '../../src/engine/ports.ts';
import { createRun, recordDiscovery } from '../../src/engine/runs.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';
import { openStore } from '../../src/store/store.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';

describe.skipIf(postgresAdapter.unavailable !== undefined)('two dispatchers on one PostgreSQL database', () => {
  let test: TestStore;
  let t: TestApp;
  let secondStore: Store;
  const dispatchers: Dispatcher[] = [];
  const queues: JobQueue[] = [];
  const published: string[] = [];

  /** A queue nobody consumes whose publish takes 150 ms and is counted. */
  function countingQueue(): JobQueue {
    const queue = createMemoryJobQueue(new MemoryBroker({ ackWaitMs: 60_000 }));
    queues.push(queue);
    return {
      kind: queue.kind,
      openInbox: (handler) => queue.openInbox(handler),
      consume: (type, handler) => queue.consume(type, handler),
      broadcastCancel: (runId, reason) => queue.broadcastCancel(runId, reason),
      lag: () => queue.lag(),
      close: () => queue.close(),
      async publish(message, dedupeId) {
        published.push(message.id);
        await new Promise((r) => setTimeout(r, 150));
        return queue.publish(message, dedupeId);
      },
    };
  }

  beforeAll(async () => {
    test = await postgresAdapter.open();
    t = await startTestApp(test, { deploymentWorker: false });
    secondStore = await openStore({ databaseUrl: test.url!, poolSize: 10 });
    const replicaCtx: EngineContext = { ...t.ctx, store: secondStore, runChanged: () => undefined };
    t.ctx.runChanged = () => undefined;
    dispatchers.push(await startDispatcher(t.ctx, { queue: countingQueue(), sweepMs: 600_000 }));
    dispatchers.push(await startDispatcher(replicaCtx, { queue: countingQueue(), sweepMs: 600_000 }));
  });

  afterAll(async () => {
    for (const d of dispatchers) await d.stop();
    for (const q of queues) await q.close();
    await secondStore?.close();
    await t?.close();
    await test?.close();
  });

  const newRun = async () => (await createRun(t.ctx, {
    repository: 'acme/replicas', branch: 'main', commit_sha: sha(), trigger_type: 'push',
  }, { actor: 'alice', mayActForOthers: false })).run.id;

  const nudgeBoth = async (id: string) => {
    for (const d of dispatchers) d.nudge(id);
    await Promise.all(dispatchers.map((d) => d.idle()));
  };

  it('publishes a run\'s discovery job once', async () => {
    const id = await newRun();
    published.length = 0;
    await nudgeBoth(id);
    expect(published).toEqual([id]);
  });

  it('publishes each task of the active group once', async () => {
    const id = await newRun();
    await recordDiscovery(t.ctx, id, {
      projects: ['api', 'web'].map((name) => ({ name, path: `services/${name}`, phases: { test: [{ name: 'unit', action: 'script', run: 'true' }] } })),
      phaseGroups: [{ group: 1, phases: ['test'] }],
    });
    published.length = 0;
    await nudgeBoth(id);
    expect(published).toHaveLength(2);
    expect(new Set(published).size).toBe(2);
  });
});

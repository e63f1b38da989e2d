/**
 * Limits (issue 9): at most N unfinished runs per repository — concurrent creations, through one
 * process or two (two stores over one PostgreSQL database, as two API replicas), never go past it,
 * and the one too many is a 429 in the seed's error body with nothing written; and no run outlives
 * 24 h, whatever the configured timeout (the watchdog fails it, with the test app's clock moved;
 * on PostgreSQL the dispatcher publishes to NATS JetStream).
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_RUN_DURATION_MS } from '../../src/domain/limits.ts';
import { isForgeError } from '../../src/domain/errors.ts';
import type { EngineContext } from '../../src/engine/context.ts';
import { startDispatcher } from '../../src/engine/dispatcher.ts';
import { cancelRun, createRun, createRunForDelivery, getRunTree, retryRun } from '../../src/engine/runs.ts';
import { createMemoryJobQueue, MemoryBroker } from '../../src/queue/jobs.memory.ts';
import { connectNatsJobs, deleteJobStreams } from '../../src/queue/jobs.nats.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { openStore } from '../../src/store/store.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { eventually } from '../helpers/runs.ts';
import { STORE_ADAPTERS, truncateAll, type TestStore } from '../helpers/stores.ts';

const LIMIT = 3;
const alice = { actor: 'alice', mayActForOthers: false };
const input = (repository: string, commit = sha()) => ({ repository, branch: 'main', commit_sha: commit, trigger_type: 'push' as const });

describe.each(STORE_ADAPTERS)('run limits on $name', (adapter) => {
  let test: TestStore;
  let t: TestApp;

  beforeAll(async () => {
    if (adapter.unavailable) return;
    test = await adapter.open();
    t = await startTestApp(test, { deploymentWorker: false });
    t.ctx.maxActiveRunsPerRepository = LIMIT;
  });
  afterAll(async () => {
    await t?.close();
    await test?.close();
  });
  beforeEach(async () => {
    if (adapter.unavailable) return;
    await truncateAll(test);
  });

  const active = async (repository: string) =>
    (await sql<{ n: number }>`SELECT count(*)::int AS n FROM pipeline_runs WHERE repository = ${repository} AND status IN ('pending', 'running')`.execute(test.db)).rows[0]?.n;

  /** Starts every creation at once; how many were created and the errors of the rest. */
  async function createAll(contexts: EngineContext[], repository: string, n: number) {
    const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => createRun(contexts[i % contexts.length]!, input(repository), alice)));
    const created = results.filter((r) => r.status === 'fulfilled' && r.value.created).length;
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    return { created, errors };
  }

  it.skipIf(adapter.unavailable)('12 concurrent creations in one repository: exactly the limit are created, the rest refused with rate_limited; other repositories are not affected', async () => {
    const { created, errors } = await createAll([t.ctx], 'acme/busy', 12);
    expect(created).toBe(LIMIT);
    expect(errors).toHaveLength(12 - LIMIT);
    for (const error of errors) {
      expect(isForgeError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'rate_limited', details: { repository: 'acme/busy', limit: LIMIT, active_runs: LIMIT, retry_after_seconds: 30 } });
    }
    expect(await active('acme/busy')).toBe(LIMIT);
    // Nothing was written for a refused creation: no run and no creation event beyond the three.
    const events = await sql<{ n: number }>`SELECT count(*)::int AS n FROM event_outbox WHERE event_type = 'pipeline.run.created'`.execute(test.db);
    expect(events.rows[0]?.n).toBe(LIMIT);
    expect((await createRun(t.ctx, input('acme/quiet'), alice)).created).toBe(true);
  });

  it.skipIf(adapter.unavailable)('at the limit: an existing commit still answers its run, a webhook delivery is refused too, a finished run frees a place, a retry needs one', async () => {
    const commits = [sha(), sha(), sha()];
    const runs = [];
    for (const commit of commits) runs.push((await createRun(t.ctx, input('acme/full', commit), alice)).run);
    const again = await createRun(t.ctx, input('acme/full', commits[0]), alice);
    expect(again).toMatchObject({ created: false, run: { id: runs[0]?.id } });
    await expect(createRun(t.ctx, input('acme/full'), alice)).rejects.toMatchObject({ code: 'rate_limited' });
    // A webhook delivery is held to the same limit, and writes no delivery record when refused.
    await expect(createRunForDelivery(t.ctx, input('acme/full'), alice, { id: 'delivery-1', event: 'push' })).rejects.toMatchObject({ code: 'rate_limited' });
    expect((await sql`SELECT 1 FROM github_deliveries`.execute(test.db)).rows).toHaveLength(0);

    await cancelRun(t.ctx, runs[0]?.id ?? '', 'alice');
    const fourth = await createRun(t.ctx, input('acme/full'), alice);
    expect(fourth.created).toBe(true);
    expect(await active('acme/full')).toBe(LIMIT);
    // A retry makes the cancelled run unfinished again: it needs a place as a new run does.
    await expect(retryRun(t.ctx, runs[0]?.id ?? '', 'alice')).rejects.toMatchObject({ code: 'rate_limited', details: { active_runs: LIMIT } });
    expect((await t.ctx.store.getRun(runs[0]?.id ?? ''))?.status).toBe('cancelled');
    await cancelRun(t.ctx, fourth.run.id, 'alice');
    expect((await retryRun(t.ctx, runs[0]?.id ?? '', 'alice')).run.status).toBe('pending');
    expect(await active('acme/full')).toBe(LIMIT);
  });

  it.skipIf(adapter.unavailable)('POST /v1/runs past the limit: 429 in the seed error body with Retry-After, naming the limit and the count', async () => {
    const token = await t.token('alice', ['developer']);
    const post = () => t.app.inject({
      method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${token}` },
      payload: { repository: 'acme/api', branch: 'main', commit_sha: sha(), trigger_type: 'push' },
    });
    for (let i = 0; i < LIMIT; i++) expect((await post()).statusCode).toBe(201);
    const refused = await post();
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('30');
    expect(refused.json()).toEqual({
      error: {
        code: 'rate_limited',
        message: `repository acme/api already has ${LIMIT} unfinished (pending or running) runs, the most it may have at once (${LIMIT}); retry when some have finished, or cancel some`,
        details: { repository: 'acme/api', limit: LIMIT, active_runs: LIMIT, retry_after_seconds: 30 },
      },
    });
  });

  it.skipIf(adapter.unavailable || adapter.name !== 'postgres')('two API replicas (two stores over one PostgreSQL database) creating at once never pass the limit together', async () => {
    const second = await openStore({ databaseUrl: test.url, migrate: false, poolSize: 10 });
    try {
      const replica: EngineContext = { ...t.ctx, store: second };
      for (let round = 0; round < 3; round++) {
        const repository = `acme/replicas-${round}`;
        const { created, errors } = await createAll([t.ctx, replica], repository, 16);
        expect(created).toBe(LIMIT);
        expect(errors.every((e) => isForgeError(e) && e.code === 'rate_limited')).toBe(true);
        expect(await active(repository)).toBe(LIMIT);
      }
    } finally {
      await second.close();
    }
  });

  // PGlite with the in-process queue; PostgreSQL with NATS JetStream (the production pairing).
  const overNats = adapter.name === 'postgres';
  it.skipIf(adapter.unavailable ?? (overNats ? natsUnavailable : undefined))(`no run outlives 24 h: a longer configured timeout is cut to 24 h, and the watchdog fails the run just past it (${overNats ? 'NATS' : 'in-process'} queue)`, async () => {
    const namespace = `limits${randomUUID().slice(0, 8)}.`;
    const queue = overNats
      ? await connectNatsJobs(TEST_NATS_URL, { namespace, timings: { ackWaitMs: 5000 } })
      : createMemoryJobQueue(new MemoryBroker());
    const ctx: EngineContext = { ...t.ctx, runTimeoutMs: 48 * 3_600_000 };
    // Discovery waits (nobody consumes) longer than the run may take: the run's own deadline is what fails it.
    const dispatcher = await startDispatcher(ctx, { queue, sweepMs: 50, jobTimeoutsMs: { discovery: 100 * 3_600_000 } });
    ctx.runChanged = (id) => dispatcher.nudge(id);
    try {
      const { run } = await createRun(ctx, input('acme/slow'), alice);
      expect(run.deadline_at!.getTime() - run.started_at.getTime()).toBe(MAX_RUN_DURATION_MS);
      // A minute before the deadline the sweep leaves it alone (discovery waits: nobody consumes).
      t.clock.advance(MAX_RUN_DURATION_MS - 60_000);
      dispatcher.nudge(run.id);
      await new Promise((r) => setTimeout(r, 300));
      expect((await getRunTree(ctx, run.id)).status).toBe('pending');
      t.clock.advance(60_001);
      const failed = await eventually(() => getRunTree(ctx, run.id), (tree) => tree.status === 'failed', 10_000);
      expect(failed).toMatchObject({ error_code: 'timeout', error_message: `run did not finish by its deadline ${run.deadline_at!.toISOString()}` });
    } finally {
      await dispatcher.stop();
      await queue.close();
      if (overNats) await deleteJobStreams(TEST_NATS_URL, namespace);
    }
  });
});

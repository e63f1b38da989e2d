/**
 * Fault 4: SIGKILL the API after committing a run but before publishing → after restart the run's
 * job is published once and the run completes.
 *
 * How Forge publishes: a run's creation commits its row and its `pipeline.run.created` event (in the
 * event outbox) in one statement; nothing is published in that transaction. Jobs have no outbox
 * table of their own: the run row is their outbox. The dispatcher publishes the discovery job of a
 * run whose `discovery_dispatched_at` is null (msgID `discovery-<run>-<attempt>`, deduplicated by
 * JetStream for two minutes), then sets it; its sweep finds such runs after a restart.
 *
 * To land in the window every time, the server runs with the test-only fault hook
 * FORGE_FAULT_HOOK=crash-after:<point>, which SIGKILLs the process at that point:
 * - run-committed: the run is committed, nothing is published (neither the event nor the job);
 * - job-published: the discovery job is on the stream, the run is not marked dispatched.
 * The server (`forge server`) and a worker (`forge worker`) are separate processes on PostgreSQL and
 * NATS JetStream; the server is restarted on the same database and port without the hook.
 *
 * Pass: one run row; the discovery job stored once on its stream and delivered once; the run ends
 * in success; its creation event is in the outbox once, marked published, and reached NATS once.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import type { EventEnvelope } from '../../src/domain/entities.ts';
import { deleteJobStreams, streamNames } from '../../src/queue/jobs.nats.ts';
import { EVENT_SUBJECT_PREFIX } from '../../src/queue/events.nats.ts';
import { killAllForgeProcesses, spawnForgeProcess, type ForgeProcess } from '../helpers/forge-process.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { eventually } from '../helpers/runs.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { gitUrlTemplate, seedOneStepProject } from '../helpers/repositories.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { freePort, networkCode, reportFigures, since } from './support.ts';

const ACK_WAIT = '5s';

describe.skipIf(natsUnavailable !== undefined || postgresAdapter.unavailable !== undefined)('fault 4: SIGKILL the API between commit and publish (PostgreSQL + NATS JetStream)', () => {
  let test: TestStore;
  let dataDir: string;
  let nc: NatsConnection;
  let token = '';
  let port = 0;
  let worker: WorkerProcess;
  const namespace = `f4${randomUUID().slice(0, 8)}.`;
  const names = streamNames(namespace);
  const events: EventEnvelope[] = [];

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault4-'));
    token = await (await openDevIssuer(dataDir)).sign({ sub: 'alice', roles: ['developer'] });
    port = await freePort();
    nc = await connect({ servers: TEST_NATS_URL });
    // Every run-created event any server publishes (the subject is not namespaced; filtered by run id below).
    nc.subscribe(`${EVENT_SUBJECT_PREFIX}.pipeline.run.created`, { callback: (_error, msg) => void events.push(msg.json<EventEnvelope>()) });
  });

  afterAll(async () => {
    await killAllWorkerProcesses();
    await killAllForgeProcesses();
    await nc?.close();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const startApi = (name: string, crashAfter?: string): ForgeProcess => spawnForgeProcess(name, ['server'], {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), TMPDIR: tmpdir(),
    NATS_URL: TEST_NATS_URL, FORGE_NATS_NAMESPACE: namespace, FORGE_ACK_WAIT: ACK_WAIT, FORGE_DATA_DIR: dataDir,
    FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(dataDir), FORGE_LOG_LEVEL: 'warn',
    DATABASE_URL: test.url!, FORGE_PORT: String(port), FORGE_WORKERS: 'none', FORGE_RATE_LIMITS: 'off',
    ...(crashAfter ? { FORGE_FAULT_HOOK: `crash-after:${crashAfter}` } : {}),
  }, /is serving (http:\/\/\S+)/);
  const url = () => `http://127.0.0.1:${port}`;

  const commit = (repository: string): Promise<string> => seedOneStepProject(dataDir, repository, 'echo ok');
  const postRun = (repository: string, sha: string) => fetch(`${url()}/v1/runs`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ repository, branch: 'main', commit_sha: sha, trigger_type: 'push' }),
  });
  const runsOf = (sha: string) => test.db.selectFrom('pipeline_runs').selectAll().where('commit_sha', '=', sha).execute();
  const createdEvents = (runId: string) => test.db.selectFrom('event_outbox').select(['published_at']).where('event_type', '=', 'pipeline.run.created')
    .where(sql<string>`envelope->'data'->>'run_id'`, '=', runId).execute();
  /** Messages ever stored on a job stream (its last sequence) and deliveries its consumer made. */
  const stream = async (type: 'discovery' | 'ci') => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names[type].stream);
    const consumer = await jsm.consumers.info(names[type].stream, names[type].consumer);
    return { stored: info.state.last_seq, waiting: info.state.messages, delivered: consumer.delivered.consumer_seq };
  };
  const finished = async (sha: string, within: number) =>
    (await eventually(async () => (await runsOf(sha))[0], (run) => run !== undefined && ['success', 'failed', 'cancelled'].includes(run.status), within))!;

  beforeAll(async () => {
    // A first server creates the streams; the worker takes jobs throughout.
    const api = startApi('api-setup');
    await api.ready;
    await api.stop();
    worker = spawnWorkerProcess('worker', workerEnv({ name: 'worker', natsUrl: TEST_NATS_URL, apiUrl: url(), dataDir, namespace, ackWait: ACK_WAIT, concurrency: 2 }));
    await worker.ready;
  });

  it('crash right after the run commits: nothing was published; after restart the job is published once, delivered once, the run succeeds', async () => {
    const repository = 'acme/outbox-commit';
    const sha = await commit(repository);
    const before = { discovery: await stream('discovery'), ci: await stream('ci') };

    const doomed = startApi('api-crash-commit', 'run-committed');
    await doomed.ready;
    const answer = await postRun(repository, sha).then((r) => `${r.status}`, (error: unknown) => networkCode(error));
    expect(await doomed.exited).toMatchObject({ signal: 'SIGKILL' });
    expect(answer).not.toMatch(/^\d+$/); // the client got no answer: the server died mid-request

    // Committed, not published: the run waits in PostgreSQL, its event unpublished, no job on the stream.
    const [orphan] = await runsOf(sha);
    expect(orphan).toMatchObject({ status: 'pending', discovery_dispatched_at: null });
    expect(await createdEvents(orphan!.id)).toEqual([{ published_at: null }]);
    expect(await stream('discovery')).toEqual(before.discovery);

    const restarted = performance.now();
    const api = startApi('api-after-commit');
    await api.ready;
    const readyMs = since(restarted);
    const run = await finished(sha, 30_000);
    const doneMs = since(restarted);
    expect(run.status, worker.output() + api.output()).toBe('success');

    const after = { discovery: await stream('discovery'), ci: await stream('ci') };
    expect(after.discovery.stored - before.discovery.stored).toBe(1);
    expect(after.discovery.delivered - before.discovery.delivered).toBe(1);
    expect(after.ci.stored - before.ci.stored).toBe(1);
    expect(await runsOf(sha)).toHaveLength(1);
    expect(await createdEvents(run.id)).toEqual([{ published_at: expect.any(Date) }]);
    await eventually(async () => events.filter((e) => (e.data as { run_id?: string }).run_id === run.id).length, (n) => n >= 1, 5000);
    // The client retries the request it got no answer to: the run is the one that was committed.
    const retried = await postRun(repository, sha);
    expect([retried.status, ((await retried.json()) as { id: string }).id]).toEqual([200, run.id]);
    const eventsOnNats = events.filter((e) => (e.data as { run_id?: string }).run_id === run.id).length;
    expect(eventsOnNats).toBe(1);
    await api.stop();
    reportFigures(4, 'SIGKILL after the run commits, before anything is published', {
      client_answer: answer, restart_ready_ms: readyMs, restart_to_success_ms: doneMs,
      discovery_jobs_stored: after.discovery.stored - before.discovery.stored, discovery_deliveries: after.discovery.delivered - before.discovery.delivered,
      ci_jobs_stored: after.ci.stored - before.ci.stored, run_rows: 1, created_events_on_nats: eventsOnNats,
    });
  }, 60_000);

  it('crash right after the discovery job is published, before the run is marked dispatched: after restart it is not published again; the run succeeds', async () => {
    const repository = 'acme/outbox-publish';
    const sha = await commit(repository);
    const before = { discovery: await stream('discovery'), ci: await stream('ci') };

    const doomed = startApi('api-crash-publish', 'job-published');
    await doomed.ready;
    const answer = await postRun(repository, sha).then((r) => `${r.status}`, (error: unknown) => networkCode(error));
    expect(await doomed.exited).toMatchObject({ signal: 'SIGKILL' });
    const [orphan] = await runsOf(sha);
    expect(orphan).toMatchObject({ status: 'pending', discovery_dispatched_at: null });
    expect((await stream('discovery')).stored - before.discovery.stored).toBe(1);
    // The worker takes the job while the server is down, and finishes it.
    await eventually(() => stream('discovery'), (s) => s.waiting === 0 && s.delivered > before.discovery.delivered, 20_000);

    const restarted = performance.now();
    const api = startApi('api-after-publish');
    await api.ready;
    const run = await finished(sha, 30_000);
    const doneMs = since(restarted);
    expect(run.status, worker.output() + api.output()).toBe('success');

    const after = { discovery: await stream('discovery'), ci: await stream('ci') };
    // Published again after the restart under the same msgID: JetStream dropped it as a duplicate.
    expect(after.discovery.stored - before.discovery.stored).toBe(1);
    expect(after.ci.stored - before.ci.stored).toBe(1);
    expect(await runsOf(sha)).toHaveLength(1);
    await api.stop();
    reportFigures(4, 'SIGKILL after the discovery job is published, before the run is marked dispatched', {
      client_answer: answer, restart_to_success_ms: doneMs,
      discovery_jobs_stored: after.discovery.stored - before.discovery.stored, discovery_deliveries: after.discovery.delivered - before.discovery.delivered,
      ci_jobs_stored: after.ci.stored - before.ci.stored, run_rows: 1,
    });
  }, 60_000);
});

/**
 * Fault 7: poison messages are dead-lettered after max_deliver; other runs are unaffected.
 *
 * The server (startServer, FORGE_WORKERS=none) runs in this process on PostgreSQL and NATS
 * JetStream; two `forge worker` processes take the jobs, one at a time each, and this test restarts
 * any that dies (as a supervisor would). Next to six ordinary runs come three poisons:
 * - bytes that are not a job, published straight onto the CI subject: dead-lettered by the first
 *   worker that takes them, never handed to a handler (a message that cannot be parsed never will);
 * - a run of a repository no worker can fetch (git fails with a retryable error every time): its
 *   discovery job is retried max_deliver (3) times, then replied retries_exhausted (the run fails
 *   with discovery_failed) and a copy is dead-lettered;
 * - a run whose step kills the worker running it (`kill -9 $PPID`): every delivery takes a worker
 *   down before any outcome, so JetStream gives up after 3 deliveries; a dispatcher hears its
 *   MAX_DELIVERIES advisory, dead-letters the job, takes it off the work queue and answers the run
 *   with dead_lettered, so the run fails at once instead of at its 30-minute job timeout.
 *
 * One job at a time per worker, and discovery and CI jobs on separate worker processes: a job
 * running beside a worker-killing one dies with it and comes back (a delivery spent), and one that
 * shares that worker on all its deliveries is dead-lettered too (JetStream cannot tell the culprit
 * from a bystander; decision 123). A worker taking both types once ran the missing repository's
 * third discovery delivery beside the killer's CI job and died with it, so that run was
 * dead-lettered instead of failing with discovery_failed (a CI run under load); with one job per
 * process no job is a bystander.
 *
 * Pass: the dead-letter stream holds exactly the three poisons with their reasons and delivery
 * counts; the two poisoned runs are failed with their error codes; the six ordinary runs succeed
 * (those a killed worker was running come back to another one); no job is left on a work queue.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/bin/server.ts';
import { getRunTree, type RunTree } from '../../src/engine/runs.ts';
import { isRunTerminal } from '../../src/domain/statuses.ts';
import { deleteJobStreams, streamNames } from '../../src/queue/jobs.nats.ts';
import { TEST_NATS_URL, natsUnavailable, readDeadLetters } from '../helpers/nats.ts';
import { eventually } from '../helpers/runs.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { seedOneStepProject } from '../helpers/repositories.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, startServerForWorkers, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { reportFigures, since, sleep } from './support.ts';

const ACK_WAIT = '2500ms';
const ORDINARY_RUNS = 6;

describe.skipIf(natsUnavailable !== undefined || postgresAdapter.unavailable !== undefined)('fault 7: poison messages (NATS JetStream + PostgreSQL, forge worker processes)', () => {
  let test: TestStore;
  let running: RunningServer;
  let dataDir: string;
  let nc: NatsConnection;
  let token = '';
  const namespace = `f7${randomUUID().slice(0, 8)}.`;
  const workers: WorkerProcess[] = [];
  let deaths = 0;
  let supervising = true;
  let supervisor: Promise<void> | undefined;

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault7-'));
    running = await startServerForWorkers({ store: test.store, dataDir, natsUrl: TEST_NATS_URL, namespace, ackWait: ACK_WAIT });
    token = await running.devIssuer!.sign({ sub: 'alice', roles: ['developer'] });
    nc = await connect({ servers: TEST_NATS_URL });
  });

  afterAll(async () => {
    supervising = false;
    await supervisor;
    await killAllWorkerProcesses();
    await running?.close();
    await nc?.close();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const spawnWorker = (type: 'discovery' | 'ci') => {
    const name = `worker-${workers.length}-${type}`;
    const worker = spawnWorkerProcess(name, workerEnv({ name, natsUrl: TEST_NATS_URL, apiUrl: running.url, dataDir, namespace, ackWait: ACK_WAIT, concurrency: 1, logLevel: 'warn' }), [type]);
    workers.push(worker);
    return { type, worker };
  };
  /** Keeps one discovery and two CI workers alive, as Kubernetes would restart a crashed pod. */
  const supervise = async () => {
    let alive = [spawnWorker('discovery'), spawnWorker('ci'), spawnWorker('ci')];
    while (supervising) {
      const dead = alive.filter((w) => w.worker.ended());
      deaths += dead.length;
      alive = [...alive.filter((w) => !w.worker.ended()), ...dead.map((w) => spawnWorker(w.type))];
      await sleep(100);
    }
  };

  const commit = (repository: string, step: string): Promise<string> => seedOneStepProject(dataDir, repository, step);
  const createRun = async (repository: string, sha: string): Promise<string> => {
    const res = await fetch(`${running.url}/v1/runs`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ repository, branch: 'main', commit_sha: sha, trigger_type: 'push' }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const finished = async (id: string): Promise<RunTree & { ms: number }> => {
    const tree = await eventually(() => getRunTree(running.ctx, id), (t) => isRunTerminal(t.status), 45_000);
    return { ...tree, ms: tree.completed_at!.getTime() - tree.started_at.getTime() };
  };
  const deadLetters = () => readDeadLetters(TEST_NATS_URL, namespace);
  const waitingJobs = async () => {
    const jsm = await jetstreamManager(nc);
    let waiting = 0;
    for (const { stream } of Object.values(streamNames(namespace))) waiting += (await jsm.streams.info(stream)).state.messages;
    return waiting;
  };

  it('dead-letters the three poisons with their reasons; their runs fail with clear codes; the six ordinary runs succeed', async () => {
    const shas = await Promise.all(Array.from({ length: ORDINARY_RUNS }, (_, i) => commit(`acme/ordinary-${i}`, 'echo start; sleep 1; echo ok')));
    const killerSha = await commit('acme/killer', 'kill -9 $PPID');
    supervisor = supervise();
    await Promise.all(workers.map((w) => w.ready));

    const started = performance.now();
    // Poison 1: bytes that are no job, straight onto the CI work queue.
    const garbageSubject = `${namespace}pipeline.tasks.not-a-job`;
    await jetstream(nc).publish(garbageSubject, 'this is not a job {');
    // Poison 2: a repository that is not there (git fails, retryably, every time).
    const missing = await createRun('acme/missing', 'f'.repeat(40));
    // Poison 3: a step that kills whichever worker runs it.
    const killer = await createRun('acme/killer', killerSha);
    const ordinary = await Promise.all(shas.map((sha, i) => createRun(`acme/ordinary-${i}`, sha)));

    const [missingRun, killerRun, ...ordinaryRuns] = (await Promise.all([missing, killer, ...ordinary].map(finished))) as [RunTree & { ms: number }, RunTree & { ms: number }, ...(RunTree & { ms: number })[]];
    const diagnostics = workers.map((w) => w.output()).join('');
    for (const run of ordinaryRuns) expect(run.status, diagnostics).toBe('success');
    expect(missingRun).toMatchObject({ status: 'failed', error_code: 'discovery_failed', error_message: expect.stringContaining('could not fetch acme/missing') });
    expect(killerRun).toMatchObject({ status: 'failed', error_code: 'dead_lettered' });
    expect(killerRun.error_message).toMatch(/^task test\/svc: job [0-9a-f-]+ was dead-lettered: no outcome after 3 deliveries/);
    const killerTask = killerRun.phases[0]!.tasks[0]!;
    expect(killerTask).toMatchObject({ status: 'failed', error: expect.stringContaining('was dead-lettered') });

    const letters = await eventually(deadLetters, (l) => l.length >= 3, 10_000);
    const bySubject = (suffix: string) => letters.filter((l) => l.subject.endsWith(suffix));
    expect(letters).toHaveLength(3);
    expect(bySubject('pipeline.tasks.not-a-job')).toEqual([expect.objectContaining({ reason: expect.stringMatching(/^not a job message/), deliveries: 1, data: 'this is not a job {' })]);
    expect(bySubject(`pipeline.discovery.${missing}`)).toEqual([expect.objectContaining({ reason: expect.stringMatching(/^retries exhausted after 3 deliveries: could not fetch acme\/missing/), deliveries: 3 })]);
    expect(bySubject(`pipeline.tasks.${killerTask.id}`)).toEqual([expect.objectContaining({ reason: expect.stringMatching(/^no outcome after 3 deliveries/), deliveries: 3 })]);
    // Every delivery of the killer job took a worker down; nothing is left on the work queues.
    expect(deaths).toBe(3);
    expect(await eventually(waitingJobs, (n) => n === 0, 10_000)).toBe(0);

    const redelivered = ordinaryRuns.filter((r) => r.phases[0]!.tasks[0]!.attempt > 1).length;
    reportFigures(7, 'poison messages next to 6 ordinary runs', {
      dead_letters: letters.length, malformed_deliveries: 1, retried_deliveries: 3, killer_deliveries: 3, worker_deaths: deaths,
      missing_repo_run_failed_ms: missingRun.ms, killer_run_failed_ms: killerRun.ms,
      ordinary_succeeded: ordinaryRuns.length, ordinary_redelivered: redelivered,
      ordinary_max_ms: Math.max(...ordinaryRuns.map((r) => r.ms)), total_ms: since(started),
    });
  }, 90_000);
});

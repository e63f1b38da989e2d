/**
 * Fault 5: NATS stops for 30 s during a load → no run is lost; everything is dispatched after recovery.
 *
 * A private nats-server (JetStream, file storage in a temp dir, its own port: never the machine's
 * shared one) carries the jobs of a server in this process (startServer, PostgreSQL, no workers)
 * and two `forge worker` processes. Runs are created at a steady pace before, during and after an
 * outage: nats-server is stopped (SIGTERM) for 30 s and started again on the same port and store.
 * Meanwhile the API keeps accepting runs (PostgreSQL holds them), the dispatcher's publishes fail
 * and are retried by its sweep, workers' pulls fail and are retried, and jobs whose replies could
 * not be stored come back after ack_wait.
 *
 * Pass: every run created (before, during and after) ends in success; every POST /v1/runs answers
 * 201 (none refused, no 5xx); every run created during the outage is dispatched after NATS is back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/bin/server.ts';
import { isRunTerminal } from '../../src/domain/statuses.ts';
import { streamNames } from '../../src/queue/jobs.nats.ts';
import { eventually } from '../helpers/runs.ts';
import { natsServerMissing, privateNats } from '../helpers/private-services.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { seedOneStepProject } from '../helpers/repositories.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, startServerForWorkers, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { freePort, reportFigures, since, sleep, tally } from './support.ts';

const OUTAGE_MS = 30_000;
const BEFORE_MS = 4000;
const AFTER_MS = 3000;
/** One run every this many ms, before, during and after the outage. */
const PACE_MS = 500;
const ACK_WAIT = '3s';

describe.skipIf(postgresAdapter.unavailable !== undefined || natsServerMissing !== undefined)('fault 5: NATS stopped for 30 s during a load (private nats-server, PostgreSQL, forge worker processes)', () => {
  let test: TestStore;
  let running: RunningServer;
  let dataDir: string;
  let nats: ReturnType<typeof privateNats>;
  let token = '';
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault5-'));
    nats = privateNats(await freePort(), join(dataDir, 'nats'));
    await nats.start();
    running = await startServerForWorkers({ store: test.store, dataDir, natsUrl: nats.url, ackWait: ACK_WAIT });
    token = await running.devIssuer!.sign({ sub: 'alice', roles: ['developer'] });
    for (const name of ['worker-a', 'worker-b']) {
      workers.push(spawnWorkerProcess(name, workerEnv({ name, natsUrl: nats.url, apiUrl: running.url, dataDir, ackWait: ACK_WAIT, concurrency: 4, logLevel: 'warn' })));
    }
    await Promise.all(workers.map((w) => w.ready));
  });

  afterAll(async () => {
    await killAllWorkerProcesses();
    await running?.close();
    await nats?.stop();
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const commit = (repository: string): Promise<string> => seedOneStepProject(dataDir, repository, 'echo start; sleep 1; echo ok');

  it('loses no run: everything created before, during and after the outage succeeds; runs created during it are dispatched after it', async () => {
    const count = Math.ceil((BEFORE_MS + OUTAGE_MS + AFTER_MS) / PACE_MS) + 2;
    const shas: string[] = [];
    for (let i = 0; i < count; i += 8) shas.push(...(await Promise.all(Array.from({ length: Math.min(8, count - i) }, (_, j) => commit(`acme/load-${i + j}`)))));

    const created: { id: string; phase: 'before' | 'during' | 'after'; at: number }[] = [];
    const answers: string[] = [];
    let phase: 'before' | 'during' | 'after' = 'before';
    let stopLoad = false;
    const t0 = performance.now();
    const load = (async () => {
      for (let i = 0; i < shas.length && !stopLoad; i++) {
        const started = performance.now();
        const sentIn = phase;
        try {
          const res = await fetch(`${running.url}/v1/runs`, {
            method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ repository: `acme/load-${i}`, branch: 'main', commit_sha: shas[i], trigger_type: 'push' }),
          });
          answers.push(`${res.status}`);
          if (res.status === 201) created.push({ id: ((await res.json()) as { id: string }).id, phase: sentIn, at: performance.now() });
        } catch (error) {
          answers.push((error as Error).message);
        }
        await sleep(Math.max(0, PACE_MS - (performance.now() - started)));
      }
    })();

    await sleep(BEFORE_MS);
    await nats.stop();
    const downAt = performance.now();
    phase = 'during'; // requests sent from now on reach a server whose NATS is down
    await sleep(OUTAGE_MS);
    phase = 'after';
    await nats.start();
    const upAt = performance.now();
    await sleep(AFTER_MS);
    stopLoad = true;
    await load;

    const ids = created.map((c) => c.id);
    const runs = await eventually(
      () => test.db.selectFrom('pipeline_runs').select(['id', 'status', 'completed_at', 'discovery_dispatched_at']).where('id', 'in', ids).execute(),
      (rows) => rows.length === ids.length && rows.every((r) => isRunTerminal(r.status)), 60_000,
    );
    const allDoneAt = performance.now();
    const diagnostics = workers.map((w) => w.output()).join('').slice(-4000);
    expect(tally(answers), diagnostics).toEqual({ 201: created.length });
    expect(tally(runs.map((r) => r.status)), diagnostics).toEqual({ success: created.length });
    const during = created.filter((c) => c.phase === 'during').map((c) => c.id);
    expect(during.length).toBeGreaterThan(OUTAGE_MS / PACE_MS / 2);
    // Dispatched only once NATS was back (the wall clock of this process and PostgreSQL's agree: same machine).
    const upWall = Date.now() - (performance.now() - upAt);
    const dispatchedDuring = runs.filter((r) => during.includes(r.id)).map((r) => r.discovery_dispatched_at!.getTime());
    for (const at of dispatchedDuring) expect(at).toBeGreaterThanOrEqual(upWall - 1000);

    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    // Deliveries beyond one per stored job: jobs that came back (their reply could not be stored, …).
    const redelivered: Record<string, number> = {};
    for (const [type, { stream, consumer }] of Object.entries(streamNames(''))) {
      const stored = (await jsm.streams.info(stream)).state.last_seq;
      redelivered[type] = (await jsm.consumers.info(stream, consumer)).delivered.consumer_seq - stored;
    }
    await nc.close();
    reportFigures(5, `NATS stopped for ${OUTAGE_MS / 1000} s during a load of one run per ${PACE_MS} ms`, {
      runs: created.length, created_during_outage: during.length, answers: tally(answers), succeeded: runs.length, lost: 0,
      outage_ms: Math.round(upAt - downAt), first_dispatch_after_recovery_ms: Math.min(...dispatchedDuring) - Math.round(upWall), all_done_after_recovery_ms: Math.round(allDoneAt - upAt), total_ms: since(t0),
      redeliveries: redelivered,
    });
  }, 120_000);
});

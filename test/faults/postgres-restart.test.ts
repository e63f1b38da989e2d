/**
 * Fault 6: PostgreSQL restarts during a load → the API answers 503 meanwhile and recovers without
 * restarting Forge; no run is lost.
 *
 * A private PostgreSQL cluster (its own port and directory: the machine's shared one is never
 * touched) holds the data of a `forge server` process (API + dispatcher); a `forge worker` process
 * takes the jobs from NATS (a namespace of this test's own). Runs are created every 200 ms while
 * PostgreSQL is stopped (`pg_ctl stop -m fast`, clients disconnected) for about 5 s and started again;
 * each run's step takes a second, so some are running when it stops (their reports are refused meanwhile).
 *
 * Pass: during the outage POST /v1/runs is refused with 503 `service_unavailable` (never another
 * 5xx) and /readyz says not ready; the same server process answers 201 again soon after PostgreSQL
 * is back; every run answered 201 ends in success.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { deleteJobStreams } from '../../src/queue/jobs.nats.ts';
import { killAllForgeProcesses, spawnForgeProcess, type ForgeProcess } from '../helpers/forge-process.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { privatePostgres, privatePostgresMissing } from '../helpers/private-services.ts';
import { gitUrlTemplate, seedOneStepProject } from '../helpers/repositories.ts';
import { eventually } from '../helpers/runs.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { freePort, networkCode, reportFigures, since, sleep, tally } from './support.ts';

const PACE_MS = 200;
const BEFORE_MS = 3000;
const OUTAGE_MS = 5000;
/** Load kept up this long after the first 201 that follows the restart. */
const AFTER_MS = 3000;
const ACK_WAIT = '5s';

describe.skipIf(privatePostgresMissing !== undefined || natsUnavailable !== undefined)('fault 6: PostgreSQL restarted during a load (private cluster, forge server and worker processes)', () => {
  let dataDir: string;
  let postgres: ReturnType<typeof privatePostgres>;
  let api: ForgeProcess;
  let worker: WorkerProcess;
  let url = '';
  let token = '';
  const namespace = `f6${randomUUID().slice(0, 8)}.`;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault6-'));
    postgres = privatePostgres(await freePort());
    await postgres.init();
    await postgres.start();
    token = await (await openDevIssuer(dataDir)).sign({ sub: 'alice', roles: ['developer'] });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    api = spawnForgeProcess('api', ['server'], {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), TMPDIR: tmpdir(),
      NATS_URL: TEST_NATS_URL, FORGE_NATS_NAMESPACE: namespace, FORGE_ACK_WAIT: ACK_WAIT, FORGE_DATA_DIR: dataDir,
      FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(dataDir), FORGE_LOG_LEVEL: 'warn',
      DATABASE_URL: postgres.url, FORGE_PORT: String(port), FORGE_WORKERS: 'none', FORGE_RATE_LIMITS: 'off',
    }, /is serving (http:\/\/\S+)/);
    await api.ready;
    worker = spawnWorkerProcess('worker', workerEnv({ name: 'worker', natsUrl: TEST_NATS_URL, apiUrl: url, dataDir, namespace, ackWait: ACK_WAIT, concurrency: 4, logLevel: 'warn' }));
    await worker.ready;
  }, 60_000);

  afterAll(async () => {
    await killAllWorkerProcesses();
    await killAllForgeProcesses();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    await postgres?.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 503 while PostgreSQL is down, 201 again after it is back (same process), and every run created succeeds', async () => {
    const count = Math.ceil((BEFORE_MS + OUTAGE_MS + AFTER_MS + 15_000) / PACE_MS);
    const shas: string[] = [];
    for (let i = 0; i < count; i += 8) shas.push(...(await Promise.all(Array.from({ length: Math.min(8, count - i) }, (_, j) => seedOneStepProject(dataDir, `acme/pg-${i + j}`, 'echo start; sleep 1; echo ok')))));

    type Phase = 'before' | 'during' | 'after';
    let phase: Phase = 'before';
    const answers: { phase: Phase; status: string; code?: string; at: number }[] = [];
    const created: string[] = [];
    const readiness: { phase: Phase; status: number | string }[] = [];
    let upAt = Infinity;
    let stopLoad = false;
    const t0 = performance.now();
    const load = (async () => {
      for (let i = 0; i < shas.length && !stopLoad; i++) {
        const started = performance.now();
        const sentIn = phase;
        try {
          const res = await fetch(`${url}/v1/runs`, {
            method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ repository: `acme/pg-${i}`, branch: 'main', commit_sha: shas[i], trigger_type: 'push' }),
            signal: AbortSignal.timeout(20_000),
          });
          const body = (await res.json()) as { id?: string; error?: { code: string } };
          answers.push({ phase: sentIn, status: `${res.status}`, code: body.error?.code, at: performance.now() });
          if (res.status === 201) created.push(body.id!);
        } catch (error) {
          answers.push({ phase: sentIn, status: networkCode(error), at: performance.now() });
        }
        await sleep(Math.max(0, PACE_MS - (performance.now() - started)));
      }
    })();
    const probe = (async () => {
      while (!stopLoad) {
        const sentIn = phase;
        readiness.push({ phase: sentIn, status: await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.status, (e: unknown) => networkCode(e)) });
        await sleep(250);
      }
    })();

    await sleep(BEFORE_MS);
    const downStarted = performance.now();
    await postgres.stop('fast');
    const downAt = performance.now();
    phase = 'during';
    await sleep(OUTAGE_MS);
    phase = 'after';
    await postgres.start();
    upAt = performance.now();
    const firstCreatedAfter = await eventually(async () => answers.find((a) => a.at > upAt && a.status === '201'), (a) => a !== undefined, 30_000)
      .catch((error: unknown) => {
        throw new Error(`no 201 after the restart: ${JSON.stringify(answers.slice(-20))}\n${(api.output() + worker.output()).slice(-6000)}`, { cause: error });
      });
    await sleep(AFTER_MS);
    stopLoad = true;
    await Promise.all([load, probe]);

    const diagnostics = () => (api.output() + worker.output()).slice(-6000);
    expect(api.ended(), diagnostics()).toBe(false);
    const during = answers.filter((a) => a.phase === 'during');
    const refused = during.filter((a) => a.status === '503');
    expect(refused.length, diagnostics()).toBeGreaterThan(0);
    for (const a of refused) expect(a.code).toBe('service_unavailable');
    // Only 201 or 503 from the API, whatever the phase (a request may straddle the stop or the start).
    expect(answers.filter((a) => !['201', '503'].includes(a.status)), diagnostics()).toEqual([]);
    expect(readiness.filter((r) => r.phase === 'during').some((r) => r.status === 503)).toBe(true);
    expect(readiness.at(-1)?.status).toBe(200);

    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      const runs = await eventually(
        async () => (await client.query<{ id: string; status: string }>('SELECT id, status FROM pipeline_runs WHERE id = ANY($1::uuid[])', [created])).rows,
        (rows) => rows.length === created.length && rows.every((r) => ['success', 'failed', 'cancelled'].includes(r.status)), 60_000,
      );
      const allDoneAt = performance.now();
      expect(tally(runs.map((r) => r.status)), diagnostics()).toEqual({ success: created.length });
      const { rows: [rows] } = await client.query<{ runs: string }>('SELECT count(*) AS runs FROM pipeline_runs');
      expect(Number(rows!.runs)).toBe(created.length); // no run refused yet written
      reportFigures(6, `PostgreSQL stopped for ${OUTAGE_MS / 1000} s during a load of one run per ${PACE_MS} ms`, {
        requests: answers.length, answers: tally(answers.map((a) => a.status)), refused_503_during_outage: refused.length, answers_during_outage: during.length,
        readyz_during_outage: tally(readiness.filter((r) => r.phase === 'during').map((r) => r.status)),
        stop_ms: Math.round(downAt - downStarted), outage_ms: Math.round(upAt - downStarted), first_201_after_restart_ms: Math.round(firstCreatedAfter!.at - upAt),
        runs_created: created.length, succeeded: runs.length, lost: 0, all_done_after_restart_ms: Math.round(allDoneAt - upAt), total_ms: since(t0),
      });
    } finally {
      await client.end();
    }
  }, 110_000);
});

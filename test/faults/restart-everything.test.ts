/**
 * Fault 8: everything is killed with 200 runs in flight → after a restart every run reaches a
 * terminal state within 60 s, none driven twice.
 *
 * Everything is this test's own: a private PostgreSQL cluster and a private nats-server (their own
 * ports and directories; the machine's shared ones are never touched), one `forge server` (API +
 * dispatcher) and two `forge worker` processes. 200 runs of a one-step repository (`echo ok`) are
 * created; when about half have finished, every process is killed at once with SIGKILL (PostgreSQL
 * with `pg_ctl stop -m immediate`, a crash recovered from its WAL; the step processes too), then all
 * are started again on the same directories and ports.
 *
 * Pass: every run ends in success within 60 s of the restart; one phase, task and step row per run
 * (no duplicates); a task's step was reported by the attempt that claimed the task last; one
 * `pipeline.run.completed` event per run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { killAllForgeProcesses, spawnForgeProcess, type ForgeProcess } from '../helpers/forge-process.ts';
import { natsServerMissing, privateNats, privatePostgres, privatePostgresMissing } from '../helpers/private-services.ts';
import { gitUrlTemplate, seedOneStepProject } from '../helpers/repositories.ts';
import { eventually } from '../helpers/runs.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { freePort, reportFigures, since, tally } from './support.ts';

const RUNS = 200;
const ACK_WAIT = '5s';
const RECOVERY_LIMIT_MS = 60_000;

describe.skipIf(privatePostgresMissing !== undefined || natsServerMissing !== undefined)('fault 8: everything killed and restarted with 200 runs in flight (private PostgreSQL and NATS, forge server and worker processes)', () => {
  let dataDir: string;
  let postgres: ReturnType<typeof privatePostgres>;
  let nats: ReturnType<typeof privateNats>;
  let client: pg.Client | undefined;
  let port = 0;
  let token = '';
  const url = () => `http://127.0.0.1:${port}`;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault8-'));
    postgres = privatePostgres(await freePort());
    nats = privateNats(await freePort(), join(dataDir, 'nats'));
    await postgres.init();
    await Promise.all([postgres.start(), nats.start()]);
    token = await (await openDevIssuer(dataDir)).sign({ sub: 'alice', roles: ['developer'] });
    port = await freePort();
  }, 60_000);

  afterAll(async () => {
    await client?.end().catch(() => undefined);
    await killAllWorkerProcesses();
    await killAllForgeProcesses();
    await nats?.stop('SIGKILL');
    await postgres?.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const startApi = (name: string): ForgeProcess => spawnForgeProcess(name, ['server'], {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), TMPDIR: tmpdir(),
    NATS_URL: nats.url, FORGE_ACK_WAIT: ACK_WAIT, FORGE_DATA_DIR: dataDir, FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(dataDir), FORGE_LOG_LEVEL: 'warn',
    DATABASE_URL: postgres.url, FORGE_PORT: String(port), FORGE_WORKERS: 'none', FORGE_RATE_LIMITS: 'off',
  }, /is serving (http:\/\/\S+)/);
  const startWorkers = (round: number): WorkerProcess[] => ['a', 'b'].map((letter) => {
    const name = `worker-${letter}${round}`;
    return spawnWorkerProcess(name, workerEnv({ name, natsUrl: nats.url, apiUrl: url(), dataDir, ackWait: ACK_WAIT, concurrency: 4, logLevel: 'warn' }));
  });
  const statuses = async (ids: string[]) => (await client!.query<{ status: string }>('SELECT status FROM pipeline_runs WHERE id = ANY($1::uuid[])', [ids])).rows.map((r) => r.status);
  const terminal = (status: string) => ['success', 'failed', 'cancelled'].includes(status);

  it('every run ends in success within 60 s of the restart; no run, task or step driven twice', async () => {
    const t0 = performance.now();
    const shas: string[] = [];
    for (let i = 0; i < RUNS; i += 10) shas.push(...(await Promise.all(Array.from({ length: Math.min(10, RUNS - i) }, (_, j) => seedOneStepProject(dataDir, `acme/r-${i + j}`, 'echo ok')))));
    const seedMs = since(t0);

    let api = startApi('api-1');
    await api.ready;
    let workers = startWorkers(1);
    await Promise.all(workers.map((w) => w.ready));
    client = new pg.Client({ connectionString: postgres.url });
    await client.connect();

    const ids: string[] = [];
    const answers: number[] = [];
    for (let i = 0; i < RUNS; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, RUNS - i) }, async (_, j) => {
        const res = await fetch(`${url()}/v1/runs`, {
          method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ repository: `acme/r-${i + j}`, branch: 'main', commit_sha: shas[i + j], trigger_type: 'push' }),
        });
        answers.push(res.status);
        if (res.status === 201) ids.push(((await res.json()) as { id: string }).id);
      }));
    }
    expect(tally(answers)).toEqual({ 201: RUNS });

    // About half finished: kill everything at once.
    await eventually(() => statuses(ids), (s) => s.filter(terminal).length >= RUNS / 2, 90_000);
    await client.end();
    client = undefined;
    const killStarted = performance.now();
    const stepGroups = workers.flatMap((w) => w.stepGroups());
    await Promise.all([
      ...workers.map(async (w) => { w.signal('SIGKILL'); await w.exited; }),
      (async () => { api.signal('SIGKILL'); await api.exited; })(),
      nats.stop('SIGKILL'),
      postgres.stop('immediate'),
    ]);
    for (const group of stepGroups) try { process.kill(-group, 'SIGKILL'); } catch { /* gone */ }
    const killMs = since(killStarted);

    const restartAt = performance.now();
    await Promise.all([postgres.start(), nats.start()]);
    client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    const atKill = tally(await statuses(ids));
    api = startApi('api-2');
    await api.ready;
    const apiReadyMs = since(restartAt);
    workers = startWorkers(2);
    await Promise.all(workers.map((w) => w.ready));
    const workersReadyMs = since(restartAt);

    const diagnostics = () => (api.output() + workers.map((w) => w.output()).join('')).slice(-6000);
    const final = await eventually(() => statuses(ids), (s) => s.length === RUNS && s.every(terminal), RECOVERY_LIMIT_MS + 15_000);
    const recoveredMs = since(restartAt);
    expect(tally(final), diagnostics()).toEqual({ success: RUNS });
    expect(recoveredMs, diagnostics()).toBeLessThan(RECOVERY_LIMIT_MS);

    const count = async (query: string) => Number((await client!.query<{ n: string }>(query)).rows[0]!.n);
    const rows = {
      runs: await count('SELECT count(*) AS n FROM pipeline_runs'),
      phases: await count('SELECT count(*) AS n FROM phase_executions'),
      tasks: await count('SELECT count(*) AS n FROM task_executions'),
      steps: await count('SELECT count(*) AS n FROM step_executions'),
      completed_events: await count("SELECT count(*) AS n FROM event_outbox WHERE event_type = 'pipeline.run.completed'"),
      distinct_completed: await count("SELECT count(DISTINCT envelope->'data'->>'run_id') AS n FROM event_outbox WHERE event_type = 'pipeline.run.completed'"),
    };
    expect(rows).toEqual({ runs: RUNS, phases: RUNS, tasks: RUNS, steps: RUNS, completed_events: RUNS, distinct_completed: RUNS });
    const attempts = (await client.query<{ task: number; step: number; status: string }>(
      'SELECT t.attempt AS task, s.attempt AS step, s.status FROM task_executions t JOIN step_executions s ON s.task_execution_id = t.id',
    )).rows;
    // Each step was run and reported by the attempt that claimed its task last, and finished.
    expect(attempts.filter((a) => a.task !== a.step || a.status !== 'success')).toEqual([]);
    reportFigures(8, `everything killed (SIGKILL; PostgreSQL stop -m immediate) with ${RUNS} runs in flight, then restarted`, {
      runs: RUNS, seed_ms: seedMs, statuses_at_kill: atKill, kill_ms: killMs, api_ready_after_restart_ms: apiReadyMs, workers_ready_after_restart_ms: workersReadyMs,
      all_terminal_after_restart_ms: recoveredMs, final: tally(final), task_attempts: tally(attempts.map((a) => a.task)), rows, total_ms: since(t0),
    });
  }, 170_000);
});

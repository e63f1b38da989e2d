/**
 * Distributed mode: `forge server` ×2 and `forge worker` ×3, each a separate process, on one
 * PostgreSQL database and one NATS JetStream (its own namespace), on loopback, sharing one data dir
 * (repositories, objects, the dev issuer key). 200 runs are created over both servers' APIs; mid-load
 * one server and one worker are SIGKILLed, then restarted.
 *
 * The repository: the example monorepo's shape (phase groups check → test → build, several projects
 * per group, build in one project only: 7 tasks a run) with `true` as every step and no release
 * phase. The example monorepo itself was measured first: its step commands alone (node --check,
 * node --test, python unittest…) take 0.94 s of one core per run, so 200 runs need over 100 s of
 * both cores before checkouts and before the 200 api releases its `branch: main` trigger makes;
 * with this shape the whole load takes about 40 s, inside what `npm test` can give (decision 137).
 * Each of the 200 runs is its own commit (runs are unique per repository and commit).
 * recover_ms: from the kills until every run that was active at that moment ended (the restarted
 * processes come back in restart_ms; the rest is the backlog ahead of those runs).
 *
 * Pass: every run succeeds; each run's discovery job and each task's CI job is stored once on its
 * stream (no replica published twice, also across the server kill); `pipeline.run.completed` is
 * written once per run; every task was claimed at least once and at most once per delivery, and its
 * steps carry the attempt that succeeded; no run is left non-terminal. Figures on one line:
 * {"distributed":{runs, duration_ms, runs_per_s, redeliveries, kills, restart_ms, recover_ms}}.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { deleteJobStreams, streamNames } from '../../src/queue/jobs.nats.ts';
import { killAllForgeProcesses, spawnForgeProcess, type ForgeProcess } from '../helpers/forge-process.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { gitUrlTemplate } from '../helpers/repositories.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { freePort } from '../faults/support.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';

const RUNS = 200;
const ACK_WAIT = '5s';
const REPOSITORY = 'acme/topology';
const TERMINAL = ['success', 'failed', 'cancelled'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The example's shape: three phase groups, three projects, build in one; every step `true`. */
function seedCommits(bareDir: string, count: number): string[] {
  const source = mkdtempSync(join(tmpdir(), 'forge-topology-'));
  try {
    const files: Record<string, string> = {
      '.forge/repo.cue': 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: {\n\tcheck: group: 1\n\ttest: group: 2\n\tbuild: group: 3\n}\n',
      'services/api/.forge/project.cue': 'name: "api"\nphases: {\n\tcheck: steps: [{name: "syntax", action: "script", run: "true"}]\n\ttest: steps: [{name: "unit", action: "script", run: "true"}]\n\tbuild: steps: [{name: "dist", action: "script", run: "true"}]\n}\n',
      'services/worker/.forge/project.cue': 'name: "worker"\nphases: {\n\tcheck: steps: [{name: "compile", action: "script", run: "true"}]\n\ttest: steps: [{name: "unittest", action: "script", run: "true"}]\n}\n',
      'libs/greeting/.forge/project.cue': 'name: "greeting"\nphases: {\n\tcheck: steps: [{name: "syntax", action: "script", run: "true"}]\n\ttest: steps: [{name: "unit", action: "script", run: "true"}]\n}\n',
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(source, path, '..'), { recursive: true });
      writeFileSync(join(source, path), text);
    }
    const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
    const git = (args: string[], cwd = source) => execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
    git(['init', '--quiet', '--initial-branch=main']);
    git(['add', '.']);
    git(['commit', '--quiet', '-m', 'seed']);
    // One commit per run, same tree: commit-tree in one shell loop (fast), main at the last.
    const script = `tree=$(git rev-parse HEAD^{tree}); prev=$(git rev-parse HEAD); for i in $(seq 1 ${count}); do prev=$(git commit-tree "$tree" -p "$prev" -m "run $i"); echo "$prev"; done`;
    const commits = execFileSync('sh', ['-c', script], { cwd: source, env, encoding: 'utf8' }).trim().split('\n');
    git(['update-ref', 'refs/heads/main', commits.at(-1)!]);
    mkdirSync(join(bareDir, '..'), { recursive: true });
    git(['clone', '--quiet', '--bare', source, bareDir], tmpdir());
    return commits;
  } finally {
    rmSync(source, { recursive: true, force: true });
  }
}

describe.skipIf(natsUnavailable !== undefined || postgresAdapter.unavailable !== undefined)('distributed topology: 2 servers, 3 workers, 200 runs, SIGKILLs', () => {
  let test: TestStore;
  let dataDir: string;
  let nc: NatsConnection;
  let token = '';
  let commits: string[] = [];
  const namespace = `topo${randomUUID().slice(0, 8)}.`;
  const names = streamNames(namespace);
  const ports = [0, 0];
  const servers: ForgeProcess[] = [];
  const workers: WorkerProcess[] = [];

  const startServer = (index: number, label: string): ForgeProcess => spawnForgeProcess(label, ['server'], {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), TMPDIR: tmpdir(),
    NATS_URL: TEST_NATS_URL, FORGE_NATS_NAMESPACE: namespace, FORGE_ACK_WAIT: ACK_WAIT, FORGE_DATA_DIR: dataDir,
    FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(dataDir), FORGE_LOG_LEVEL: 'warn',
    DATABASE_URL: test.url!, FORGE_PORT: String(ports[index]), FORGE_WORKERS: 'none', FORGE_RATE_LIMITS: 'off',
  }, /is serving (http:\/\/\S+)/);
  const url = (index: number) => `http://127.0.0.1:${ports[index]}`;
  const startWorker = (index: number, label: string): WorkerProcess => spawnWorkerProcess(label, workerEnv({
    name: `worker${index}`, natsUrl: TEST_NATS_URL, apiUrl: url(index % 2), dataDir, namespace, ackWait: ACK_WAIT, concurrency: 2, logLevel: 'warn',
  }));

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-topology-data-'));
    token = await (await openDevIssuer(dataDir)).sign({ sub: 'alice', roles: ['developer'] });
    commits = seedCommits(join(dataDir, 'git', `${REPOSITORY}.git`), RUNS);
    ports[0] = await freePort();
    ports[1] = await freePort();
    nc = await connect({ servers: TEST_NATS_URL });
  }, 60_000);

  afterAll(async () => {
    await killAllWorkerProcesses();
    await killAllForgeProcesses();
    await nc?.close();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** POST /v1/runs to one server, the other one if it cannot answer. */
  async function postRun(sha: string, first: number): Promise<string> {
    for (let tries = 0; ; tries++) {
      const index = (first + tries) % 2;
      try {
        const response = await fetch(`${url(index)}/v1/runs`, {
          method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ repository: REPOSITORY, branch: 'main', commit_sha: sha, trigger_type: 'push' }),
        });
        const body = await response.json() as { id?: string };
        if ((response.status === 201 || response.status === 200) && body.id) return body.id;
        throw new Error(`POST /v1/runs answered ${response.status}: ${JSON.stringify(body)}`);
      } catch (error) {
        if (tries > 20) throw error;
        await sleep(200);
      }
    }
  }

  const stream = async (type: 'discovery' | 'ci') => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names[type].stream);
    const consumer = await jsm.consumers.info(names[type].stream, names[type].consumer);
    return { stored: info.state.last_seq, delivered: consumer.delivered.consumer_seq };
  };
  const statuses = () => test.db.selectFrom('pipeline_runs').select(['id', 'status']).execute();

  it('carries every run to success once, through a server and a worker SIGKILL', async () => {
    servers.push(startServer(0, 'server0'), startServer(1, 'server1'));
    await Promise.all(servers.map((s) => s.ready));
    for (let i = 0; i < 3; i++) workers.push(startWorker(i, `worker${i}`));
    await Promise.all(workers.map((w) => w.ready));

    const started = performance.now();
    const ids: string[] = [];
    let kills = 0;
    let killedAt = 0;
    let activeAtKill: string[] = [];
    const posting = (async () => {
      for (let i = 0; i < RUNS; i += 10) {
        ids.push(...await Promise.all(commits.slice(i, i + 10).map((sha, j) => postRun(sha, (i + j) % 2))));
      }
    })();

    // Mid-load: SIGKILL server 0 and worker 1 (which reports to server 1), restart both 3 s later.
    while (ids.length < RUNS / 2) await sleep(50);
    activeAtKill = (await statuses()).filter((r) => !TERMINAL.includes(r.status)).map((r) => r.id);
    killedAt = performance.now();
    servers[0]!.signal('SIGKILL');
    workers[1]!.signal('SIGKILL');
    await Promise.all([servers[0]!.exited, workers[1]!.exited]);
    kills = 2;
    await sleep(3000);
    const restarting = performance.now();
    servers[0] = startServer(0, 'server0-restarted');
    workers[1] = startWorker(1, 'worker1-restarted');
    await Promise.all([servers[0].ready, workers[1].ready]);
    const restartMs = Math.round(performance.now() - restarting);
    await posting;

    // Every run terminal (the ones active at the kill first: the time to recover).
    let recoverMs = 0;
    // Runs advance together (group by group across all of them), so under a loaded CI machine most
    // finish near the end: the deadline is generous, and a miss says how far the tasks got.
    const deadline = Date.now() + 300_000;
    for (;;) {
      const rows = await statuses();
      const done = new Set(rows.filter((r) => TERMINAL.includes(r.status)).map((r) => r.id));
      if (recoverMs === 0 && activeAtKill.every((id) => done.has(id))) recoverMs = Math.round(performance.now() - killedAt);
      if (rows.length === RUNS && done.size === RUNS) break;
      if (Date.now() > deadline) {
        const progress = await test.db.selectFrom('task_executions').select(['status', sql<number>`count(*)::int`.as('n')]).groupBy('status').execute();
        throw new Error(`${RUNS - done.size} runs not terminal; tasks by status ${JSON.stringify(progress)}:\n${[...servers, ...workers].map((p) => p.output().split('\n').slice(-20).join('\n')).join('\n')}`);
      }
      await sleep(250);
    }
    const durationMs = Math.round(performance.now() - started);

    const runs = await test.db.selectFrom('pipeline_runs').select(['id', 'status', 'error_message']).execute();
    expect(runs).toHaveLength(RUNS);
    expect(new Set(ids).size).toBe(RUNS);
    const failed = runs.filter((r) => r.status !== 'success');
    if (failed.length > 0) {
      // What failed them: their tasks' and steps' errors, and the processes' last lines.
      const why = await test.db.selectFrom('task_executions as t').innerJoin('phase_executions as p', 'p.id', 't.phase_execution_id')
        .leftJoin('step_executions as s', 's.task_execution_id', 't.id')
        .select(['p.pipeline_run_id', 't.project_name', 't.status', 't.error', 't.attempt', 's.step_name', 's.status as step_status', 's.exit_code'])
        .where('p.pipeline_run_id', 'in', failed.map((r) => r.id)).where('t.status', '!=', 'success').execute();
      console.log(JSON.stringify({ failed, why }, null, 1));
      console.log([...servers, ...workers].map((p) => p.output().split('\n').slice(-40).join('\n')).join('\n'));
    }
    expect(failed).toEqual([]);

    // pipeline.run.completed once per run.
    const completed = await test.db.selectFrom('event_outbox')
      .select([sql<string>`envelope->'data'->>'run_id'`.as('run_id'), sql<number>`count(*)::int`.as('n')])
      .where('event_type', '=', 'pipeline.run.completed').groupBy(sql`envelope->'data'->>'run_id'`).execute();
    expect(completed).toHaveLength(RUNS);
    expect(completed.filter((c) => c.n !== 1)).toEqual([]);

    // Jobs: each published (stored) once, across both replicas and the server kill.
    const tasks = await test.db.selectFrom('task_executions').select(['id', 'status', 'attempt']).execute();
    expect(tasks).toHaveLength(RUNS * 7);
    expect(tasks.filter((t) => t.status !== 'success')).toEqual([]);
    const discovery = await stream('discovery');
    const ci = await stream('ci');
    expect(discovery.stored).toBe(RUNS);
    expect(ci.stored).toBe(tasks.length);

    // Claims: once per attempt, never more attempts than deliveries; steps carry the task's attempt.
    expect(tasks.filter((t) => t.attempt < 1)).toEqual([]);
    const attempts = tasks.reduce((n, t) => n + t.attempt, 0);
    expect(attempts).toBeLessThanOrEqual(ci.delivered);
    const steps = await test.db.selectFrom('step_executions as s').innerJoin('task_executions as t', 't.id', 's.task_execution_id')
      .select(['s.status', 's.attempt', 't.attempt as task_attempt']).execute();
    expect(steps).toHaveLength(RUNS * 7);
    expect(steps.filter((s) => s.status !== 'success' || s.attempt !== s.task_attempt)).toEqual([]);

    const redeliveries = discovery.delivered - discovery.stored + ci.delivered - ci.stored;
    console.log(JSON.stringify({
      distributed: {
        runs: RUNS, servers: 2, workers: 3, tasks: tasks.length, duration_ms: durationMs, runs_per_s: Number((RUNS / (durationMs / 1000)).toFixed(2)),
        redeliveries, retried_tasks: tasks.filter((t) => t.attempt > 1).length, kills, restart_ms: restartMs, recover_ms: recoverMs, active_at_kill: activeAtKill.length,
      },
    }));
  }, 420_000);
});

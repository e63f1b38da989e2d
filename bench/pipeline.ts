/**
 * bench:pipeline — pipeline execution latency and throughput on real PostgreSQL and NATS JetStream,
 * with the raw NATS request-reply, PostgreSQL INSERT and process-spawn costs measured in the same run.
 *
 * Composed in-process as test/worker/pipeline.test.ts does: the Fastify API over HTTP on 127.0.0.1,
 * the dispatcher and warm discovery + CI workers (started before anything is measured) on their own
 * NATS connections, workers reporting through the HTTP API with a service-account token, a git cache
 * over bare repositories seeded in a temp dir, real CUE discovery, and `script` steps that spawn
 * `/bin/sh -c true` (no-op, but each one is a real process whose status goes through the API).
 *
 * Measured:
 *  - run creation (client, before POST /v1/runs) → first step `running` (its started_at), one run at a time;
 *  - gap between consecutive steps of a task (completed_at of step k → started_at of step k+1);
 *  - phase barrier: last task of group N completed → first task of group N+1 running (claimed);
 *  - fail-fast: the failing step's process exits → its running sibling's shell gets SIGTERM
 *    (both stamped by the steps themselves with `date +%s%N`), and → the sibling's log is stored;
 *  - sustained steps/s with BENCH_RUNS_IN_FLIGHT runs of 16 tasks × 4 steps kept in flight.
 * Settings: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), NATS_URL (default
 * nats://127.0.0.1:4222), BENCH_SECONDS (sustained window, default 60), BENCH_LATENCY_RUNS (60),
 * BENCH_FAILFAST_RUNS (20), BENCH_RUNS_IN_FLIGHT (8), BENCH_WORKER_CONCURRENCY (CI jobs at once, 64).
 * Prints figures only; nothing here asserts timings.
 */
import { spawn } from 'node:child_process';
import { Session } from 'node:inspector';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { buildApp } from '../src/api/app.ts';
import { openDevIssuer } from '../src/auth/dev-issuer.ts';
import { DEFAULT_POLICIES } from '../src/domain/policy.ts';
import type { EngineContext } from '../src/engine/context.ts';
import { startDispatcher } from '../src/engine/dispatcher.ts';
import { startEventRelay } from '../src/engine/events.ts';
import { systemClock } from '../src/engine/ports.ts';
import { getRunTree, type RunTree } from '../src/engine/runs.ts';
import type { WorkerType } from '../src/domain/jobs.ts';
import { EventBus } from '../src/queue/events.memory.ts';
import { connectNatsJobs, deleteJobStreams } from '../src/queue/jobs.nats.ts';
import { createFileObjectStore } from '../src/store/object-store.files.ts';
import { openStore } from '../src/store/store.ts';
import { createGitWorkspaces, seedRepository } from '../src/worker/git-workspace.ts';
import { httpInternalApi } from '../src/worker/internal-api.ts';
import { startWorkers } from '../src/worker/worker.ts';
import http from 'node:http';
import { startTracing } from '../src/bin/telemetry.ts';
import { traceparentOf } from '../src/lib/tracing.ts';
import { instrumentQueue } from '../src/queue/instrumented.ts';
import { parseTelemetrySettings } from '../src/settings/settings.ts';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 60);
const FAILFAST_RUNS = Number(process.env.BENCH_FAILFAST_RUNS ?? 20);
const RUNS_IN_FLIGHT = Number(process.env.BENCH_RUNS_IN_FLIGHT ?? 8);
const WORKER_CONCURRENCY = Number(process.env.BENCH_WORKER_CONCURRENCY ?? 64);
/**
 * Where the workers run: `split` (default), two `forge worker` processes, `--type discovery` and
 * `--type ci`; `process`, one `forge worker` for both types; `in-process`, beside the API and the
 * dispatcher, as the end-to-end test composes them.
 */
const WORKERS = process.env.BENCH_WORKERS ?? 'split';
/**
 * BENCH_TRACES=1: the instrumentation on, as in production with traces: spans of the API, the
 * dispatcher's publishes and the workers' jobs and steps exported (OTLP/HTTP JSON, batched) to a
 * collector this process plays (it counts and drops them), and the dispatcher's queue instrumented.
 * Compare its figures with a run without it.
 */
const TRACES = process.env.BENCH_TRACES === '1';
const RAW_SAMPLES = 2000;
/** Commits seeded for the sustained window: enough for this many steps/s over BENCH_SECONDS. */
const SEED_FOR_STEPS_PER_S = 800;

const REPO_CUE = `forgeVersion: "0.1.0"
tagging: strategy: "monorepo"
phases: {
	check: {group: 1}
	test: {group: 2}
}
`;

/** A project.cue whose phases run the given shell commands as steps s1, s2, … */
function project(name: string, phases: Record<string, string[]>): string {
  const body = Object.entries(phases).map(([phase, runs]) =>
    `\t${phase}: steps: [${runs.map((run, i) => `{name: "s${i + 1}", action: "script", run: ${JSON.stringify(run)}}`).join(', ')}]`).join('\n');
  return `name: "${name}"\nphases: {\n${body}\n}\n`;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
interface Stats { n: number; p50: number; p99: number; max: number }
function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}
const ms = (d: Date | null) => d?.getTime() ?? NaN;

/** Seeds `count` commits of one repository: the same projects, each commit with its own `seed.txt`. */
async function seedCommits(gitRoot: string, repository: string, files: Record<string, string>, count: number): Promise<string[]> {
  const source = mkdtempSync(join(tmpdir(), 'forge-bench-src-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(source, path, '..'), { recursive: true });
    writeFileSync(join(source, path), text);
  }
  const shas: string[] = [];
  for (let i = 0; i < count; i++) {
    writeFileSync(join(source, 'seed.txt'), `${i}\n`);
    shas.push((await seedRepository({ bareDir: join(gitRoot, `${repository}.git`), sourceDir: source, message: `seed ${i}` })).commitSha);
  }
  rmSync(source, { recursive: true, force: true });
  return shas;
}

async function rawNats(): Promise<Stats> {
  const responder = await connect({ servers: NATS_URL, name: 'bench-responder' });
  const requester = await connect({ servers: NATS_URL, name: 'bench-requester' });
  try {
    const subject = `bench.echo.${randomUUID()}`;
    responder.subscribe(subject, { callback: (_error, msg) => void msg.respond(msg.data) });
    await responder.flush();
    const payload = JSON.stringify({ job_id: randomUUID(), ok: true, result: { status: 'success' } });
    const samples: number[] = [];
    for (let i = 0; i < RAW_SAMPLES + 200; i++) {
      const start = performance.now();
      await requester.request(subject, payload, { timeout: 5000 });
      if (i >= 200) samples.push(performance.now() - start);
    }
    return stats(samples);
  } finally {
    await requester.close();
    await responder.close();
  }
}

async function rawInsert(url: string): Promise<Stats> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('CREATE TABLE raw_steps (id uuid PRIMARY KEY, task_id uuid NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL)');
    const samples: number[] = [];
    const task = randomUUID();
    for (let i = 0; i < RAW_SAMPLES + 200; i++) {
      const start = performance.now();
      await client.query({ name: 'raw_insert', text: 'INSERT INTO raw_steps (id, task_id, status, started_at) VALUES ($1, $2, $3, now())', values: [randomUUID(), task, 'running'] });
      if (i >= 200) samples.push(performance.now() - start);
    }
    await client.query('DROP TABLE raw_steps');
    return stats(samples);
  } finally {
    await client.end();
  }
}

/**
 * What a no-op step costs at the least: Node spawning `/bin/sh -c true` and seeing it close. Also
 * the CPU per spawn, of this process (fork) and of the shell, from /proc.
 */
async function rawSpawn(): Promise<Stats & { parentCpu: number; childCpu: number }> {
  const samples: number[] = [];
  let before = processCpu(process.pid);
  for (let i = 0; i < 320; i++) {
    const start = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', 'true'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
      child.on('error', reject);
      child.on('close', () => resolve());
    });
    if (i === 19) before = processCpu(process.pid);
    if (i >= 20) samples.push(performance.now() - start);
  }
  const after = processCpu(process.pid);
  return { ...stats(samples), parentCpu: (after.own - before.own) / samples.length, childCpu: (after.children - before.children) / samples.length };
}

/**
 * BENCH_PROFILE=<dir>: a CPU profile of this process over the sustained window (the worker
 * processes get Node's own flags, so `node --cpu-prof bin/run-ts.mjs …` profiles them whole).
 */
const PROFILE_DIR = process.env.BENCH_PROFILE;
async function profileFrom(at: number): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  const post = (method: string) => new Promise<unknown>((resolve, reject) => session.post(method, (error, result) => (error ? reject(error) : resolve(result))));
  await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    mkdirSync(PROFILE_DIR!, { recursive: true });
    writeFileSync(join(PROFILE_DIR!, `api-dispatcher-${process.pid}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/** CPU time of a process from /proc, ms: its own threads, and its children it has waited for (steps, git). */
function processCpu(pid: number): { own: number; children: number } {
  try {
    // Fields after the command name: state is field 3, utime/stime/cutime/cstime are 14-17.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ').map(Number);
    const tick = 10; // ms per clock tick (CLK_TCK 100 on Linux)
    return { own: ((fields[11] ?? 0) + (fields[12] ?? 0)) * tick, children: ((fields[13] ?? 0) + (fields[14] ?? 0)) * tick };
  } catch {
    return { own: NaN, children: NaN }; // gone, or not Linux
  }
}

/** What the workers of one process get from the bench. */
interface WorkerRole {
  baseUrl: string;
  token: string;
  namespace: string;
  dir: string;
  gitRoot: string;
  concurrency: number;
  types: WorkerType[];
}

/** The workers in this process (BENCH_WORKERS=in-process), warm once this resolves. */
interface Workers {
  /** Its own process, or undefined when the workers run in this one. */
  pid?: number | undefined;
  label: string;
  stop(): Promise<void>;
}

async function openWorkers(role: WorkerRole): Promise<Workers> {
  const objects = createFileObjectStore(join(role.dir, 'objects'));
  const queue = await connectNatsJobs(NATS_URL, { namespace: role.namespace, objects, name: `bench-worker-${role.types.join('-')}` });
  const workers = await startWorkers({
    queue, objects,
    api: httpInternalApi({ baseUrl: role.baseUrl, token: async () => role.token }),
    workspaces: createGitWorkspaces({ cacheDir: join(role.dir, `cache-${role.types.join('-')}`), urlTemplate: `file://${role.gitRoot}/{repository}.git` }),
  }, role.types, role.concurrency);
  return {
    label: `${role.types.join(' + ')} workers`,
    async stop() {
      await workers.stop();
      await queue.close();
    },
  };
}

/**
 * Starts `forge worker` for the role's types; resolves when it says it is ready. Node's flags go
 * along (`node --cpu-prof bin/run-ts.mjs bench/pipeline.ts` profiles the workers too).
 */
async function spawnWorkers(role: WorkerRole): Promise<Workers> {
  const child = spawn(process.execPath, [...process.execArgv, 'bin/forge.mjs', 'worker'], {
    env: {
      ...process.env, NATS_URL, FORGE_NATS_NAMESPACE: role.namespace, FORGE_URL: role.baseUrl, FORGE_WORKER_TOKEN: role.token,
      FORGE_WORKER_TYPES: role.types.join(','), FORGE_WORKER_CONCURRENCY: String(role.concurrency), FORGE_DATA_DIR: role.dir,
      FORGE_WORKER_CACHE_DIR: join(role.dir, `cache-${role.types.join('-')}`), FORGE_GIT_URL_TEMPLATE: `file://${role.gitRoot}/{repository}.git`,
      FORGE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`forge worker exited with ${code}`)));
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      if (text.includes('forge worker')) resolve();
    });
  });
  return {
    pid: child.pid,
    label: `forge worker --type ${role.types.join(',')}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function main() {
  const dbName = `forge_bench_pipeline_${Date.now()}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const dir = mkdtempSync(join(tmpdir(), 'forge-bench-pipeline-'));
  const gitRoot = join(dir, 'git');
  const markers = join(dir, 'markers');
  mkdirSync(markers);
  const namespace = `bench${randomUUID().slice(0, 8)}.`;
  const cleanups: (() => Promise<unknown>)[] = [];
  const collected = { spans: 0, requests: 0 };
  if (TRACES) {
    const sink = http.createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => {
        collected.requests++;
        collected.spans += (body.match(/"spanId"/g) ?? []).length;
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(sink.address() as { port: number }).port}/v1/traces`;
    // The spawned workers read these from the environment, like any `forge worker`.
    process.env.FORGE_TRACES_EXPORTER = 'otlp';
    process.env.FORGE_OTLP_ENDPOINT = endpoint;
    const tracing = await startTracing(parseTelemetrySettings({}, process.env), 'forge-api');
    cleanups.push(() => new Promise((resolve) => sink.close(resolve)), () => tracing.shutdown());
  }

  try {
    // --- Forge, composed as in test/worker/pipeline.test.ts --------------------------------------
    const store = await openStore({ databaseUrl: dbUrl.toString() });
    cleanups.push(() => store.close());
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const issuer = await openDevIssuer(dataDir);
    const bus = new EventBus();
    const objectsDir = join(dir, 'objects');
    const objects = createFileObjectStore(objectsDir);
    const relayRef: { nudge?: () => void } = {};
    const ctx: EngineContext = {
      store, clock: systemClock, eventsWritten: () => relayRef.nudge?.(),
      environments: DEFAULT_POLICIES.map((p) => ({ ...p })), approvalTtlMs: 24 * 3600_000,
      releaseRegistry: 'registry.bench/releases', runTimeoutMs: 24 * 3600_000, runChanged: () => undefined, objects,
      ...(TRACES ? { telemetry: { traceparent: () => traceparentOf(), stepFinished: () => undefined } } : {}),
    };
    const app = await buildApp({ ctx, verifier: issuer.verifier, bus, rateLimits: 'off', logLevel: 'warn' });
    const relay = startEventRelay(store, bus, { intervalMs: 200 });
    relayRef.nudge = () => relay.nudge();
    cleanups.push(() => app.close(), () => relay.stop());
    // Counted for the figures per step: statements sent to PostgreSQL, requests the API served.
    const counts = { sql: 0, http: 0 };
    const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      counts.sql++;
      return query.apply(this, args);
    } as typeof pg.Client.prototype.query;
    app.server.on('request', () => void counts.http++);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

    const natsDispatcherQueue = await connectNatsJobs(NATS_URL, { namespace, objects, name: 'bench-dispatcher' });
    const dispatcherQueue = TRACES
      ? instrumentQueue(natsDispatcherQueue, { runTraceContext: async (runId) => (await store.getRun(runId))?.trace_context })
      : natsDispatcherQueue;
    cleanups.push(() => deleteJobStreams(NATS_URL, namespace), () => dispatcherQueue.close());
    const dispatcher = await startDispatcher(ctx, { queue: dispatcherQueue, objects, sweepMs: 1000 });
    cleanups.push(() => dispatcher.stop());
    ctx.runChanged = (id) => dispatcher.nudge(id);
    const role: WorkerRole = {
      baseUrl, token: await issuer.sign({ sub: 'forge-worker', roles: ['service-account'] }),
      namespace, dir, gitRoot, concurrency: WORKER_CONCURRENCY, types: ['discovery', 'ci'],
    };
    const workers = WORKERS === 'in-process' ? [await openWorkers(role)]
      : WORKERS === 'process' ? [await spawnWorkers(role)]
        : await Promise.all([spawnWorkers({ ...role, types: ['discovery'], concurrency: 4 }), spawnWorkers({ ...role, types: ['ci'] })]);
    cleanups.push(() => Promise.all(workers.map((w) => w.stop())));
    const developer = await issuer.sign({ sub: 'bench', roles: ['developer'] });

    // Completion comes from the relayed `pipeline.run.completed` events (no polling).
    const completed = new Map<string, string>();
    const waiting = new Map<string, (status: string) => void>();
    bus.subscribe((event) => {
      if (event.event_type !== 'pipeline.run.completed') return;
      const { run_id: runId, status } = event.data as { run_id: string; status: string };
      completed.set(runId, status);
      waiting.get(runId)?.(status);
    });
    const finished = (runId: string, timeoutMs = 120_000) => new Promise<string>((resolve, reject) => {
      const done = completed.get(runId);
      if (done) return resolve(done);
      const timer = setTimeout(() => reject(new Error(`run ${runId} did not finish within ${timeoutMs} ms`)), timeoutMs);
      waiting.set(runId, (status) => {
        clearTimeout(timer);
        waiting.delete(runId);
        resolve(status);
      });
    });
    const createRun = async (repository: string, sha: string): Promise<{ id: string; postedAt: number }> => {
      const postedAt = Date.now();
      const res = await fetch(`${baseUrl}/v1/runs`, {
        method: 'POST', headers: { authorization: `Bearer ${developer}`, 'content-type': 'application/json' },
        body: JSON.stringify({ repository, branch: 'main', commit_sha: sha, trigger_type: 'push' }),
      });
      if (res.status !== 201) throw new Error(`POST /v1/runs: ${res.status} ${await res.text()}`);
      return { id: ((await res.json()) as { id: string }).id, postedAt };
    };

    // --- repositories ----------------------------------------------------------------------------
    const noop = (n: number) => Array.from({ length: n }, () => 'true');
    const latencyFiles = {
      '.forge/repo.cue': REPO_CUE,
      'a/.forge/project.cue': project('a', { check: noop(4), test: noop(4) }),
      'b/.forge/project.cue': project('b', { check: noop(4), test: noop(4) }),
    };
    const failFiles = {
      '.forge/repo.cue': REPO_CUE,
      // The failing step waits (at most 5 s) until its sibling runs, so there is a sibling to stop.
      'a/.forge/project.cue': project('a', {
        test: [`i=0; while [ ! -e ${markers}/$FORGE_RUN_ID.ready ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; sleep 0.05; date +%s%N > ${markers}/$FORGE_RUN_ID.fail; exit 1`],
      }),
      'b/.forge/project.cue': project('b', {
        test: [`trap 'date +%s%N > ${markers}/$FORGE_RUN_ID.term; exit 143' TERM; touch ${markers}/$FORGE_RUN_ID.ready; sleep 30 & wait`],
      }),
    };
    const LOAD_PROJECTS = 8;
    const loadFiles: Record<string, string> = { '.forge/repo.cue': REPO_CUE };
    for (let p = 0; p < LOAD_PROJECTS; p++) loadFiles[`p${p}/.forge/project.cue`] = project(`p${p}`, { check: noop(4), test: noop(4) });
    const loadStepsPerRun = LOAD_PROJECTS * 2 * 4;
    const loadCommits = Math.ceil((SEED_FOR_STEPS_PER_S * SECONDS) / loadStepsPerRun) + RUNS_IN_FLIGHT * 2;
    const seedStart = performance.now();
    const latencyShas = await seedCommits(gitRoot, 'bench/latency', latencyFiles, LATENCY_RUNS + 5);
    const failShas = await seedCommits(gitRoot, 'bench/failfast', failFiles, FAILFAST_RUNS + 1);
    const loadShas = await seedCommits(gitRoot, 'bench/load', loadFiles, loadCommits);
    console.error(`seeded ${latencyShas.length + failShas.length + loadShas.length} commits in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);

    // --- raw baselines (idle machine, same servers) -----------------------------------------------
    const natsRaw = await rawNats();
    const pgRaw = await rawInsert(dbUrl.toString());
    const spawnRaw = await rawSpawn();

    // --- warm-up: CUE loaded, git caches filled, statements prepared -----------------------------
    for (const sha of latencyShas.slice(0, 3)) await finished((await createRun('bench/latency', sha)).id);
    await finished((await createRun('bench/failfast', failShas[0]!)).id);
    for (const sha of loadShas.slice(0, 2)) await finished((await createRun('bench/load', sha)).id);
    let loadNext = 2;

    // --- 1. latency, one run at a time ------------------------------------------------------------
    const firstStep: number[] = [];
    const firstStepParts = { toDiscovery: [] as number[], discovery: [] as number[], toClaim: [] as number[], claimToStep: [] as number[] };
    const idleTrees: RunTree[] = [];
    for (const sha of latencyShas.slice(3, 3 + LATENCY_RUNS)) {
      const { id, postedAt } = await createRun('bench/latency', sha);
      const status = await finished(id);
      if (status !== 'success') throw new Error(`latency run ${id} ended ${status}`);
      const tree = await getRunTree(ctx, id);
      idleTrees.push(tree);
      const tasks = tree.phases.flatMap((p) => p.tasks);
      const steps = tasks.flatMap((t) => t.steps);
      const first = Math.min(...steps.map((s) => ms(s.started_at)));
      const claim = Math.min(...tasks.map((t) => ms(t.started_at)));
      firstStep.push(first - postedAt);
      const published = Math.min(...tasks.map((t) => ms(t.dispatched_at)));
      firstStepParts.toDiscovery.push(ms(tree.discovery_dispatched_at) - postedAt);
      firstStepParts.discovery.push(published - ms(tree.discovery_dispatched_at));
      firstStepParts.toClaim.push(claim - published);
      firstStepParts.claimToStep.push(first - claim);
    }

    // --- 2. fail-fast, one run at a time ----------------------------------------------------------
    const failToTerm: number[] = [];
    const reportToTerm: number[] = [];
    const failToLogStored: number[] = [];
    for (const sha of failShas.slice(1)) {
      const { id } = await createRun('bench/failfast', sha);
      const status = await finished(id, 60_000);
      const tree = await getRunTree(ctx, id);
      const steps = tree.phases.flatMap((p) => p.tasks.map((t) => ({ project: t.project_name, step: t.steps[0]! })));
      const failing = steps.find((s) => s.project === 'a')!.step;
      const sibling = steps.find((s) => s.project === 'b')!.step;
      const termFile = join(markers, `${id}.term`);
      const siblingLog = sibling.logs_s3_key ? join(objectsDir, sibling.logs_s3_key) : '';
      for (let i = 0; i < 100 && !(existsSync(termFile) && existsSync(siblingLog)); i++) await new Promise((r) => setTimeout(r, 50));
      const stamp = (file: string) => (existsSync(file) ? Number(BigInt(readFileSync(file, 'utf8').trim()) / 1000n) / 1000 : NaN);
      const failedAt = stamp(join(markers, `${id}.fail`));
      const termAt = stamp(termFile);
      if (status !== 'failed' || Number.isNaN(failedAt) || Number.isNaN(termAt)) {
        console.error(`fail-fast run ${id}: status ${status}, failing step ${failing.status}, sibling ${sibling.status}; no marker, skipped`);
        continue;
      }
      failToTerm.push(termAt - failedAt);
      reportToTerm.push(termAt - ms(failing.completed_at));
      // The files object store renames the whole log into place: its mtime is when it was stored.
      if (existsSync(siblingLog)) failToLogStored.push(Number(statSync(siblingLog, { bigint: true }).mtimeNs / 1000n) / 1000 - failedAt);
    }

    // --- 3. sustained throughput ------------------------------------------------------------------
    const loadRuns: string[] = [];
    let stop = false;
    let errors = 0;
    const windowStart = Date.now() + 3000; // the first 3 s fill the pipeline
    const windowEnd = windowStart + SECONDS * 1000;
    const slot = async () => {
      while (!stop && loadNext < loadShas.length) {
        const sha = loadShas[loadNext++]!;
        try {
          const { id } = await createRun('bench/load', sha);
          loadRuns.push(id);
          if ((await finished(id)) !== 'success') {
            if (errors++ < 3) {
              const tree = await getRunTree(ctx, id);
              const tasks = tree.phases.flatMap((p) => p.tasks).filter((t) => t.error && !t.error.includes('fail-fast'));
              console.error(`load run ${id} ended ${tree.status}: ${tree.error_message ?? tasks.map((t) => `${t.project_name}: ${t.error}`).join('; ')}`);
            }
          }
        } catch (error) {
          errors++;
          console.error((error as Error).message);
        }
      }
    };
    const slots = Array.from({ length: RUNS_IN_FLIGHT }, slot);
    const profile = PROFILE_DIR ? await profileFrom(windowStart) : undefined;
    await new Promise((r) => setTimeout(r, windowStart - Date.now()));
    const countsAtStart = { ...counts };
    // CPU spent per process over the window: this one, the worker processes, our PostgreSQL backends, nats-server.
    const backendPids = (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [dbName])).rows.map((r) => r.pid);
    const natsPid = Number(readdirSync('/proc').find((p) => /^\d+$/.test(p) && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nats-server') ?? NaN);
    const cpuSnapshot = () => ({
      self: process.cpuUsage(),
      workers: workers.map((w) => (w.pid === undefined ? undefined : processCpu(w.pid))),
      postgres: backendPids.reduce((sum, pid) => sum + processCpu(pid).own, 0),
      nats: Number.isNaN(natsPid) ? NaN : processCpu(natsPid).own,
    });
    const cpuAtStart = cpuSnapshot();
    // What the API's connections do meanwhile: sampled from pg_stat_activity every 100 ms.
    const backends = { samples: 0, active: 0, lockWait: 0, maxLockWait: 0 };
    const sampler = setInterval(() => {
      void admin.query<{ active: number; lock_wait: number }>(
        `SELECT count(*) FILTER (WHERE state = 'active')::int AS active,
                count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory')::int AS lock_wait
           FROM pg_stat_activity WHERE datname = $1`, [dbName]).then(({ rows: [row] }) => {
        if (!row) return;
        backends.samples++;
        backends.active += row.active;
        backends.lockWait += row.lock_wait;
        backends.maxLockWait = Math.max(backends.maxLockWait, row.lock_wait);
      }, () => undefined);
    }, 100);
    await new Promise((r) => setTimeout(r, windowEnd - Date.now()));
    clearInterval(sampler);
    const windowCounts = { sql: counts.sql - countsAtStart.sql, http: counts.http - countsAtStart.http };
    const cpuAtEnd = cpuSnapshot();
    await profile?.();
    stop = true;
    const ranOut = loadNext >= loadShas.length;
    await Promise.all(slots);
    const loadTrees = await Promise.all(loadRuns.map((id) => getRunTree(ctx, id)));

    // --- figures ----------------------------------------------------------------------------------
    const stepGaps = (trees: RunTree[]) => trees.flatMap((tree) => tree.phases.flatMap((p) => p.tasks.flatMap((task) =>
      task.steps.slice(1).map((step, k) => ms(step.started_at) - ms(task.steps[k]!.completed_at)))));
    /** Last task of group N completed → first task of group N+1 claimed (`to: 'dispatched'`: published). */
    const barriers = (trees: RunTree[], to: 'started' | 'dispatched' = 'started') => trees.flatMap((tree) => {
      const groups = [...new Set(tree.phases.map((p) => p.group_number))].sort((a, b) => a - b);
      return groups.slice(1).map((group, k) => {
        const before = tree.phases.filter((p) => p.group_number === groups[k]).flatMap((p) => p.tasks);
        const after = tree.phases.filter((p) => p.group_number === group).flatMap((p) => p.tasks);
        return Math.min(...after.map((t) => ms(to === 'started' ? t.started_at : t.dispatched_at))) - Math.max(...before.map((t) => ms(t.completed_at)));
      });
    });
    const loadSteps = loadTrees.flatMap((tree) => tree.phases.flatMap((p) => p.tasks.flatMap((t) => t.steps)));
    const inWindow = loadSteps.filter((s) => s.status === 'success' && ms(s.completed_at) >= windowStart && ms(s.completed_at) < windowEnd).length;
    const stepsPerSecond = inWindow / SECONDS;
    const runDurations = loadTrees.filter((t) => t.completed_at).map((t) => ms(t.completed_at) - ms(t.created_at));

    const version = (await admin.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version;
    console.log(`\nbench:pipeline — PostgreSQL ${version}, NATS ${NATS_URL}, Node ${process.version}; API and dispatcher in one process, workers ${WORKERS === 'in-process' ? 'in it too' : WORKERS === 'process' ? 'in another' : 'in two more (discovery, CI)'},`);
    console.log(`CI worker concurrency ${WORKER_CONCURRENCY}; no-op steps spawn /bin/sh -c true; traces ${TRACES ? `ON (OTLP/HTTP to a local sink: ${collected.spans} spans in ${collected.requests} exports so far)` : 'off (BENCH_TRACES=1 turns them on)'}\n`);
    const fmt = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(1)).padStart(8);
    const row = (name: string, s: Stats, target = '') =>
      console.log(`${name.padEnd(58)} ${String(s.n).padStart(6)} ${fmt(s.p50)} ${fmt(s.p99)} ${fmt(s.max)}  ${target}`);
    console.log(`${'measurement (ms)'.padEnd(58)} ${'n'.padStart(6)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}  target`);
    console.log('-'.repeat(104));
    row('run created → first step running (1 run at a time)', stats(firstStep), 'p99 ≤ 250');
    row('  run created → discovery job published', stats(firstStepParts.toDiscovery));
    row('  discovery job published → CI jobs published', stats(firstStepParts.discovery));
    row('  CI jobs published → first task claimed', stats(firstStepParts.toClaim));
    row('  first task claimed → first step running', stats(firstStepParts.claimToStep));
    row('step gap, step k done → step k+1 running (idle)', stats(stepGaps(idleTrees)), 'p99 ≤ 50');
    row('step gap under sustained load', stats(stepGaps(loadTrees)), 'p99 ≤ 50');
    row('phase barrier, group N done → group N+1 task running (idle)', stats(barriers(idleTrees)));
    row('phase barrier under sustained load', stats(barriers(loadTrees)));
    row('  group N done → group N+1 jobs published, under load', stats(barriers(loadTrees, 'dispatched')));
    row('fail-fast: failing step exits → sibling gets SIGTERM', stats(failToTerm), '≤ 500');
    row('  failing step reported (completed_at) → sibling SIGTERM', stats(reportToTerm));
    row('  failing step exits → sibling log stored', stats(failToLogStored));
    row(`run duration under load (${LOAD_PROJECTS * 2} tasks × 4 steps)`, stats(runDurations));
    row('raw NATS request-reply (core NATS, 1 in flight)', natsRaw);
    row('raw PostgreSQL single-row INSERT (autocommit, prepared)', pgRaw);
    row('raw spawn /bin/sh -c true from Node', spawnRaw);

    console.log(`\nraw spawn CPU: ${spawnRaw.parentCpu.toFixed(2)} ms in the spawning Node process (fork), ${spawnRaw.childCpu.toFixed(2)} ms in the shell, per spawn`);
    console.log(`sustained: ${stepsPerSecond.toFixed(0)} steps/s over ${SECONDS} s (target ≥ 500), ${RUNS_IN_FLIGHT} runs in flight, ` +
      `${loadRuns.length} runs started, ${errors} failed${ranOut ? ', ran out of seeded commits' : ''}`);
    console.log(`per step in the window: ${(windowCounts.sql / inWindow).toFixed(1)} SQL statements (BEGIN/COMMIT included), ${(windowCounts.http / inWindow).toFixed(2)} API requests`);
    const perStep = (ms: number) => (ms / inWindow).toFixed(2);
    const selfMs = (cpuAtEnd.self.user + cpuAtEnd.self.system - cpuAtStart.self.user - cpuAtStart.self.system) / 1000;
    const cpuRows = [
      [`API + dispatcher${WORKERS === 'in-process' ? ' + workers' : ''} (this process; its children: seeding only)`, perStep(selfMs)],
      ...workers.flatMap((w, i) => {
        const [a, b] = [cpuAtStart.workers[i], cpuAtEnd.workers[i]];
        return a && b ? [[w.label, perStep(b.own - a.own)], [`  processes it started (sh, git)`, perStep(b.children - a.children)]] : [];
      }),
      [`PostgreSQL backends of this database (${backendPids.length})`, perStep(cpuAtEnd.postgres - cpuAtStart.postgres)],
      ['nats-server (whole server, shared)', perStep(cpuAtEnd.nats - cpuAtStart.nats)],
    ];
    console.log(`CPU ms per step in the window (${SECONDS} s, 10 ms resolution; 2 cores give 4 ms per step at 500 steps/s):`);
    for (const [name, value] of cpuRows) console.log(`  ${String(name).padEnd(62)} ${String(value).padStart(7)}`);
    console.log(`API's PostgreSQL connections (pool of 20) in the window: ${(backends.active / backends.samples).toFixed(1)} active on average, ` +
      `${(backends.lockWait / backends.samples).toFixed(1)} of them waiting on a run's advisory lock (max ${backends.maxLockWait})`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error('cleanup:', (error as Error).message));
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

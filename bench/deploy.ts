/**
 * bench:deploy — deployments from request to active: POST /v1/deployments → the dispatcher claims
 * the target's oldest pending deployment → a deployment job (in-process queue) → the git writer
 * commits and pushes the ReleasePointer to a bare repository → the reply activates it. On
 * PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; a fresh database
 * is created and dropped) with the real git CLI.
 *
 *   one target, one after another   BENCH_SEQUENTIAL deployments (default 30), each awaited
 *   many targets at once             BENCH_TARGETS deployments (default 20) of different projects
 *                                    to one environment, requested together (batched pushes)
 *   one target, requested together   BENCH_TARGETS deployments of one project at once (queued per target)
 *
 * Baselines from the same run: a raw `git commit` + `git push` of one file to a bare repository (no
 * Forge), and a raw PostgreSQL round trip (`SELECT 1`). Prints figures only; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { buildApp } from '../src/api/app.ts';
import { openDevIssuer } from '../src/auth/dev-issuer.ts';
import { DEFAULT_POLICIES } from '../src/domain/policy.ts';
import type { EngineContext } from '../src/engine/context.ts';
import { startDispatcher, type Dispatcher } from '../src/engine/dispatcher.ts';
import { systemClock } from '../src/engine/ports.ts';
import { createGitGitOps } from '../src/gitops/git.gitops.ts';
import { EventBus } from '../src/queue/events.memory.ts';
import { createMemoryJobQueue, MemoryBroker } from '../src/queue/jobs.memory.ts';
import { openStore } from '../src/store/store.ts';
import { deploymentHandler } from '../src/worker/deployment-handler.ts';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 30);
const TARGETS = Number(process.env.BENCH_TARGETS ?? 20);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
function summary(name: string, ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${name.padEnd(60)} ${String(sorted.length).padStart(5)} ${percentile(sorted, 50).toFixed(1).padStart(9)} ${percentile(sorted, 95).toFixed(1).padStart(9)} ${(sorted.at(-1) ?? NaN).toFixed(1).padStart(9)}`;
}
const gitEnv = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' }).trim();

const sha = () => createHash('sha1').update(randomUUID()).digest('hex');
const dbName = `forge_bench_deploy_${Date.now()}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const scratch = mkdtempSync(join(tmpdir(), 'forge-bench-deploy-'));
const dataDir = join(scratch, 'data');
mkdirSync(dataDir);
const store = await openStore({ databaseUrl: dbUrl.toString() });
const issuer = await openDevIssuer(dataDir);
const gitops = await createGitGitOps({ dataDir });
const ref: { dispatcher?: Dispatcher } = {};
const ctx: EngineContext = {
  store, clock: systemClock, eventsWritten: () => undefined, environments: DEFAULT_POLICIES.map((p) => ({ ...p })),
  approvalTtlMs: 24 * 3600_000, releaseRegistry: 'registry.bench/releases', runTimeoutMs: 24 * 3600_000,
  runChanged: (id) => ref.dispatcher?.nudge(id),
};
const app = await buildApp({ ctx, verifier: issuer.verifier, bus: new EventBus(), rateLimits: 'off', logLevel: 'warn' });
const broker = new MemoryBroker();
const queues = [createMemoryJobQueue(broker), createMemoryJobQueue(broker)] as const;
ref.dispatcher = await startDispatcher(ctx, { queue: queues[0] });
const consumer = await queues[1].consume('release', deploymentHandler({ gitops }), { concurrency: 4 });
const t = { app, dataDir, token: (sub: string, roles: ('service-account' | 'operator')[]) => issuer.sign({ sub, roles }) };
try {
  const svc = await t.token('release-bot', ['service-account']);
  const operator = await t.token('olga', ['operator']);
  const call = async (method: 'GET' | 'POST', url: string, token: string, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
  const release = async (project: string) => {
    const res = await call('POST', '/v1/releases', svc, { repository: 'acme/bench', project, commit_sha: sha(), artifacts: [], trigger: { type: 'branch_push', branch: 'main' } });
    if (res.statusCode !== 201) throw new Error(res.body);
    return res.json<{ id: string }>().id;
  };
  /** Requests a deployment and resolves with its time from request to active. */
  const deployTimed = async (releaseId: string) => {
    const start = performance.now();
    const res = await call('POST', '/v1/deployments', operator, { release_id: releaseId, environment: 'dev' });
    if (res.statusCode !== 201) throw new Error(res.body);
    const id = res.json<{ id: string }>().id;
    for (;;) {
      const d = (await call('GET', `/v1/deployments/${id}`, operator)).json<{ status: string; error: string | null }>();
      if (d.status === 'active' || d.status === 'superseded') return performance.now() - start;
      if (d.status === 'failed') throw new Error(`deployment failed: ${d.error}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  // Warm-up (first clone, first queries).
  await deployTimed(await release('warmup'));

  const sequentialReleases = await Promise.all(Array.from({ length: SEQUENTIAL }, () => release('api')));
  const sequential: number[] = [];
  for (const id of sequentialReleases) sequential.push(await deployTimed(id));

  const manyReleases = await Promise.all(Array.from({ length: TARGETS }, (_, i) => release(`svc-${i}`)));
  const headBefore = Number(git(t.dataDir, '--git-dir', join(t.dataDir, 'gitops.git'), 'rev-list', '--count', 'main'));
  const manyStart = performance.now();
  const many = await Promise.all(manyReleases.map((id) => deployTimed(id)));
  const manyWall = performance.now() - manyStart;
  const manyCommits = Number(git(t.dataDir, '--git-dir', join(t.dataDir, 'gitops.git'), 'rev-list', '--count', 'main')) - headBefore;

  const oneTargetReleases = await Promise.all(Array.from({ length: TARGETS }, () => release('web')));
  const oneStart = performance.now();
  const oneTarget = await Promise.all(oneTargetReleases.map((id) => deployTimed(id)));
  const oneWall = performance.now() - oneStart;

  // Baseline: git alone, one file commit + push per round.
  const bare = join(scratch, 'baseline.git');
  const work = join(scratch, 'work');
  git(scratch, 'init', '--quiet', '--bare', '-b', 'main', bare);
  git(scratch, 'clone', '--quiet', bare, work);
  const rawGit: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const start = performance.now();
    writeFileSync(join(work, 'release.yaml'), `release: ${sha()}\n`);
    git(work, 'add', 'release.yaml');
    git(work, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '--quiet', '-m', `round ${i}`);
    git(work, 'push', '--quiet', 'origin', 'HEAD:main');
    rawGit.push(performance.now() - start);
  }
  const rawPg: number[] = [];
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    await admin.query('SELECT 1');
    rawPg.push(performance.now() - start);
  }

  console.log(`bench:deploy on PostgreSQL, in-process queue, git ${git(scratch, '--version').replace('git version ', '')}; times in ms`);
  console.log(`${'measure'.padEnd(60)} ${'n'.padStart(5)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'max'.padStart(9)}`);
  console.log(summary('one target, one after another: request → active', sequential));
  console.log(summary(`${TARGETS} targets at once: request → active`, many));
  console.log(summary(`${TARGETS} deployments of one target at once: request → active`, oneTarget));
  console.log(summary('baseline: raw git commit + push of one file (no Forge)', rawGit));
  console.log(summary('baseline: raw PostgreSQL round trip (SELECT 1)', rawPg));
  console.log(`${TARGETS} targets at once: all active after ${manyWall.toFixed(0)} ms; ${manyCommits} commits (one per deployment)`);
  console.log(`${TARGETS} deployments of one target at once: all done after ${oneWall.toFixed(0)} ms (one job in flight per target)`);
} finally {
  await consumer.stop();
  await ref.dispatcher.stop();
  for (const q of queues) await q.close();
  await app.close();
  await gitops.close();
  await store.close();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  rmSync(scratch, { recursive: true, force: true });
}

/**
 * bench:api — run creations/s and release lookups/s of the API on real PostgreSQL, next to raw `pg`
 * INSERT/SELECT at the same concurrency in the same run.
 *
 * The server runs as its own process (`forge server`, rate limits off) on a fresh database; load comes
 * from this process over keep-alive HTTP. Settings: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_SECONDS (default 10 per measurement), BENCH_CONCURRENCY (default 16 requests in flight).
 * Prints figures only; nothing here asserts timings.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openDevIssuer } from '../src/auth/dev-issuer.ts';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const WARMUP_MS = 2000;
/** Repositories run creations go to, in turn. */
const BENCH_REPOSITORIES = 500;

interface Result { name: string; ops: number; seconds: number; p50: number; p99: number; errors: number }

const hex = (n: number) => randomBytes(n / 2).toString('hex');
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** Runs `op` from `concurrency` loops for `seconds` after a warm-up; latency per op in ms. */
async function measure(name: string, op: () => Promise<boolean>, seconds = SECONDS, concurrency = CONCURRENCY): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  let recording = false;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const start = performance.now();
      const ok = await op().catch(() => false);
      const ms = performance.now() - start;
      if (!recording) continue;
      if (ok) latencies.push(ms);
      else errors++;
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  recording = true;
  const began = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  recording = false;
  const elapsed = (performance.now() - began) / 1000;
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return { name, ops: latencies.length, seconds: elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
function request(port: number, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: {
      authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
    } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { data += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function waitReady(port: number, child: ChildProcess) {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await request(port, 'GET', '/readyz', '')).status === 200) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('server did not become ready');
}

async function main() {
  const dbName = `forge_bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'forge-bench-'));
  const port = await freePort();
  const server = spawn(process.execPath, ['bin/forge.mjs', 'server', '--port', String(port), '--data-dir', dataDir, '--rate-limits', 'off', '--log-level', 'warn'], {
    env: { ...process.env, DATABASE_URL: url.toString(), NATS_URL: '' }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  const pool = new pg.Pool({ connectionString: url.toString(), max: 20 });
  try {
    await waitReady(port, server);
    const issuer = await openDevIssuer(dataDir);
    const token = await issuer.sign({ sub: 'bench', roles: ['developer', 'service-account'] });

    // --- raw PostgreSQL baseline, same database, same concurrency --------------------------------
    await pool.query('CREATE TABLE raw_runs (id uuid PRIMARY KEY, repository text NOT NULL, commit_sha text NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL, UNIQUE (repository, commit_sha))');
    const rawInsert = await measure('raw pg INSERT (autocommit)', async () => {
      await pool.query('INSERT INTO raw_runs (id, repository, commit_sha, status, started_at) VALUES ($1, $2, $3, $4, now())', [randomUUID(), 'bench/repo', hex(40), 'pending']);
      return true;
    });

    // --- API: run creations ----------------------------------------------------------------------
    // Spread over repositories: a repository may have at most 1,000 unfinished runs (seed 06; these
    // never finish here) and 100 creations a minute, so one repository cannot take this load.
    let created = 0;
    const runCreate = await measure('API POST /v1/runs', async () => {
      const repository = `bench/repo-${created++ % BENCH_REPOSITORIES}`;
      const res = await request(port, 'POST', '/v1/runs', token, { repository, branch: 'main', commit_sha: hex(40), trigger_type: 'push' });
      return res.status === 201;
    });

    // --- API: release lookups --------------------------------------------------------------------
    const RELEASES = 200;
    for (let i = 0; i < RELEASES; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => request(port, 'POST', '/v1/releases', token, {
        repository: 'bench/repo', project: 'api', commit_sha: hex(40), artifacts: [
          { name: 'server', type: 'container', tracking_oci_uri: 'tracking.local/bench/repo/api/server:sha-x', primary_published_uri: 'registry.local/api:1' },
        ], trigger: { type: 'branch_push', branch: 'main' },
      })));
    }
    const shas = (await pool.query<{ commit_sha: string }>('SELECT commit_sha FROM releases')).rows.map((r) => r.commit_sha);
    const rawSelect = await measure('raw pg SELECT release by alias', async () => {
      const n = String(1 + Math.floor(Math.random() * RELEASES));
      const r = await pool.query('SELECT r.* FROM release_aliases a JOIN releases r ON r.id = a.release_id WHERE a.repository = $1 AND a.project = $2 AND a.alias = $3', ['bench/repo', 'api', n]);
      return r.rowCount === 1;
    });
    const lookupNumber = await measure('API GET release by number (cached)', async () => {
      const res = await request(port, 'GET', `/v1/releases/bench/repo/api/${1 + Math.floor(Math.random() * RELEASES)}`, token);
      return res.status === 200;
    });
    const lookupSha = await measure('API GET by SHA prefix (uncached)', async () => {
      const res = await request(port, 'GET', `/v1/releases/bench/repo/api/${shas[Math.floor(Math.random() * shas.length)]!.slice(0, 12)}`, token);
      return res.status === 200;
    }, Math.max(3, Math.round(SECONDS / 2)));

    const rows = [rawInsert, runCreate, rawSelect, lookupNumber, lookupSha];
    console.log(`\nbench:api — ${SECONDS}s per measurement after ${WARMUP_MS / 1000}s warm-up, ${CONCURRENCY} concurrent, PostgreSQL ${(await pool.query('SHOW server_version')).rows[0].server_version}, Node ${process.version}\n`);
    console.log('measurement                         ops/s    p50 ms   p99 ms   errors');
    console.log('-'.repeat(70));
    for (const r of rows) {
      console.log(`${r.name.padEnd(34)} ${(r.ops / r.seconds).toFixed(0).padStart(6)}  ${r.p50.toFixed(2).padStart(7)}  ${r.p99.toFixed(2).padStart(7)}  ${String(r.errors).padStart(7)}`);
    }
    const rate = (r: Result) => r.ops / r.seconds;
    console.log(`\nrun creations: ${rate(runCreate).toFixed(0)}/s at p99 ${runCreate.p99.toFixed(1)} ms (target ≥1000/s, p99 ≤50 ms) = ${(rate(runCreate) / rate(rawInsert) * 100).toFixed(0)}% of raw INSERT`);
    console.log(`release lookups: ${rate(lookupNumber).toFixed(0)}/s at p99 ${lookupNumber.p99.toFixed(1)} ms (target ≥3000/s, p99 ≤20 ms) = ${(rate(lookupNumber) / rate(rawSelect) * 100).toFixed(0)}% of raw SELECT`);
    console.log(`  uncached (first lookup of a ref, or a SHA prefix): ${rate(lookupSha).toFixed(0)}/s at p99 ${lookupSha.p99.toFixed(1)} ms = ${(rate(lookupSha) / rate(rawSelect) * 100).toFixed(0)}% of raw SELECT`);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    agent.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();

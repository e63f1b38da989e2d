/**
 * bench:web — the dashboard's weight and speed, in Debian's Chromium (playwright-core):
 *
 *   bundle            every file of dist/web: bytes raw, gzip (level 9) and brotli, as served
 *   run page, cold    a new browser context (empty cache) opens /runs/<id> of a finished example
 *                     run; time from navigation start to the run's pipeline (every task) on screen,
 *                     plus the browser's own DOMContentLoaded and load times (BENCH_LOADS, default 15)
 *   run page, warm    the same page reloaded in the same context (HTTP cache, immutable assets)
 *   100k-line log     open a 100,001-line step log: to the first lines on screen, then "Jump to end"
 *                     to the last line on screen (BENCH_LOG_LOADS, default 5)
 *
 * The server is `npm start`'s: embedded defaults (PGlite, in-process queue and workers, log files,
 * dev issuer) in a scratch data dir, on loopback. Baselines from the same run: the raw HTTP fetch of
 * index.html and of GET /v1/runs/<id> from Node (no browser), and a raw PostgreSQL `SELECT 1` when
 * DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) answers. Prints figures only.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';
import pg from 'pg';
import { chromium, type Page } from 'playwright-core';
import { startServer } from '../src/bin/server.ts';
import { getRunTree } from '../src/engine/runs.ts';
import { isRunTerminal } from '../src/domain/statuses.ts';
import { parseServerSettings } from '../src/settings/settings.ts';
import { seedRepository } from '../src/worker/git-workspace.ts';

const ROOT = join(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist', 'web');
const LOADS = Number(process.env.BENCH_LOADS ?? 15);
const LOG_LOADS = Number(process.env.BENCH_LOG_LOADS ?? 5);
const CHROMIUM = process.env.FORGE_CHROMIUM ?? '/usr/bin/chromium';
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
function summary(name: string, ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${name.padEnd(52)} ${String(sorted.length).padStart(5)} ${percentile(sorted, 50).toFixed(1).padStart(9)} ${percentile(sorted, 95).toFixed(1).padStart(9)} ${(sorted.at(-1) ?? NaN).toFixed(1).padStart(9)}`;
}
const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

// --- bundle -----------------------------------------------------------------------------------
const { build } = await import('vite');
await build({ configFile: join(ROOT, 'web', 'vite.config.ts'), logLevel: 'warn' });
const files: string[] = [];
const walk = (dir: string) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) walk(join(dir, e.name));
    else if (!/\.(br|gz)$/.test(e.name)) files.push(join(dir, e.name));
  }
};
walk(DIST);
console.log('\nbundle (dist/web)');
console.log(`${'file'.padEnd(40)} ${'raw'.padStart(11)} ${'gzip'.padStart(11)} ${'brotli'.padStart(11)}`);
const totals = { raw: 0, gzip: 0, brotli: 0 };
for (const file of files.sort()) {
  const body = readFileSync(file);
  const sizes = { raw: statSync(file).size, gzip: gzipSync(body, { level: 9 }).length, brotli: brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }).length };
  totals.raw += sizes.raw; totals.gzip += sizes.gzip; totals.brotli += sizes.brotli;
  console.log(`${relative(DIST, file).padEnd(40)} ${kb(sizes.raw).padStart(11)} ${kb(sizes.gzip).padStart(11)} ${kb(sizes.brotli).padStart(11)}`);
}
console.log(`${'total'.padEnd(40)} ${kb(totals.raw).padStart(11)} ${kb(totals.gzip).padStart(11)} ${kb(totals.brotli).padStart(11)}`);

// --- server -----------------------------------------------------------------------------------
const scratch = mkdtempSync(join(tmpdir(), 'forge-bench-web-'));
const dataDir = join(scratch, 'data');
const running = await startServer(parseServerSettings({ example: true }, {
  FORGE_DATA_DIR: dataDir, FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_RATE_LIMITS: 'off', FORGE_WEB_ROOT: DIST,
}), { announce: false });
const token = await running.devIssuer!.sign({ sub: 'bench', roles: ['operator'] });
const waitRun = async (id: string) => {
  for (;;) {
    const tree = await getRunTree(running.ctx, id);
    if (isRunTerminal(tree.status)) return tree;
    await new Promise((r) => setTimeout(r, 200));
  }
};
const runId = running.exampleRun!.id;
const tree = await waitRun(runId);
const tasks = tree.phases.reduce((n, p) => n + p.tasks.length, 0);

// A 100,001-line log: 100,000 coloured lines and the worker's failure marker.
const source = join(scratch, 'biglog');
mkdirSync(join(source, '.forge'), { recursive: true });
mkdirSync(join(source, 'biglog', '.forge'), { recursive: true });
writeFileSync(join(source, '.forge', 'repo.cue'), 'package repo\nforgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: test: { group: 1, required: true }\n');
writeFileSync(join(source, 'biglog', '.forge', 'project.cue'), 'package project\nname: "biglog"\nphases: test: steps: [{ name: "print", action: "script", run: "sh print.sh" }]\n');
writeFileSync(join(source, 'biglog', 'print.sh'), `awk 'BEGIN { for (i = 1; i <= 100000; i++) printf "\\033[32mok\\033[0m line %d of the big log\\n", i }'\nexit 3\n`);
const { commitSha } = await seedRepository({ bareDir: join(dataDir, 'git', 'bench', 'biglog.git'), sourceDir: source, message: 'big log' });
const created = await fetch(`${running.url}/v1/runs`, {
  method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  body: JSON.stringify({ repository: 'bench/biglog', branch: 'main', commit_sha: commitSha, trigger_type: 'manual' }),
}).then((r) => r.json() as Promise<{ id: string }>);
const bigTree = await waitRun(created.id);
const bigStep = bigTree.phases[0]!.tasks[0]!.steps[0]!;

// --- baselines ----------------------------------------------------------------------------------
const timed = async (n: number, fn: () => Promise<unknown>) => {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); await fn(); ms.push(performance.now() - t); }
  return ms;
};
const baseHtml = await timed(50, () => fetch(`${running.url}/`).then((r) => r.text()));
const baseRun = await timed(50, () => fetch(`${running.url}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text()));
let basePg: number[] | undefined;
try {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', connectionTimeoutMillis: 2000 });
  await client.connect();
  basePg = await timed(200, () => client.query('SELECT 1'));
  await client.end();
} catch {
  basePg = undefined;
}

// --- browser ------------------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: CHROMIUM, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const cold: number[] = []; const warm: number[] = []; const dcl: number[] = []; const load: number[] = [];
const newContext = async () => {
  // bypassCSP: the bench's own probes are strings evaluated in the page, which the dashboard's CSP forbids.
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: true });
  await context.addInitScript({ content: `localStorage.setItem('forge.token', ${JSON.stringify(token)})` });
  return context;
};
const measure = async (page: Page, navigate: () => Promise<unknown>) => {
  await navigate();
  // Browser-side code as text: this file is type-checked for Node, without the DOM's types.
  await page.waitForFunction(`document.querySelectorAll('.task .status[data-status]').length >= ${tasks}`);
  return page.evaluate(`(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return { shown: performance.now(), dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd };
  })()`) as Promise<{ shown: number; dcl: number; load: number }>;
};
for (let i = 0; i < LOADS; i++) {
  const context = await newContext();
  const page = await context.newPage();
  const first = await measure(page, () => page.goto(`${running.url}/runs/${runId}`));
  cold.push(first.shown); dcl.push(first.dcl); load.push(first.load);
  const again = await measure(page, () => page.reload());
  warm.push(again.shown);
  await context.close();
}
const logOpen: number[] = []; const logEnd: number[] = []; const domRows: number[] = [];
for (let i = 0; i < LOG_LOADS; i++) {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${running.url}/runs/${created.id}/steps/${bigStep.id}`);
  await page.locator('.log-line[data-line="1"] .line-text', { hasText: 'line 1 of' }).waitFor();
  logOpen.push(await page.evaluate('performance.now()') as number);
  const t = Date.now();
  await page.getByRole('button', { name: 'Jump to end' }).click();
  await page.locator('.log-line[data-line="100000"] .line-text', { hasText: 'line 100000 of' }).waitFor();
  logEnd.push(Date.now() - t);
  domRows.push(await page.locator('.log-line').count());
  await context.close();
}
await browser.close();

console.log(`\nrun page: example monorepo run, ${tree.phases.length} phases, ${tasks} tasks; Chromium ${browser.version()}`);
console.log(`${'measure (ms)'.padEnd(52)} ${'n'.padStart(5)} ${'p50'.padStart(9)} ${'p95'.padStart(9)} ${'max'.padStart(9)}`);
console.log(summary('run page, cold: navigation → pipeline on screen', cold));
console.log(summary('run page, cold: DOMContentLoaded', dcl));
console.log(summary('run page, cold: load event', load));
console.log(summary('run page, warm (reload): navigation → pipeline', warm));
console.log(summary('100,001-line log: navigation → first lines', logOpen));
console.log(summary('100,001-line log: Jump to end → last line', logEnd));
console.log(`${'100,001-line log: log rows in the DOM'.padEnd(52)} ${String(domRows.length).padStart(5)} ${String(Math.max(...domRows)).padStart(9)}`);
console.log('\nbaselines (same run)');
console.log(summary('raw fetch of index.html (Node, no browser)', baseHtml));
console.log(summary('raw fetch of GET /v1/runs/<id> (Node)', baseRun));
if (basePg) console.log(summary('raw PostgreSQL SELECT 1', basePg));
else console.log('raw PostgreSQL SELECT 1: no PostgreSQL answered at DATABASE_URL');

await running.close();
rmSync(scratch, { recursive: true, force: true });

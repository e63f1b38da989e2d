/**
 * `forge runs watch`, `forge logs [-f]` and `forge runs retry` against a real server, with statuses
 * driven through the internal endpoints as workers drive them, and step logs written into the
 * server's object store as workers write them. A small proxy in front of the server drops
 * connections and answers 503 on cue, and records what the CLI asked for.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiError, CliError, EXIT, HttpError } from '../../src/cli/client.ts';
import { ansiStyle } from '../../src/cli/output.ts';
import { Retrier, type RetryNotice } from '../../src/cli/retries.ts';
import { clipLine, watchRun } from '../../src/cli/run-watch.ts';
import { parseEventStream } from '../../src/lib/sse.ts';
import { logPartKey, stepLogKey } from '../../src/domain/logs.ts';
import { recordDiscovery, type DiscoveryPlan } from '../../src/engine/runs.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import type { ObjectStore } from '../../src/engine/ports.ts';
import type { RunTreeJson } from '../../src/cli/wire.ts';
import { forge, lines, startForge, startTestServer, type TestServer } from './cli-helpers.ts';

let t: TestServer;
let env: Record<string, string>;
let devToken = '';
let svcToken = '';
let objects: ObjectStore;
let objectsDir: string | undefined;

beforeAll(async () => {
  t = await startTestServer();
  devToken = await t.token('alice', ['developer', 'operator']);
  svcToken = await t.token('ci-bot', ['service-account']);
  env = { FORGE_URL: t.url, FORGE_TOKEN: devToken };
  if (!t.server.ctx.objects) {
    objectsDir = mkdtempSync(join(tmpdir(), 'forge-cli-objects-'));
    t.server.ctx.objects = createFileObjectStore(objectsDir);
  }
  objects = t.server.ctx.objects;
});
afterAll(async () => {
  await t?.close();
  if (objectsDir) rmSync(objectsDir, { recursive: true, force: true });
});

async function call<T = unknown>(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${t.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** Reports as a worker would; anything but 200 fails the test. */
async function report(kind: 'steps' | 'tasks', id: string, body: Record<string, unknown>): Promise<void> {
  const res = await call('PUT', `/v1/${kind}/${id}/status`, svcToken, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

const plan: DiscoveryPlan = {
  projects: [
    { name: 'api', path: 'services/api', phases: { check: [{ name: 'lint', action: 'earthly', target: '+lint' }], test: [{ name: 'unit', action: 'earthly', target: '+test' }] } },
    { name: 'web', path: 'apps/web', phases: { test: [{ name: 'unit', action: 'earthly', target: '+test' }] } },
  ],
  phaseGroups: [{ group: 1, phases: ['check'] }, { group: 2, phases: ['test'] }],
};
const onePhase: DiscoveryPlan = {
  projects: [{ name: 'api', path: 'services/api', phases: { test: [{ name: 'unit', action: 'earthly', target: '+test' }] } }],
  phaseGroups: [{ group: 1, phases: ['test'] }],
};

interface Ids {
  run: string;
  /** `phase/project` → task id, `phase/project/step` → step id. */
  id(path: string): string;
}

/** A run through the API, its tree recorded as the discovery worker records it. */
async function runWithTree(discovery: DiscoveryPlan = plan): Promise<Ids> {
  const created = await call<{ id: string }>('POST', '/v1/runs', devToken, {
    repository: 'acme/shop', branch: 'main', commit_sha: randomBytes(20).toString('hex'), trigger_type: 'push',
  });
  expect(created.status).toBe(201);
  const run = created.body.id;
  await recordDiscovery(t.server.ctx, run, discovery);
  const tree = (await call<RunTreeJson>('GET', `/v1/runs/${run}`, devToken)).body;
  const ids = new Map<string, string>();
  for (const phase of tree.phases) {
    for (const task of phase.tasks) {
      ids.set(`${phase.name}/${task.project_name}`, task.id);
      for (const step of task.steps) ids.set(`${phase.name}/${task.project_name}/${step.step_name}`, step.id);
    }
  }
  return { run, id: (path) => ids.get(path) ?? expect.fail(`no ${path} in the tree`) };
}

/** Every pattern matches a line, each after the line the previous one matched. */
function expectInOrder(out: string[], patterns: RegExp[]): void {
  let at = 0;
  for (const pattern of patterns) {
    const found = out.findIndex((line, i) => i >= at && pattern.test(line));
    expect(found, `${pattern} after line ${at} of\n${out.join('\n')}`).toBeGreaterThanOrEqual(0);
    at = found + 1;
  }
}

type Fault = 'drop' | '503' | 'cut-stream';

/**
 * An HTTP proxy to the server: each request takes the next queued fault (drop the connection,
 * answer 503, or pass the answer on but cut it after its first chunk), else passes through.
 */
async function startProxy(target: string): Promise<{ url: string; faults: Fault[]; requests: string[]; close(): Promise<void> }> {
  const faults: Fault[] = [];
  const requests: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(req.url ?? '');
    const fault = faults.shift();
    if (fault === 'drop') return void req.socket.destroy();
    if (fault === '503') {
      res.writeHead(503, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ error: { code: 'service_unavailable', message: 'a backing service is unavailable; retry shortly', details: {} } }));
    }
    const upstream = request(`${target}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (fault === 'cut-stream') answer.once('data', (chunk: Buffer) => res.write(chunk, () => res.socket?.destroy()));
      else answer.pipe(res);
    });
    upstream.on('error', () => res.socket?.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`, faults, requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const CLOCK = String.raw`\[\d\d:\d\d\]`;

describe('forge runs watch', () => {
  it('without a TTY prints one line per status change, then the final tree; exits 1 when the run fails', async () => {
    const ids = await runWithTree();
    const watch = startForge(['runs', 'watch', ids.run, '--interval', '0.1'], env);
    await watch.waitFor(/discovery: 2 phase groups, 3 tasks, 3 steps\n/);
    await report('steps', ids.id('check/api/lint'), { status: 'running' });
    await watch.waitFor(/check\/api\/lint running\n/);
    await report('steps', ids.id('check/api/lint'), { status: 'success', exit_code: 0 });
    await report('tasks', ids.id('check/api'), { status: 'success' });
    await watch.waitFor(/check\/api success/);
    await report('steps', ids.id('test/api/unit'), { status: 'running' });
    await report('steps', ids.id('test/web/unit'), { status: 'running' });
    await watch.waitFor(/test\/web\/unit running\n/);
    await report('steps', ids.id('test/web/unit'), { status: 'failed', exit_code: 2 });

    const result = await watch.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    const out = lines(result.stdout);
    expect(result.stdout).not.toContain('\u001b[');
    const D = String.raw`\d+(?:ms|s)`;
    expectInOrder(out, [
      new RegExp(`^watching run ${ids.run} \\(acme/shop main [0-9a-f]{12}\\)$`),
      new RegExp(`^${CLOCK} discovery: 2 phase groups, 3 tasks, 3 steps$`),
      new RegExp(`^${CLOCK} run running$`),
      new RegExp(`^${CLOCK} check running$`),
      new RegExp(`^${CLOCK} check/api running$`),
      new RegExp(`^${CLOCK} check/api/lint running$`),
      new RegExp(`^${CLOCK} check/api/lint success \\(exit 0, ${D}\\)$`),
      new RegExp(`^${CLOCK} check/api success \\(${D}\\)$`),
      new RegExp(`^${CLOCK} test/web/unit running$`),
      new RegExp(`^${CLOCK} test/web/unit failed \\(exit 2, ${D}\\)$`),
      new RegExp(`^${CLOCK} run failed$`),
      /^PHASE \/ TASK \/ STEP\s+STATUS\s+EXIT\s+DURATION\s+DETAIL$/,
      new RegExp(`^└─ web\\s+failed\\s+${D}\\s+step unit failed with exit code 2$`),
      /^failed · group 2\/2 · 3\/3 tasks done · 2 failed · \d\d:\d\d$/,
    ]);
    // Each change is printed once, the fail-fast stop of api's unit test included; nothing that did not change.
    const changes = out.filter((l) => l.startsWith('['));
    expect(new Set(changes).size).toBe(changes.length);
    expect(changes.filter((l) => / pending\b/.test(l))).toEqual([]);
    expect(changes.filter((l) => /test\/api failed \(.*stopped: another task failed \(fail-fast\)\)$/.test(l))).toHaveLength(1);
    expect(out.at(-1)).toMatch(/^failed · /);
  });

  it('--json prints the run tree on one line each time it changes; the last line is the final tree; exits 0 on success', async () => {
    const ids = await runWithTree(onePhase);
    const watch = startForge(['runs', 'watch', ids.run, '--interval', '0.1', '--json'], env);
    await watch.waitFor(/\n/);
    // Several looks at a run that does not change: nothing more is printed.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(lines(watch.stdout())).toHaveLength(1);
    await report('steps', ids.id('test/api/unit'), { status: 'running' });
    await watch.waitFor(/"status":"running"/);
    await report('steps', ids.id('test/api/unit'), { status: 'success', exit_code: 0 });
    await report('tasks', ids.id('test/api'), { status: 'success' });

    const result = await watch.done;
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const snapshots = lines(result.stdout).map((l) => JSON.parse(l) as RunTreeJson);
    expect(snapshots.length).toBeGreaterThanOrEqual(3);
    expect(snapshots[0]).toMatchObject({ id: ids.run, status: 'pending' });
    expect(snapshots.at(-1)).toMatchObject({ id: ids.run, status: 'success', phases: [{ name: 'test', status: 'success', tasks: [{ status: 'success', steps: [{ exit_code: 0 }] }] }] });
    expect(snapshots.at(-1)!.completed_at).not.toBeNull();
    // Only changes: no snapshot repeats the one before it.
    snapshots.slice(1).forEach((s, i) => expect(JSON.stringify(s)).not.toBe(JSON.stringify(snapshots[i])));
  });

  it('retries a dropped connection and a 503 with a notice, then exits 4 when the run is cancelled', async () => {
    const ids = await runWithTree(onePhase);
    const proxy = await startProxy(t.url);
    try {
      const watch = startForge(['runs', 'watch', ids.run, '--interval', '0.1', '--url', proxy.url], env);
      await watch.waitFor(/discovery: /);
      proxy.faults.push('drop', '503');
      await watch.waitFor(/service_unavailable, HTTP 503\); retrying in 2s \(attempt 3\)/, 'stderr');
      expect((await call('DELETE', `/v1/runs/${ids.run}`, devToken)).status).toBe(204);

      const result = await watch.done;
      expect(result.code).toBe(4);
      expect(lines(result.stderr)).toEqual([
        expect.stringMatching(new RegExp(`^forge: cannot reach the Forge API at ${proxy.url} \\(.+\\); retrying in 1s$`)),
        'forge: a backing service is unavailable; retry shortly (service_unavailable, HTTP 503); retrying in 2s (attempt 3)',
      ]);
      const out = lines(result.stdout);
      expectInOrder(out, [new RegExp(`^${CLOCK} run cancelled \\(cancelled: cancelled by alice\\)$`), /^cancelled · group 1\/1 · 0\/1 tasks done · 1 skipped · \d\d:\d\d$/]);
    } finally {
      await proxy.close();
    }
  });

  it('a run that does not exist exits 1 at once, and a bad interval exits 2', async () => {
    const missing = '8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11';
    const [notFound, badInterval] = await Promise.all([
      forge(['runs', 'watch', missing], env),
      forge(['runs', 'watch', missing, '--interval', '0'], env),
    ]);
    expect(notFound).toMatchObject({ code: 1, stdout: '' });
    expect(notFound.stderr).toBe(`forge: pipeline run not found (not_found, HTTP 404)\n  id: ${missing}\n`);
    expect(badInterval.code).toBe(2);
    expect(badInterval.stderr).toContain('expected seconds from 0.1 to 60');
  });

  it('on a terminal redraws the tree in place, cut to the screen, and ends with the whole final tree', async () => {
    const ids = await runWithTree();
    const writes: string[] = [];
    const screen = { columns: 80, rows: 12, write: (text: string) => writes.push(text) };
    const watching = watchRun(new ApiClient(t.url, devToken), ids.run, {
      mode: 'tty', intervalMs: 50, style: ansiStyle, screen, warn: (message) => expect.fail(`unexpected notice: ${message}`),
    });
    const drawn = async (n: number) => {
      const until = Date.now() + 10_000;
      while (writes.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    };
    await drawn(2);
    await report('steps', ids.id('check/api/lint'), { status: 'running' });
    await report('steps', ids.id('check/api/lint'), { status: 'success', exit_code: 0 });
    await report('tasks', ids.id('check/api'), { status: 'success' });
    await drawn(writes.length + 2);
    for (const path of ['test/api', 'test/web']) {
      await report('steps', ids.id(`${path}/unit`), { status: 'running' });
      await report('steps', ids.id(`${path}/unit`), { status: 'success', exit_code: 0 });
      await report('tasks', ids.id(path), { status: 'success' });
    }
    const final = await watching;
    expect(final.status).toBe('success');

    // Each frame goes back up over the one before it (as many rows as it had) and clears below.
    expect(writes[0]!.startsWith('\u001b[J')).toBe(true);
    for (let i = 1; i < writes.length; i++) {
      const rowsBefore = writes[i - 1]!.split('\n').length - 1;
      expect(writes[i]!.startsWith(`\r\u001b[${rowsBefore}A\u001b[J`), `frame ${i}`).toBe(true);
    }
    const plain = (text: string) => text.replace(/^\r/, '').replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
    // Frames while it runs fit the screen: at most rows - 1 lines, none wider than it.
    for (const frame of writes.slice(0, -1)) {
      const frameLines = plain(frame).split('\n').slice(0, -1);
      expect(frameLines.length).toBeLessThanOrEqual(screen.rows - 1);
      for (const line of frameLines) expect([...line].length).toBeLessThanOrEqual(screen.columns);
    }
    // The run on one line; the tree's rows at the top left out when it does not fit.
    expect(plain(writes[0]!)).toMatch(new RegExp(`^run ${ids.run}  pending  acme/shop main [0-9a-f]{12}\\n\\nPHASE / TASK / STEP .*\\n… 3 more above\\n(?:.*\\n){5}\\npending · group 1/2 · 0/3 tasks done · \\d\\d:\\d\\d\\n$`));
    expect(writes.some((w) => /running · group 2\/2 · 1\/3 tasks done · \d\d:\d\d/.test(plain(w)))).toBe(true);
    // The last frame is whole and coloured.
    const last = writes.at(-1)!;
    expect(last).toContain(`run ${ids.run}  \u001b[32msuccess\u001b[0m`);
    expect(plain(last)).toMatch(/\n└─ web +success +\d+(?:ms|s)\n {3}└─ unit +success +0 +\d+(?:ms|s) +earthly \+test\n\nsuccess · group 2\/2 · 3\/3 tasks done · \d\d:\d\d\n$/);
  });

  it('cuts a coloured line to the screen width without breaking its colours', () => {
    expect(clipLine('short', 10)).toBe('short');
    expect(clipLine(`ab\u001b[32mcdefgh\u001b[0mij`, 6)).toBe(`ab\u001b[32mcde\u001b[0m…\u001b[0m`);
  });
});

describe('forge logs', () => {
  /** A step that is running, its log key reported, as a worker starts one. */
  async function runningStep(): Promise<{ step: string; key: string; ids: Ids }> {
    const ids = await runWithTree(onePhase);
    const step = ids.id('test/api/unit');
    const key = stepLogKey(ids.run, 'test', 'api', 'unit', 1);
    await report('steps', step, { status: 'running', logs_s3_key: key });
    return { step, key, ids };
  }

  const logLines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `line ${String(from + i).padStart(6, '0')} ${'x'.repeat(48)}\n`).join('');

  it('prints a whole log, range by range, and from an offset', async () => {
    const { step, key } = await runningStep();
    const log = logLines(0, 10_000); // 600 kB: three ranges
    await objects.put(key, log);
    await report('steps', step, { status: 'success', exit_code: 0 });
    const proxy = await startProxy(t.url);
    try {
      const whole = await forge(['logs', step, '--url', proxy.url], env);
      expect(whole.code).toBe(0);
      expect(whole.stderr).toBe('');
      expect(whole.stdout === log, 'the log, byte for byte').toBe(true);
      const ranges = proxy.requests.map((u) => new URL(u, 'http://x').searchParams);
      expect(ranges.map((q) => q.get('limit'))).toEqual(['262144', '262144', '262144']);
      expect(ranges.map((q) => Number(q.get('offset')))).toEqual([0, expect.any(Number), expect.any(Number)]);

      const from = log.indexOf('line 009000');
      const tail = await forge(['logs', step, '--offset', String(from), '--json'], env);
      expect(tail.code).toBe(0);
      const pages = lines(tail.stdout).map((l) => JSON.parse(l) as { offset: number; text: string; complete: boolean });
      expect(pages).toEqual([expect.objectContaining({ offset: from, complete: true, size: log.length })]);
      expect(pages.map((p) => p.text).join('')).toBe(log.slice(from));
    } finally {
      await proxy.close();
    }
  });

  it('-f prints the output as it comes, picks up again after a dropped stream, and exits when the step ends', async () => {
    const { step, key, ids } = await runningStep();
    const proxy = await startProxy(t.url);
    try {
      await objects.put(logPartKey(key, 0), logLines(0, 3));
      proxy.faults.push('cut-stream');
      const follow = startForge(['logs', step, '-f', '--url', proxy.url], env);
      await follow.waitFor(/line 000002 x+\n$/);
      await follow.waitFor(/retrying in 1s/, 'stderr');
      await objects.put(logPartKey(key, 1), logLines(3, 5));
      await follow.waitFor(/line 000004 x+\n$/);
      // The step ends: the worker writes the whole log, drops the parts and reports.
      const log = logLines(0, 8);
      await objects.put(key, log);
      await objects.delete([logPartKey(key, 0), logPartKey(key, 1)]);
      await report('steps', step, { status: 'success', exit_code: 0 });
      await report('tasks', ids.id('test/api'), { status: 'success' });

      const result = await follow.done;
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(log);
      expect(lines(result.stderr)).toEqual([expect.stringMatching(/^forge: lost the connection to the Forge API at .* \(UND_ERR_SOCKET\); retrying in 1s$/)]);
      const follows = proxy.requests.filter((u) => u.includes('follow=1'));
      expect(follows).toHaveLength(2);
      expect(new URL(follows[1]!, 'http://x').searchParams.get('offset')).toBe(String(logLines(0, 3).length));
    } finally {
      await proxy.close();
    }
  });

  it('says when there is no output yet; an unknown step exits 1', async () => {
    const ids = await runWithTree(onePhase);
    const missing = '8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11';
    const [empty, unknown] = await Promise.all([forge(['logs', ids.id('test/api/unit')], env), forge(['logs', missing, '-f'], env)]);
    expect(empty).toMatchObject({ code: 0, stdout: '' });
    expect(empty.stderr).toBe(`forge: step ${ids.id('test/api/unit')} has no log output yet (follow it with -f)\n`);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toBe(`forge: step not found (not_found, HTTP 404)\n  id: ${missing}\n`);
  });
});

describe('forge runs retry', () => {
  it('retries what did not succeed as the next attempt (--json: the run), --watch follows it; 409 unless failed or cancelled', async () => {
    const ids = await runWithTree();
    await report('steps', ids.id('check/api/lint'), { status: 'running' });
    await report('steps', ids.id('check/api/lint'), { status: 'success', exit_code: 0 });
    await report('tasks', ids.id('check/api'), { status: 'success' });
    await report('steps', ids.id('test/web/unit'), { status: 'running' });
    await report('steps', ids.id('test/web/unit'), { status: 'failed', exit_code: 2 });

    const json = await forge(['runs', 'retry', ids.run, '--json'], env);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const body = JSON.parse(json.stdout) as RunTreeJson;
    expect(body).toMatchObject({ id: ids.run, attempt: 2, status: 'pending' });
    expect(body.phases.map((p) => [p.name, p.status, p.tasks.map((task) => task.status)])).toEqual([
      ['check', 'success', ['success']], ['test', 'pending', ['pending', 'pending']],
    ]);
    expect((await call('DELETE', `/v1/runs/${ids.run}`, devToken)).status).toBe(204);

    const retry = startForge(['runs', 'retry', ids.run, '--watch', '--interval', '0.1'], env);
    await retry.waitFor(new RegExp(`^run ${ids.run} attempt 3: retrying 2 tasks\nwatching run `));
    const whileRunning = await forge(['runs', 'retry', ids.run], env);
    expect(whileRunning).toMatchObject({ code: 1, stdout: '' });
    expect(whileRunning.stderr).toMatch(/^forge: run is pending; only a finished run .* \(conflict, HTTP 409\)\n/);
    for (const path of ['test/api', 'test/web']) {
      await report('steps', ids.id(`${path}/unit`), { status: 'running' });
      await report('steps', ids.id(`${path}/unit`), { status: 'success', exit_code: 0 });
      await report('tasks', ids.id(path), { status: 'success' });
    }
    const watched = await retry.done;
    expect(watched).toMatchObject({ code: 0, stderr: '' });
    expectInOrder(lines(watched.stdout), [/^\[\d\d:\d\d\] test\/web success/, /^ {2}attempt {5}3$/, /^success · group 2\/2 · 3\/3 tasks done · /]);

    const succeeded = await forge(['runs', 'retry', ids.run], env);
    expect(succeeded).toMatchObject({ code: 1, stdout: '' });
    expect(succeeded.stderr).toMatch(/^forge: run succeeded; there is nothing to retry \(conflict, HTTP 409\)\n/);
  });
});

describe('the pieces under watch and follow', () => {
  it('reads server-sent events split anywhere, with CRLF, comments and multi-line data', async () => {
    const text = ': connected\r\n\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: end\ndata: {}\n\n:heartbeat\n\nevent: ignored-without-data\n\n';
    const bytes = new TextEncoder().encode(text);
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
    }
    const events = [];
    for await (const event of parseEventStream(chunks())) events.push(event);
    expect(events).toEqual([{ event: 'message', data: '{"a":\n1}' }, { event: 'end', data: '{}' }]);
  });

  it('retries only what may pass (unreachable, 429, 5xx), with growing delays, and gives up in the end', async () => {
    const notices: RetryNotice[] = [];
    const unreachable = new CliError(EXIT.unreachable, 'cannot reach');
    const retrier = new Retrier((n) => notices.push(n), { firstDelayMs: 1, giveUpMs: 60_000 });
    let calls = 0;
    const answer = await retrier.call(async () => {
      calls += 1;
      if (calls === 1) throw unreachable;
      if (calls === 2) throw new HttpError(502, 'bad gateway');
      if (calls === 3) throw new ApiError(429, { error: { code: 'rate_limited', message: 'slow down' } });
      return 'ok';
    });
    expect([answer, calls, notices.map((n) => [n.failures, n.delayMs])]).toEqual(['ok', 4, [[1, 1], [2, 2], [3, 4]]]);

    const notFound = new ApiError(404, { error: { code: 'not_found', message: 'no' } });
    await expect(retrier.call(() => Promise.reject(notFound))).rejects.toBe(notFound);

    let clock = 0;
    const impatient = new Retrier(() => { clock += 1000; }, { firstDelayMs: 1, giveUpMs: 2500, now: () => clock });
    await expect(impatient.call(() => Promise.reject(unreachable))).rejects.toBe(unreachable);
    expect(clock).toBe(3000);
  });
});

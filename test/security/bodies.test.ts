/**
 * Oversized, deeply nested and ill-typed bodies on every route that takes one (from the OpenAPI
 * document), over a real socket: a 413, 415 or 422 with the error body, never a 5xx, nothing
 * written, and the server answers normally afterwards. Then a step log whose one line is 10 MB,
 * written by the worker's StepLog, read back through the API in ranges, indexed and searched,
 * with the heap it takes measured.
 */
import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { StepLog } from '../../src/worker/step-log.ts';
import { sha } from '../helpers/app.ts';
import { postgresAdapter } from '../helpers/stores.ts';
import { expectError, rowCounts, securitySuite, stepOfNewRun, uuid, WEBHOOK_SECRET } from './support.ts';

const MIB = 1024 * 1024;

/** `depth` arrays inside each other, or `depth` objects: `{"a":{"a":…}}`. */
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const deepObject = (depth: number, leaf = '1') => `${'{"a":'.repeat(depth)}${leaf}${'}'.repeat(depth)}`;

describe('oversized and deeply nested bodies', () => {
  const suite = securitySuite(postgresAdapter);
  let writes: { method: string; path: string }[];
  beforeAll(async () => {
    if (postgresAdapter.unavailable) return;
    const doc = (await suite.s.app.inject({ url: '/v1/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    writes = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).filter((m) => m === 'post' || m === 'put')
      .map((method) => ({ method: method.toUpperCase(), path: path.replace(/\{\w+\}/g, () => uuid()) })));
  });

  /** POSTs `body` as JSON over a real socket (signed, for the webhook). */
  const send = async (method: string, path: string, body: string | Buffer, headers: Record<string, string> = {}) => {
    const signature = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
    const res = await fetch(`${suite.s.url}${path}`, {
      method, body,
      headers: {
        authorization: `Bearer ${suite.token}`, 'content-type': 'application/json', 'x-hub-signature-256': signature,
        'x-github-event': 'push', 'x-github-delivery': uuid(), ...headers,
      },
    });
    return { statusCode: res.status, body: await res.text() };
  };

  it('refuses bodies over 1 MiB on every route with 413, and reads none of an unauthorised one', async () => {
    const { s, token, test } = suite;
    const before = await rowCounts(test.db);
    const big = JSON.stringify({ repository: 'acme/shop', padding: 'x'.repeat(2 * MIB) });
    for (const { method, path } of writes) {
      const res = await send(method, path, big);
      const error = expectError(res, 413, 'payload_too_large', `${method} ${path}`);
      expect(error.details).toEqual({ limit_bytes: MIB });
    }
    // Sent in chunks with no Content-Length: counted as it arrives, refused the same way.
    const chunked = await fetch(`${s.url}/v1/runs`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, duplex: 'half',
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 40; i++) controller.enqueue(new TextEncoder().encode(' '.repeat(64 * 1024)));
          controller.close();
        },
      }),
    } as RequestInit);
    expect(chunked.status).toBe(413);
    // No token: a 401 at once, before the body is read.
    const anonymous = await fetch(`${s.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(anonymous.status).toBe(401);
    expect(await rowCounts(test.db)).toEqual(before);
  });

  it('refuses 10,000-deep (and 500,000-deep) arrays and objects, whole or in a field, on every route with a 4xx', async () => {
    const { s, test } = suite;
    const before = await rowCounts(test.db);
    const bodies: [string, string][] = [
      ['10k-deep array', deepArray(10_000)],
      ['10k-deep object', deepObject(10_000)],
      ['500k-deep array (1 MB)', deepArray(500_000)],
      ['10k-deep object holding __proto__', deepObject(10_000, '{"__proto__":{"admin":true}}')],
      ['10k-deep value in a field', `{"repository":"acme/shop","branch":"main","commit_sha":"${sha()}","trigger_type":"push","github_context":${deepObject(10_000)}}`],
      ['10k-deep array in a field', `{"repository":"acme/shop","project":"api","commit_sha":"${sha()}","artifacts":${deepArray(10_000)}}`],
      ['__proto__ at the top', '{"__proto__":{"admin":true},"repository":"acme/shop"}'],
      ['constructor.prototype', '{"constructor":{"prototype":{"admin":true}}}'],
      ['100k keys', `{${Array.from({ length: 100_000 }, (_, i) => `"k${i}":1`).join(',')}}`],
      ['a string where an object belongs', '"acme/shop"'],
      ['null', 'null'],
      ['a number', '1e309'],
      ['broken JSON', '{"repository":'],
      ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]).toString('latin1')],
    ];
    const statuses = new Map<number, number>();
    for (const [what, body] of bodies) {
      for (const { method, path } of writes) {
        const res = await send(method, path, body);
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        expectError(res, '4xx', undefined, `${what} → ${method} ${path}`);
      }
    }
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect(await rowCounts(test.db)).toEqual(before);
    if (process.env.FORGE_PRINT_FIGURES) console.log(`nested bodies: ${bodies.length * writes.length} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('refuses a signed webhook whose fields have the wrong types, never a 5xx', async () => {
    const { test } = suite;
    const before = await rowCounts(test.db);
    const deep = JSON.parse(deepObject(1000)) as object;
    const pushes: object[] = [
      { ref: 42, after: sha(), repository: { full_name: 'acme/shop' } },
      { ref: ['refs/heads/main'], after: sha(), repository: { full_name: 'acme/shop' } },
      { ref: 'refs/heads/main', after: { sha: 1 }, repository: { full_name: 'acme/shop' } },
      { ref: 'refs/heads/main', after: sha(), repository: { full_name: deep } },
      { ref: 'refs/heads/main', after: sha(), repository: 'acme/shop' },
      { ref: 'refs/heads/main', after: sha(), repository: { full_name: 'acme/shop' }, sender: { login: deep } },
      { ref: 'refs/heads/main', after: sha(), repository: { full_name: 'acme/shop' }, sender: { login: 'x'.repeat(300) } },
      { ref: 'refs/heads/main', after: sha(), repository: { full_name: 'acme/shop' }, sender: { login: 'a\u0000b' } },
    ];
    for (const payload of pushes) {
      const res = await send('POST', '/v1/webhooks/github', JSON.stringify(payload));
      expectError(res, 422, 'validation_error', JSON.stringify(payload).slice(0, 120));
    }
    for (const payload of [{ action: 42 }, { action: 'opened', number: 'x', pull_request: { head: { ref: 7, sha: sha(), repo: { full_name: 'acme/shop' } } } }]) {
      const res = await send('POST', '/v1/webhooks/github', JSON.stringify({ ...payload, repository: { full_name: 'acme/shop' } }), { 'x-github-event': 'pull_request' });
      expect(res.statusCode, res.body).toBeLessThan(500);
      expect(res.statusCode, res.body).not.toBe(201);
    }
    expect(await rowCounts(test.db)).toEqual(before);
  });
});

describe('a 10 MB log line through the step log path', () => {
  const suite = securitySuite(postgresAdapter, ['operator', 'service-account']);

  const api = async <T>(path: string): Promise<T> => {
    const res = await suite.s.app.inject({ url: path, headers: { authorization: `Bearer ${suite.token}` } });
    expect(res.statusCode, `${path} → ${res.body.slice(0, 200)}`).toBe(200);
    return res.json<T>();
  };

  it('reads it back in bounded ranges that never split a character, indexes and searches it in bounded memory', async () => {
    const { s, token } = suite;
    const { stepId, key } = await stepOfNewRun(s, token, { running: true });
    // One line of 10 MB: ASCII, then two-, three- and four-byte characters, a needle near the start and one at its end.
    const head = `start ${'a'.repeat(1000)} needle-early `;
    const line = `${head}${'€é😀'.repeat(1_150_000)} needle-late ${'z'.repeat(100)}`;
    const log = new StepLog(s.t.ctx.objects!, key, 60_000);
    log.write(line);
    log.write('\nafter\n');
    await log.flush();
    const size = Buffer.byteLength(line) + 7;
    expect(size).toBeGreaterThan(10 * 1000 * 1000);

    // While the step runs (parts), then once it ended (the whole object).
    for (const phase of ['running', 'ended'] as const) {
      if (phase === 'ended') {
        await log.finish();
        const res = await s.app.inject({ method: 'PUT', url: `/v1/steps/${stepId}/status`, headers: { authorization: `Bearer ${token}` }, payload: { status: 'success', exit_code: 0 } });
        expect(res.statusCode).toBe(200);
      }
      global.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      let peak = heapBefore;
      const sample = () => { peak = Math.max(peak, process.memoryUsage().heapUsed); };

      // Ranges of 64 KiB (not a multiple of 3): each ends on a whole character, and they add up to the log.
      let text = '';
      let offset = 0;
      let reads = 0;
      for (;;) {
        const range = await api<{ text: string; next_offset: number; size: number; complete: boolean }>(`/v1/steps/${stepId}/logs?offset=${offset}&limit=65536`);
        expect(range.text.includes('\ufffd'), `range at ${offset} splits a character`).toBe(false);
        expect(Buffer.byteLength(range.text)).toBeLessThanOrEqual(65536);
        text += range.text;
        reads++;
        sample();
        if (range.next_offset >= range.size) break;
        expect(range.next_offset).toBeGreaterThan(offset);
        offset = range.next_offset;
      }
      expect(text).toBe(`${line}\nafter\n`);
      text = '';

      const index = await api<{ lines: number; size: number; checkpoints: number[] }>(`/v1/steps/${stepId}/logs/index`);
      sample();
      expect(index).toMatchObject({ lines: 2, size, checkpoints: [0] });
      const early = await api<{ matches: { line: number; text: string }[] }>(`/v1/steps/${stepId}/logs/search?q=needle-early`);
      sample();
      expect(early.matches).toHaveLength(1);
      expect(early.matches[0]).toMatchObject({ line: 1 });
      expect(early.matches[0]!.text.length).toBeLessThanOrEqual(1000);
      // Only a line's first MiB is searched (a log of one endless line must not fill memory).
      expect((await api<{ matches: unknown[] }>(`/v1/steps/${stepId}/logs/search?q=needle-late`)).matches).toEqual([]);
      expect((await api<{ matches: { line: number }[] }>(`/v1/steps/${stepId}/logs/search?q=after`)).matches).toEqual([{ line: 2, offset: size - 6, text: 'after' }]);
      sample();
      const growth = (peak - heapBefore) / MIB;
      // The test's own reassembled copy of the log is ~20 MB of UTF-16; what the server reads is bounded by its 1 MiB ranges.
      expect(growth).toBeLessThan(200);
      if (process.env.FORGE_PRINT_FIGURES) console.log(`10 MB line (${phase}): ${reads} range reads, heap growth at most ${growth.toFixed(1)} MiB`);
    }
  });
});

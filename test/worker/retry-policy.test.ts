/**
 * Digest §8 behaviour 25: retryable errors (timeout, network, 429, 5xx) are retried with capped
 * exponential backoff plus jitter (base 1 s, cap 60 s, at most 5 attempts); 400/401/403/404 are
 * not. Checked on the policy itself and on the worker's client of the internal endpoints, against
 * a real HTTP server that answers as the test says.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForgeError, RetryableError } from '../../src/domain/errors.ts';
import { DEFAULT_BACKOFF, backoffDelay } from '../../src/domain/jobs.ts';
import { httpInternalApi } from '../../src/worker/internal-api.ts';

describe('backoff policy', () => {
  it('is base 1 s doubling per attempt, capped at 60 s, plus up to 1 s of jitter, for at most 5 attempts', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 1000, maxMs: 60_000, jitterMs: 1000, maxAttempts: 5 });
    const none = () => 0;
    expect([0, 1, 2, 3, 4, 5, 6, 7, 20].map((a) => backoffDelay(a, DEFAULT_BACKOFF, none))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    const most = () => 0.999_999;
    expect(backoffDelay(0, DEFAULT_BACKOFF, most)).toBe(1999);
    expect(backoffDelay(10, DEFAULT_BACKOFF, most)).toBe(60_999);
    // Jitter spreads workers that failed together.
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(2)));
    expect(delays.size).toBeGreaterThan(10);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...delays)).toBeLessThan(5000);
  });
});

describe('the worker\'s internal API client', () => {
  let server: Server;
  let url = '';
  /** Statuses to answer, in order; the last one repeats. */
  let script: number[] = [];
  let calls = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const status = script[Math.min(calls, script.length - 1)] ?? 200;
        calls++;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(status < 300
          ? { attempt: 1, task: {}, steps: [] }
          : { error: { code: status === 409 ? 'conflict' : status === 404 ? 'not_found' : 'x', message: `answer ${status}`, details: { status } } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = (baseUrl = url) => httpInternalApi({ baseUrl, token: async () => 'service-token', attempts: 4 });
  const answering = (...statuses: number[]) => {
    script = statuses;
    calls = 0;
  };

  it.each([429, 500, 502, 503])('retries %i and succeeds when the API recovers', async (status) => {
    answering(status, status, 200);
    await expect(client().claimTask('t1')).resolves.toMatchObject({ attempt: 1 });
    expect(calls).toBe(3);
  });

  it('gives up after its attempts with a RetryableError, so the queue redelivers the job later', async () => {
    answering(503);
    const error = await client().reportTask('t1', { status: 'success', attempt: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toMatch(/did not answer: PUT \/v1\/tasks\/t1\/status: 503 answer 503/);
    expect(calls).toBe(4);
  });

  it.each([400, 401, 403, 404, 409, 422])('does not retry %i: it fails at once with the API\'s error', async (status) => {
    answering(status);
    const error = await client().reportStep('s1', { status: 'running', attempt: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForgeError);
    expect(error).not.toBeInstanceOf(RetryableError);
    expect((error as Error).message).toContain(`${status} answer ${status}`);
    expect(calls).toBe(1);
  });

  it('retries network errors (nothing listening) and then fails retryable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const started = Date.now();
    const error = await client(deadUrl).claimTask('t1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toMatch(/ECONNREFUSED|fetch failed/);
    // Three waits of the client's own backoff happened between the four attempts.
    expect(Date.now() - started).toBeGreaterThanOrEqual(100 + 200 + 400);
  });
});

/**
 * Slow and idle clients over real sockets: clients that send their headers or body a byte at a
 * time do not hold up anyone else; 1,000 idle clients on GET /v1/events cost bounded memory and
 * leave nothing behind when they go; clients that stop reading an event stream or a followed log
 * are not buffered for without limit. Timing bounds are generous (this machine is shared).
 */
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { REQUEST_TIMEOUT_MS } from '../../src/api/app.ts';
import type { EventEnvelope } from '../../src/domain/entities.ts';
import { StepLog } from '../../src/worker/step-log.ts';
import { postgresAdapter } from '../helpers/stores.ts';
import { securitySuite, stepOfNewRun } from './support.ts';

const MIB = 1024 * 1024;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Resident set and heap after a full collection, in MiB. */
function memory(): { rss: number; heap: number } {
  gc();
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss: rss / MIB, heap: heapUsed / MIB };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a socket and resolves once it is connected. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Opens a socket, sends `request`, resolves once `marker` has arrived; the socket stays open. */
async function openStream(port: number, request: string, marker: string): Promise<Socket> {
  const socket = await open(port);
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (seen.includes(marker)) {
        socket.off('data', onData);
        resolve(socket);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(request);
  });
}

describe('slow and idle clients', () => {
  const suite = securitySuite(postgresAdapter, ['service-account']);
  /** Milliseconds a normal authenticated request takes. */
  const timed = async () => {
    const start = performance.now();
    const res = await fetch(`${suite.s.url}/v1/runs?limit=1`, { headers: { authorization: `Bearer ${suite.token}` } });
    expect(res.status).toBe(200);
    await res.text();
    return performance.now() - start;
  };

  it('serves others promptly while clients trickle their headers and bodies a byte at a time; a body may not take for ever', async () => {
    const { s, token } = suite;
    const request = `POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n`;
    const sockets = await Promise.all(Array.from({ length: 100 }, () => open(s.port)));
    let stop = false;
    // Half never finish their headers, half never finish their body: one byte each every 20 ms.
    const trickle = sockets.map(async (socket, i) => {
      const bytes = i % 2 === 0 ? request.slice(0, -4) : request;
      let at = i % 2 === 0 ? 0 : bytes.length;
      if (i % 2 === 1) socket.write(bytes);
      while (!stop && !socket.destroyed) {
        socket.write(i % 2 === 0 ? bytes[at++ % bytes.length]! : ' ');
        await sleep(20);
      }
    });
    await sleep(300);
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) latencies.push(await timed());
    stop = true;
    await Promise.all(trickle);
    for (const socket of sockets) socket.destroy();
    latencies.sort((a, b) => a - b);
    expect(latencies[latencies.length - 1]).toBeLessThan(5000);
    // Node drops a request whose headers take more than 60 s; the body is bounded too (Fastify's default is none).
    expect(s.app.server.headersTimeout).toBeLessThanOrEqual(60_000);
    expect(s.app.server.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(REQUEST_TIMEOUT_MS).toBeGreaterThan(0);
    expect(REQUEST_TIMEOUT_MS).toBeLessThanOrEqual(300_000);
    if (process.env.FORGE_PRINT_FIGURES) console.log(`slow clients: 100 trickling, normal request median ${latencies[10]!.toFixed(1)} ms, max ${latencies[19]!.toFixed(1)} ms`);
  });

  it('holds 1,000 idle event streams in bounded memory, still answers promptly, and forgets them when they close', async () => {
    const { s, token } = suite;
    const listenersBefore = s.t.bus['listeners'].size;
    const before = memory();
    const request = `GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    const streams: Socket[] = [];
    for (let i = 0; i < 1000; i += 50) {
      streams.push(...await Promise.all(Array.from({ length: 50 }, () => openStream(s.port, request, ': connected'))));
    }
    expect(s.t.bus['listeners'].size - listenersBefore).toBe(1000);
    const during = memory();
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) latencies.push(await timed());
    // One event reaches every stream.
    const received = streams.map((socket) => new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        if (chunk.toString('latin1').includes('pipeline.run.created')) resolve();
      });
    }));
    s.t.bus.emit({ event_type: 'pipeline.run.created', timestamp: new Date().toISOString(), data: { id: 'x' } } as unknown as EventEnvelope);
    await Promise.all(received);
    for (const socket of streams) socket.destroy();
    const deadline = Date.now() + 10_000;
    while (s.t.bus['listeners'].size > listenersBefore && Date.now() < deadline) await sleep(50);
    expect(s.t.bus['listeners'].size).toBe(listenersBefore);
    const after = memory();
    const growth = { rss: during.rss - before.rss, heap: during.heap - before.heap };
    expect(growth.rss).toBeLessThan(200);
    expect(Math.max(...latencies)).toBeLessThan(5000);
    if (process.env.FORGE_PRINT_FIGURES) {
      console.log(`1000 idle SSE clients: rss +${growth.rss.toFixed(1)} MiB, heap +${growth.heap.toFixed(1)} MiB (≈${((growth.heap * 1024) / 1000).toFixed(1)} KiB heap each); `
        + `normal request max ${Math.max(...latencies).toFixed(1)} ms; after they closed: heap ${(after.heap - before.heap).toFixed(1)} MiB over the start`);
    }
  });

  it('drops an event stream that stops reading instead of buffering for it without limit', async () => {
    const { s, token } = suite;
    const request = `GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    const stalled = await Promise.all(Array.from({ length: 50 }, () => openStream(s.port, request, ': connected')));
    for (const socket of stalled) socket.pause(); // connected, reading nothing
    const closed = stalled.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    for (const socket of stalled) socket.on('end', () => socket.destroy());
    const before = memory();
    // 2,000 events of 4 kB: 8 MB per stream, 400 MB in all if the server kept it.
    const data = { id: 'x', padding: 'p'.repeat(4000) };
    for (let i = 0; i < 2000; i++) {
      s.t.bus.emit({ event_type: 'pipeline.run.created', timestamp: new Date().toISOString(), data } as unknown as EventEnvelope);
      if (i % 100 === 0) await sleep(1);
    }
    await sleep(200);
    const during = memory();
    const growth = during.rss - before.rss;
    expect(growth).toBeLessThan(200);
    // The server ended them: nobody is subscribed for them any more.
    for (const socket of stalled) socket.resume();
    await Promise.race([Promise.all(closed), sleep(10_000)]);
    expect(stalled.every((socket) => socket.destroyed)).toBe(true);
    if (process.env.FORGE_PRINT_FIGURES) console.log(`50 stalled SSE clients × 8 MB of events: rss +${growth.toFixed(1)} MiB`);
  });

  it('does not read a followed log faster than a client takes it', async () => {
    const { s, token } = suite;
    const auth = { authorization: `Bearer ${token}` };
    const { stepId, key } = await stepOfNewRun(s, token, { running: true });
    const log = new StepLog(s.t.ctx.objects!, key, 60_000);
    for (let i = 0; i < 20_000; i++) log.write(`${String(i).padStart(8, '0')} ${'x'.repeat(1000)}\n`);
    await log.finish();
    await s.app.inject({ method: 'PUT', url: `/v1/steps/${stepId}/status`, headers: auth, payload: { status: 'success', exit_code: 0 } });

    const before = memory();
    // 20 followers of a 20 MB log who read nothing: 400 MB if the server read ahead for them.
    const followers = await Promise.all(Array.from({ length: 20 }, () => openStream(
      s.port, `GET /v1/steps/${stepId}/logs?follow=1&limit=262144 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`, 'data: ',
    )));
    for (const socket of followers) socket.pause();
    await sleep(1500);
    const during = memory();
    const growth = during.rss - before.rss;
    for (const socket of followers) socket.destroy();
    expect(growth).toBeLessThan(150);
    if (process.env.FORGE_PRINT_FIGURES) console.log(`20 stalled followers of a 20 MB log: rss +${growth.toFixed(1)} MiB`);
  });
});

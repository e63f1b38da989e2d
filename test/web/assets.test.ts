/**
 * The built dashboard as the server sends it: index.html names hashed assets, which come
 * precompressed (brotli, gzip) to browsers that accept it and plain to those that do not, with
 * immutable caching; the CSP allows nothing but the server itself (dev issuer).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { pgliteAdapter, type TestStore } from '../helpers/stores.ts';
import { WEB_DIST } from '../helpers/web.ts';

describe('the built dashboard, served', () => {
  let store: TestStore;
  let app: TestApp;
  let url = '';
  beforeAll(async () => {
    store = await pgliteAdapter.open();
    app = await startTestApp(store, { deploymentWorker: false, web: { root: WEB_DIST, authConfig: { mode: 'dev', issuer: null, client_id: null, scopes: 'openid profile', resource: null } } });
    await app.app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.app.server.address();
    url = `http://127.0.0.1:${address && typeof address === 'object' ? address.port : 0}`;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it('serves index.html and its hashed script, compressed when accepted and identical when decoded', async () => {
    const index = await fetch(`${url}/runs`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await index.text();
    const script = /src="(\/assets\/index-[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const original = readFileSync(join(WEB_DIST, script!));
    // React's production build (the test setup builds with NODE_ENV=production, as npm install does).
    expect(original.toString()).not.toContain('Download the React DevTools');

    const plain = await fetch(`${url}${script}`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(Buffer.from(await plain.arrayBuffer()).equals(original)).toBe(true);

    for (const [encoding, decode] of [['br', brotliDecompressSync], ['gzip', gunzipSync]] as const) {
      // fetch would decode it itself: read the raw bytes over node:http instead.
      const { request } = await import('node:http');
      const raw = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        request(`${url}${script}`, { headers: { 'accept-encoding': encoding } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        }).on('error', reject).end();
      });
      expect(raw.headers['content-encoding']).toBe(encoding);
      expect(raw.body.length).toBeLessThan(original.length / 2);
      expect(decode(raw.body).equals(original)).toBe(true);
    }
  });
});

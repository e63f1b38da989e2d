/**
 * The dashboard served by the API process (beyond the seed): files with their cache headers, the
 * single-page-app fallback, security headers, path traversal refused, the "not built" page, and
 * GET /v1/auth/config. Through app.inject and over real HTTP (paths sent exactly as written).
 */
import { request as httpRequest } from 'node:http';
import { validate } from '@readme/openapi-parser';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentSecurityPolicy, isDashboardRoute, type UiAuthConfig } from '../../src/api/web.routes.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { pgliteAdapter, type TestStore } from '../helpers/stores.ts';

const INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>';
const SCRIPT = 'console.log("forge dashboard");';
const SECRET = '{"name":"outside the web root"}';
const DEV: UiAuthConfig = { mode: 'dev', issuer: null, client_id: null, scopes: 'openid profile', resource: null };
const OIDC: UiAuthConfig = { mode: 'oidc', issuer: 'https://id.example.com:8443/realms/forge', client_id: 'forge-dashboard', scopes: 'openid profile email', resource: 'https://forge.example.com' };

/** A built dashboard in `<dir>/site`, and a file beside it that must never be served. */
function builtSite(): { dir: string; root: string } {
  const dir = mkdtempSync(join(tmpdir(), 'forge-web-'));
  const root = join(dir, 'site');
  mkdirSync(join(root, 'assets'), { recursive: true });
  writeFileSync(join(root, 'index.html'), INDEX);
  writeFileSync(join(root, 'assets', 'index-abc123.js'), SCRIPT);
  writeFileSync(join(root, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  writeFileSync(join(root, '.env'), 'SECRET=1');
  writeFileSync(join(dir, 'package.json'), SECRET);
  return { dir, root };
}

/** GET over a real socket with the path exactly as given (no normalisation by the client). */
function rawGet(port: number, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const CSP_DEV = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

describe('dashboard routes', () => {
  it('tells dashboard routes from files and the API', () => {
    for (const path of ['/', '/runs', '/runs/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11', '/releases/acme/shop/api/v1.2.0', '/v1x', '/healthzz']) expect(isDashboardRoute(path), path).toBe(true);
    for (const path of ['/v1', '/v1/', '/v1/runs', '/healthz', '/readyz/x', '/metrics', '/assets', '/assets/x', '/favicon.ico', '/a/b.js', '/.env', '/../etc/passwd', '/a/..', '/a\\b', '/a\0b']) {
      expect(isDashboardRoute(path), path).toBe(false);
    }
  });
  it('lets the OIDC issuer\'s origin into connect-src and form-action only', () => {
    expect(contentSecurityPolicy(null)).toBe(CSP_DEV);
    expect(contentSecurityPolicy('https://id.example.com:8443/realms/forge')).toBe(CSP_DEV
      .replace("connect-src 'self'", "connect-src 'self' https://id.example.com:8443")
      .replace("form-action 'self'", "form-action 'self' https://id.example.com:8443"));
  });
});

describe('the dashboard served by the API', () => {
  let test: TestStore;
  let t: TestApp;
  let site: { dir: string; root: string };
  let port = 0;
  let token = '';

  beforeAll(async () => {
    site = builtSite();
    test = await pgliteAdapter.open();
    t = await startTestApp(test, { deploymentWorker: false, web: { root: site.root, authConfig: DEV } });
    token = await t.token('alice', ['developer']);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    port = address && typeof address === 'object' ? address.port : 0;
  });
  afterAll(async () => {
    await t?.close();
    await test?.close();
    if (site) rmSync(site.dir, { recursive: true, force: true });
  });

  const get = (url: string, method: 'GET' | 'HEAD' | 'POST' = 'GET') => t.app.inject({ method, url });
  const expectIndex = (res: Awaited<ReturnType<typeof get>>) => {
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['content-security-policy']).toBe(CSP_DEV);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
  };

  it('serves index.html at / (no-cache, with the security headers)', async () => {
    const res = await get('/');
    expectIndex(res);
    expect(res.body).toBe(INDEX);
    const direct = await get('/index.html');
    expect(direct.statusCode).toBe(200);
    expect(direct.body).toBe(INDEX);
    expect(direct.headers['cache-control']).toBe('no-cache');
    expect(direct.headers['content-security-policy']).toBe(CSP_DEV);
  });

  it('serves assets as immutable for a year, other files revalidated', async () => {
    const js = await get('/assets/index-abc123.js');
    expect(js.statusCode).toBe(200);
    expect(js.body).toBe(SCRIPT);
    expect(js.headers['content-type']).toMatch(/^(text|application)\/javascript/);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.headers['x-content-type-options']).toBe('nosniff');
    expect(js.headers['content-security-policy']).toBeUndefined();
    const icon = await get('/favicon.svg');
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).toBe('no-cache');
    expect((await get('/assets/index-abc123.js', 'HEAD')).statusCode).toBe(200);
  });

  it('answers dashboard routes with index.html (GET and HEAD), including paths with a release alias', async () => {
    for (const path of ['/runs', '/runs/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11?tab=logs', '/releases/acme/shop/api/v1.2.0', '/projects/acme%2Fshop']) {
      const res = await get(path);
      expectIndex(res);
      expect(res.body, path).toBe(INDEX);
    }
    const head = await get('/runs/1', 'HEAD');
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('keeps the API\'s JSON 404 for unknown /v1 paths, missing files and other methods', async () => {
    for (const [method, path] of [['GET', '/v1/nope'], ['GET', '/v1'], ['HEAD', '/v1/nope'], ['POST', '/runs'], ['GET', '/healthz/x'], ['GET', '/metrics/x']] as const) {
      const res = await get(path, method);
      expect(res.statusCode, `${method} ${path}`).toBe(404);
      if (method !== 'HEAD') expect(res.json(), path).toEqual({ error: { code: 'not_found', message: `no route ${method} ${path}`, details: {} } });
    }
    for (const path of ['/assets/missing.js', '/assets/', '/assets', '/missing.png', '/.env', '/assets/.hidden']) {
      const res = await get(path);
      expect(res.statusCode, path).toBe(404);
      expect(res.json().error.code, path).toBe('not_found');
    }
  });

  it('still authenticates the API and serves health without a token', async () => {
    expect((await get('/v1/runs')).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })).json().subject).toBe('alice');
    expect((await get('/healthz')).json()).toEqual({ status: 'ok' });
  });

  it('never serves a file outside the root, however the path is written', async () => {
    const attempts = [
      '/..%2f..%2fpackage.json', '/..%2fpackage.json', '/assets/../../package.json', '/assets/..%2f..%2fpackage.json', '/../package.json',
      '/%2e%2e/package.json', '/assets/%2e%2e/%2e%2e/package.json', '/..\\package.json', '/%2e%2e%5cpackage.json',
      '/index.html%00', '/%00', '/assets/index-abc123.js%00.html', '/..%2f..%2fetc%2fpasswd', '//package.json',
    ];
    for (const path of attempts) {
      for (const res of [await get(path), await rawGet(port, path)]) {
        const status = 'statusCode' in res ? res.statusCode : res.status;
        const body = res.body;
        expect(body, path).not.toContain('outside the web root');
        expect(body, path).not.toContain('root:');
        expect(status, path).toBe(404);
      }
    }
  });

  it('GET /v1/auth/config is public and says how to log in', async () => {
    const res = await get('/v1/auth/config');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ mode: 'dev', issuer: null, client_id: null, scopes: 'openid profile', resource: null });
    const doc = (await get('/v1/openapi.json')).json();
    const checked = await validate(structuredClone(doc));
    expect(checked.valid, JSON.stringify((checked as { errors?: unknown }).errors)).toBe(true);
    expect(Object.keys(doc.paths).filter((path) => !path.startsWith('/v1/'))).toEqual([]);
    expect(doc.paths['/v1/auth/config'].get.security).toEqual([]);
    expect(doc.paths['/v1/auth/config'].get.summary).toMatch(/beyond the seed/);
  });
});

describe('the dashboard with an OIDC issuer, and before it is built', () => {
  let test: TestStore;
  let dir: string;

  beforeAll(async () => {
    test = await pgliteAdapter.open();
    dir = mkdtempSync(join(tmpdir(), 'forge-web-'));
  });
  afterAll(async () => {
    await test?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('tells the dashboard the issuer, client, scopes and resource, and lets the issuer into the CSP', async () => {
    const site = builtSite();
    const t = await startTestApp(test, { deploymentWorker: false, web: { root: site.root, authConfig: OIDC } });
    try {
      expect((await t.app.inject({ url: '/v1/auth/config' })).json()).toEqual(OIDC);
      const page = await t.app.inject({ url: '/deployments' });
      expect(page.headers['content-security-policy']).toContain("connect-src 'self' https://id.example.com:8443;");
      expect(page.headers['content-security-policy']).toContain("form-action 'self' https://id.example.com:8443");
    } finally {
      await t.close();
      rmSync(site.dir, { recursive: true, force: true });
    }
  });

  it('answers 503 with a page saying how to build it while the root is missing or empty, and serves it once built', async () => {
    const root = join(dir, 'not-there');
    const t = await startTestApp(test, { deploymentWorker: false, web: { root, authConfig: DEV } });
    try {
      for (const path of ['/', '/runs/1']) {
        const res = await t.app.inject({ url: path });
        expect(res.statusCode, path).toBe(503);
        expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
        expect(res.headers['content-security-policy']).toBe(CSP_DEV);
        expect(res.body).toContain('npm run build:web');
      }
      expect((await t.app.inject({ url: '/v1/auth/config' })).statusCode).toBe(200);
      const token = await t.token('alice', []);
      expect((await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
      expect((await t.app.inject({ url: '/assets/index-abc123.js' })).statusCode).toBe(404);
      mkdirSync(root);
      expect((await t.app.inject({ url: '/' })).statusCode).toBe(503);
      // Built while the server runs: no restart needed.
      mkdirSync(join(root, 'assets'));
      writeFileSync(join(root, 'index.html'), INDEX);
      writeFileSync(join(root, 'assets', 'index-abc123.js'), SCRIPT);
      expect((await t.app.inject({ url: '/' })).body).toBe(INDEX);
      expect((await t.app.inject({ url: '/assets/index-abc123.js' })).body).toBe(SCRIPT);
    } finally {
      await t.close();
    }
  });
});

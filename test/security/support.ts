/**
 * Shared pieces of the abuse tests (test/security/): what "nothing written" means (row counts of
 * every table), the error body every refusal must carry, a real OIDC issuer whose signing key the
 * test holds (to forge claims the issuer itself would sign), and raw HTTP for requests a client
 * library would refuse to send.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sql, type Kysely } from 'kysely';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { devIssuerSigner } from '../../src/auth/github-oidc.ts';
import type { Role } from '../../src/domain/identity.ts';
import { stepLogKey } from '../../src/domain/logs.ts';
import type { SignatureVerifier } from '../../src/engine/ports.ts';
import { recordDiscovery } from '../../src/engine/runs.ts';
import type { Database } from '../../src/store/db.ts';
import { openObjectStore } from '../../src/store/object-store.ts';
import { makeKey, type TestKey } from '../auth/tokens.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import type { StoreAdapter, TestStore } from '../helpers/stores.ts';

/** Rows in every table of the database's public schema (migrations' bookkeeping included). */
export async function rowCounts(db: Kysely<Database>): Promise<Record<string, number>> {
  const tables = await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`.execute(db);
  const counts: Record<string, number> = {};
  for (const { name } of tables.rows) {
    const result = await sql<{ n: string | number }>`SELECT count(*) AS n FROM ${sql.table(name)}`.execute(db);
    counts[name] = Number(result.rows[0]?.n ?? -1);
  }
  return counts;
}

/** Every row of every table as JSON text: what a dump of the database would hold. */
export async function dumpRows(db: Kysely<Database>): Promise<string> {
  const tables = await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`.execute(db);
  const out: string[] = [];
  for (const { name } of tables.rows) {
    const rows = await sql<{ row: string }>`SELECT row_to_json(t)::text AS row FROM ${sql.table(name)} t`.execute(db);
    out.push(`-- ${name}`, ...rows.rows.map((r) => r.row));
  }
  return out.join('\n');
}

/** The seed's error body with this code; `status` is exact, or a class like '4xx'. */
export function expectError(res: Pick<LightMyRequestResponse, 'statusCode' | 'body'>, status: number | '4xx', code?: string, what = ''): Record<string, unknown> {
  const label = `${what} → ${res.statusCode} ${res.body.slice(0, 300)}`;
  if (status === '4xx') expect(res.statusCode >= 400 && res.statusCode < 500, label).toBe(true);
  else expect(res.statusCode, label).toBe(status);
  const body = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
  expect(body.error, label).toEqual({ code: expect.any(String), message: expect.any(String), details: expect.any(Object) });
  expect(Object.keys(body), label).toEqual(['error']);
  if (code !== undefined) expect(body.error?.code, label).toBe(code);
  return body.error as Record<string, unknown>;
}

export const uuid = (): string => randomUUID();

/**
 * A real OIDC issuer (oidc-provider) whose signing key the test holds: tokens from its token
 * endpoint are what the issuer really gives out; `key` signs what it never would (expired,
 * future, another audience) with the very key its JWKS publishes.
 */
export interface HeldKeyIssuer {
  issuer: string;
  key: TestKey;
  /** A real client_credentials access token for audience `forge`, roles as a Keycloak realm puts them. */
  accessToken(): Promise<string>;
  close(): Promise<void>;
}

const CLIENT = { id: 'security-ci', secret: 'security-ci-secret' };
export const OIDC_RESOURCE = 'https://forge.test/api';

export async function startHeldKeyIssuer(roles: string[] = ['operator']): Promise<HeldKeyIssuer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const key = await makeKey('RS256');
  const provider = new Provider(issuer, {
    jwks: { keys: [key.privateJwk] },
    clients: [{ client_id: CLIENT.id, client_secret: CLIENT.secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: () => ({ scope: 'api', audience: 'forge', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
    extraTokenClaims: () => ({ preferred_username: 'ci', realm_access: { roles } }),
  });
  server.on('request', provider.callback());
  return {
    issuer,
    key,
    async accessToken() {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: OIDC_RESOURCE }),
      });
      const body = (await response.json()) as { access_token?: string };
      if (!response.ok || body.access_token === undefined) throw new Error(`token request failed: ${response.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/**
 * A stand-in for GitHub Actions' OIDC issuer: its own key pair and JWKS at
 * `<issuer>/.well-known/jwks`, as GitHub publishes it.
 */
export async function startGitHubIssuer(): Promise<{ issuer: string; key: TestKey; close(): Promise<void> }> {
  const key = await makeKey('RS256');
  let issuer = '';
  const server = createServer((req: IncomingMessage, res) => {
    const docs: Record<string, unknown> = {
      '/.well-known/openid-configuration': { issuer, jwks_uri: `${issuer}/.well-known/jwks` },
      '/.well-known/jwks': { keys: [key.publicJwk] },
    };
    const doc = docs[req.url ?? ''];
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(doc ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer, key,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** Sends `bytes` on a fresh TCP connection and resolves with everything the server answered. */
export function rawHttp(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    // Not end(): a client that half-closes may see its request dropped; the request says Connection: close.
    socket.write(bytes);
  });
}

/** Status code of a raw HTTP answer (0 when there was none). */
export const statusOf = (answer: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);

export const WEBHOOK_SECRET = 'security-suite webhook secret';

export interface SecurityApp {
  /** The test app (its ctx, store, dev issuer), whose own app stays unused. */
  t: TestApp;
  /** The app under test: dev issuer, GitHub webhook and token exchange, dashboard, step logs; listening. */
  app: FastifyInstance;
  port: number;
  url: string;
  /** The built dashboard's root (index.html, assets/), inside `webDir` beside a file that must never be served. */
  webDir: string;
  close(): Promise<void>;
}

/**
 * The whole API as a server runs it (every optional route present): the webhook with a secret,
 * the Actions token exchange, the dashboard, a files object store for step logs, a signature
 * verifier, all on the real dev issuer. Listening on a free port for clients that need a socket.
 */
export async function startSecurityApp(test: TestStore, options: { logLevel?: string } = {}): Promise<SecurityApp> {
  const webDir = mkdtempSync(join(tmpdir(), 'forge-security-web-'));
  const root = join(webDir, 'site');
  mkdirSync(join(root, 'assets'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>Forge</title>');
  writeFileSync(join(root, 'assets', 'app-1.js'), 'console.log(1);');
  writeFileSync(join(webDir, 'outside.txt'), 'OUTSIDE THE WEB ROOT');
  const objectsDir = mkdtempSync(join(tmpdir(), 'forge-security-objects-'));
  const objects = await openObjectStore({ dataDir: objectsDir });
  const signatures: SignatureVerifier = { verify: async () => ({ status: 'unavailable', signature_digest: null, reason: 'no registry in the security suite' }) };
  const t = await startTestApp(test, { objects, signatures, deploymentWorker: false });
  const app = await buildApp({
    ctx: t.ctx, verifier: t.issuer.verifier, bus: t.bus, rateLimits: 'off', logLevel: options.logLevel ?? 'silent',
    github: { webhookSecret: WEBHOOK_SECRET, registeredRepositories: ['acme/shop'], signPlatformToken: devIssuerSigner(t.issuer) },
    web: { root, authConfig: { mode: 'dev', issuer: null, client_id: null, scopes: 'openid profile', resource: null } },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    t, app, port, url: `http://127.0.0.1:${port}`, webDir,
    async close() {
      await app.close();
      await t.close();
      await objects.close?.();
      rmSync(webDir, { recursive: true, force: true });
      rmSync(objectsDir, { recursive: true, force: true });
    },
  };
}

export interface SecuritySuite {
  readonly s: SecurityApp;
  readonly test: TestStore;
  /** A token with the suite's roles (default: every permission there is). */
  readonly token: string;
}

/**
 * Registers a file's hooks: a fresh database on `adapter`, the whole API listening
 * (startSecurityApp), a token with `roles`; every test skips, with the reason, when the adapter's
 * service is unavailable (which only happens outside CI).
 */
export function securitySuite(adapter: StoreAdapter, roles: Role[] = ['operator', 'approver', 'service-account']): SecuritySuite {
  const state: { s?: SecurityApp; test?: TestStore; token?: string } = {};
  beforeAll(async () => {
    if (adapter.unavailable) return;
    state.test = await adapter.open();
    state.s = await startSecurityApp(state.test);
    state.token = await state.s.t.issuer.sign({ sub: 'root', roles });
  });
  afterAll(async () => {
    state.s?.app.server.closeAllConnections();
    await state.s?.close();
    await state.test?.close();
  });
  beforeEach((context) => {
    if (adapter.unavailable) context.skip(adapter.unavailable);
  });
  const must = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('securitySuite used outside its tests');
    return value;
  };
  return {
    get s() { return must(state.s); },
    get test() { return must(state.test); },
    get token() { return must(state.token); },
  };
}

/**
 * A new run of acme/shop, discovered with one project (api) and one step in phase check: its
 * ids, and the log key a worker would give that step. With `running`, the step is reported
 * running with that key, as a worker reports it before writing its log.
 */
export async function stepOfNewRun(s: SecurityApp, token: string, options: { running?: boolean } = {}): Promise<{ runId: string; stepId: string; key: string }> {
  const headers = { authorization: `Bearer ${token}` };
  const run = await s.app.inject({ method: 'POST', url: '/v1/runs', headers, payload: { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' } });
  const runId = run.json<{ id: string }>().id;
  await recordDiscovery(s.t.ctx, runId, {
    projects: [{ name: 'api', path: 'api', phases: { check: [{ name: 'step', action: 'script', run: 'true' }] } }],
    phaseGroups: [{ group: 1, phases: ['check'] }],
  });
  const tree = (await s.app.inject({ url: `/v1/runs/${runId}`, headers })).json<{ phases: { tasks: { steps: { id: string }[] }[] }[] }>();
  const stepId = tree.phases[0]!.tasks[0]!.steps[0]!.id;
  const key = stepLogKey(runId, 'check', 'api', 'step', 1);
  if (options.running) {
    const res = await s.app.inject({ method: 'PUT', url: `/v1/steps/${stepId}/status`, headers, payload: { status: 'running', logs_s3_key: key } });
    expect(res.statusCode, res.body).toBe(200);
  }
  return { runId, stepId, key };
}

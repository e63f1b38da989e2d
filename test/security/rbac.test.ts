/**
 * The RBAC matrix, generated: every operation of GET /v1/openapi.json (each /v1 route declares
 * `config.permission` or `config.public` beside it, and the app publishes that as the operation's
 * security) × every identity, expected codes from the one permission table (ROLE_PERMISSIONS):
 *  - anonymous: 401 on every route that is not public;
 *  - an identity without the route's permission: 403 naming it;
 *  - otherwise neither 401 nor 403 (the request itself is empty or names nothing, so 4xx is fine);
 *  - never a 5xx; a public route answers every identity alike (bearer tokens are not its business).
 * The route list is cross-checked against the router (printRoutes), so a /v1 route hidden from the
 * OpenAPI document cannot escape the matrix; a route declaring neither permission nor public stops
 * the app from starting (checked here too).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { PERMISSIONS, REPOSITORY_SCOPED_PERMISSIONS, ROLE_PERMISSIONS, type Permission } from '../../src/auth/permissions.ts';
import { ROLES, type Role } from '../../src/domain/identity.ts';
import { buildApp } from '../../src/api/app.ts';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { securitySuite, uuid } from './support.ts';

const METHODS = ['get', 'post', 'put', 'delete', 'patch'] as const;
type Method = (typeof METHODS)[number];

interface Operation {
  method: Method | 'head';
  path: string;
  /** undefined: public. */
  permission: Permission | undefined;
}

interface Identity {
  name: string;
  roles: Role[];
  repository?: string;
}

/** Anonymous, a viewer (no roles), each role alone, and a repository-scoped platform token. */
const IDENTITIES: (Identity | undefined)[] = [
  undefined,
  { name: 'viewer', roles: [] },
  ...ROLES.map((role) => ({ name: role, roles: [role] })),
  { name: 'platform token (service-account scoped to acme/shop)', roles: ['service-account'], repository: 'acme/shop' },
];

/** What the one table grants an identity: read for everyone, the roles' permissions, minus what a repository scope removes. */
function granted(identity: Identity): Set<Permission> {
  const set = new Set<Permission>(['read', ...identity.roles.flatMap((role) => ROLE_PERMISSIONS[role])]);
  if (identity.repository !== undefined) for (const p of set) if (!REPOSITORY_SCOPED_PERMISSIONS.includes(p)) set.delete(p);
  return set;
}

/** A value for each path parameter name the API uses; a new name fails the test until it has one. */
const PARAM_SAMPLES: Record<string, () => string> = {
  id: uuid, release_id: uuid, owner: () => 'acme', name: () => 'shop', project: () => 'api', environment: () => 'dev', ref: () => '1',
};

function operationsOf(doc: { paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>> }): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      expect(op.security, `${method} ${path} has no security in the OpenAPI document`).toBeDefined();
      const roles = op.security?.flatMap((s) => s.bearer ?? []) ?? [];
      expect(roles.length, `${method} ${path}: one permission, or none when public`).toBeLessThanOrEqual(1);
      const permission = roles[0] as Permission | undefined;
      if (permission !== undefined) expect(PERMISSIONS, `${method} ${path}`).toContain(permission);
      ops.push({ method, path, permission });
      // Fastify answers HEAD for every GET route; it goes through the same hooks and must answer alike.
      if (method === 'get') ops.push({ method: 'head', path, permission });
    }
  }
  return ops;
}

/** (path, method) pairs of /v1 routes as the router holds them, HEAD left out (printRoutes' tree, flattened). */
function routerOperations(tree: string): number {
  let count = 0;
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(match[2] ?? '');
    if (!stack.join('').startsWith('/v1/')) continue;
    count += (match[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '' && m !== 'HEAD').length;
  }
  return count;
}

describe.each(STORE_ADAPTERS)('RBAC matrix on $name', (adapter) => {
  const suite = securitySuite(adapter);
  const tokens = new Map<string, string>();
  beforeAll(async () => {
    if (adapter.unavailable) return;
    for (const identity of IDENTITIES) {
      if (!identity) continue;
      tokens.set(identity.name, await suite.s.t.issuer.sign({ sub: identity.name.replace(/\W+/g, '-'), roles: identity.roles, ...(identity.repository ? { repository: identity.repository } : {}) }));
    }
  });

  it('covers every /v1 route, each declaring one permission (GETs read; writes something more) or public', async () => {
    const { s } = suite;
    const doc = (await s.app.inject({ url: '/v1/openapi.json' })).json();
    const ops = operationsOf(doc).filter((op) => op.method !== 'head');
    // The router holds exactly these plus GET /v1/openapi.json (hidden from the document it serves).
    expect(routerOperations(s.app.printRoutes({ commonPrefix: false })), 'a /v1 route is missing from the OpenAPI document').toBe(ops.length + 1);
    for (const op of ops) {
      if (op.permission === undefined) continue;
      if (op.method === 'get') expect(op.permission, `${op.method} ${op.path}`).toBe('read');
      else expect(op.permission, `${op.method} ${op.path} changes state: it must need more than read`).not.toBe('read');
    }
    expect(ops.filter((op) => op.permission === undefined).map((op) => `${op.method} ${op.path}`).sort()).toEqual([
      'get /v1/auth/config', 'post /v1/auth/github', 'post /v1/webhooks/github',
    ]);
  });

  it('answers every route × identity as the permission table says, never with a 5xx', async () => {
    const { s } = suite;
    const doc = (await s.app.inject({ url: '/v1/openapi.json' })).json();
    const ops = operationsOf(doc);
    const rows: string[] = [];
    let requests = 0;
    for (const op of ops) {
      const url = op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
        const sample = PARAM_SAMPLES[name];
        if (!sample) throw new Error(`no sample value for path parameter {${name}} of ${op.path}: add one to PARAM_SAMPLES`);
        return sample();
      });
      const statuses: number[] = [];
      for (const identity of IDENTITIES) {
        const token = identity ? tokens.get(identity.name) : undefined;
        const controller = new AbortController();
        const res = await fetch(`${s.url}${url}`, {
          method: op.method.toUpperCase(),
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(op.method === 'post' || op.method === 'put' ? { 'content-type': 'application/json' } : {}) },
          ...(op.method === 'post' || op.method === 'put' ? { body: '{}' } : {}),
          signal: controller.signal,
        });
        // Event streams stay open: the status is all this needs.
        const text = res.headers.get('content-type')?.startsWith('text/event-stream') ? '' : await res.text();
        controller.abort();
        requests++;
        const who = identity?.name ?? 'anonymous';
        const label = `${op.method.toUpperCase()} ${url} as ${who} → ${res.status} ${text.slice(0, 200)}`;
        statuses.push(res.status);
        expect(res.status, label).toBeLessThan(500);
        if (op.permission === undefined) continue;
        if (!identity) {
          expect(res.status, label).toBe(401);
          if (op.method !== 'head') expect(JSON.parse(text).error, label).toMatchObject({ code: 'authentication_required', details: { reason: 'missing_token' } });
        } else if (!granted(identity).has(op.permission)) {
          expect(res.status, label).toBe(403);
          if (op.method !== 'head') expect(JSON.parse(text).error, label).toMatchObject({ code: 'permission_denied', details: { permission: op.permission } });
        } else {
          expect([401, 403], label).not.toContain(res.status);
        }
      }
      if (op.permission === undefined) expect(new Set(statuses).size, `${op.method} ${op.path} (public) answers every identity alike: ${statuses.join(', ')}`).toBe(1);
      rows.push(`${op.method.toUpperCase().padEnd(6)} ${op.path.padEnd(70)} ${(op.permission ?? 'public').padEnd(24)} ${statuses.join(' ')}`);
    }
    expect(requests).toBe(ops.length * IDENTITIES.length);
    if (process.env.FORGE_PRINT_RBAC) console.log(rows.join('\n'));
  });
});

describe('a /v1 route without a declared permission', () => {
  it('stops the app from starting', async () => {
    const test = await STORE_ADAPTERS[0]!.open();
    try {
      const app = await buildApp({
        ctx: {
          store: test.store, clock: { now: () => new Date() }, eventsWritten: () => undefined, environments: [], approvalTtlMs: 1,
          releaseRegistry: 'registry.test/releases', runTimeoutMs: 1, runChanged: () => undefined,
        },
        verifier: { mode: 'dev', issuer: 'urn:test', verify: async () => { throw new Error('not called'); } },
        bus: { subscribe: () => () => undefined }, rateLimits: 'off', logLevel: 'silent',
      });
      app.register(async (scope) => {
        scope.get('/v1/undeclared', async () => ({ leaked: true }));
      });
      await expect(app.ready()).rejects.toThrow(/GET \/v1\/undeclared must declare exactly one of config.permission or config.public/);
      await app.close();
    } finally {
      await test.close();
    }
  });
});

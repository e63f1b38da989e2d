/**
 * SQL injection in every string parameter of every route, generated from GET /v1/openapi.json:
 * each path parameter, query parameter and body string field (nested ones included) gets each
 * classic payload, the rest of the request being valid (a baseline checked against the route's own
 * schema). Every answer is below 500, a 4xx carries the error body, and afterwards every table is
 * still there with the rows seeded before. The GitHub webhook (raw, signed body) gets the payloads
 * in its fields and headers. Payloads that are legitimate text (an actor name, a justification, a
 * search) are stored and read back verbatim.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { Ajv } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { sha } from '../helpers/app.ts';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { expectError, rowCounts, securitySuite, uuid, WEBHOOK_SECRET } from './support.ts';

export const SQL_PAYLOADS = [
  "' OR 1=1 --",
  "'; DROP TABLE pipeline_runs; --",
  '" OR ""="',
  "1'; SELECT pg_sleep(10); --",
  "' UNION SELECT NULL, version(), current_user --",
  "$$; DROP TABLE releases; $$",
  "\\'; DROP TABLE releases; --",
  "admin'/*",
  'a\u0000b',
  '\u0000',
  '\\x00',
  '\u2019 OR \u20181\u2019=\u20181', // ’ OR ‘1’=‘1
  '\uff07 OR 1=1 --', // fullwidth apostrophe
  '\u02bc; DROP TABLE releases; --', // modifier letter apostrophe
  '%27%20OR%201%3D1',
  "acme/shop' --",
  '../../etc/passwd',
];

type Schema = {
  type?: string | string[]; enum?: unknown[]; format?: string; pattern?: string; properties?: Record<string, Schema>;
  required?: string[]; items?: Schema; minimum?: number; anyOf?: Schema[];
};
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Valid values by field name, for the parts of a request that are not under attack. */
const SAMPLES: Record<string, () => Json> = {
  repository: () => 'acme/shop', branch: () => 'main', commit_sha: () => sha(), triggered_by: () => 'alice', project: () => 'api',
  name: () => 'api', environment: () => 'dev', tag: () => 'api/v1.0.0', alias: () => 'stable', context: () => 'ci/forge',
  tracking_oci_uri: () => 'registry.test/tracking/api:1', primary_published_uri: () => 'registry.test/api:1', oci_uri: () => 'registry.test/releases/api:1',
  tracking_oci_digest: () => `sha256:${'a'.repeat(64)}`, oci_digest: () => `sha256:${'b'.repeat(64)}`, justification: () => 'ok',
  freeze_override_reason: () => 'incident', error: () => 'boom', logs_s3_key: () => 'pipeline-runs/x/logs/check/api/lint.log',
  token: () => 'not-a-jwt', audience: () => 'forge', q: () => 'needle', ref: () => '1', owner: () => 'acme', id: uuid, release_id: uuid,
  job_id: uuid, code: () => 'internal_error', message: () => 'boom', result_key: () => 'pipeline-runs/x/results/ci/y.json',
};

const isType = (schema: Schema, type: string) => schema.type === type || (Array.isArray(schema.type) && schema.type.includes(type));

/** A valid value for `schema`: required properties only, arrays empty. */
function sample(schema: Schema, name: string): Json {
  if (schema.anyOf) return sample(schema.anyOf[0]!, name);
  if (schema.enum) return schema.enum[0] as Json;
  if (isType(schema, 'object')) {
    return Object.fromEntries((schema.required ?? []).map((key) => [key, sample(schema.properties?.[key] ?? {}, key)]));
  }
  if (isType(schema, 'array')) return [];
  if (isType(schema, 'integer') || isType(schema, 'number')) return schema.minimum ?? 1;
  if (isType(schema, 'boolean')) return false;
  if (schema.format === 'uuid') return uuid();
  const known = SAMPLES[name];
  if (!known) throw new Error(`no sample for string field "${name}": add one to SAMPLES`);
  return known();
}

/** Paths (property names and 0 for array items) of every string field under `schema`. */
function stringFields(schema: Schema, at: (string | 0)[] = []): (string | 0)[][] {
  if (schema.anyOf) return schema.anyOf.flatMap((s) => stringFields(s, at));
  if (isType(schema, 'object')) return Object.entries(schema.properties ?? {}).flatMap(([key, s]) => stringFields(s, [...at, key]));
  if (isType(schema, 'array') && schema.items) return stringFields(schema.items, [...at, 0]);
  return isType(schema, 'string') ? [at] : [];
}

/** The baseline body with `value` put at `path`, building the objects and array items on the way from their schemas. */
function withValue(schema: Schema, base: Json, path: (string | 0)[], value: Json, name = ''): Json {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (head === 0) {
    const items = schema.items ?? {};
    return [withValue(items, rest.length > 0 ? sample(items, name) : null, rest, value, name)];
  }
  const obj = { ...(base as Record<string, Json>) };
  const child = schema.properties?.[head!] ?? {};
  obj[head!] = withValue(child, obj[head!] ?? (rest.length > 0 && rest[0] !== 0 ? sample(child, head!) : null), rest, value, head);
  return obj;
}

const addFormats = addFormatsPlugin as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false }));

interface Operation { method: string; path: string; params: { name: string; in: string; required?: boolean; schema: Schema }[]; body?: Schema }

function operations(doc: { paths: Record<string, Record<string, { parameters?: Operation['params']; requestBody?: { content?: Record<string, { schema?: Schema }> } }>> }): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({
    method: method.toUpperCase(), path, params: op.parameters ?? [],
    ...(op.requestBody?.content?.['application/json']?.schema ? { body: op.requestBody.content['application/json'].schema } : {}),
  })));
}

function pathWith(op: Operation, attacked?: { name: string; value: string }): string {
  return op.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(name === attacked?.name ? attacked.value : String(sample({ type: 'string' }, name))));
}

function queryWith(op: Operation, attacked?: { name: string; value: string }): string {
  const query = new URLSearchParams();
  // Required query parameters (the log search's q) get their sample; the attacked one its payload.
  for (const p of op.params.filter((p) => p.in === 'query' && p.required === true)) query.set(p.name, String(sample(p.schema, p.name)));
  if (attacked) query.set(attacked.name, attacked.value);
  const text = query.toString();
  return text === '' ? '' : `?${text}`;
}

describe.each(STORE_ADAPTERS)('SQL injection on $name', (adapter) => {
  const suite = securitySuite(adapter);
  let approver: string;
  let seeded: { runId: string; releaseId: string };
  beforeAll(async () => {
    if (adapter.unavailable) return;
    const { s, token } = suite;
    approver = await s.t.issuer.sign({ sub: 'second-pair-of-eyes', roles: ['approver'] });
    const run = await s.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${token}` }, payload: { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' } });
    const release = await s.app.inject({ method: 'POST', url: '/v1/releases', headers: { authorization: `Bearer ${token}` }, payload: { repository: 'acme/shop', project: 'api', commit_sha: sha(), artifacts: [] } });
    seeded = { runId: run.json<{ id: string }>().id, releaseId: release.json<{ id: string }>().id };
  });
  const send = (method: string, url: string, payload?: Json) => suite.s.app.inject({
    method: method as 'GET', url, headers: { authorization: `Bearer ${suite.token}` }, ...(payload !== undefined ? { payload: payload as object } : {}),
  });

  it('refuses or stores as data every payload in every string parameter and body field, never a 5xx, tables intact', async () => {
    const { s, test } = suite;
    const tablesBefore = Object.keys(await rowCounts(test.db));
    const doc = (await s.app.inject({ url: '/v1/openapi.json' })).json();
    const statuses = new Map<number, number>();
    let requests = 0;
    const check = async (method: string, url: string, payload: Json | undefined, what: string) => {
      const res = await send(method, url, payload);
      requests++;
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      expect(res.statusCode, `${what} → ${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500);
      if (res.statusCode >= 400 && !res.headers['content-type']?.toString().startsWith('text/event-stream')) expectError(res, '4xx', undefined, what);
    };
    for (const op of operations(doc)) {
      if (op.path === '/v1/webhooks/github' || op.path === '/v1/events') continue; // raw signed body; a stream (below)
      let body: Json | undefined;
      if (op.body) {
        body = sample(op.body, '');
        expect(ajv.validate(op.body, body), `baseline body of ${op.method} ${op.path}: ${ajv.errorsText()}`).toBe(true);
      }
      for (const payload of SQL_PAYLOADS) {
        for (const param of op.params.filter((p) => p.in === 'path')) {
          await check(op.method, `${pathWith(op, { name: param.name, value: payload })}${queryWith(op)}`, body, `${op.method} ${op.path} {${param.name}}=${JSON.stringify(payload)}`);
        }
        for (const param of op.params.filter((p) => p.in === 'query' && (isType(p.schema, 'string') || isType(p.schema, 'array')))) {
          await check(op.method, `${pathWith(op)}${queryWith(op, { name: param.name, value: payload })}`, body, `${op.method} ${op.path} ?${param.name}=${JSON.stringify(payload)}`);
        }
        for (const field of op.body ? stringFields(op.body) : []) {
          await check(op.method, `${pathWith(op)}${queryWith(op)}`, withValue(op.body!, body!, field, payload), `${op.method} ${op.path} body.${field.join('.')}=${JSON.stringify(payload)}`);
        }
      }
    }
    // The event stream's filter: refused before any stream opens.
    for (const payload of SQL_PAYLOADS) await check('GET', `/v1/events?types=${encodeURIComponent(payload)}`, undefined, `GET /v1/events ?types=${JSON.stringify(payload)}`);

    expect(requests).toBeGreaterThan(1000);
    expect(Object.keys(await rowCounts(test.db))).toEqual(tablesBefore);
    expect((await send('GET', `/v1/runs/${seeded.runId}`)).statusCode).toBe(200);
    expect((await send('GET', '/v1/releases/acme/shop/api/1')).json<{ id: string }>().id).toBe(seeded.releaseId);
    if (process.env.FORGE_PRINT_FIGURES) console.log(`sql injection (${adapter.name}): ${requests} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('refuses or ignores every payload in the signed webhook\'s fields and headers, never a 5xx', async () => {
    const { s, test } = suite;
    const countsBefore = await rowCounts(test.db);
    const sign = (raw: string) => `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}`;
    const push = (change: Record<string, Json>) => ({
      ref: 'refs/heads/main', after: sha(), deleted: false, repository: { full_name: 'acme/shop' }, sender: { login: 'octocat' }, ...change,
    });
    const deliver = async (payload: object, headers: Record<string, string> = {}) => {
      const raw = JSON.stringify(payload);
      return s.app.inject({
        method: 'POST', url: '/v1/webhooks/github', payload: raw,
        headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': uuid(), 'x-hub-signature-256': sign(raw), ...headers },
      });
    };
    const refused: string[] = [];
    for (const payload of SQL_PAYLOADS) {
      for (const [what, change] of [
        ['repository.full_name', { repository: { full_name: payload } }],
        ['ref', { ref: `refs/heads/${payload}` }],
        ['after', { after: payload }],
      ] as const) {
        const res = await deliver(push(change));
        expectError(res, 422, 'validation_error', `webhook ${what}=${JSON.stringify(payload)}`);
        refused.push(what);
      }
      for (const header of ['x-github-event', 'x-github-delivery']) {
        // Header values cannot hold NUL or other control characters (Node refuses to send them).
        if (/[\u0000-\u001f\u007f-\uffff]/.test(payload)) continue;
        const res = await deliver(push({}), { [header]: payload });
        expect(res.statusCode, `${header}=${payload} → ${res.body}`).toBeLessThan(500);
      }
    }
    // A delivery id far longer than GitHub's GUIDs: refused, not a database error on the key's index.
    const long = await deliver(push({}), { 'x-github-delivery': randomBytes(6000).toString('hex') });
    expectError(long, 422, 'validation_error', 'a 12 kB delivery id');
    const after = await rowCounts(test.db);
    expect(Object.keys(after)).toEqual(Object.keys(countsBefore));
    expect(refused.length).toBe(SQL_PAYLOADS.length * 3);
  });

  it('stores payloads that are legitimate text verbatim and finds them as text', async () => {
    const { s, test } = suite;
    const actor = "'; DROP TABLE pipeline_runs; --";
    const run = await send('POST', '/v1/runs', { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push', triggered_by: actor });
    expect(run.statusCode).toBe(201);
    expect((await send('GET', `/v1/runs/${run.json<{ id: string }>().id}`)).json()).toMatchObject({ triggered_by: actor });
    const justification = "x' OR '1'='1'; DELETE FROM release_approvals; --";
    const approval = await s.app.inject({ method: 'POST', url: '/v1/approvals', headers: { authorization: `Bearer ${approver}` }, payload: { release_id: seeded.releaseId, environment: 'staging', justification } });
    expect(approval.statusCode, approval.body).toBe(201);
    expect((await send('GET', `/v1/approvals/${seeded.releaseId}/staging`)).json()).toMatchObject({ justification });
    const listed = await send('GET', `/v1/runs?repository=${encodeURIComponent('acme/shop')}&branch=${encodeURIComponent("main' OR '1'='1")}`);
    expectError(listed, 422, 'validation_error');
    const raw = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pipeline_runs WHERE triggered_by = ${actor}`.execute(test.db);
    expect(raw.rows[0]?.n).toBe(1);
  });
});

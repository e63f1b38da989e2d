/**
 * What only the registry client does, against real docker-registry processes: retries with backoff
 * (a fault-injecting proxy in front of the registry answers 503/429 or stalls chosen requests),
 * network errors, HTTPS by default, and authentication: Basic (htpasswd) and Bearer tokens (a local
 * token server), with refused credentials failing at once.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BackoffPolicy } from '../../src/domain/jobs.ts';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';
import { createRegistryClient, type RegistryClientOptions } from '../../src/oci/registry.client.ts';
import {
  freePort, registryUnavailable, startBasicAuthRegistry, skopeoInspect, startFaultProxy, startRegistry, startTokenServer,
  type TestRegistry, type TokenServer,
} from '../helpers/registry.ts';
import { image, pushImage, sha256 } from './images.ts';

if (registryUnavailable) console.warn(`registry client: skipping (no real registry): ${registryUnavailable}`);

const FAST: BackoffPolicy = { baseMs: 10, maxMs: 2000, jitterMs: 0, maxAttempts: 5 };

interface Sent {
  method: string;
  url: string;
  authorization: string | undefined;
  status?: number;
}

/** A registry client whose every request (and its answer's status) is recorded. */
function recordedClient(options: RegistryClientOptions) {
  const sent: Sent[] = [];
  const client = createRegistryClient({
    insecure: true,
    backoff: FAST,
    ...options,
    fetch: async (input, init) => {
      const entry: Sent = { method: init?.method ?? 'GET', url: String(input), authorization: (init?.headers as Record<string, string> | undefined)?.authorization };
      sent.push(entry);
      const response = await fetch(input, init);
      entry.status = response.status;
      return response;
    },
  });
  return { client, sent };
}

const registryBody = (code: string, message: string) => JSON.stringify({ errors: [{ code, message }] });

describe.skipIf(registryUnavailable)('registry client: retries and failures', () => {
  let registry: TestRegistry;
  beforeAll(async () => { registry = await startRegistry(); });
  afterAll(async () => { await registry?.stop(); });

  it('retries 503 and 429 (waiting as long as Retry-After asks), then pushes', async () => {
    let posts = 0;
    let puts = 0;
    const proxy = await startFaultProxy(registry.host, (req) => {
      if (req.method === 'POST' && ++posts <= 2) return { status: 503, body: registryBody('UNAVAILABLE', 'test proxy: try later') };
      if (req.method === 'PUT' && ++puts === 1) return { status: 429, headers: { 'retry-after': '1' }, body: registryBody('TOOMANYREQUESTS', 'slow down') };
      return undefined;
    });
    try {
      const { client } = recordedClient({ registry: proxy.host });
      const blob = randomBytes(1000);
      const started = performance.now();
      expect(await client.pushBlob('forge/retry', blob)).toEqual({ digest: sha256(blob), size: 1000, pushed: true });
      expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
      expect(proxy.requests.map((r) => r.method)).toEqual(['HEAD', 'POST', 'POST', 'POST', 'PUT', 'PUT']);
      const direct = createRegistryClient({ registry: registry.host, insecure: true });
      expect((await direct.getBlob('forge/retry', sha256(blob))).equals(blob)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after 5 attempts, backing off between them, with the registry\'s last error body', async () => {
    const proxy = await startFaultProxy(registry.host, (req) =>
      (req.path.includes('/down/') ? { status: 503, body: registryBody('UNAVAILABLE', 'test proxy says no') } : { status: 429, body: registryBody('TOOMANYREQUESTS', 'quota') }));
    try {
      const { client } = recordedClient({ registry: proxy.host, backoff: { ...FAST, baseMs: 20 } });
      const started = performance.now();
      const error = await client.listTags('forge/down/app').then(() => undefined, (e: unknown) => e);
      // Waits of 20, 40, 80 and 160 ms between the attempts.
      expect(performance.now() - started).toBeGreaterThanOrEqual(300);
      expect(error).toMatchObject({ code: 'service_unavailable', details: { registry: proxy.host, repository: 'forge/down/app', status: 503, errors: [{ code: 'UNAVAILABLE' }] } });
      expect((error as Error).message).toContain('503 Service Unavailable: UNAVAILABLE: test proxy says no, after 5 attempts');
      expect(proxy.requests).toHaveLength(5);

      // A HEAD answer has no body: the status says it.
      await expect(client.resolve('forge/limited', 'v1')).rejects.toMatchObject({ code: 'rate_limited', message: expect.stringContaining('429 Too Many Requests, after 5 attempts') });
      expect(proxy.requests).toHaveLength(10);
    } finally {
      await proxy.close();
    }
  });

  it('retries a request that gets no answer in time, and fails when none comes', async () => {
    let stalled = 0;
    const proxy = await startFaultProxy(registry.host, (req) => (req.path.includes('/slow/') && (req.path.includes('always') || ++stalled === 1) ? { delayMs: 1500 } : undefined));
    try {
      const { client } = recordedClient({ registry: proxy.host, timeoutMs: 300 });
      expect(await client.blobExists('forge/slow/once', sha256(Buffer.from('x')))).toBe(false);
      expect(proxy.requests).toHaveLength(2);
      await expect(client.listTags('forge/slow/always')).rejects.toMatchObject({
        code: 'service_unavailable',
        message: expect.stringContaining('no answer within 300 ms, after 5 attempts'),
      });
      expect(proxy.requests).toHaveLength(7);
    } finally {
      await proxy.close();
    }
  });

  it('retries network errors, then fails service_unavailable with the cause', async () => {
    const { client, sent } = recordedClient({ registry: `127.0.0.1:${await freePort()}` });
    const error = await client.listTags('forge/app').then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'service_unavailable', message: expect.stringContaining('after 5 attempts') });
    expect((error as Error).message).toContain('ECONNREFUSED');
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(sent).toHaveLength(5);
  });

  it('sends a refused request once and carries the registry\'s error body', async () => {
    const { client, sent } = recordedClient({ registry: registry.host });
    const img = image('refused');
    const error = await client.pushManifest('forge/refused', 'v1', img.manifest, MEDIA_TYPES.ociManifest).then(() => undefined, (e: unknown) => e);
    // Config and layer are both missing: one error entry each.
    expect(error).toMatchObject({ code: 'validation_error', details: { status: 400, errors: [{ code: 'MANIFEST_BLOB_UNKNOWN' }, { code: 'MANIFEST_BLOB_UNKNOWN' }] } });
    expect((error as Error).message).toMatch(/400 Bad Request: MANIFEST_BLOB_UNKNOWN: blob unknown to registry \("sha256:[0-9a-f]{64}"\)/);
    expect(sent.map((s) => `${s.method} ${s.status}`)).toEqual(['HEAD 404', 'PUT 400']);
  });

  it('speaks HTTPS unless insecure, and takes only a host[:port] as the registry', async () => {
    const { client, sent } = recordedClient({ registry: registry.host, insecure: false, backoff: { ...FAST, maxAttempts: 2 } });
    await expect(client.listTags('forge/app')).rejects.toMatchObject({ code: 'service_unavailable' });
    expect(sent.map((s) => s.url)).toEqual([`https://${registry.host}/v2/forge/app/tags/list?n=1000`, `https://${registry.host}/v2/forge/app/tags/list?n=1000`]);
    for (const bad of ['http://127.0.0.1:5000', '127.0.0.1:5000/releases', '', 'user@host']) {
      expect(() => createRegistryClient({ registry: bad }), bad).toThrow(expect.objectContaining({ code: 'validation_error' }));
    }
  });
});

describe.skipIf(registryUnavailable)('registry client: Basic auth (htpasswd)', () => {
  let registry: TestRegistry | undefined;
  let stop: (() => Promise<void>) | undefined;
  let unavailable: string | undefined;

  beforeAll(async () => {
    const started = await startBasicAuthRegistry('forge', 's3cret');
    if ('unavailable' in started) {
      unavailable = started.unavailable;
      console.warn(`registry client: skipping the htpasswd tests: ${unavailable}`);
      return;
    }
    ({ registry, stop } = started);
  });
  afterAll(async () => {
    await stop?.();
  });
  beforeEach((context) => {
    if (unavailable) context.skip(unavailable);
  });

  it('without credentials fails authentication_required after one request', async () => {
    const { client, sent } = recordedClient({ registry: registry!.host });
    await expect(client.listTags('forge/basic')).rejects.toMatchObject({
      code: 'authentication_required',
      message: expect.stringContaining('the registry asks for credentials and none are configured'),
    });
    expect(sent).toHaveLength(1);
  });

  it('with a wrong password fails at once: the bare request, then one with credentials', async () => {
    const { client, sent } = recordedClient({ registry: registry!.host, credentials: { username: 'forge', password: 'wrong' } });
    await expect(client.listTags('forge/basic')).rejects.toMatchObject({
      code: 'authentication_required',
      message: expect.stringContaining('401 Unauthorized: UNAUTHORIZED: authentication required'),
      details: { status: 401, errors: [{ code: 'UNAUTHORIZED' }] },
    });
    expect(sent.map((s) => `${s.method} ${s.status} ${s.authorization?.split(' ')[0]}`)).toEqual(['GET 401 undefined', 'GET 401 Basic']);
    await expect(client.pushBlob('forge/basic', randomBytes(10))).rejects.toMatchObject({ code: 'authentication_required', message: expect.stringContaining('credentials refused') });
    expect(sent).toHaveLength(3); // the scheme is known now: one HEAD with credentials
  });

  it('with the right credentials learns the scheme once and sends Basic from then on; skopeo reads the image', async () => {
    const { client, sent } = recordedClient({ registry: registry!.host, credentials: { username: 'forge', password: 's3cret' } });
    const img = await pushImage(client, 'forge/basic', 'v1', 'basic');
    expect(await client.listTags('forge/basic')).toEqual(['v1']);
    expect((await client.getManifest('forge/basic', 'v1')).digest).toBe(img.digest);
    expect(sent.filter((s) => s.status === 401)).toHaveLength(1);
    expect(sent.slice(1).every((s) => s.authorization?.startsWith('Basic '))).toBe(true);

    const ref = `docker://${registry!.host}/forge/basic:v1`;
    expect(await skopeoInspect(ref, ['--creds', 'forge:s3cret'])).toMatchObject({ Digest: img.digest });
    await expect(skopeoInspect(ref)).rejects.toThrow(/unauthorized|authentication required/i);
  });
});

describe.skipIf(registryUnavailable)('registry client: Bearer tokens (token auth)', () => {
  let registry: TestRegistry | undefined;
  let tokens: TokenServer | undefined;
  let unavailable: string | undefined;

  beforeAll(async () => {
    const started = await startTokenServer({
      forge: { password: 's3cret', actions: ['pull', 'push'] },
      reader: { password: 'r3ad', actions: ['pull'] },
    });
    if ('unavailable' in started) {
      unavailable = started.unavailable;
      console.warn(`registry client: skipping the token-auth tests: ${unavailable}`);
      return;
    }
    tokens = started;
    registry = await startRegistry({ auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } } });
  });
  afterAll(async () => {
    await registry?.stop();
    await tokens?.close();
  });
  beforeEach((context) => {
    if (unavailable) context.skip(unavailable);
    if (tokens) tokens.lifetimeSeconds = 300;
  });

  const forge = { username: 'forge', password: 's3cret' };

  it('fetches one token per scope, with the credentials, and reuses it (a push token serves pulls)', async () => {
    const asked = tokens!.requests.length;
    const { client, sent } = recordedClient({ registry: registry!.host, credentials: forge });
    const img = await pushImage(client, 'forge/bearer', 'v1', 'bearer');
    expect((await client.getManifest('forge/bearer', 'v1')).digest).toBe(img.digest);
    expect((await client.getBlob('forge/bearer', sha256(img.layer))).equals(img.layer)).toBe(true);
    expect(await client.resolve('forge/bearer', 'v1')).toBe(img.digest);
    expect(await client.listTags('forge/bearer')).toEqual(['v1']);
    expect(tokens!.requests.slice(asked)).toEqual([
      { scope: 'repository:forge/bearer:pull', user: 'forge' },
      { scope: 'repository:forge/bearer:pull,push', user: 'forge' },
    ]);
    expect(sent.filter((s) => s.url.startsWith(`http://${registry!.host}/`) && s.status === 401)).toHaveLength(1);
    expect(await skopeoInspect(`docker://${registry!.host}/forge/bearer:v1`, ['--creds', 'forge:s3cret'])).toMatchObject({ Digest: img.digest });
  });

  it('shares one token fetch among concurrent requests of a scope', async () => {
    const asked = tokens!.requests.length;
    const { client } = recordedClient({ registry: registry!.host, credentials: forge });
    const blobs = Array.from({ length: 6 }, () => randomBytes(100));
    const pushed = await Promise.all(blobs.map((blob) => client.pushBlob('forge/concurrent', blob)));
    expect(pushed.every((p) => p.pushed)).toBe(true);
    expect(tokens!.requests.slice(asked).map((r) => r.scope).sort()).toEqual(['repository:forge/concurrent:pull', 'repository:forge/concurrent:pull,push']);
  });

  it('fetches a fresh token once when the registry refuses a cached one', async () => {
    // Tokens valid for ~3 s (distribution 2.8 accepts them up to 60 s past exp), cached for 300 s.
    tokens!.lifetimeSeconds = -57;
    const { client, sent } = recordedClient({ registry: registry!.host, credentials: forge });
    const blob = randomBytes(100);
    await client.pushBlob('forge/refresh', blob);
    const asked = tokens!.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 4500));
    const before = sent.length;
    expect((await client.getBlob('forge/refresh', sha256(blob))).equals(blob)).toBe(true);
    expect(tokens!.requests.slice(asked)).toEqual([{ scope: 'repository:forge/refresh:pull', user: 'forge' }]);
    expect(sent.slice(before).map((s) => `${s.method} ${s.status}`)).toEqual(['GET 401', 'GET 200', 'GET 200']); // refused, token, blob
  });

  it('a user without push rights is refused at once: permission_denied', async () => {
    const { client, sent } = recordedClient({ registry: registry!.host, credentials: { username: 'reader', password: 'r3ad' } });
    await expect(client.pushBlob('forge/readonly', randomBytes(100))).rejects.toMatchObject({
      code: 'permission_denied',
      message: expect.stringContaining('the token does not grant this scope'),
    });
    expect(sent.filter((s) => s.method === 'POST')).toHaveLength(1);
    expect(await client.listTags('forge/readonly')).toEqual([]); // pulling is allowed
  });

  it('refused credentials fail at the token endpoint at once, carrying its answer', async () => {
    const asked = tokens!.requests.length;
    const { client } = recordedClient({ registry: registry!.host, credentials: { username: 'forge', password: 'wrong' } });
    await expect(client.listTags('forge/bearer')).rejects.toMatchObject({
      code: 'authentication_required',
      message: expect.stringContaining('invalid username or password'),
    });
    expect(tokens!.requests.slice(asked)).toEqual([{ scope: 'repository:forge/bearer:pull', user: 'forge' }]);

    const anonymous = recordedClient({ registry: registry!.host });
    await expect(anonymous.client.listTags('forge/bearer')).rejects.toMatchObject({ code: 'authentication_required' });
    expect(tokens!.requests.slice(asked + 1)).toEqual([{ scope: 'repository:forge/bearer:pull', user: undefined }]);
  });
});

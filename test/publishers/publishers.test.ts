/**
 * Publishers against real destinations: a directory, the OCI layout store, a real docker-registry
 * (skipped without one; read back with skopeo), S3 on a real Ceph radosgw (FORGE_TEST_S3_*; skipped
 * without, an error with CI set), and GitHub release assets on a local stand-in of the releases API.
 * Each: idempotency (the second publish is skipped), auth failures not retried, transient failures
 * retried (fault-injecting proxies, or the peer's faults).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ForgeError } from '../../src/domain/errors.ts';
import type { BackoffPolicy } from '../../src/domain/jobs.ts';
import type { ProducedArtifact, PublishDestination, Publisher } from '../../src/engine/ports.ts';
import { artifactVersion, withPublishRetries } from '../../src/engine/publishing.ts';
import { createGitHubReleasesClient } from '../../src/gitops/github-releases.client.ts';
import { createGitHubPublisher } from '../../src/gitops/github.publisher.ts';
import { fileDigest } from '../../src/lib/file-digest.ts';
import { createLayoutStore } from '../../src/oci/layout.store.ts';
import { createOciPublisher } from '../../src/oci/oci.publisher.ts';
import { createRegistryClient } from '../../src/oci/registry.client.ts';
import { createDirectoryPublisher } from '../../src/store/directory.publisher.ts';
import { createS3ObjectStore, ensureBucket, s3Client, type S3Settings } from '../../src/store/object-store.s3.ts';
import { createS3Publisher } from '../../src/store/s3.publisher.ts';
import { DeleteBucketCommand } from '@aws-sdk/client-s3';
import { startGitHubReleasesPeer, type GitHubReleasesPeer } from '../helpers/github-releases-peer.ts';
import { registryUnavailable, skopeoInspect, skopeoUnavailable, startFaultProxy, startRegistry, type Fault, type TestRegistry } from '../helpers/registry.ts';
import { writeLayout } from './layouts.ts';

const SHA = 'd'.repeat(40);
/** Fast retries for tests: same attempts as production, milliseconds apart. */
const FAST: BackoffPolicy = { baseMs: 5, maxMs: 50, jitterMs: 5, maxAttempts: 5 };

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'forge-publishers-'));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

async function fileArtifact(content: string, options: { name?: string; file?: string; type?: 'binary' | 'archive'; version?: string } = {}): Promise<ProducedArtifact> {
  const path = join(scratch, randomBytes(4).toString('hex'), options.file ?? 'app');
  await rm(path, { force: true });
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  const { digest, size } = await fileDigest(path);
  const type = options.type ?? 'binary';
  return {
    name: options.name ?? 'app', type, repository: 'acme/shop', project: 'api', commit_sha: SHA, version: options.version ?? 'v1.2.0', metadata: {},
    output: type === 'binary'
      ? { location_type: 'file', path, executable: true, os: 'linux', arch: 'amd64', static: true, size, digest, media_type: 'application/octet-stream' }
      : { location_type: 'file', path, format: 'tar.gz', size, digest, media_type: 'application/gzip' },
  };
}

async function containerArtifact(label: string): Promise<ProducedArtifact> {
  const dir = join(scratch, `layout-${randomBytes(4).toString('hex')}`);
  const image = await writeLayout(dir, label);
  return {
    name: 'web', type: 'container', repository: 'acme/shop', project: 'api', commit_sha: SHA, version: 'v1.2.0', metadata: {},
    output: { location_type: 'oci-layout', path: dir, image_ref: 'acme/web', image_id: image.configDigest, digest: image.digest, media_type: 'application/vnd.oci.image.manifest.v1+json', size: image.size, layers: 1 },
  };
}

const destination = (type: string, config: Record<string, unknown> = {}): PublishDestination => ({ name: `my-${type}`, type, config: { type, ...config } });

async function failure(promise: Promise<unknown>): Promise<ForgeError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof ForgeError)) throw new Error(`expected a ForgeError, got ${String(error)}`);
  return error;
}

describe('publishing helpers', () => {
  it('derives the version from a tag, else the commit', () => {
    expect(artifactVersion(SHA, 'auth/v1.2.0')).toBe('v1.2.0');
    expect(artifactVersion(SHA, 'v2')).toBe('v2');
    expect(artifactVersion(SHA)).toBe(SHA);
  });

  it('retries transient failures up to 5 attempts and never retries auth failures', async () => {
    let calls = 0;
    const flaky = await withPublishRetries('x', async () => {
      calls += 1;
      if (calls < 3) throw new ForgeError('service_unavailable', 'down');
      return 'ok';
    }, { backoff: FAST });
    expect([flaky, calls]).toEqual(['ok', 3]);

    calls = 0;
    const spent = await failure(withPublishRetries('push x', async () => {
      calls += 1;
      throw new ForgeError('rate_limited', 'slow down', { status: 429 });
    }, { backoff: FAST }));
    expect(calls).toBe(5);
    expect(spent).toMatchObject({ code: 'rate_limited', details: { status: 429, attempts: 5 } });
    expect(spent.message).toMatch(/push x failed after 5 attempts: slow down/);

    calls = 0;
    await failure(withPublishRetries('x', async () => {
      calls += 1;
      throw new ForgeError('authentication_required', 'bad token');
    }, { backoff: FAST }));
    expect(calls).toBe(1);
  });
});

describe('directory publisher', () => {
  it('copies a file to <root>/<owner>/<repo>/<project>/<version>/<file>, skips the same digest, replaces another', async () => {
    const root = join(scratch, 'artifacts');
    const publisher = createDirectoryPublisher({ root });
    const artifact = await fileArtifact('binary v1', { file: 'app-linux-amd64' });
    const first = await publisher.publish(artifact, destination('directory'));
    const target = join(root, 'acme', 'shop', 'api', 'v1.2.0', 'app-linux-amd64');
    expect(first).toMatchObject({ skipped: false, digest: artifact.output.digest, metadata: { path: target } });
    expect(fileURLToPath(first.uri)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe('binary v1');

    const again = await publisher.publish(artifact, destination('directory'));
    expect(again).toMatchObject({ skipped: true, uri: first.uri });

    const changed = await fileArtifact('binary v2', { file: 'app-linux-amd64' });
    const replaced = await publisher.publish(changed, destination('directory'));
    expect(replaced).toMatchObject({ skipped: false, metadata: { replaced: 'true' } });
    expect(await readFile(target, 'utf8')).toBe('binary v2');
  });

  it('refuses a container image and a version that is not a path segment', async () => {
    const publisher = createDirectoryPublisher({ root: join(scratch, 'artifacts') });
    expect(await failure(publisher.publish(await containerArtifact('x'), destination('directory')))).toMatchObject({ code: 'validation_error', message: expect.stringMatching(/docker publisher/) });
    expect(await failure(publisher.publish(await fileArtifact('x', { version: '../up' }), destination('directory')))).toMatchObject({ code: 'validation_error' });
  });
});

describe('docker publisher on the OCI layout store', () => {
  it('pushes a container from its layout and a binary as a single-layer artifact; a second publish is skipped', async () => {
    const root = join(scratch, 'oci');
    const publisher = createOciPublisher({ store: createLayoutStore(root), registry: `oci:${root}` });
    const container = await containerArtifact('layout');
    const pushed = await publisher.publish(container, destination('docker'));
    expect(pushed).toMatchObject({ skipped: false, digest: container.output.digest, metadata: { repository: 'acme/web', tag: 'v1.2.0', namespace: 'acme' } });
    expect(pushed.uri).toBe(`oci:${root}/acme/web:v1.2.0@${container.output.digest}`);
    expect(await publisher.publish(container, destination('docker'))).toMatchObject({ skipped: true, uri: pushed.uri });
    const rebuilt = await publisher.publish(await containerArtifact('rebuilt'), destination('docker'));
    expect(rebuilt).toMatchObject({ skipped: false, metadata: { replaced: 'true', tag: 'v1.2.0' } });
    expect(rebuilt.digest).not.toBe(pushed.digest);

    const binary = await fileArtifact('#!/bin/sh\necho hi\n');
    const file = await publisher.publish(binary, destination('docker', { namespace: 'artifacts' }));
    expect(file.metadata.repository).toBe('artifacts/acme/shop/api/app');
    expect(await publisher.publish(binary, destination('docker', { namespace: 'artifacts' }))).toMatchObject({ skipped: true, digest: file.digest });
    if (!skopeoUnavailable) {
      const raw = await skopeoInspect(`oci:${root}/artifacts/acme/shop/api/app/_layout:v1.2.0`, ['--raw']);
      expect(raw).toMatchObject({ artifactType: 'application/vnd.forge.artifact.binary.v1', layers: [{ digest: binary.output.digest, annotations: { 'org.opencontainers.image.title': 'app' } }] });
    }
  });
});

describe.skipIf(registryUnavailable)('docker publisher on a real registry', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry?.stop());

  const publisherVia = (host: string): Publisher =>
    createOciPublisher({ store: createRegistryClient({ registry: host, insecure: true, backoff: FAST }), registry: registry.host });

  it('pushes a container and a binary that skopeo reads back; publishing again sends no content', async () => {
    const writes: string[] = [];
    const proxy = await startFaultProxy(registry.host, (req) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') writes.push(`${req.method} ${req.path}`);
      return undefined;
    });
    try {
      const publisher = publisherVia(proxy.host);
      const container = await containerArtifact('registry');
      const pushed = await publisher.publish(container, destination('docker', { tag: 'stable' }));
      expect(pushed).toMatchObject({ skipped: false, uri: `${registry.host}/acme/web:stable@${container.output.digest}` });
      const inspected = await skopeoInspect(`docker://${registry.host}/acme/web:stable`);
      expect(inspected).toMatchObject({ Digest: container.output.digest, Labels: { 'org.forge.test': 'registry' } });

      const binary = await fileArtifact(randomBytes(300_000).toString('base64'));
      const file = await publisher.publish(binary, destination('docker'));
      const raw = await skopeoInspect(`docker://${registry.host}/acme/shop/api/app:v1.2.0`, ['--raw']);
      expect(raw).toMatchObject({ artifactType: 'application/vnd.forge.artifact.binary.v1', layers: [{ digest: binary.output.digest, size: binary.output.size }] });

      writes.length = 0;
      expect(await publisher.publish(container, destination('docker', { tag: 'stable' }))).toMatchObject({ skipped: true, uri: pushed.uri });
      expect(await publisher.publish(binary, destination('docker'))).toMatchObject({ skipped: true, uri: file.uri });
      expect(writes).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('fails at once on 401/403 and retries 503 until the registry answers', async () => {
    // HEADs pass (answers to HEAD have no body to carry); the first upload is refused.
    const refusing = await startFaultProxy(registry.host, (req) => (req.method === 'HEAD' ? undefined
      : { status: 403, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }) }));
    try {
      const error = await failure(publisherVia(refusing.host).publish(await fileArtifact('denied'), destination('docker')));
      expect(error.code).toBe('permission_denied');
      expect(error.message).toContain('DENIED: requested access to the resource is denied');
      expect(refusing.requests.filter((r) => r.method !== 'HEAD')).toHaveLength(1);
    } finally {
      await refusing.close();
    }

    const flaky = await startFaultProxy(registry.host, (_req, index): Fault | undefined => (index % 2 === 0 && index < 6 ? { status: 503, body: 'upstream down' } : undefined));
    try {
      const published = await publisherVia(flaky.host).publish(await fileArtifact('flaky'), destination('docker', { repository: 'flaky/app' }));
      expect(published.skipped).toBe(false);
      expect(flaky.requests.length).toBeGreaterThan(6);
      expect((await skopeoInspect(`docker://${registry.host}/flaky/app:v1.2.0`, ['--raw'])).layers).toHaveLength(1);
    } finally {
      await flaky.close();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// S3 on a real Ceph radosgw
// ------------------------------------------------------------------------------------------------

const s3Endpoint = process.env.FORGE_TEST_S3_ENDPOINT;
const s3Keys = { accessKeyId: process.env.FORGE_TEST_S3_ACCESS_KEY_ID ?? '', secretAccessKey: process.env.FORGE_TEST_S3_SECRET_ACCESS_KEY ?? '' };
const s3Unavailable = s3Endpoint && s3Keys.accessKeyId && s3Keys.secretAccessKey ? undefined
  : 'FORGE_TEST_S3_ENDPOINT, FORGE_TEST_S3_ACCESS_KEY_ID and FORGE_TEST_S3_SECRET_ACCESS_KEY are not all set: start Ceph with `eval "$(scripts/ceph-s3.sh)"`';
if (s3Unavailable) {
  if (process.env.CI) throw new Error(`CI is set and the S3 publisher tests cannot run: ${s3Unavailable}`);
  console.warn(`publishers: skipping S3: ${s3Unavailable}`);
}

describe.skipIf(s3Unavailable)('s3 publisher on Ceph', () => {
  const bucket = `forge-publish-${process.pid}-${randomBytes(4).toString('hex')}`;
  const settings = (): S3Settings => ({ endpoint: s3Endpoint!, bucket, ...s3Keys });
  const hostOf = (endpoint: string) => new URL(endpoint).host;

  beforeAll(() => ensureBucket(settings()));
  afterAll(async () => {
    const store = createS3ObjectStore(settings());
    await store.delete((await store.list('')).map((o) => o.key));
    await store.close();
    const client = s3Client(settings());
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    client.destroy();
  });

  it('uploads to <prefix>/<owner>/<repo>/<project>/<version>/<file>, skips the same sha256, replaces another', async () => {
    const publisher = createS3Publisher({ endpoint: s3Endpoint!, ...s3Keys, retry: { backoff: FAST } });
    try {
      const artifact = await fileArtifact('archive bytes', { type: 'archive', file: 'site.tar.gz' });
      const dest = destination('s3', { bucket, prefix: 'releases/', public_url: 'https://downloads.example.com/' });
      const first = await publisher.publish(artifact, dest);
      const key = 'releases/acme/shop/api/v1.2.0/site.tar.gz';
      expect(first).toMatchObject({ skipped: false, uri: `s3://${bucket}/${key}`, metadata: { bucket, key, public_url: `https://downloads.example.com/${key}` } });
      const store = createS3ObjectStore(settings());
      expect((await store.get(key))?.body.toString()).toBe('archive bytes');
      await store.close();

      expect(await publisher.publish(artifact, dest)).toMatchObject({ skipped: true, uri: first.uri });
      const changed = await fileArtifact('archive bytes, rebuilt', { type: 'archive', file: 'site.tar.gz' });
      expect(await publisher.publish(changed, dest)).toMatchObject({ skipped: false, metadata: { replaced: 'true' } });
    } finally {
      await publisher.close();
    }
  });

  it('fails at once on refused credentials and retries 503s', async () => {
    const requests: string[] = [];
    const counting = await startFaultProxy(hostOf(s3Endpoint!), (req) => {
      requests.push(req.method);
      return undefined;
    });
    const wrong = createS3Publisher({ endpoint: `http://${counting.host}`, accessKeyId: s3Keys.accessKeyId, secretAccessKey: 'wrong-secret', retry: { backoff: FAST } });
    try {
      const error = await failure(wrong.publish(await fileArtifact('x'), destination('s3', { bucket })));
      expect(error.code).toMatch(/permission_denied|authentication_required/);
      expect(error.message).toMatch(/403/);
      expect(requests).toHaveLength(1);
    } finally {
      await wrong.close();
      await counting.close();
    }

    const flaky = await startFaultProxy(hostOf(s3Endpoint!), (_req, index) => (index < 3 ? { status: 503, body: '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>', headers: { 'content-type': 'application/xml' } } : undefined));
    const publisher = createS3Publisher({ endpoint: `http://${flaky.host}`, ...s3Keys, retry: { backoff: FAST } });
    try {
      expect(await publisher.publish(await fileArtifact('flaky'), destination('s3', { bucket, prefix: 'flaky' }))).toMatchObject({ skipped: false });
      expect(flaky.requests.length).toBeGreaterThanOrEqual(5);
    } finally {
      await publisher.close();
      await flaky.close();
    }

    const down = await startFaultProxy(hostOf(s3Endpoint!), () => ({ status: 500, body: '<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>', headers: { 'content-type': 'application/xml' } }));
    const failing = createS3Publisher({ endpoint: `http://${down.host}`, ...s3Keys, retry: { backoff: FAST } });
    try {
      const error = await failure(failing.publish(await fileArtifact('down'), destination('s3', { bucket })));
      expect(error).toMatchObject({ code: 'service_unavailable', details: { attempts: 5, status: 500 } });
      expect(down.requests).toHaveLength(5);
    } finally {
      await failing.close();
      await down.close();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// GitHub release assets
// ------------------------------------------------------------------------------------------------

describe('github publisher', () => {
  let peer: GitHubReleasesPeer;
  beforeAll(async () => {
    peer = await startGitHubReleasesPeer();
  });
  afterAll(() => peer.close());
  beforeEach(() => peer.reset());
  const publisher = () => createGitHubPublisher({ releases: createGitHubReleasesClient({ token: 'ghs_test', baseUrl: peer.url }), retry: { backoff: FAST } });
  const uploads = () => peer.requests.filter((r) => r.path.startsWith('/uploads/'));

  it('creates the release at the commit and uploads the asset; the same digest is skipped, another replaced', async () => {
    const artifact = await fileArtifact('gh binary', { file: 'app-linux-amd64' });
    const first = await publisher().publish(artifact, destination('github'));
    expect(first).toMatchObject({
      skipped: false, digest: artifact.output.digest,
      uri: `${peer.url}/acme/shop/releases/download/v1.2.0/app-linux-amd64`,
      metadata: { asset_name: 'app-linux-amd64', release_url: `${peer.url}/acme/shop/releases/tag/v1.2.0` },
    });
    expect(peer.releases.get('v1.2.0')).toMatchObject({ commitish: SHA });
    expect(peer.releases.get('v1.2.0')?.assets[0]).toMatchObject({ name: 'app-linux-amd64', contentType: 'application/octet-stream' });
    expect(peer.releases.get('v1.2.0')?.assets[0]?.body.toString()).toBe('gh binary');
    expect(peer.requests[0]?.authorization).toBe('token ghs_test');

    peer.requests.length = 0;
    expect(await publisher().publish(artifact, destination('github'))).toMatchObject({ skipped: true, uri: first.uri });
    expect(uploads()).toHaveLength(0);

    const changed = await fileArtifact('gh binary v2', { file: 'app-linux-amd64' });
    expect(await publisher().publish(changed, destination('github'))).toMatchObject({ skipped: false, metadata: { replaced: 'true' } });
    expect(peer.releases.get('v1.2.0')?.assets.map((a) => a.body.toString())).toEqual(['gh binary v2']);
  });

  it('replaces an asset whose digest GitHub does not report (older GitHub Enterprise)', async () => {
    peer.reportDigests = false;
    const artifact = await fileArtifact('old ghe');
    await publisher().publish(artifact, destination('github', { repository: 'acme/downloads', tag: 'latest' }));
    expect(await publisher().publish(artifact, destination('github', { repository: 'acme/downloads', tag: 'latest' }))).toMatchObject({ skipped: false, metadata: { replaced: 'true' } });
    expect(peer.releases.get('latest')?.assets).toHaveLength(1);
  });

  it('fails at once on 401 and 403, with GitHub\'s message', async () => {
    peer.fail(401, 1);
    const unauthorized = await failure(publisher().publish(await fileArtifact('x'), destination('github')));
    expect(unauthorized).toMatchObject({ code: 'authentication_required', details: { status: 401, github_message: '401 from the test peer' } });
    expect(peer.requests).toHaveLength(1);

    peer.requests.length = 0;
    peer.fail(403, 1, 'POST /repos');
    expect(await failure(publisher().publish(await fileArtifact('x'), destination('github')))).toMatchObject({ code: 'permission_denied' });
    expect(peer.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  it('retries 5xx, 429 and secondary rate limits, and gives up after 5 attempts with the last answer', async () => {
    peer.fail(502, 2, 'POST /uploads');
    peer.fail(429, 1, 'GET /repos');
    peer.fail(403, 1, 'POST /repos', { headers: { 'x-ratelimit-remaining': '0' } });
    const artifact = await fileArtifact('retried');
    expect(await publisher().publish(artifact, destination('github'))).toMatchObject({ skipped: false });
    expect(uploads()).toHaveLength(3);
    expect(peer.releases.get('v1.2.0')?.assets).toHaveLength(1);

    peer.requests.length = 0;
    peer.fail(503, 100, 'GET /repos');
    const error = await failure(publisher().publish(await fileArtifact('down', { version: 'v9' }), destination('github')));
    expect(error).toMatchObject({ code: 'service_unavailable', details: { attempts: 5, status: 503 } });
    expect(error.message).toContain('503 from the test peer');
    expect(peer.requests).toHaveLength(5);
  });

  it('takes the asset an upload whose answer was lost left behind', async () => {
    // The upload reaches GitHub, the answer is lost (502): the retry meets 422 already_exists.
    peer.fail(502, 1, 'POST /uploads', { processed: true });
    const artifact = await fileArtifact('lost answer');
    expect(await publisher().publish(artifact, destination('github'))).toMatchObject({ skipped: false });
    expect(uploads()).toHaveLength(2);
    expect(peer.releases.get('v1.2.0')?.assets.map((a) => a.body.toString())).toEqual(['lost answer']);

  });
});

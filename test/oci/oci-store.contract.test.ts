/**
 * The OciStore port's contract, run against the OCI image-layout store (temp dir) and the registry
 * client on a real Debian docker-registry started by this file (test/helpers/registry.ts). What was
 * pushed is read back with skopeo from both (`docker://` and `oci:`). Without docker-registry and
 * skopeo the registry half is skipped locally and FAILS when CI=true.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OciStore } from '../../src/engine/ports.ts';
import { createLayoutStore, LAYOUT_DIR } from '../../src/oci/layout.store.ts';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';
import { DIGEST_RULE, REPOSITORY_RULE, TAG_RULE } from '../../src/oci/reference.ts';
import { createRegistryClient } from '../../src/oci/registry.client.ts';
import { opensslUnavailable, registryUnavailable, skopeoInspect, skopeoUnavailable, startRegistry, startTokenServer } from '../helpers/registry.ts';
import { image, json, pushImage, sha256, streamOf } from './images.ts';

if (registryUnavailable) console.warn(`OCI store contract: skipping the registry half: ${registryUnavailable}`);

/** Chunk size the registry client is given here, so "multi-MB" means several chunks. */
const CHUNK = 1024 * 1024;


interface Opened {
  store: OciStore;
  /** A snapshot of everything written so far: equal snapshots mean nothing was sent or written. */
  writes(): Promise<string>;
  /** Requests the client sent (registry only). */
  requests?: { method: string; url: string }[];
  /** The image reference skopeo reads, and what else skopeo needs (credentials). */
  skopeo(repo: string, tag: string): { ref: string; args: string[] };
  dispose(): Promise<void>;
}

interface Adapter {
  label: string;
  kind: OciStore['kind'];
  unavailable?: string;
  open(): Promise<Opened>;
}

/** Every file under `dir` with its inode and mtime: a rewrite changes one of them. */
async function fileStamps(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => {
    const path = join(e.parentPath, e.name);
    const info = await stat(path);
    return `${path} ${info.ino} ${info.mtimeMs}`;
  }));
  return files.sort().join('\n');
}

/** The registry client on a docker-registry started here; with `token`, behind Bearer-token auth. */
async function openRegistry(auth?: 'token'): Promise<Opened> {
  const tokens = auth ? await startTokenServer({ forge: { password: 's3cret', actions: ['pull', 'push'] } }) : undefined;
  if (tokens && 'unavailable' in tokens) throw new Error(tokens.unavailable);
  const registry = await startRegistry(tokens ? { auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } } } : {});
  const requests: { method: string; url: string }[] = [];
  const store = createRegistryClient({
    registry: registry.host,
    insecure: true,
    chunkBytes: CHUNK,
    ...(tokens ? { credentials: { username: 'forge', password: 's3cret' } } : {}),
    fetch: (input, init) => {
      requests.push({ method: init?.method ?? 'GET', url: String(input) });
      return fetch(input, init);
    },
  });
  return {
    store,
    requests,
    // Token fetches are GETs, so only the registry's writes count.
    writes: async () => String(requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD').length),
    skopeo: (repo, tag) => ({ ref: `docker://${registry.host}/${repo}:${tag}`, args: tokens ? ['--creds', 'forge:s3cret'] : [] }),
    dispose: async () => {
      await registry.stop();
      await tokens?.close();
    },
  };
}

const tokenRegistryUnavailable = registryUnavailable ?? opensslUnavailable;

const adapters: Adapter[] = [
  {
    label: 'an OCI image layout',
    kind: 'layout',
    async open() {
      const root = await mkdtemp(join(tmpdir(), 'forge-oci-layout-'));
      return {
        store: createLayoutStore(root),
        writes: () => fileStamps(root),
        skopeo: (repo, tag) => ({ ref: `oci:${join(root, repo, LAYOUT_DIR)}:${tag}`, args: [] }),
        dispose: () => rm(root, { recursive: true, force: true }),
      };
    },
  },
  {
    label: 'docker-registry',
    kind: 'registry',
    ...(registryUnavailable ? { unavailable: registryUnavailable } : {}),
    open: () => openRegistry(),
  },
  {
    label: 'docker-registry with Bearer-token auth',
    kind: 'registry',
    ...(tokenRegistryUnavailable ? { unavailable: tokenRegistryUnavailable } : {}),
    open: () => openRegistry('token'),
  },
];

function ociStoreContract(adapter: Adapter): void {
  describe(`OCI store contract on ${adapter.label}`, () => {
    let opened: Opened;
    let store: OciStore;
    let n = 0;
    /** Each test's repositories live under their own name. */
    let repo: string;

    beforeAll(async () => {
      if (adapter.unavailable) return;
      opened = await adapter.open();
      store = opened.store;
    });
    afterAll(async () => {
      await store?.close();
      await opened?.dispose();
    });
    beforeEach((context) => {
      if (adapter.unavailable) context.skip(adapter.unavailable);
      repo = `forge/t${++n}/app`;
    });

    it('is the kind it says', () => {
      expect(store.kind).toBe(adapter.kind);
    });

    it('stores a blob once: a second push sends and writes nothing', async () => {
      const blob = randomBytes(4096);
      const digest = sha256(blob);
      expect(await store.blobExists(repo, digest)).toBe(false);
      expect(await store.pushBlob(repo, blob)).toEqual({ digest, size: blob.length, pushed: true });
      expect(await store.blobExists(repo, digest)).toBe(true);
      expect((await store.getBlob(repo, digest)).equals(blob)).toBe(true);

      const before = await opened.writes();
      expect(await store.pushBlob(repo, blob)).toEqual({ digest, size: blob.length, pushed: false });
      expect(await store.pushBlob(repo, blob, digest)).toEqual({ digest, size: blob.length, pushed: false });
      const again = streamOf(blob, 100);
      expect(await store.pushBlob(repo, again.stream, digest)).toEqual({ digest, size: blob.length, pushed: false });
      expect(again.read()).toBe(false); // HEAD first: the stream was never read
      expect(again.stream.destroyed).toBe(true);
      expect(await opened.writes()).toBe(before);
      // Blobs belong to a repository.
      expect(await store.blobExists('forge/elsewhere', digest)).toBe(false);
    });

    it('stores an empty blob and small streams', async () => {
      const empty = await store.pushBlob(repo, new Uint8Array(0));
      expect(empty).toEqual({ digest: sha256(Buffer.alloc(0)), size: 0, pushed: true });
      expect((await store.getBlob(repo, empty.digest)).length).toBe(0);
      const small = randomBytes(777);
      expect(await store.pushBlob(repo, streamOf(small, 100).stream)).toEqual({ digest: sha256(small), size: 777, pushed: true });
      expect((await store.getBlob(repo, sha256(small))).equals(small)).toBe(true);
    });

    it('uploads multi-MB blobs (streamed without a digest, and as bytes) in chunks', async () => {
      /** The upload requests (not HEAD/GET) the registry client sent since `from`. */
      const uploadsSince = (from: number) => opened.requests?.slice(from).filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
      const big = randomBytes(5 * CHUNK + 12_345);
      let sent = opened.requests?.length ?? 0;
      expect(await store.pushBlob(repo, streamOf(big).stream)).toEqual({ digest: sha256(big), size: big.length, pushed: true });
      expect((await store.getBlob(repo, sha256(big))).equals(big)).toBe(true);
      if (opened.requests) {
        const upload = uploadsSince(sent)!;
        expect(upload.map((r) => r.method)).toEqual(['POST', ...Array<string>(6).fill('PATCH'), 'PUT']);
        expect(upload.at(-1)?.url).toContain(`digest=${encodeURIComponent(sha256(big))}`);
      }
      const bytes = randomBytes(2 * CHUNK + 1);
      sent = opened.requests?.length ?? 0;
      expect(await store.pushBlob(repo, bytes, sha256(bytes))).toEqual({ digest: sha256(bytes), size: bytes.length, pushed: true });
      expect((await store.getBlob(repo, sha256(bytes))).equals(bytes)).toBe(true);
      if (opened.requests) expect(uploadsSince(sent)!.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH', 'PUT']);
      // Exactly one chunk long: one monolithic upload.
      const one = randomBytes(CHUNK);
      sent = opened.requests?.length ?? 0;
      expect(await store.pushBlob(repo, streamOf(one).stream, sha256(one))).toMatchObject({ digest: sha256(one), pushed: true });
      expect((await store.getBlob(repo, sha256(one))).equals(one)).toBe(true);
      if (opened.requests) expect(uploadsSince(sent)!.map((r) => r.method)).toEqual(['POST', 'PUT']);
    });

    it('refuses content that does not match its digest, and keeps none of it', async () => {
      const blob = randomBytes(2048);
      const wrong = sha256(Buffer.from('something else'));
      const before = await opened.writes();
      await expect(store.pushBlob(repo, blob, wrong)).rejects.toMatchObject({
        code: 'validation_error',
        message: expect.stringContaining(`expected ${wrong}, the content is ${sha256(blob)}`),
      });
      expect(await opened.writes()).toBe(before); // refused before anything was sent
      const big = randomBytes(3 * CHUNK + 5);
      await expect(store.pushBlob(repo, streamOf(big).stream, wrong)).rejects.toMatchObject({
        code: 'validation_error',
        message: expect.stringContaining(`expected ${wrong}, the content is ${sha256(big)}`),
      });
      if (opened.requests) expect(opened.requests.at(-1)?.method).toBe('DELETE'); // the upload was cancelled
      for (const digest of [wrong, sha256(blob), sha256(big)]) expect(await store.blobExists(repo, digest)).toBe(false);

      const img = image('mismatch');
      await store.pushBlob(repo, img.layer);
      await store.pushBlob(repo, img.config);
      await expect(store.pushManifest(repo, wrong, img.manifest, MEDIA_TYPES.ociManifest)).rejects.toMatchObject({
        code: 'validation_error',
        message: expect.stringContaining(`expected ${wrong}, the content is ${img.digest}`),
      });
      await expect(store.getManifest(repo, img.digest)).rejects.toMatchObject({ code: 'not_found' });
    });

    it('stores manifests by tag and by digest, and reads them back both ways', async () => {
      const first = await pushImage(store, repo, 'v1', 'first');
      expect(first.pushed).toEqual({ digest: first.digest, size: first.manifest.length, pushed: true });

      const byTag = await store.getManifest(repo, 'v1');
      expect(byTag).toEqual({ bytes: first.manifest, mediaType: MEDIA_TYPES.ociManifest, digest: first.digest });
      expect(await store.getManifest(repo, first.digest, [MEDIA_TYPES.ociManifest])).toEqual(byTag);
      expect(await store.resolve(repo, 'v1')).toBe(first.digest);

      const before = await opened.writes();
      expect(await store.pushManifest(repo, 'v1', first.manifest, MEDIA_TYPES.ociManifest)).toMatchObject({ pushed: false });
      expect(await store.pushManifest(repo, first.digest, first.manifest, MEDIA_TYPES.ociManifest)).toMatchObject({ pushed: false });
      expect(await opened.writes()).toBe(before);

      // An index pushed by digest only, referring to the image manifest.
      const index = json({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: first.digest, size: first.manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
      });
      const indexed = await store.pushManifest(repo, sha256(index), index, MEDIA_TYPES.ociIndex);
      expect(indexed).toEqual({ digest: sha256(index), size: index.length, pushed: true });
      expect(await store.getManifest(repo, sha256(index))).toEqual({ bytes: index, mediaType: MEDIA_TYPES.ociIndex, digest: sha256(index) });
      expect(await store.listTags(repo)).toEqual(['v1']);

      // Moving a tag: the old manifest stays readable by its digest.
      const second = await pushImage(store, repo, 'v1', 'second');
      expect(second.digest).not.toBe(first.digest);
      expect(await store.resolve(repo, 'v1')).toBe(second.digest);
      expect((await store.getManifest(repo, 'v1')).digest).toBe(second.digest);
      expect((await store.getManifest(repo, first.digest)).bytes.equals(first.manifest)).toBe(true);
    });

    it('lists tags sorted, also when pushed concurrently; an unknown repository has none', async () => {
      const tags = ['v10', 'latest', 'v2', 'V1', 'sha-abc', '1.0', 'main_42', 'a-b.c'];
      const img = image('tags');
      await store.pushBlob(repo, img.layer);
      await store.pushBlob(repo, img.config);
      await Promise.all(tags.map((tag) => store.pushManifest(repo, tag, img.manifest, MEDIA_TYPES.ociManifest)));
      expect(await store.listTags(repo)).toEqual([...tags].sort());
      for (const tag of tags) expect(await store.resolve(repo, tag)).toBe(img.digest);
      expect(await store.listTags('forge/never/pushed')).toEqual([]);
      expect(await store.resolve('forge/never/pushed', 'v1')).toBeUndefined();
      expect(await store.resolve(repo, 'nope')).toBeUndefined();
    });

    it('answers not_found for unknown manifests and blobs, and for types outside accept', async () => {
      const missing = sha256(Buffer.from('missing'));
      await expect(store.getManifest(repo, 'nope')).rejects.toMatchObject({ code: 'not_found', message: expect.stringContaining(`${repo}:nope`) });
      await expect(store.getManifest('forge/never/pushed', 'v1')).rejects.toMatchObject({ code: 'not_found' });
      await expect(store.getManifest(repo, missing)).rejects.toMatchObject({ code: 'not_found' });
      await expect(store.getBlob(repo, missing)).rejects.toMatchObject({ code: 'not_found', message: expect.stringContaining(missing) });
      await pushImage(store, repo, 'v1', 'accept');
      await expect(store.getManifest(repo, 'v1', [MEDIA_TYPES.dockerManifest])).rejects.toMatchObject({ code: 'not_found' });
    });

    it('refuses a manifest whose blobs are missing, naming the missing digest', async () => {
      const img = image('missing-layer');
      await store.pushBlob(repo, img.config);
      const error = await store.pushManifest(repo, 'v1', img.manifest, MEDIA_TYPES.ociManifest).then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'validation_error', message: expect.stringContaining(sha256(img.layer)) });
      if (adapter.kind === 'registry') {
        // The registry's own error body, surfaced.
        expect((error as Error).message).toContain('MANIFEST_BLOB_UNKNOWN');
        expect(error).toMatchObject({ details: { status: 400, errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', detail: sha256(img.layer) }] } });
      }
      expect(await store.listTags(repo)).toEqual([]);
    });

    it('refuses manifests that are not JSON, of another type than pushed as, or of unsupported types', async () => {
      const img = image('invalid');
      await store.pushBlob(repo, img.layer);
      await store.pushBlob(repo, img.config);
      await expect(store.pushManifest(repo, 'v1', Buffer.from('not json'), MEDIA_TYPES.ociManifest)).rejects.toMatchObject({ code: 'validation_error' });
      await expect(store.pushManifest(repo, 'v1', img.manifest, MEDIA_TYPES.ociIndex)).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining('is not the type it is pushed as') });
      await expect(store.pushManifest(repo, 'v1', img.manifest, 'application/json')).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining('unsupported manifest media type') });
      expect(await store.listTags(repo)).toEqual([]);
    });

    it('refuses invalid repository names, tags and digests on every operation, stating the rule', async () => {
      const digest = sha256(Buffer.from('x'));
      const badRepos = ['', 'Upper/case', 'a//b', '/a', 'a/', 'a..b', '-a', 'a-', 'a_', 'a___b', 'a b', 'a:b', 'a/.b', 'é', `a/${'x'.repeat(254)}`];
      for (const bad of badRepos) {
        for (const attempt of [
          () => store.blobExists(bad, digest),
          () => store.pushBlob(bad, Buffer.from('x')),
          () => store.getBlob(bad, digest),
          () => store.pushManifest(bad, 'v1', Buffer.from('{}'), MEDIA_TYPES.ociManifest),
          () => store.getManifest(bad, 'v1'),
          () => store.resolve(bad, 'v1'),
          () => store.listTags(bad),
        ]) {
          await expect(attempt(), JSON.stringify(bad)).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining(REPOSITORY_RULE) });
        }
      }
      const badTags = ['', '.v1', '-v1', 'v 1', 'v/1', 'ü', 'x'.repeat(129)];
      for (const bad of badTags) {
        await expect(store.getManifest(repo, bad), JSON.stringify(bad)).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining(TAG_RULE) });
        await expect(store.pushManifest(repo, bad, Buffer.from('{}'), MEDIA_TYPES.ociManifest)).rejects.toMatchObject({ message: expect.stringContaining(TAG_RULE) });
        await expect(store.resolve(repo, bad)).rejects.toMatchObject({ message: expect.stringContaining(TAG_RULE) });
      }
      const badDigests = ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'0'.repeat(32)}`, `sha512:${'0'.repeat(128)}`, 'v1:tag', digest.slice(7)];
      for (const bad of badDigests.filter((d) => d.includes(':'))) {
        await expect(store.getManifest(repo, bad), bad).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining(DIGEST_RULE) });
      }
      for (const bad of badDigests) {
        await expect(store.blobExists(repo, bad), bad).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining(DIGEST_RULE) });
        await expect(store.getBlob(repo, bad)).rejects.toMatchObject({ message: expect.stringContaining(DIGEST_RULE) });
        await expect(store.pushBlob(repo, Buffer.from('x'), bad)).rejects.toMatchObject({ message: expect.stringContaining(DIGEST_RULE) });
      }
      // Names at the edges of the rules are fine.
      const edge = `a.b_c__d---e/${'x'.repeat(200)}/0`;
      expect((await store.pushBlob(edge, Buffer.from('edge'))).pushed).toBe(true);
      const img = image('edge');
      await store.pushBlob(edge, img.layer);
      await store.pushBlob(edge, img.config);
      const tag = `_${'x'.repeat(127)}`;
      await store.pushManifest(edge, tag, img.manifest, MEDIA_TYPES.ociManifest);
      expect(await store.listTags(edge)).toEqual([tag]);
    });

    it('keeps images that skopeo reads (standard OCI config, one layer)', async (context) => {
      if (skopeoUnavailable) context.skip(skopeoUnavailable);
      const img = await pushImage(store, repo, 'sha-0123abc', 'skopeo');
      const { ref, args } = opened.skopeo(repo, 'sha-0123abc');
      const inspected = await skopeoInspect(ref, args);
      expect(inspected).toMatchObject({
        Digest: img.digest,
        Labels: { 'org.forge.test': 'skopeo' },
        Architecture: 'amd64',
        Os: 'linux',
        Layers: [sha256(img.layer)],
      });
      const raw = await skopeoInspect(ref, [...args, '--raw']);
      expect(raw).toEqual(JSON.parse(img.manifest.toString('utf8')));
    });
  });
}

for (const adapter of adapters) ociStoreContract(adapter);

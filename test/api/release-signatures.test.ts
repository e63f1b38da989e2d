/**
 * GET /v1/releases/{repo}/{project}/{ref}/signatures (beyond the seed), with the server's own wiring
 * (openSignatureVerifier: registries of its own, the tracking registry's host only, the public key
 * from the data dir) over images pushed and signed as the release workers do (openRegistries,
 * signImage), in the embedded OCI layout store and on a real docker-registry:
 * verified / unsigned / invalid (another key, another digest) per artifact, for a release found by
 * number, alias or commit prefix; an unsigned image reads verified once signed; a missing image, a
 * host that is not the tracking registry (never contacted) and a malformed URI are unavailable; a
 * stopped registry is a 200 with unavailable, while what was verified stays verified from memory;
 * 404, 401, and 503 without a verifier. Then through `forge server` itself: the example pipeline's
 * release reads verified, also from a server given only the public key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rename, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KEYS_DIR, openRegistries, openSignatureVerifier, type Registries } from '../../src/bin/registries.ts';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { EMBEDDED_REGISTRY } from '../../src/domain/registries.ts';
import type { OciStore } from '../../src/engine/ports.ts';
import { buildImage, pushImage } from '../../src/oci/image.ts';
import { loadSigningKey, signImage, SIGNING_KEY_FILE, SIGNING_PUBLIC_KEY_FILE, type SigningKey } from '../../src/oci/signing.ts';
import { parseServerSettings, type RegistrySettings } from '../../src/settings/settings.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { registryUnavailable, startRegistry } from '../helpers/registry.ts';
import { eventually, finishedRun } from '../helpers/runs.ts';
import { pgliteAdapter, type TestStore } from '../helpers/stores.ts';

interface Signatures {
  release_id: string;
  release_number: number;
  signatures: {
    artifact_id: string; artifact_name: string; tracking_oci_uri: string; tracking_oci_digest: string | null;
    status: string; signature_digest: string | null; reason: string | null;
  }[];
}

const newKey = () => loadSigningKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
const registrySettings = (tracking: string): RegistrySettings => ({ release: undefined, tracking, insecure: true, credentials: undefined, signingKey: undefined });

/** A one-layer image pushed as `repo:tag`; its digest. */
async function pushTracking(store: OciStore, repo: string, text: string, tag = 'sha-1'): Promise<string> {
  const image = buildImage({ created: '2024-01-01T00:00:00.000Z', layers: [{ mediaType: 'text/plain', content: Buffer.from(text) }] });
  return (await pushImage(store, repo, tag, image)).digest;
}

interface SignaturesApp {
  t: TestApp;
  svc: string;
  viewer: string;
  /** The registries as the release workers have them (they push and sign; the key is made in <data dir>/keys). */
  writer: Registries;
  close(): Promise<void>;
}

/** Over the tracking registry `<host>/tracking`: an app that checks signatures with the server's wiring, its tokens, and the workers' registries. */
async function openSignaturesApp(host: string, dataDir: string): Promise<SignaturesApp> {
  const settings = registrySettings(`${host}/tracking`);
  const reader = openSignatureVerifier(settings, dataDir);
  const writer = openRegistries(settings, dataDir);
  const test = await pgliteAdapter.open();
  const t = await startTestApp(test, { signatures: reader.verifier, deploymentWorker: false });
  return {
    t, writer, svc: await t.token('release-bot', ['service-account']), viewer: await t.token('victor', []),
    async close() {
      await t.close();
      await test.close();
      await reader.close();
      await writer.close();
    },
  };
}

type Artifact = { name: string; uri: string; digest?: string };

async function register(t: TestApp, svc: string, project: string, artifacts: Artifact[], extra: Record<string, unknown> = {}): Promise<{ id: string; release_number: number; commit: string }> {
  const commit = sha();
  const res = await t.app.inject({
    method: 'POST', url: '/v1/releases', headers: { authorization: `Bearer ${svc}` },
    payload: {
      repository: 'acme/shop', project, commit_sha: commit, ...extra,
      artifacts: artifacts.map((a) => ({ name: a.name, type: 'container', tracking_oci_uri: a.uri, primary_published_uri: a.uri, ...(a.digest ? { tracking_oci_digest: a.digest } : {}) })),
    },
  });
  expect(res.statusCode, res.body).toBe(201);
  return { ...(res.json() as { id: string; release_number: number }), commit };
}

async function signaturesOf(t: TestApp, path: string, token: string | undefined): Promise<{ statusCode: number; body: Signatures & { error?: { code: string; message: string } } }> {
  const res = await t.app.inject({ url: `/v1/releases/acme/shop/${path}/signatures`, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  return { statusCode: res.statusCode, body: res.json() };
}

const targets = [
  { label: 'the embedded store', unavailable: undefined, open: async () => ({ host: EMBEDDED_REGISTRY, stop: async () => undefined }) },
  {
    label: 'docker-registry',
    unavailable: registryUnavailable,
    open: async () => {
      const registry = await startRegistry();
      return { host: registry.host, stop: () => registry.stop() };
    },
  },
];

for (const target of targets) {
  describe(`release signatures on ${target.label}`, () => {
    let dir: string;
    let host: string;
    let stop: () => Promise<void> = async () => undefined;
    let app: SignaturesApp;
    /** The platform's key; `other` is anybody else's. */
    let key: SigningKey;
    const other = newKey();

    beforeAll(async () => {
      if (target.unavailable) return;
      dir = await mkdtemp(join(tmpdir(), 'forge-signatures-'));
      ({ host, stop } = await target.open());
      app = await openSignaturesApp(host, join(dir, 'data'));
      // Made in <data dir>/keys (signing.key and signing.pub), where the server's verifier finds the public half.
      key = await app.writer.signingKey();
    }, 60_000);
    afterAll(async () => {
      if (target.unavailable) return;
      await app?.close();
      await stop();
      await rm(dir, { recursive: true, force: true });
    });
    beforeEach((context) => {
      if (target.unavailable) context.skip(target.unavailable);
    });

    const sign = (repo: string, digest: string, by: SigningKey = key) => signImage(app.writer.tracking.store, repo, digest, by, { dockerReference: `${host}/${repo}` });
    const tracked = async (project: string, name: string, text = `${project}/${name}`) => {
      const repo = `tracking/acme/shop/${project}/${name}`;
      const digest = await pushTracking(app.writer.tracking.store, repo, text);
      return { repo, digest, uri: `${host}/${repo}@${digest}` };
    };

    it('reports verified, unsigned and invalid per artifact, for the release by number, alias or commit prefix; unsigned turns verified once signed', async () => {
      const server = await tracked('api', 'server');
      const signed = await sign(server.repo, server.digest);
      const worker = await tracked('api', 'worker');
      const forged = await tracked('api', 'forged');
      const forgedSignature = await sign(forged.repo, forged.digest, other);
      const release = await register(app.t, app.svc, 'api', [
        { name: 'server', uri: server.uri, digest: server.digest },
        { name: 'worker', uri: worker.uri, digest: worker.digest },
        { name: 'forged', uri: forged.uri, digest: forged.digest },
      ], { aliases: ['stable'] });

      const byNumber = await signaturesOf(app.t, 'api/1', app.viewer);
      expect(byNumber.statusCode).toBe(200);
      const ids = (await app.t.app.inject({ url: '/v1/releases/acme/shop/api/1', headers: { authorization: `Bearer ${app.viewer}` } })).json().artifacts as { id: string; artifact_name: string }[];
      const idOf = (name: string) => ids.find((a) => a.artifact_name === name)?.id;
      expect(byNumber.body).toEqual({
        release_id: release.id, release_number: 1,
        signatures: [
          {
            artifact_id: idOf('forged'), artifact_name: 'forged', tracking_oci_uri: forged.uri, tracking_oci_digest: forged.digest,
            status: 'invalid', signature_digest: forgedSignature.signatureManifestDigest, reason: expect.stringContaining('does not verify with the given public key'),
          },
          {
            artifact_id: idOf('server'), artifact_name: 'server', tracking_oci_uri: server.uri, tracking_oci_digest: server.digest,
            status: 'verified', signature_digest: signed.signatureManifestDigest, reason: null,
          },
          {
            artifact_id: idOf('worker'), artifact_name: 'worker', tracking_oci_uri: worker.uri, tracking_oci_digest: worker.digest,
            status: 'unsigned', signature_digest: null, reason: expect.stringContaining(`${worker.repo}@${worker.digest} is not signed`),
          },
        ],
      });
      const [byAlias, byPrefix] = await Promise.all([signaturesOf(app.t, 'api/stable', app.viewer), signaturesOf(app.t, `api/${release.commit.slice(0, 10)}`, app.viewer)]);
      expect(byAlias).toEqual(byNumber);
      expect(byPrefix).toEqual(byNumber);

      // Unsigned is read again each time: signed now, it is verified.
      const later = await sign(worker.repo, worker.digest);
      const after = await signaturesOf(app.t, 'api/stable', app.viewer);
      expect(after.body.signatures.find((s) => s.artifact_name === 'worker')).toMatchObject({ status: 'verified', signature_digest: later.signatureManifestDigest, reason: null });
    });

    it('is invalid when the image is not the recorded digest; unavailable for a missing image, a malformed URI and a host that is not the tracking registry (never contacted)', async () => {
      const first = await tracked('web', 'site', 'site v1');
      const second = await tracked('web', 'site', 'site v2');
      await sign(first.repo, first.digest);
      await sign(second.repo, second.digest);
      const ghost = `${host}/tracking/acme/shop/web/ghost@sha256:${'0'.repeat(64)}`;
      const requests: string[] = [];
      const spy: Server = createServer((req, res) => {
        requests.push(req.url ?? '');
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => spy.listen(0, '127.0.0.1', resolve));
      const elsewhere = `127.0.0.1:${(spy.address() as AddressInfo).port}/tracking/acme/shop/web/site@${first.digest}`;
      try {
        await register(app.t, app.svc, 'web', [
          // The URI pins the first image, the release recorded the second.
          { name: 'a-moved', uri: first.uri, digest: second.digest },
          { name: 'b-ghost', uri: ghost, digest: `sha256:${'0'.repeat(64)}` },
          { name: 'c-scheme', uri: `docker://${first.uri}` },
          { name: 'd-elsewhere', uri: elsewhere, digest: first.digest },
          // Without a recorded digest the URI's tag is read (and nothing is kept: a tag can move).
          { name: 'e-tag', uri: `${host}/${second.repo}:sha-1` },
        ]);
        const { statusCode, body } = await signaturesOf(app.t, 'web/1', app.viewer);
        expect(statusCode).toBe(200);
        expect(body.signatures.map((s) => [s.artifact_name, s.status])).toEqual([
          ['a-moved', 'invalid'], ['b-ghost', 'unavailable'], ['c-scheme', 'unavailable'], ['d-elsewhere', 'unavailable'], ['e-tag', 'verified'],
        ]);
        const [moved, missing, scheme, foreign] = body.signatures;
        expect(moved).toMatchObject({ signature_digest: null, reason: `the release records tracking digest ${second.digest}, but its tracking_oci_uri names ${first.digest}` });
        expect(missing).toMatchObject({ signature_digest: null, reason: `no image ${ghost} in ${host}` });
        expect(scheme?.reason).toContain('is not an image reference: "docker:" is a scheme');
        expect(foreign?.reason).toBe(`${elsewhere.split('/')[0]} is not this server's tracking registry (${host}), so ${elsewhere} is not read`);
        expect(requests).toEqual([]);
      } finally {
        await new Promise((resolve) => spy.close(resolve));
      }
    });

    it('answers 404 for an unknown release and 401 without a token', async () => {
      const unknown = await signaturesOf(app.t, 'nothing/1', app.viewer);
      expect(unknown.statusCode).toBe(404);
      expect(unknown.body.error).toMatchObject({ code: 'not_found', message: 'release 1 of acme/shop/nothing not found' });
      const anonymous = await signaturesOf(app.t, 'api/1', undefined);
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.body.error?.code).toBe('authentication_required');
    });
  });
}

describe.skipIf(registryUnavailable)('release signatures when the tracking registry stops', () => {
  let dir: string;
  let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
  let app: SignaturesApp | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forge-signatures-down-'));
    registry = await startRegistry();
    app = await openSignaturesApp(registry.host, join(dir, 'data'));
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 200 with unavailable and the reason, never a 5xx; what was verified stays verified from memory', async () => {
    const { t, svc, viewer, writer } = app!;
    const store = writer.tracking.store;
    const key = await writer.signingKey();
    const images = await Promise.all(['one', 'two'].map(async (name) => {
      const repo = `tracking/acme/shop/down/${name}`;
      const digest = await pushTracking(store, repo, name);
      await signImage(store, repo, digest, key, { dockerReference: `${registry!.host}/${repo}` });
      return { name, uri: `${registry!.host}/${repo}@${digest}`, digest };
    }));
    await register(t, svc, 'down', [images[0]!]);
    expect((await signaturesOf(t, 'down/1', viewer)).body.signatures[0]?.status).toBe('verified');
    await register(t, svc, 'down', images);

    await registry!.stop();
    const down = await signaturesOf(t, 'down/2', viewer);
    expect(down.statusCode).toBe(200);
    expect(down.body.signatures.map((s) => [s.artifact_name, s.status])).toEqual([['one', 'verified'], ['two', 'unavailable']]);
    expect(down.body.signatures[1]).toMatchObject({ signature_digest: null, reason: expect.stringContaining(`cannot read ${images[1]!.uri}: registry ${registry!.host}: `) });
    expect(down.body.signatures[1]?.reason).toContain('ECONNREFUSED');
    // Asked again at once: the host that did not answer is not waited for again.
    const again = await signaturesOf(t, 'down/2', viewer);
    expect(again.statusCode).toBe(200);
    expect(again.body.signatures[1]?.reason).toContain(`not asked: ${registry!.host} did not answer a moment ago`);
  }, 60_000);
});

describe('release signatures without a verifier or a key', () => {
  let dir: string;
  let test: TestStore;
  let bare: TestApp;
  let keyless: SignaturesApp;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forge-signatures-none-'));
    test = await pgliteAdapter.open();
    bare = await startTestApp(test, { deploymentWorker: false });
    keyless = await openSignaturesApp(EMBEDDED_REGISTRY, join(dir, 'data'));
  });
  afterAll(async () => {
    await Promise.all([bare?.close(), keyless?.close()]);
    await test?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 when the server has no signature verifier', async () => {
    const svc = await bare.token('release-bot', ['service-account']);
    await register(bare, svc, 'api', []);
    const res = await signaturesOf(bare, 'api/1', svc);
    expect(res.statusCode).toBe(503);
    expect(res.body.error).toMatchObject({ code: 'service_unavailable', message: expect.stringContaining('signature verification is not configured on this server') });
  });

  it('reads unavailable while the data dir has no key, never making one', async () => {
    const uri = `${EMBEDDED_REGISTRY}/tracking/acme/shop/api/server@sha256:${'1'.repeat(64)}`;
    await register(keyless.t, keyless.svc, 'api', [{ name: 'server', uri }]);
    const res = await signaturesOf(keyless.t, 'api/1', keyless.viewer);
    expect(res.statusCode).toBe(200);
    expect(res.body.signatures[0]).toMatchObject({ status: 'unavailable', signature_digest: null, reason: expect.stringContaining('no signing public key') });
    expect(existsSync(join(dir, 'data', KEYS_DIR))).toBe(false);
  });
});

describe('release signatures through forge server (example pipeline)', () => {
  let dir: string;
  let running: RunningServer | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forge-signatures-server-'));
  });
  afterAll(async () => {
    await running?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const signaturesFrom = async (server: RunningServer, ref: string): Promise<Signatures> => {
    const token = await server.devIssuer!.sign({ sub: 'victor', roles: [] });
    const res = await fetch(`${server.url}/v1/releases/forge-examples/monorepo/api/${ref}/signatures`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as Signatures;
  };

  it('reads the example release\'s artifacts verified, also from a server that has only the public key', async () => {
    const dataDir = join(dir, 'data');
    const env = { FORGE_DATA_DIR: dataDir, FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_RATE_LIMITS: 'off' };
    running = await startServer(parseServerSettings({ example: true }, env), { announce: false });
    expect((await finishedRun(running.ctx, running.exampleRun!.id, 150_000)).status).toBe('success');
    const token = await running.devIssuer!.sign({ sub: 'victor', roles: [] });
    const list = await eventually(
      async () => (await (await fetch(`${running!.url}/v1/releases/forge-examples/monorepo/api`, { headers: { authorization: `Bearer ${token}` } })).json()) as { releases: { id: string; release_number: number }[] },
      (r) => r.releases.length > 0, 60_000);
    const release = list.releases[0]!;
    const checked = await signaturesFrom(running, String(release.release_number));
    expect(checked.release_id).toBe(release.id);
    expect(checked.signatures.length).toBeGreaterThan(0);
    for (const signature of checked.signatures) {
      expect(signature).toMatchObject({ status: 'verified', signature_digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), reason: null });
      expect(signature.tracking_oci_uri.startsWith(`${EMBEDDED_REGISTRY}/tracking/`)).toBe(true);
    }
    await running.close();
    running = undefined;

    // The private key moved out of the data dir; FORGE_SIGNING_KEY names a copy of the public key.
    const publicKey = join(dir, 'public.pem');
    await copyFile(join(dataDir, KEYS_DIR, SIGNING_PUBLIC_KEY_FILE), publicKey);
    await rename(join(dataDir, KEYS_DIR, SIGNING_KEY_FILE), join(dir, 'private.key'));
    await rm(join(dataDir, KEYS_DIR, SIGNING_PUBLIC_KEY_FILE));
    running = await startServer(parseServerSettings({}, { ...env, FORGE_WORKERS: 'none', FORGE_SIGNING_KEY: publicKey }), { announce: false });
    expect((await signaturesFrom(running, String(release.release_number))).signatures).toEqual(checked.signatures);
  }, 240_000);
});

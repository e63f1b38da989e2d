/**
 * Behaviour 50: CMP generate prints every resource of the release's resources layer (found by media
 * type) sorted by (kind, name), then the application directory's env override if there is one; any
 * error is a CmpError (permanent: exit 1; transient: exit 75) naming the image and the check. Run on
 * the embedded OCI layout store and on a real docker-registry (read back with skopeo), plus a
 * registry that fails with 503 or does not answer (transient) and one behind Basic auth.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { openRegistries } from '../../src/bin/registries.ts';
import { CmpError } from '../../src/cmp/cmp-error.ts';
import { generate } from '../../src/cmp/generate.ts';
import type { ImageRegistry } from '../../src/oci/image.ts';
import { createLayoutStore, LAYOUT_DIR } from '../../src/oci/layout.store.ts';
import { createRegistryClient } from '../../src/oci/registry.client.ts';
import { RELEASE_MEDIA_TYPES } from '../../src/oci/release-image.ts';
import { freePort, registryUnavailable, skopeoInspect, startBasicAuthRegistry, startFaultProxy, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { describeOnEachStore } from '../oci/image-stores.ts';
import {
  ENV_YAML, EXPECTED_ORDER, gzipTar, metadataLayer, pushCustomRelease, pushRelease, RESOURCE_FILES, resourcesTar, sha, writeAppFile, writePointer,
} from './cmp-fixtures.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'forge-cmp-generate-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
/** A GitOps checkout of its own per test (the pointer path is the same for every release). */
const gitopsRoot = () => join(root, `gitops-${++counter}`);

async function generateFails(dir: string, registry: ImageRegistry): Promise<CmpError> {
  try {
    await generate(dir, registry);
  } catch (error) {
    if (error instanceof CmpError) return error;
    throw error;
  }
  throw new Error('generate succeeded');
}

/** (kind, name, and for the tied Secrets which file they came from) of each printed document. */
function printed(output: string) {
  return parseAllDocuments(output).map((doc) => {
    const value = doc.toJS() as { kind: string; metadata: { name: string }; stringData?: { from: string } };
    return value.stringData ? [value.kind, value.metadata.name, `from: ${value.stringData.from}`] : [value.kind, value.metadata.name];
  });
}

describeOnEachStore('forge cmp generate (behaviour 50)', (opened) => {
  const registry = (): ImageRegistry => ({ store: opened().store, address: opened().address });

  it('prints every resource of the release sorted by (kind, name), and nothing else without env.yaml', async () => {
    const commit = sha(0x10);
    const image = await pushRelease(registry(), commit);
    const dir = await writePointer(gitopsRoot(), { commit });
    const result = await generate(dir, registry());
    expect(printed(result.output)).toEqual(EXPECTED_ORDER.map((entry) => [...entry]));
    expect(result.output.startsWith('---\napiVersion: v1\nkind: ConfigMap\n')).toBe(true);
    expect(result.output).toContain('  mode: 0755\n  flag: "on"\n');
    expect(result).toMatchObject({
      reference: image.reference,
      digest: image.digest,
      resources: EXPECTED_ORDER.length,
      env: undefined,
      target: { repository: 'Acme/Monorepo', project: 'shop', from: { repository: 'spec', project: 'spec' } },
    });
    expect(image.reference).toBe(`${opened().address}/acme/monorepo/shop:${commit}`);
    // What the plugin read is what the store holds under the release's name.
    const inspected = await skopeoInspect(opened().skopeoRef(image.repo, commit));
    expect(inspected.Digest).toBe(result.digest);
  });

  it('appends env.yaml (or env.yml) after the release\'s resources', async () => {
    const commit = sha(0x11);
    await pushRelease(registry(), commit);
    const dir = await writePointer(gitopsRoot(), { commit });
    await writeAppFile(dir, 'env.yaml', `# per-project override\n${ENV_YAML}`);
    const result = await generate(dir, registry());
    expect(printed(result.output)).toEqual([...EXPECTED_ORDER.map((entry) => [...entry]), ['EnvironmentConfig', 'shop-dev']]);
    expect(result.output.endsWith(`---\n# per-project override\n${ENV_YAML}`)).toBe(true);
    expect(result.env).toEqual({ file: 'env.yaml', documents: 1 });

    const yml = await writePointer(gitopsRoot(), { commit });
    await writeAppFile(yml, 'env.yml', ENV_YAML);
    expect((await generate(yml, registry())).env).toEqual({ file: 'env.yml', documents: 1 });
    await writeAppFile(yml, 'env.yaml', ENV_YAML);
    expect(await generateFails(yml, registry())).toMatchObject({ failure: 'permanent', check: 'env.file', message: expect.stringMatching(/both env\.yaml and env\.yml/) });

    const bad = await writePointer(gitopsRoot(), { commit });
    await writeAppFile(bad, 'env.yaml', 'replicas: 2\n');
    const error = await generateFails(bad, registry());
    expect(error).toMatchObject({ failure: 'permanent', check: 'env.file', message: 'env.yaml document 1 has no apiVersion and no kind' });
  });

  it('finds the resources layer by media type when it is not the last layer, and reads the gzip variant', async () => {
    const commit = sha(0x12);
    const files = { 'svc.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n' };
    await pushCustomRelease(registry(), commit, [
      { mediaType: 'application/vnd.forge.resources.v1.tar+gzip', content: gzipTar(files) },
      metadataLayer(),
      { mediaType: 'text/plain', content: Buffer.from('notes') },
    ]);
    const dir = await writePointer(gitopsRoot(), { commit });
    expect(printed((await generate(dir, registry())).output)).toEqual([['Service', 'a'], ['Service', 'b']]);

    const plain = sha(0x13);
    await pushCustomRelease(registry(), plain, [{ mediaType: RELEASE_MEDIA_TYPES.resources, content: resourcesTar(files) }, metadataLayer()]);
    expect(printed((await generate(await writePointer(gitopsRoot(), { commit: plain }), registry())).output)).toEqual([['Service', 'a'], ['Service', 'b']]);
  });

  it('fails permanently, naming the image, when there is no such release image', async () => {
    const commit = sha(0x14);
    const dir = await writePointer(gitopsRoot(), { commit });
    const error = await generateFails(dir, registry());
    expect(error).toMatchObject({ failure: 'permanent', exitCode: 1, check: 'image.pull', message: `release image ${opened().address}/acme/monorepo/shop:${commit} not found` });
    expect(error.details).toMatchObject({ ref: `${opened().address}/acme/monorepo/shop:${commit}`, pointer: join(dir, 'release.yaml'), reason: expect.stringMatching(/not_found/) });
  });

  it('fails permanently when the image has no resources layer', async () => {
    const commit = sha(0x15);
    const pushed = await pushCustomRelease(registry(), commit, [metadataLayer()]);
    const error = await generateFails(await writePointer(gitopsRoot(), { commit }), registry());
    expect(error).toMatchObject({ failure: 'permanent', check: 'layer.resources', message: 'the release image has no resources layer' });
    expect(error.details).toMatchObject({ ref: pushed.reference, digest: pushed.digest, layers: RELEASE_MEDIA_TYPES.metadata });
  });

  it('fails permanently on a document without kind, naming the file and the document', async () => {
    const commit = sha(0x16);
    await pushRelease(registry(), commit, { ...RESOURCE_FILES, 'zz.yaml': 'apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata:\n  name: nokind\n' });
    const error = await generateFails(await writePointer(gitopsRoot(), { commit }), registry());
    expect(error).toMatchObject({ failure: 'permanent', check: 'resources.document', message: 'zz.yaml document 2 has no kind' });
    expect(error.details).toMatchObject({ file: 'zz.yaml', document: '2 (1-based, "---"-separated)', ref: expect.stringContaining(commit) });
  });

  it('refuses an image of another commit and an empty set of resources', async () => {
    const commit = sha(0x17);
    await pushCustomRelease(registry(), commit, [{ mediaType: RELEASE_MEDIA_TYPES.resources, content: resourcesTar({ 'a.yaml': 'apiVersion: v1\nkind: A\n' }) }], { 'org.catalyst-forge.commit': sha(0x99) });
    expect(await generateFails(await writePointer(gitopsRoot(), { commit }), registry())).toMatchObject({ check: 'image.commit', message: expect.stringMatching(/is of commit .* not the pointer's release/) });

    const empty = sha(0x18);
    await pushCustomRelease(registry(), empty, [{ mediaType: RELEASE_MEDIA_TYPES.resources, content: resourcesTar({ 'a.yaml': '# nothing\n---\n', 'notes.txt': 'x' }) }]);
    expect(await generateFails(await writePointer(gitopsRoot(), { commit: empty }), registry())).toMatchObject({ failure: 'permanent', check: 'resources.empty' });
  });

  it('reads repository and project from the path when a v1alpha1 pointer names only the release', async () => {
    const commit = sha(0x19);
    await pushRelease(registry(), commit);
    const dir = join(gitopsRoot(), 'environments', 'dev', 'acme', 'monorepo', 'shop');
    await writeAppFile(dir, 'release.yaml', `apiVersion: forge.projectcatalyst.io/v1alpha1\nkind: ReleasePointer\nmetadata:\n  name: shop\nspec:\n  release: ${commit}\n`);
    const result = await generate(dir, registry());
    expect(result.target).toEqual({ repository: 'acme/monorepo', project: 'shop', from: { repository: 'path', project: 'path' } });
    expect(printed(result.output)).toHaveLength(EXPECTED_ORDER.length);
    // Argo CD's ARGOCD_APP_SOURCE_PATH says where the directory is in the GitOps repository.
    const elsewhere = join(gitopsRoot(), 'checkout');
    await writeAppFile(elsewhere, 'release.yaml', `apiVersion: forge.projectcatalyst.io/v1alpha1\nkind: ReleasePointer\nspec:\n  release: ${commit}\n`);
    expect((await generate(elsewhere, registry(), { sourcePath: 'environments/dev/acme/monorepo/shop' })).target.from).toEqual({ repository: 'path', project: 'path' });
    expect(await generateFails(elsewhere, registry())).toMatchObject({ check: 'pointer.target' });
  });
});

describe('forge cmp generate on a corrupt store', () => {
  it('fails permanently when a blob is not what its digest says', async () => {
    const layout = join(root, 'corrupt-layout');
    const registry = { store: createLayoutStore(layout), address: 'forge.local/releases' };
    try {
      const commit = sha(0x1a);
      const image = await pushRelease(registry, commit);
      const resources = image.blobs.find((blob) => blob.descriptor.mediaType === RELEASE_MEDIA_TYPES.resources)!.descriptor.digest;
      await writeFile(join(layout, image.repo, LAYOUT_DIR, 'blobs', 'sha256', resources.slice('sha256:'.length)), resourcesTar({ 'a.yaml': 'apiVersion: v1\nkind: Evil\n' }));
      const error = await generateFails(await writePointer(gitopsRoot(), { commit }), registry);
      expect(error).toMatchObject({ failure: 'permanent', check: 'image.pull', message: expect.stringMatching(/^cannot read the resources layer of forge\.local\/releases\/acme\/monorepo\/shop:/) });
      expect(error.details.reason).toMatch(/is corrupt: its content is sha256:[0-9a-f]{64} \(internal_error\)$/);
    } finally {
      await registry.store.close();
    }
  });
});

describe('forge cmp generate against a failing registry', () => {
  const fast = { baseMs: 5, maxMs: 20, jitterMs: 0, maxAttempts: 2 };
  let upstream: TestRegistry;
  beforeAll(async () => {
    if (!registryUnavailable) upstream = await startRegistry();
  });
  afterAll(async () => upstream?.stop());
  beforeEach((context) => {
    if (registryUnavailable) context.skip(registryUnavailable);
  });

  it('is transient (exit 75) when the registry answers 503 or does not answer', async () => {
    const commit = sha(0x20);
    const store = createRegistryClient({ registry: upstream.host, insecure: true });
    await pushRelease({ store, address: `${upstream.host}/releases` }, commit);
    const dir = await writePointer(gitopsRoot(), { commit });
    const proxy = await startFaultProxy(upstream.host, (req) => (req.path.startsWith('/v2/releases/') ? { status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}' } : undefined));
    const port = await freePort();
    try {
      const overloaded = await generateFails(dir, { store: createRegistryClient({ registry: proxy.host, insecure: true, backoff: fast }), address: `${proxy.host}/releases` });
      expect(overloaded).toMatchObject({ failure: 'transient', exitCode: 75, check: 'image.pull' });
      expect(overloaded.details.reason).toMatch(/503 .*down for maintenance.*after 2 attempts \(service_unavailable\)/);
      const down = await generateFails(dir, { store: createRegistryClient({ registry: `127.0.0.1:${port}`, insecure: true, backoff: fast }), address: `127.0.0.1:${port}/releases` });
      expect(down).toMatchObject({ failure: 'transient', exitCode: 75, message: expect.stringMatching(/^cannot read release image 127\.0\.0\.1:\d+\/releases\/acme\/monorepo\/shop:/) });
      // The registry itself still has it.
      expect((await generate(dir, { store, address: `${upstream.host}/releases` })).resources).toBe(EXPECTED_ORDER.length);
    } finally {
      await proxy.close();
      await store.close();
    }
  });
});

describe('forge cmp generate on a registry behind Basic auth', () => {
  let started: Awaited<ReturnType<typeof startBasicAuthRegistry>> | undefined;
  beforeAll(async () => {
    if (!registryUnavailable) started = await startBasicAuthRegistry('forge', 's3cret', 'forge-cmp-htpasswd-');
  });
  afterAll(async () => {
    if (started && 'stop' in started) await started.stop();
  });
  beforeEach((context) => {
    if (registryUnavailable) context.skip(registryUnavailable);
    else if (started && 'unavailable' in started) context.skip(started.unavailable);
  });

  it('reads the release with the credentials from the settings, and fails permanently without them', async () => {
    if (!started || !('registry' in started)) throw new Error('no registry');
    const release = `${started.registry.host}/releases`;
    const settings = { release, tracking: undefined, insecure: true, signingKey: undefined };
    const withCredentials = openRegistries({ ...settings, credentials: { username: 'forge', password: 's3cret' } }, join(root, 'data'));
    const without = openRegistries({ ...settings, credentials: undefined }, join(root, 'data'));
    try {
      const commit = sha(0x21);
      await pushRelease(withCredentials.release, commit);
      const dir = await writePointer(gitopsRoot(), { commit });
      expect(printed((await generate(dir, withCredentials.release)).output)).toEqual(EXPECTED_ORDER.map((entry) => [...entry]));
      const refused = await generateFails(dir, without.release);
      expect(refused).toMatchObject({ failure: 'permanent', exitCode: 1, check: 'image.pull' });
      expect(refused.details.reason).toMatch(/401 .*credentials and none are configured\) \(authentication_required\)$/);
    } finally {
      await withCredentials.close();
      await without.close();
    }
  });
});

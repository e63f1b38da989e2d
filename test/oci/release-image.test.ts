/**
 * The Release OCI image (digest §4.3, behaviours 40 and 41) on both OciStore adapters: layout,
 * media types and annotations, read back with skopeo; the same inputs give the same digest; an
 * unresolved `@artifact` reference is refused before anything is pushed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { artifactPlaceholder } from '../../src/config/attributes.ts';
import { ForgeError } from '../../src/domain/errors.ts';
import { LAYER_TYPE_ANNOTATION } from '../../src/oci/image.ts';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';
import { buildReleaseImage, findUnresolvedReferences, pushReleaseImage, RELEASE_MEDIA_TYPES, summarizeResources } from '../../src/oci/release-image.ts';
import { deterministicTar } from '../../src/oci/tar.ts';
import { skopeoInspect, skopeoUnavailable } from '../helpers/registry.ts';
import { describeOnEachStore, type OpenedStore } from './image-stores.ts';
import { COMMIT, deployment, releaseInput } from './release-fixtures.ts';

const run = promisify(execFile);

describe('release image (pure)', () => {
  const registry = { store: undefined as never, address: 'reg.example/releases' };

  it('is named <registry>/<repo>/<project>:<commit> with the repository lowercased', () => {
    const image = buildReleaseImage(registry, releaseInput());
    expect(image.repo).toBe('releases/acme/monorepo/shop');
    expect(image.tag).toBe(COMMIT);
    expect(image.reference).toBe(`reg.example/releases/acme/monorepo/shop:${COMMIT}`);
    expect(image.pinned).toBe(`reg.example/releases/acme/monorepo/shop@${image.digest}`);
  });

  it('has the same digest for the same inputs, whatever their order, and another for any change', () => {
    const digests = [1, 2, 3].map(() => buildReleaseImage(registry, releaseInput()).digest);
    expect(new Set(digests).size).toBe(1);
    const base = releaseInput();
    const reordered = buildReleaseImage(registry, {
      ...base,
      aliases: [...base.aliases].reverse(),
      artifacts: [...base.artifacts].reverse(),
      resources: Object.fromEntries(Object.entries(base.resources).reverse()),
      trigger: { tag: 'shop/v1.2.0', type: 'tag' },
    });
    expect(reordered.digest).toBe(digests[0]);
    const changed = [
      releaseInput({ number: 8 }),
      releaseInput({ created: '2024-05-01T12:00:01Z' }),
      releaseInput({ resources: { ...base.resources, 'api.yaml': deployment('api', 'reg/shop/api:1.2.1') } }),
      releaseInput({ artifacts: base.artifacts.slice(1) }),
      releaseInput({ source: { ...base.source, commit: 'b'.repeat(40) } }),
    ].map((input) => buildReleaseImage(registry, input).digest);
    expect(new Set([...changed, digests[0]]).size).toBe(changed.length + 1);
  });

  it('takes the time from the input only', () => {
    const a = buildReleaseImage(registry, releaseInput({ created: '2024-05-01T14:00:00+02:00' }));
    const b = buildReleaseImage(registry, releaseInput());
    expect(a.digest).toBe(b.digest);
    expect(() => buildReleaseImage(registry, releaseInput({ created: 'yesterday' }))).toThrow(/invalid created "yesterday"/);
  });

  it('names a list of YAML texts 001.yaml, 002.yaml, … in list order', () => {
    const image = buildReleaseImage(registry, releaseInput({ resources: [deployment('b', 'x'), deployment('a', 'y')] }));
    const resources = image.metadata.resources as { files: { name: string }[]; summary: { file: string; name: string }[] };
    expect(resources.files.map((f) => f.name)).toEqual(['001.yaml', '002.yaml']);
    expect(resources.summary.map((s) => s.name)).toEqual(['b', 'a']);
  });

  it('refuses every placeholder form the renderer makes, naming the artifact, the file and the line', () => {
    const fields = ['uri', 'digest', 'tag', 'path', 'publishers.ecr.uri', 'publishers.ecr.repository', 'size'];
    for (const field of fields) {
      const marker = artifactPlaceholder('api-server', field);
      const input = releaseInput({ resources: { 'ok.yaml': deployment('web', 'x'), 'api.yaml': deployment('api', marker) } });
      let error: unknown;
      try {
        buildReleaseImage(registry, input);
      } catch (caught) {
        error = caught;
      }
      expect(error, field).toBeInstanceOf(ForgeError);
      expect((error as ForgeError).code).toBe('validation_error');
      expect((error as ForgeError).message).toContain('artifact api-server');
      expect((error as ForgeError).message).toContain(`${marker} in api.yaml line 11`);
      expect((error as ForgeError).details.artifacts).toEqual(['api-server']);
    }
  });

  it('refuses an @artifact attribute left as text', () => {
    expect(findUnresolvedReferences([{ name: 'a.yaml', text: 'image: @artifact("api.uri")\nb: @artifact(name="web", field="uri")\n' }]))
      .toEqual([
        { file: 'a.yaml', line: 1, marker: '@artifact("api.uri")', artifact: 'api' },
        { file: 'a.yaml', line: 2, marker: '@artifact(name="web", field="uri")', artifact: 'web' },
      ]);
    expect(findUnresolvedReferences([{ name: 'a.yaml', text: 'image: reg/api:1\nMY_ARTIFACT_URI_x: 1\n' }])).toEqual([]);
  });

  it('summarizes each document from its top-level lines', () => {
    const text = [
      '# leading comment', 'apiVersion: v1', 'kind: "ConfigMap"', 'metadata:', '  labels:', '    name: not-this', "  name: 'cfg' # a comment", '  namespace: shop',
      'data:', '  name: nor-this', '---', 'apiVersion: apps/v1', 'kind: Deployment', 'metadata: {name: flow}', 'spec:', '  template:', '    metadata:', '      name: inner',
      '--- # third', '',
    ].join('\n');
    expect(summarizeResources({ name: 'a.yaml', text })).toEqual([
      { file: 'a.yaml', apiVersion: 'v1', kind: 'ConfigMap', name: 'cfg', namespace: 'shop' },
      { file: 'a.yaml', apiVersion: 'apps/v1', kind: 'Deployment' },
    ]);
  });

  it('refuses bad file names, numbers and commits', () => {
    expect(() => buildReleaseImage(registry, releaseInput({ resources: { '../a.yaml': 'a: 1' } }))).toThrow(/invalid file name/);
    expect(() => buildReleaseImage(registry, releaseInput({ number: 0 }))).toThrow(/invalid release number/);
    expect(() => buildReleaseImage(registry, releaseInput({ source: { commit: 'ABC' } }))).toThrow(/invalid commit/);
  });

  it('writes a tar that tar reads, with fixed owner, mode and time', async () => {
    const tar = deterministicTar([
      { name: 'b.yaml', content: Buffer.from('b: 1\n') },
      { name: `${'d'.repeat(120)}/${'n'.repeat(90)}.yaml`, content: Buffer.alloc(600, 'x') },
      { name: 'a.yaml', content: Buffer.from('a: 1\n') },
    ]);
    expect(tar.length % 512).toBe(0);
    const dir = await mkdtemp(join(tmpdir(), 'forge-tar-'));
    try {
      await writeFile(join(dir, 'r.tar'), tar);
      const { stdout } = await run('tar', ['--numeric-owner', '--full-time', '-tvf', join(dir, 'r.tar')]);
      const lines = stdout.trim().split('\n');
      expect(lines.map((l) => l.split(/\s+/).at(-1))).toEqual(['a.yaml', 'b.yaml', `${'d'.repeat(120)}/${'n'.repeat(90)}.yaml`]);
      for (const line of lines) expect(line).toMatch(/^-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00:00 /);
      await run('tar', ['-xf', join(dir, 'r.tar'), '-C', dir]);
      expect(await readFile(join(dir, 'a.yaml'), 'utf8')).toBe('a: 1\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describeOnEachStore('release image', (current) => {
  let opened: OpenedStore;
  beforeEach(() => {
    opened = current();
  });

  it('pushes metadata and resources layers of the documented types under the commit tag, same digest each time (behaviour 40)', async () => {
    const registry = { store: opened.store, address: opened.address };
    const first = await pushReleaseImage(registry, releaseInput());
    expect(first.pushed).toBe(true);
    const again = await Promise.all([1, 2].map(() => pushReleaseImage(registry, releaseInput())));
    expect(again.map((i) => i.digest)).toEqual([first.digest, first.digest]);
    expect(again.map((i) => i.pushed)).toEqual([false, false]);

    expect(await opened.store.resolve(first.repo, COMMIT)).toBe(first.digest);
    const manifest = await opened.store.getManifest(first.repo, COMMIT);
    const parsed = JSON.parse(manifest.bytes.toString('utf8')) as {
      config: { mediaType: string };
      layers: { mediaType: string; digest: string; annotations: Record<string, string> }[];
      annotations: Record<string, string>;
    };
    expect(parsed.config.mediaType).toBe(MEDIA_TYPES.ociConfig);
    expect(parsed.layers.map((l) => [l.mediaType, l.annotations[LAYER_TYPE_ANNOTATION]])).toEqual([
      [RELEASE_MEDIA_TYPES.metadata, 'metadata'],
      [RELEASE_MEDIA_TYPES.resources, 'resources'],
    ]);
    expect(parsed.annotations).toMatchObject({
      'org.opencontainers.image.created': '2024-05-01T12:00:00.000Z',
      'org.opencontainers.image.revision': COMMIT,
      'org.opencontainers.image.source': 'https://github.com/acme/monorepo',
      'org.catalyst-forge.project': 'shop',
      'org.catalyst-forge.release.number': '7',
    });

    const metadata = JSON.parse((await opened.store.getBlob(first.repo, parsed.layers[0]!.digest)).toString('utf8')) as Record<string, unknown>;
    expect(metadata).toMatchObject({ number: 7, project: 'shop', repository: 'Acme/Monorepo' });
    expect((metadata.artifacts as { name: string; trackingUri: string }[]).map((a) => [a.name, a.trackingUri])).toEqual([
      ['api', `reg/acme/monorepo/shop/api:sha-${COMMIT}`],
      ['web', `reg/acme/monorepo/shop/web:sha-${COMMIT}`],
    ]);
    expect((metadata.resources as { digest: string }).digest).toBe(parsed.layers[1]!.digest);
    expect((metadata.resources as { summary: unknown }).summary).toEqual([
      { file: 'api.yaml', apiVersion: 'apps/v1', kind: 'Deployment', name: 'api', namespace: 'shop' },
      { file: 'web.yaml', apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' },
    ]);

    const tar = await opened.store.getBlob(first.repo, parsed.layers[1]!.digest);
    expect(tar.subarray(0, 8).toString()).toBe('api.yaml');
    expect(tar.toString('utf8')).toContain('image: reg/shop/api:1.2.0');
  });

  it('refuses unresolved references before pushing anything (behaviour 41)', async () => {
    const registry = { store: opened.store, address: opened.address };
    const input = releaseInput({ project: 'other', resources: { 'api.yaml': deployment('api', artifactPlaceholder('api', 'uri')) } });
    await expect(pushReleaseImage(registry, input)).rejects.toThrow(/reference artifact api without a value \(ARTIFACT_URI_api in api\.yaml line 11\)/);
    expect(await opened.store.listTags('releases/acme/monorepo/other')).toEqual([]);
  });

  it('is read by skopeo inspect as an image with a standard config', async (context) => {
    if (skopeoUnavailable) context.skip(skopeoUnavailable);
    const registry = { store: opened.store, address: opened.address };
    const image = await pushReleaseImage(registry, releaseInput({ number: 9, source: { commit: 'c'.repeat(40) } }));
    const inspected = await skopeoInspect(opened.skopeoRef(image.repo, image.tag));
    expect(inspected.Digest).toBe(image.digest);
    expect(inspected.Labels).toMatchObject({ 'org.catalyst-forge.project': 'shop', 'org.catalyst-forge.release.number': '9' });
    expect(inspected.Created).toBe('2024-05-01T12:00:00Z');
    const config = await skopeoInspect(opened.skopeoRef(image.repo, image.tag), ['--config', '--raw']);
    expect(config.rootfs).toEqual({ type: 'layers', diff_ids: (JSON.parse(image.manifest.toString()) as { layers: { digest: string }[] }).layers.map((l) => l.digest) });
  });
});

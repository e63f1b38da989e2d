/**
 * The artifact tracking image (digest §3.5, behaviours 33 and 34's SBOM half) on both OciStore
 * adapters: name, layers with their media types and `org.catalyst-forge.layer.type`, the SBOM of
 * the staging dir, the in-toto SLSA provenance, determinism, and an SBOM failure as a warning.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LAYER_TYPE_ANNOTATION } from '../../src/oci/image.ts';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';
import { buildTrackingImage, pushTrackingImage, TRACKING_MEDIA_TYPES, type TrackingImageInput } from '../../src/oci/tracking-image.ts';
import { skopeoInspect, skopeoUnavailable } from '../helpers/registry.ts';
import { describeOnEachStore, type OpenedStore } from './image-stores.ts';

const COMMIT = 'd'.repeat(40);
const ARTIFACT_DIGEST = `sha256:${'e'.repeat(64)}`;
const hex = (text: string) => createHash('sha256').update(text).digest('hex');

let staging: string;
beforeAll(async () => {
  staging = await mkdtemp(join(tmpdir(), 'forge-staging-'));
  await mkdir(join(staging, 'bin'));
  await writeFile(join(staging, 'bin', 'api'), 'binary');
  await writeFile(join(staging, 'README.md'), 'read me');
  await symlink('/etc/passwd', join(staging, 'link'));
});
afterAll(async () => rm(staging, { recursive: true, force: true }));

function trackingInput(overrides: Partial<TrackingImageInput> = {}): TrackingImageInput {
  return {
    repository: 'o/r',
    project: 'p',
    commit: COMMIT,
    created: '2024-05-01T12:00:00Z',
    source: { url: 'https://github.com/o/r', branch: 'main' },
    artifact: { name: 'api', type: 'binary', digest: ARTIFACT_DIGEST, size: 6, output: { os: 'linux', arch: 'amd64' } },
    published: [
      { publisher: 's3', uri: 's3://bucket/api' },
      { publisher: 'github', uri: 'https://github.com/o/r/releases/download/v1/api', metadata: { asset_name: 'api' } },
    ],
    build: { builderId: 'https://forge.example/worker', pipelineRunId: 'run-1', producer: { type: 'script', command: 'make' } },
    stagingDir: staging,
    ...overrides,
  };
}

interface Manifest {
  config: { mediaType: string };
  layers: { mediaType: string; digest: string; annotations: Record<string, string> }[];
  annotations: Record<string, string>;
}

describe('tracking image (pure)', () => {
  const registry = { store: undefined as never, address: 'tracking.io' };

  it('is named <registry>/<repo>/<project>/<artifact>:sha-<commit> (behaviour 33)', async () => {
    const image = await buildTrackingImage(registry, trackingInput());
    expect(image.reference).toBe(`tracking.io/o/r/p/api:sha-${COMMIT}`);
    expect(image.repo).toBe('o/r/p/api');
    expect(image.tag).toBe(`sha-${COMMIT}`);
  });

  it('has the same digest for the same inputs, another when a file or a location changes', async () => {
    const digests = await Promise.all([1, 2, 3].map(async () => (await buildTrackingImage(registry, trackingInput())).digest));
    expect(new Set(digests).size).toBe(1);
    const base = trackingInput();
    expect((await buildTrackingImage(registry, { ...base, published: [...base.published].reverse() })).digest).toBe(digests[0]);
    expect((await buildTrackingImage(registry, trackingInput({ published: base.published.slice(1) }))).digest).not.toBe(digests[0]);
    await writeFile(join(staging, 'README.md'), 'read me too');
    try {
      expect((await buildTrackingImage(registry, trackingInput())).digest).not.toBe(digests[0]);
    } finally {
      await writeFile(join(staging, 'README.md'), 'read me');
    }
  });

  it('leaves the SBOM out with a warning when it cannot be made (behaviour 34)', async () => {
    const missing = await buildTrackingImage(registry, trackingInput({ stagingDir: join(staging, 'nope') }));
    expect(missing.warnings).toEqual([expect.stringMatching(/^no SBOM for artifact api: listing .*nope failed: ENOENT/)]);
    const layers = (JSON.parse(missing.manifest.toString()) as Manifest).layers;
    expect(layers.map((l) => l.annotations[LAYER_TYPE_ANNOTATION])).toEqual(['metadata', 'attestation']);

    const notADirectory = await buildTrackingImage(registry, trackingInput({ stagingDir: join(staging, 'README.md') }));
    expect(notADirectory.warnings).toEqual([expect.stringMatching(/README\.md failed: .*README\.md is not a directory$/)]);
    expect((await buildTrackingImage(registry, trackingInput({ stagingDir: undefined }))).warnings).toEqual(['no SBOM for artifact api: no staging directory was given']);
  });

  it('refuses a bad artifact digest or commit', async () => {
    await expect(buildTrackingImage(registry, trackingInput({ artifact: { name: 'api', type: 'binary', digest: 'md5:x' } }))).rejects.toThrow(/invalid artifact digest/);
    await expect(buildTrackingImage(registry, trackingInput({ commit: 'main' }))).rejects.toThrow(/invalid commit/);
  });
});

describeOnEachStore('tracking image', (current) => {
  let opened: OpenedStore;
  beforeEach(() => {
    opened = current();
  });

  it('has metadata, sbom and attestation layers of the documented types (behaviour 33)', async () => {
    const registry = { store: opened.store, address: opened.address };
    const image = await pushTrackingImage(registry, trackingInput());
    expect(image.warnings).toEqual([]);
    expect(image.pushed).toBe(true);
    expect((await pushTrackingImage(registry, trackingInput())).pushed).toBe(false);
    expect(image.repo).toBe('releases/o/r/p/api');

    const manifest = JSON.parse((await opened.store.getManifest(image.repo, `sha-${COMMIT}`)).bytes.toString()) as Manifest;
    expect(manifest.config.mediaType).toBe(MEDIA_TYPES.ociConfig);
    expect(manifest.layers.map((l) => [l.mediaType, l.annotations[LAYER_TYPE_ANNOTATION]])).toEqual([
      [TRACKING_MEDIA_TYPES.metadata, 'metadata'],
      ['application/vnd.cyclonedx+json', 'sbom'],
      ['application/vnd.in-toto+json', 'attestation'],
    ]);
    expect(manifest.annotations).toMatchObject({ 'org.catalyst-forge.artifact': 'api', 'org.opencontainers.image.revision': COMMIT });
    const blob = async (i: number) => JSON.parse((await opened.store.getBlob(image.repo, manifest.layers[i]!.digest)).toString()) as Record<string, unknown>;

    const metadata = await blob(0);
    expect(metadata).toMatchObject({ project: 'p', commit: COMMIT, artifact: { name: 'api', digest: ARTIFACT_DIGEST }, build: { pipelineRunId: 'run-1' } });
    expect((metadata.published as { publisher: string }[]).map((p) => p.publisher)).toEqual(['github', 's3']);

    const sbom = await blob(1) as { bomFormat: string; specVersion: string; serialNumber: string; components: { name: string; hashes: { content: string }[]; properties: { value: string }[] }[] };
    expect(sbom.bomFormat).toBe('CycloneDX');
    expect(sbom.specVersion).toBe('1.5');
    expect(sbom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(sbom.components.map((c) => [c.name, c.hashes[0]!.content, c.properties[0]!.value])).toEqual([
      ['README.md', hex('read me'), '7'],
      ['bin/api', hex('binary'), '6'],
    ]);

    const statement = await blob(2) as { _type: string; predicateType: string; subject: unknown; predicate: { buildDefinition: { resolvedDependencies: unknown }; runDetails: { builder: { id: string } } } };
    expect(statement._type).toBe('https://in-toto.io/Statement/v1');
    expect(statement.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(statement.subject).toEqual([{ name: 'api', digest: { sha256: 'e'.repeat(64) } }]);
    expect(statement.predicate.runDetails.builder.id).toBe('https://forge.example/worker');
    expect(statement.predicate.buildDefinition.resolvedDependencies).toEqual([{ uri: `git+https://github.com/o/r@${COMMIT}`, digest: { gitCommit: COMMIT } }]);
  });

  it('is read by skopeo inspect', async (context) => {
    if (skopeoUnavailable) context.skip(skopeoUnavailable);
    const image = await pushTrackingImage({ store: opened.store, address: opened.address }, trackingInput({ artifact: { name: 'web', type: 'archive', digest: ARTIFACT_DIGEST } }));
    const inspected = await skopeoInspect(opened.skopeoRef(image.repo, image.tag));
    expect(inspected.Digest).toBe(image.digest);
    expect(inspected.Labels).toMatchObject({ 'org.catalyst-forge.artifact': 'web', 'org.catalyst-forge.image.kind': 'artifact-tracking' });
  });
});

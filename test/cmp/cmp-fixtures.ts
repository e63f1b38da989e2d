/**
 * GitOps directories and release images for the CMP tests: pointers written the way the deployment
 * handler writes them (buildReleasePointer at pointerPath), release images pushed the way the release
 * job pushes them (pushReleaseImage), and hand-made images for the layer variants the plugin must
 * also read (layer not last, the gzip media type, no resources layer).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildReleasePointer, DEFAULT_POINTER_LAYOUT, pointerPath, renderReleasePointer } from '../../src/gitops/release-pointer.ts';
import { buildImage, type ImageRegistry, locate, pushImage } from '../../src/oci/image.ts';
import { FORGE_ANNOTATIONS, pushReleaseImage, RELEASE_MEDIA_TYPES } from '../../src/oci/release-image.ts';
import { deterministicTar } from '../../src/oci/tar.ts';
import { releaseInput } from '../oci/release-fixtures.ts';

export const REPOSITORY = 'Acme/Monorepo';
export const PROJECT = 'shop';
export const ENVIRONMENT = 'dev';

/**
 * The release's files: kinds and names out of order across files, a tie on (kind, name) across two
 * files, a comment, an octal-looking scalar and a quoted "on" that must come out as written, an
 * empty document, a `.yml` file in a folder, and a file that is not YAML.
 */
export const RESOURCE_FILES: Record<string, string> = {
  'web.yaml': [
    'apiVersion: v1',
    'kind: Service',
    'metadata:',
    '  name: web',
    '---',
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: web',
    '',
  ].join('\n'),
  'api.yaml': [
    '# the api',
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: api',
    '---',
    '---',
    '# only a comment',
    '---',
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    '  name: api-config',
    'data:',
    '  mode: 0755',
    '  flag: "on"',
    '',
  ].join('\n'),
  'a.yaml': 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: dup\nstringData:\n  from: a\n',
  'b.yaml': 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: dup\nstringData:\n  from: b\n',
  'nested/sa.yml': 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n',
  'README.md': 'not: yaml to read\n',
};

/** `(kind, name, marker)` in the order generate prints them. */
export const EXPECTED_ORDER = [
  ['ConfigMap', 'api-config'],
  ['Deployment', 'api'],
  ['Deployment', 'web'],
  ['Secret', 'dup', 'from: a'],
  ['Secret', 'dup', 'from: b'],
  ['Service', 'web'],
  ['ServiceAccount', 'a'],
] as const;

export const ENV_YAML = [
  'apiVersion: apiextensions.crossplane.io/v1alpha1',
  'kind: EnvironmentConfig',
  'metadata:',
  '  name: shop-dev',
  'data:',
  '  replicas: 2',
  '',
].join('\n');

/** A distinct full commit SHA per `n`, never all digits (YAML would read that as a number). */
export const sha = (n: number) => `${n.toString(16).padStart(2, '0')}cf`.repeat(10);

export interface PointerFields {
  environment?: string;
  repository?: string;
  project?: string;
  commit: string;
  ociUri?: string;
}

/** Writes the pointer where the default layout puts it under `root`; returns the application directory. */
export async function writePointer(root: string, fields: PointerFields): Promise<string> {
  const target = { environment: fields.environment ?? ENVIRONMENT, repository: fields.repository ?? REPOSITORY, project: fields.project ?? PROJECT };
  const pointer = buildReleasePointer({
    ...target,
    release: { id: '11111111-1111-4111-8111-111111111111', repository: target.repository, project: target.project, commit_sha: fields.commit, release_number: 7, oci_uri: fields.ociUri ?? `forge.local/releases/${target.repository.toLowerCase()}/${target.project}:${fields.commit}` },
    aliases: [{ alias: '7', alias_type: 'numeric' }],
    deployedBy: 'alice',
    deployedAt: new Date('2024-05-01T12:00:00Z'),
    approvedBy: null,
    approvedAt: null,
    message: 'deploy',
  });
  const path = join(root, pointerPath(DEFAULT_POINTER_LAYOUT, target));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, renderReleasePointer(pointer));
  return dirname(path);
}

/** Any text file in the application directory (a hand-written pointer, env.yaml…). */
export async function writeAppFile(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, name), text);
}

/** The release image as Forge's release job pushes it. */
export async function pushRelease(registry: ImageRegistry, commit: string, resources: Record<string, string> = RESOURCE_FILES) {
  return pushReleaseImage(registry, releaseInput({ repository: REPOSITORY, project: PROJECT, source: { commit }, resources }));
}

export interface CustomLayer {
  mediaType: string;
  content: Buffer;
}

export const resourcesTar = (files: Record<string, string>) =>
  deterministicTar(Object.entries(files).map(([name, text]) => ({ name, content: Buffer.from(text) })));
export const gzipTar = (files: Record<string, string>) => gzipSync(resourcesTar(files));

/** An image of the given layers under the release's name and tag (with the commit annotation). */
export async function pushCustomRelease(registry: ImageRegistry, commit: string, layers: CustomLayer[], annotations: Record<string, string> = { [FORGE_ANNOTATIONS.commit]: commit }) {
  const { repo, reference } = locate(registry, `${REPOSITORY.toLowerCase()}/${PROJECT}`);
  const image = buildImage({ created: '2024-05-01T12:00:00Z', layers, annotations });
  await pushImage(registry.store, repo, commit, image);
  return { repo, reference: `${reference}:${commit}`, digest: image.digest };
}

export const metadataLayer = (): CustomLayer => ({ mediaType: RELEASE_MEDIA_TYPES.metadata, content: Buffer.from('{"schemaVersion":1}') });

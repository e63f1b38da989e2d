/**
 * Assembling Forge's own OCI images (release, artifact tracking, signatures) from JSON and byte
 * layers, byte for byte the same for the same inputs: JSON is written canonically (object keys
 * sorted, no whitespace, undefined members dropped), the config is the standard OCI image config
 * (so skopeo, crane and registries' UIs can inspect it) whose only time is the one given, and the
 * manifest lists the layers in the order given.
 */
import { invalid } from '../domain/errors.ts';
import type { OciStore } from '../engine/ports.ts';
import { sha256Digest } from './content.ts';
import { type Descriptor, MEDIA_TYPES } from './manifest.ts';
import { checkRepository, checkTag } from './reference.ts';

/** Every layer of a Forge image says what it holds (digest §3.5, §4.3). */
export const LAYER_TYPE_ANNOTATION = 'org.catalyst-forge.layer.type';

/** JSON with object keys sorted (by UTF-16 code units, as Array.prototype.sort does) and no whitespace. */
export function canonicalJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, (_key, member: unknown) => {
    if (member === null || typeof member !== 'object' || Array.isArray(member)) return member;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(member).sort()) sorted[key] = (member as Record<string, unknown>)[key];
    return sorted;
  }));
}

/** An RFC 3339 time in UTC with milliseconds (`Date#toISOString`), or a validation_error naming `field`. */
export function normalizeTime(value: string, field: string): string {
  const time = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(time.getTime())) {
    throw invalid(`invalid ${field} ${JSON.stringify(value)}: an RFC 3339 date-time (the commit's or the release's time, never the clock's, so that rebuilds are identical)`, { field, value });
  }
  return time.toISOString();
}

export interface ImageLayer {
  mediaType: string;
  content: Uint8Array;
  annotations?: Record<string, string>;
}

export interface ImageSpec {
  /** The image's time (config `created`). */
  created: string;
  /** Config labels (shown by `skopeo inspect` as Labels). */
  labels?: Record<string, string>;
  layers: readonly ImageLayer[];
  annotations?: Record<string, string>;
}

export interface BuiltImage {
  manifest: Buffer;
  /** The manifest's digest: what a tag of this image names. */
  digest: string;
  config: Buffer;
  /** Config and layers with their contents, in manifest order (config first). */
  blobs: { descriptor: Descriptor; content: Uint8Array }[];
}

const describe = (mediaType: string, content: Uint8Array, annotations?: Record<string, string>) => ({
  mediaType,
  digest: sha256Digest(content),
  size: content.byteLength,
  ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
});

export function buildImage(spec: ImageSpec): BuiltImage {
  const layers = spec.layers.map((layer) => describe(layer.mediaType, layer.content, layer.annotations));
  // Not a runnable image: no platform (as cosign's signature images), the layers' digests as diff_ids
  // (they are stored uncompressed).
  const config = canonicalJson({
    architecture: '',
    os: '',
    created: spec.created,
    config: spec.labels && Object.keys(spec.labels).length > 0 ? { Labels: spec.labels } : {},
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
  });
  const configDescriptor = describe(MEDIA_TYPES.ociConfig, config);
  const manifest = canonicalJson({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: configDescriptor,
    layers,
    ...(spec.annotations && Object.keys(spec.annotations).length > 0 ? { annotations: spec.annotations } : {}),
  });
  return {
    manifest,
    digest: sha256Digest(manifest),
    config,
    blobs: [
      { descriptor: configDescriptor, content: config },
      ...layers.map((descriptor, i) => ({ descriptor, content: spec.layers[i]!.content })),
    ],
  };
}

export interface PushedImage {
  digest: string;
  /** False when the store already held this manifest under the tag (nothing was sent). */
  pushed: boolean;
}

/** Pushes the blobs (in parallel; each is skipped when the store has it) and then the manifest under `tag`. */
export async function pushImage(store: OciStore, repo: string, tag: string, image: BuiltImage): Promise<PushedImage> {
  checkRepository(repo);
  checkTag(tag);
  await Promise.all(image.blobs.map((blob) => store.pushBlob(repo, blob.content, blob.descriptor.digest)));
  const result = await store.pushManifest(repo, tag, image.manifest, MEDIA_TYPES.ociManifest);
  return { digest: result.digest, pushed: result.pushed };
}

/** Where images of one kind go: a store and the registry address images there are named by. */
export interface ImageRegistry {
  store: OciStore;
  /**
   * The registry setting, e.g. `127.0.0.1:5000/releases`: the host names image references, and a path
   * after it prefixes every repository name (the store is opened on the host). For the embedded
   * layout store a name of the caller's choosing (e.g. `forge.local`).
   */
  address: string;
}

/** The repository name inside the store and the full reference prefix for `name`. */
export function locate(registry: ImageRegistry, name: string): { repo: string; reference: string } {
  const slash = registry.address.indexOf('/');
  const prefix = slash === -1 ? '' : registry.address.slice(slash + 1).replace(/\/+$/, '');
  const repo = checkRepository(prefix ? `${prefix}/${name}` : name);
  const host = slash === -1 ? registry.address : registry.address.slice(0, slash);
  return { repo, reference: `${host}/${repo}` };
}

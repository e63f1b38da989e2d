/**
 * The manifest media types an OciStore takes and the checks every adapter makes before storing a
 * manifest (the registry makes its own too; these make the embedded store refuse what a registry
 * refuses). A manifest is JSON with schemaVersion 2 whose `mediaType`, when present, is the one it
 * is pushed as; it names the blobs (image manifest: config and layers) or manifests (index) it needs.
 */
import { ForgeError, invalid } from '../domain/errors.ts';
import { checkDigest } from './reference.ts';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** What `getManifest` accepts when the caller names nothing: every type a store takes. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerManifestList,
];

const INDEX_TYPES: readonly string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList];

/** Registries refuse larger manifests (distribution v3 and most hosted registries: 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The digests a manifest refers to: blobs for an image manifest, manifests for an index. */
export interface ManifestRefs {
  kind: 'image' | 'index';
  digests: string[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export function checkMediaType(mediaType: string): void {
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType)}: one of ${MANIFEST_MEDIA_TYPES.join(', ')}`, { mediaType, supported: MANIFEST_MEDIA_TYPES });
  }
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value) || typeof value.mediaType !== 'string' || typeof value.digest !== 'string'
    || typeof value.size !== 'number' || !Number.isSafeInteger(value.size) || value.size < 0) {
    throw invalid(`invalid manifest: ${where} is not a descriptor {mediaType, digest, size}`, { where });
  }
  checkDigest(value.digest);
  return { mediaType: value.mediaType, digest: value.digest, size: value.size };
}

/** Parses and checks a manifest about to be stored; returns what it refers to. */
export function checkManifest(bytes: Uint8Array, mediaType: string): ManifestRefs {
  checkMediaType(mediaType);
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new ForgeError('payload_too_large', `manifest of ${bytes.byteLength} bytes is larger than ${MAX_MANIFEST_BYTES}`, { size: bytes.byteLength, limit: MAX_MANIFEST_BYTES });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw invalid(`invalid manifest: not JSON (${(error as Error).message})`);
  }
  if (!isRecord(parsed) || parsed.schemaVersion !== 2) throw invalid('invalid manifest: a JSON object with "schemaVersion": 2 is required');
  if (parsed.mediaType !== undefined && parsed.mediaType !== mediaType) {
    throw invalid(`invalid manifest: its mediaType ${JSON.stringify(parsed.mediaType)} is not the type it is pushed as (${mediaType})`, { mediaType });
  }
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(parsed.manifests)) throw invalid('invalid manifest: an index needs a "manifests" array');
    return { kind: 'index', digests: parsed.manifests.map((m, i) => descriptor(m, `manifests[${i}]`).digest) };
  }
  const layers = parsed.layers;
  if (!Array.isArray(layers)) throw invalid('invalid manifest: an image manifest needs a "layers" array');
  return {
    kind: 'image',
    digests: [descriptor(parsed.config, 'config').digest, ...layers.map((l, i) => descriptor(l, `layers[${i}]`).digest)],
  };
}

/** The media type without parameters (`application/json; charset=utf-8` → `application/json`). */
export const bareMediaType = (contentType: string): string => contentType.split(';')[0]!.trim();

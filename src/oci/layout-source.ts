/**
 * Reading an image out of an OCI image layout directory that a producer wrote (`oci-layout`,
 * `index.json`, `blobs/sha256/<hex>`: what `docker buildx --output type=oci,tar=false`, `skopeo copy
 * … oci:<dir>` or `crane` leave). The image is the one manifest of index.json, or the one whose
 * `org.opencontainers.image.ref.name` is the asked-for name. An image index is followed into its
 * manifests. Manifests are read whole and checked against their digests; layer and config blobs are
 * only listed (a push streams them and checks them against their digests).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { invalid } from '../domain/errors.ts';
import { hexOf, sha256Digest } from './content.ts';
import { checkManifest, MEDIA_TYPES, type Descriptor } from './manifest.ts';
import { checkDigest } from './reference.ts';

const REF_NAME = 'org.opencontainers.image.ref.name';

export interface LayoutImage {
  dir: string;
  /** The image's top manifest (an image manifest or an index). */
  top: Descriptor;
  /** Every manifest under the top one (index children), children before parents, without the top. */
  children: Descriptor[];
  /** Config and layer blobs of every image, each once. */
  blobs: Descriptor[];
  /** The (first) image config's digest. */
  imageId: string;
  /** Layers counted over every image. */
  layers: number;
  /** Bytes of the top manifest, its children and every blob. */
  size: number;
}

export const layoutBlobPath = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', hexOf(checkDigest(digest)));

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw invalid(`not an OCI image layout: cannot read ${what} (${(error as Error).message})`, { path });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw invalid(`not an OCI image layout: ${what} is not JSON (${(error as Error).message})`, { path });
  }
}

/** Whether `dir` looks like an OCI image layout (has an `oci-layout` file). */
export async function isLayoutDir(dir: string): Promise<boolean> {
  try {
    return (await stat(join(dir, 'oci-layout'))).isFile();
  } catch {
    return false;
  }
}

/** The image of the layout at `dir` (see the module comment); `name` picks among several. */
export async function readLayoutImage(dir: string, name?: string): Promise<LayoutImage> {
  const marker = await readJson(join(dir, 'oci-layout'), 'oci-layout');
  if (!isRecord(marker) || typeof marker.imageLayoutVersion !== 'string') throw invalid(`not an OCI image layout: ${dir}/oci-layout has no imageLayoutVersion`, { path: dir });
  const index = await readJson(join(dir, 'index.json'), 'index.json');
  if (!isRecord(index) || !Array.isArray(index.manifests)) throw invalid(`not an OCI image layout: ${dir}/index.json has no manifests array`, { path: dir });
  const entries = index.manifests.filter(isRecord);
  const named = (entry: Record<string, unknown>) => {
    const ref = isRecord(entry.annotations) ? entry.annotations[REF_NAME] : undefined;
    return typeof ref === 'string' ? ref : undefined;
  };
  let chosen = entries;
  if (name !== undefined && entries.length > 1) chosen = entries.filter((e) => named(e) === name || named(e)?.endsWith(`:${name}`));
  if (chosen.length !== 1) {
    const names = entries.map((e) => named(e) ?? String(e.digest)).join(', ');
    throw invalid(`the OCI image layout at ${dir} holds ${entries.length} manifests (${names || 'none'}); leave exactly one${name ? ` or one named ${name}` : ''}`, { path: dir });
  }
  const top = toDescriptor(chosen[0]!, 'index.json');

  const children: Descriptor[] = [];
  const blobs = new Map<string, Descriptor>();
  let imageId: string | undefined;
  let layers = 0;
  let size = 0;

  async function visit(descriptor: Descriptor, isTop: boolean): Promise<void> {
    const bytes = await readFile(layoutBlobPath(dir, descriptor.digest)).catch((error: unknown) => {
      throw invalid(`the OCI image layout at ${dir} lacks manifest ${descriptor.digest} (${(error as Error).message})`, { path: dir, digest: descriptor.digest });
    });
    const actual = sha256Digest(bytes);
    if (actual !== descriptor.digest) throw invalid(`the OCI image layout at ${dir}: manifest ${descriptor.digest} has digest ${actual}`, { path: dir });
    size += bytes.byteLength;
    const refs = checkManifest(bytes, descriptor.mediaType);
    const parsed = JSON.parse(bytes.toString('utf8')) as { manifests?: unknown[]; config?: unknown; layers?: unknown[] };
    if (refs.kind === 'index') {
      for (const [i, child] of (parsed.manifests ?? []).entries()) await visit(toDescriptor(child, `${descriptor.digest} manifests[${i}]`), false);
    } else {
      const config = toDescriptor(parsed.config, `${descriptor.digest} config`);
      imageId ??= config.digest;
      const own = (parsed.layers ?? []).map((layer, i) => toDescriptor(layer, `${descriptor.digest} layers[${i}]`));
      layers += own.length;
      for (const blob of [config, ...own]) {
        if (blobs.has(blob.digest)) continue;
        const found = await stat(layoutBlobPath(dir, blob.digest)).catch(() => undefined);
        if (!found?.isFile() || found.size !== blob.size) {
          throw invalid(`the OCI image layout at ${dir} lacks blob ${blob.digest} of ${blob.size} bytes${found ? ` (found ${found.size} bytes)` : ''}`, { path: dir, digest: blob.digest });
        }
        blobs.set(blob.digest, blob);
        size += blob.size;
      }
    }
    if (!isTop) children.push(descriptor);
  }
  await visit(top, true);
  return { dir, top, children, blobs: [...blobs.values()], imageId: imageId ?? top.digest, layers, size };
}

function toDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value) || typeof value.digest !== 'string' || typeof value.size !== 'number') {
    throw invalid(`invalid OCI image layout: ${where} is not a descriptor {mediaType, digest, size}`, { where });
  }
  const mediaType = typeof value.mediaType === 'string' ? value.mediaType : MEDIA_TYPES.ociManifest;
  return { mediaType, digest: checkDigest(value.digest), size: value.size };
}

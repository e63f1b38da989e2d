/** Content for OCI store tests: minimal valid images and streams. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { OciStore } from '../../src/engine/ports.ts';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';

export const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
export const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** A minimal valid OCI image: an empty tar layer and a standard config carrying `label`. */
export function image(label: string) {
  const layer = Buffer.alloc(1024); // two zero blocks: an empty tar archive
  const config = json({
    architecture: 'amd64',
    os: 'linux',
    config: { Labels: { 'org.forge.test': label } },
    rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  return { layer, config, manifest, digest: sha256(manifest) };
}

export async function pushImage(store: OciStore, repo: string, tag: string, label: string) {
  const img = image(label);
  await store.pushBlob(repo, img.layer);
  await store.pushBlob(repo, img.config);
  const pushed = await store.pushManifest(repo, tag, img.manifest, MEDIA_TYPES.ociManifest);
  return { ...img, pushed };
}

/** A stream of `bytes` in uneven pieces, noting whether anything was read. */
export function streamOf(bytes: Buffer, piece = 300_001): { stream: Readable; read: () => boolean } {
  let read = false;
  const stream = Readable.from((function* () {
    for (let at = 0; at < bytes.length; at += piece) {
      read = true;
      yield bytes.subarray(at, at + piece);
    }
  })());
  return { stream, read: () => read };
}

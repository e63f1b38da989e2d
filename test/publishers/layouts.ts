/** OCI image layouts on disk, as a producer leaves them (built from test/oci/images.ts's minimal image). */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';
import { image, sha256 } from '../oci/images.ts';

export async function writeLayout(dir: string, label: string): Promise<{ digest: string; configDigest: string; size: number }> {
  const img = image(label);
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  for (const bytes of [img.layer, img.config, img.manifest]) await writeFile(join(blobs, sha256(bytes).slice('sha256:'.length)), bytes);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: img.digest, size: img.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  }));
  return { digest: img.digest, configDigest: sha256(img.config), size: img.layer.length + img.config.length + img.manifest.length };
}

/**
 * Picks the object-store adapter: an S3 bucket when settings are given, else files under
 * `<dataDir>/objects`. The bucket must exist (`ensureBucket` in object-store.s3.ts creates it).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectStore } from '../engine/ports.ts';
import { createFileObjectStore } from './object-store.files.ts';
import { createS3ObjectStore, type S3Settings } from './object-store.s3.ts';

export async function openObjectStore(options: { dataDir: string; s3?: S3Settings }): Promise<ObjectStore> {
  if (options.s3) return createS3ObjectStore(options.s3);
  const root = join(options.dataDir, 'objects');
  await mkdir(root, { recursive: true });
  return createFileObjectStore(root);
}

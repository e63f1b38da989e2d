/**
 * The object stores tests run against: files in a temporary directory, and S3 on a real Ceph
 * radosgw when FORGE_TEST_S3_* is set (`eval "$(scripts/ceph-s3.sh)"` starts one). Without those
 * variables the S3 half is skipped locally and FAILS when CI is set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteBucketCommand } from '@aws-sdk/client-s3';
import type { ObjectStore } from '../../src/engine/ports.ts';
import { createS3ObjectStore, ensureBucket, s3Client, type S3Settings } from '../../src/store/object-store.s3.ts';
import { openObjectStore } from '../../src/store/object-store.ts';

const HOW_TO_START = 'start Ceph with `eval "$(scripts/ceph-s3.sh)"` (Debian: apt-get install ceph-mon ceph-osd radosgw ceph-common)';

/** Settings for a fresh bucket of this test file, or why S3 cannot be used. */
export function s3FromEnv(): { settings: S3Settings } | { unavailable: string } {
  const endpoint = process.env.FORGE_TEST_S3_ENDPOINT;
  const accessKeyId = process.env.FORGE_TEST_S3_ACCESS_KEY_ID;
  const secretAccessKey = process.env.FORGE_TEST_S3_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKeyId || !secretAccessKey) {
    return { unavailable: `FORGE_TEST_S3_ENDPOINT, FORGE_TEST_S3_ACCESS_KEY_ID and FORGE_TEST_S3_SECRET_ACCESS_KEY are not all set: ${HOW_TO_START}` };
  }
  const bucket = `forge-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  return { settings: { endpoint, accessKeyId, secretAccessKey, bucket, prefix: 'objects' } };
}

/** Removes every object under the bucket and the bucket itself. */
export async function dropBucket(settings: S3Settings): Promise<void> {
  const raw = createS3ObjectStore({ ...settings, prefix: undefined });
  await raw.delete((await raw.list('')).map((o) => o.key));
  await raw.close();
  const client = s3Client(settings);
  await client.send(new DeleteBucketCommand({ Bucket: settings.bucket }));
  client.destroy();
}

export interface ObjectStoreAdapter {
  name: ObjectStore['kind'];
  /** undefined when usable; otherwise why not. */
  unavailable?: string;
  open(): Promise<{ store: ObjectStore; dispose(): Promise<void> }>;
}

/** Both adapters for a suite named `suite` (named in the warning when S3 is skipped). */
export function objectStoreAdapters(suite: string): ObjectStoreAdapter[] {
  const s3 = s3FromEnv();
  if ('unavailable' in s3) {
    if (process.env.CI) throw new Error(`CI is set and the S3 half of ${suite} cannot run: ${s3.unavailable}`);
    console.warn(`${suite}: skipping the S3 half: ${s3.unavailable}`);
  }
  return [
    {
      name: 'files',
      async open() {
        const dir = await mkdtemp(join(tmpdir(), 'forge-objects-'));
        const store = await openObjectStore({ dataDir: dir });
        return { store, dispose: () => rm(dir, { recursive: true, force: true }) };
      },
    },
    {
      name: 's3',
      ...('unavailable' in s3 ? { unavailable: s3.unavailable } : {}),
      async open() {
        if (!('settings' in s3)) throw new Error('unreachable: the S3 half is skipped');
        await ensureBucket(s3.settings);
        const store = await openObjectStore({ dataDir: '/nonexistent', s3: s3.settings });
        return { store, dispose: () => dropBucket(s3.settings) };
      },
    },
  ];
}

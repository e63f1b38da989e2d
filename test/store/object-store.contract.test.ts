/**
 * The object-store port's contract, run against the files adapter and against S3 on a real Ceph
 * radosgw (FORGE_TEST_S3_*; `eval "$(scripts/ceph-s3.sh)"` starts one). Without those variables the
 * S3 half is skipped locally and FAILS when CI is set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../src/engine/ports.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import { createS3ObjectStore, ensureBucket, PART_BYTES, s3Client } from '../../src/store/object-store.s3.ts';
import { dropBucket, objectStoreAdapters, s3FromEnv, type ObjectStoreAdapter } from '../helpers/object-stores.ts';

const adapters = objectStoreAdapters('object-store contract');
/** For the S3 specifics below (skipped, like the S3 half of the contract, without FORGE_TEST_S3_*). */
const s3 = s3FromEnv();

const text = (got: { body: Buffer } | undefined) => got?.body.toString('utf8');

function objectStoreContract(adapter: ObjectStoreAdapter): void {
  describe(`object store contract on ${adapter.name}`, () => {
    let store: ObjectStore;
    let dispose: (() => Promise<void>) | undefined;
    let scratch: string;
    let n = 0;
    /** Each test's keys live under its own prefix. */
    let p: string;

    beforeAll(async () => {
      if (adapter.unavailable) return;
      ({ store, dispose } = await adapter.open());
      scratch = await mkdtemp(join(tmpdir(), 'forge-objects-src-'));
    });
    afterAll(async () => {
      await store?.close();
      await dispose?.();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });
    beforeEach((context) => {
      if (adapter.unavailable) context.skip(adapter.unavailable);
      p = `t${++n}/`;
    });

    it('is the kind it says', () => {
      expect(store.kind).toBe(adapter.name);
    });

    it('round-trips text and binary, and reports sizes', async () => {
      const log = 'line 1\nzwei: ü €\nthree 🚀\n';
      await store.put(`${p}pipeline-runs/r1/logs/ci/api/build.log`, log, { contentType: 'text/plain; charset=utf-8' });
      const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
      await store.put(`${p}results/job.bin`, new Uint8Array(binary));

      const got = await store.get(`${p}pipeline-runs/r1/logs/ci/api/build.log`);
      expect(text(got)).toBe(log);
      expect(got?.size).toBe(Buffer.byteLength(log));
      expect((await store.get(`${p}results/job.bin`))?.body.equals(binary)).toBe(true);
      expect(await store.head(`${p}results/job.bin`)).toEqual({ size: 512 });
      expect(await store.get(`${p}missing`)).toBeUndefined();
      expect(await store.get(`${p}missing`, { start: 3 })).toBeUndefined();
      expect(await store.head(`${p}missing`)).toBeUndefined();
      // A key that is only a prefix of other keys is no object.
      expect(await store.get(`${p}results`)).toBeUndefined();
      expect(await store.head(`${p}results`)).toBeUndefined();
    });

    it('replaces an object whole on overwrite (no bytes left from a longer one)', async () => {
      await store.put(`${p}k`, 'a much longer first version');
      await store.put(`${p}k`, 'short');
      expect(text(await store.get(`${p}k`))).toBe('short');
      expect(await store.head(`${p}k`)).toEqual({ size: 5 });
      await store.put(`${p}k`, '');
      expect(await store.get(`${p}k`)).toEqual({ body: Buffer.alloc(0), size: 0 });
    });

    it('reads byte ranges [start, end) with the whole size', async () => {
      await store.put(`${p}digits`, '0123456789');
      const range = async (start: number, end?: number) => {
        const got = await store.get(`${p}digits`, end === undefined ? { start } : { start, end });
        expect(got?.size).toBe(10);
        return text(got);
      };
      expect(await range(0)).toBe('0123456789');
      expect(await range(3)).toBe('3456789');
      expect(await range(2, 5)).toBe('234');
      expect(await range(8, 100)).toBe('89');
      expect(await range(9, 10)).toBe('9');
      expect(await range(4, 4)).toBe('');
      expect(await range(10)).toBe('');
      expect(await range(50, 60)).toBe('');

      await store.put(`${p}empty`, '');
      expect(await store.get(`${p}empty`, { start: 0 })).toEqual({ body: Buffer.alloc(0), size: 0 });
      expect(await store.get(`${p}empty`, { start: 0, end: 10 })).toEqual({ body: Buffer.alloc(0), size: 0 });

      for (const bad of [{ start: -1 }, { start: 5, end: 4 }, { start: 1.5 }, { start: 0, end: Number.NaN }]) {
        await expect(store.get(`${p}digits`, bad)).rejects.toMatchObject({ code: 'validation_error' });
      }
    });

    it('lists by prefix, sorted, nested, also when the prefix ends mid-name', async () => {
      const keys = ['b/d/e.log', 'a.log', 'pa', 'b/c.log', 'ab.log', 'b.log', 'x/y/z/deep.txt', 'ä.log'];
      await Promise.all(keys.map((k, i) => store.put(`${p}${k}`, 'x'.repeat(i))));
      const listed = await store.list(p);
      expect(listed.map((o) => o.key)).toEqual(
        ['a.log', 'ab.log', 'b.log', 'b/c.log', 'b/d/e.log', 'pa', 'x/y/z/deep.txt', 'ä.log'].map((k) => p + k));
      expect(listed.find((o) => o.key === `${p}b/c.log`)?.size).toBe(keys.indexOf('b/c.log'));
      expect((await store.list(`${p}a`)).map((o) => o.key)).toEqual([`${p}a.log`, `${p}ab.log`]);
      expect((await store.list(`${p}b`)).map((o) => o.key)).toEqual([`${p}b.log`, `${p}b/c.log`, `${p}b/d/e.log`]);
      expect((await store.list(`${p}b/`)).map((o) => o.key)).toEqual([`${p}b/c.log`, `${p}b/d/e.log`]);
      expect((await store.list(`${p}b/d/e`)).map((o) => o.key)).toEqual([`${p}b/d/e.log`]);
      expect((await store.list(`${p}x/y/`)).map((o) => o.key)).toEqual([`${p}x/y/z/deep.txt`]);
      expect(await store.list(`${p}nothing/`)).toEqual([]);
      expect(await store.list(`${p}a.log/`)).toEqual([]);
      expect(await store.list(`${p}q`)).toEqual([]);
      expect((await store.list('')).map((o) => o.key)).toEqual(expect.arrayContaining(keys.map((k) => p + k)));
    });

    it('deletes keys, missing ones included, and a deleted directory name can become a key', async () => {
      await store.put(`${p}logs/a.log`, 'a');
      await store.put(`${p}logs/b/c.log`, 'c');
      await store.put(`${p}keep`, 'k');
      await store.delete([]);
      await store.delete([`${p}logs/a.log`, `${p}logs/b/c.log`, `${p}never-was`, `${p}logs/b`]);
      expect(await store.get(`${p}logs/a.log`)).toBeUndefined();
      expect(await store.head(`${p}logs/b/c.log`)).toBeUndefined();
      expect((await store.list(p)).map((o) => o.key)).toEqual([`${p}keep`]);
      await store.put(`${p}logs`, 'now a key');
      expect(text(await store.get(`${p}logs`))).toBe('now a key');
    });

    it('lists and deletes more than one page / one batch (1,001 keys)', async () => {
      const keys = Array.from({ length: 1001 }, (_, i) => `${p}many/${String(i).padStart(5, '0')}`);
      for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, 'x')));
      const listed = await store.list(`${p}many/`);
      expect(listed.map((o) => o.key)).toEqual(keys);
      await store.delete(keys);
      expect(await store.list(`${p}many/`)).toEqual([]);
    });

    it('uploads files: small, empty, and multi-part sized', async () => {
      const big = randomBytes(2 * PART_BYTES + 12345);
      const bigPath = join(scratch, 'big.bin');
      await writeFile(bigPath, big);
      await store.putFile(`${p}big.bin`, bigPath, { contentType: 'application/octet-stream' });
      expect(await store.head(`${p}big.bin`)).toEqual({ size: big.length });
      const middle = await store.get(`${p}big.bin`, { start: PART_BYTES - 10, end: PART_BYTES + 10 });
      expect(middle?.body.equals(big.subarray(PART_BYTES - 10, PART_BYTES + 10))).toBe(true);
      expect((await store.get(`${p}big.bin`))?.body.equals(big)).toBe(true);

      await writeFile(join(scratch, 'small.txt'), 'small file\n');
      await writeFile(join(scratch, 'empty'), '');
      await store.putFile(`${p}small.txt`, join(scratch, 'small.txt'));
      await store.putFile(`${p}empty`, join(scratch, 'empty'));
      expect(text(await store.get(`${p}small.txt`))).toBe('small file\n');
      expect(await store.head(`${p}empty`)).toEqual({ size: 0 });
      await expect(store.putFile(`${p}nope`, join(scratch, 'does-not-exist'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await store.head(`${p}nope`)).toBeUndefined();
    });

    it('refuses invalid keys and prefixes on every operation, saying what a key may contain', async () => {
      const badKeys = ['', '/abs', 'a/', 'a//b', 'a/../b', './a', 'a/.', '..', 'a\\b', 'a\0b', '.forge-tmp/x'];
      const file = join(scratch, 'invalid-keys.txt');
      await writeFile(file, 'x');
      for (const key of badKeys) {
        for (const attempt of [
          () => store.put(key, 'x'),
          () => store.putFile(key, file),
          () => store.get(key),
          () => store.head(key),
          () => store.delete([`${p}fine`, key]),
        ]) {
          await expect(attempt(), JSON.stringify(key)).rejects.toMatchObject({ code: 'validation_error', message: expect.stringContaining('an object key is "/"-separated segments') });
        }
      }
      for (const prefix of ['/a', 'a//', '../', 'a/./', 'a\\', '.forge-tmp/']) {
        await expect(store.list(prefix), prefix).rejects.toMatchObject({ code: 'validation_error' });
      }
      // Names that merely look special are fine.
      await store.put(`${p}.hidden/...three/v1.2..log`, 'ok');
      expect(text(await store.get(`${p}.hidden/...three/v1.2..log`))).toBe('ok');
      expect((await store.list(`${p}.`)).map((o) => o.key)).toEqual([`${p}.hidden/...three/v1.2..log`]);
    });

    it('leaves one whole object when writers race on a key, and readers never see a partial one', async () => {
      const writers = Array.from({ length: 6 }, (_, i) => Buffer.alloc(256 * 1024, 0x61 + i));
      const files = await Promise.all(writers.map(async (body, i) => {
        const file = join(scratch, `writer-${i}`);
        await writeFile(file, body);
        return file;
      }));
      await store.put(`${p}raced`, writers[0]!);
      const seen: Buffer[] = [];
      let writing = true;
      const reader = (async () => {
        while (writing) {
          const got = await store.get(`${p}raced`);
          if (got) seen.push(got.body);
        }
      })();
      for (let round = 0; round < 3; round++) {
        await Promise.all(writers.map((body, i) => ((i + round) % 2 ? store.put(`${p}raced`, body) : store.putFile(`${p}raced`, files[i]!))));
      }
      writing = false;
      await reader;
      const isWhole = (body: Buffer | undefined) => writers.some((w) => body !== undefined && w.equals(body));
      expect(isWhole((await store.get(`${p}raced`))?.body)).toBe(true);
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.filter((body) => !isWhole(body))).toEqual([]);
    });
  });
}

for (const adapter of adapters) objectStoreContract(adapter);

describe.skipIf('unavailable' in s3)('S3 specifics', () => {
  it('keeps keys under the configured prefix inside the bucket', async () => {
    if (!('settings' in s3)) return;
    const settings = { ...s3.settings, bucket: `${s3.settings.bucket}-p`, prefix: 'tenant/a/' };
    await ensureBucket(settings);
    await ensureBucket(settings); // a second call finds it and is fine
    const store = createS3ObjectStore(settings);
    try {
      await store.put('x/y.log', 'y');
      expect(await store.list('')).toEqual([{ key: 'x/y.log', size: 1 }]);
      const client = s3Client(settings);
      const raw = await client.send(new ListObjectsV2Command({ Bucket: settings.bucket }));
      client.destroy();
      expect(raw.Contents?.map((o) => o.Key)).toEqual(['tenant/a/x/y.log']);
    } finally {
      await store.close();
      await dropBucket(settings);
    }
  });

  it('names the bucket and key and keeps the S3 error as the cause', async () => {
    if (!('settings' in s3)) return;
    const store = createS3ObjectStore({ ...s3.settings, bucket: `${s3.settings.bucket}-missing` });
    try {
      const error = await store.put('a/b.log', 'x').then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'service_unavailable', details: { bucket: `${s3.settings.bucket}-missing`, key: 'objects/a/b.log' } });
      expect((error as Error).message).toContain(`s3://${s3.settings.bucket}-missing/objects/a/b.log`);
      expect((error as Error).cause).toMatchObject({ name: 'NoSuchBucket' });
      await expect(store.get('a/b.log')).rejects.toMatchObject({ code: 'service_unavailable', cause: { name: 'NoSuchBucket' } });
      await expect(store.list('a/')).rejects.toMatchObject({ code: 'service_unavailable', cause: { name: 'NoSuchBucket' } });
    } finally {
      await store.close();
    }
  });
});

describe('files adapter specifics', () => {
  it('refuses a key that is both an object and a directory of other keys, as a conflict', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'forge-objects-'));
    const store = createFileObjectStore(dir);
    try {
      await store.put('a/b', 'x');
      await expect(store.put('a', 'y')).rejects.toMatchObject({ code: 'conflict' });
      await expect(store.put('a/b/c', 'y')).rejects.toMatchObject({ code: 'conflict' });
      expect((await store.list('')).map((o) => o.key)).toEqual(['a/b']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

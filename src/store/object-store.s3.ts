/**
 * The scale-out object store: one S3-compatible bucket (Ceph radosgw in tests), path-style requests
 * to an explicit endpoint. Keys follow the same rules as the files store (object-keys.ts) and live
 * under the optional `prefix` inside the bucket. Every failure is a `service_unavailable` ForgeError
 * naming the bucket and key, with the S3 error as its cause.
 */
import { open, readFile, stat } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { ForgeError } from '../domain/errors.ts';
import type { ObjectStore } from '../engine/ports.ts';
import { checkByteRange, checkObjectKey, checkObjectPrefix, compareKeys } from './object-keys.ts';

export interface S3Settings {
  /** e.g. `http://127.0.0.1:7480` */
  endpoint: string;
  bucket: string;
  /** Default `us-east-1`. */
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Keys are stored under this prefix inside the bucket (a `/` is added when missing). */
  prefix?: string;
}

/** Files up to this size go up in one PUT; larger ones in parts of this size (S3's minimum is 5 MiB). */
export const PART_BYTES = 8 * 1024 * 1024;
/** S3's limit of keys per DeleteObjects call. */
const DELETE_BATCH = 1000;

/** `maxAttempts`: the SDK's own attempts (default 3); 1 when the caller counts retries itself. */
export function s3Client(settings: Pick<S3Settings, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>, options: { maxAttempts?: number } = {}): S3Client {
  return new S3Client({
    ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
    endpoint: settings.endpoint,
    region: settings.region ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    // Checksums only where S3 requires them: S3-compatible servers such as Ceph before Reef reject
    // the SDK's default trailing checksums on uploads.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

const statusOf = (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
const nameOf = (error: unknown) => (error as { name?: string } | undefined)?.name;

function failure(operation: string, bucket: string, key: string, cause: unknown): ForgeError {
  const reason = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  return new ForgeError('service_unavailable', `object store: ${operation} s3://${bucket}/${key} failed (${reason})`, { bucket, key }, { cause });
}

/** Creates the bucket unless it exists (and is ours). For tests and the composition root. */
export async function ensureBucket(settings: S3Settings): Promise<void> {
  const client = s3Client(settings);
  try {
    await client.send(new CreateBucketCommand({ Bucket: settings.bucket }));
  } catch (error) {
    if (nameOf(error) !== 'BucketAlreadyOwnedByYou') throw failure('create bucket', settings.bucket, '', error);
  } finally {
    client.destroy();
  }
}

export function createS3ObjectStore(settings: S3Settings): ObjectStore {
  const { bucket } = settings;
  const base = settings.prefix ? settings.prefix.replace(/\/?$/, '/') : '';
  if (base) checkObjectKey(base.slice(0, -1));
  const client = s3Client(settings);

  /** Runs one S3 call for `key`, turning its failure into a ForgeError. */
  async function call<T>(operation: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw failure(operation, bucket, base + key, error);
    }
  }

  async function headObject(key: string): Promise<{ size: number } | undefined> {
    checkObjectKey(key);
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: base + key }));
      return { size: head.ContentLength ?? 0 };
    } catch (error) {
      // A HEAD answer has no body to tell a missing key from a missing bucket: both are "not there".
      if (statusOf(error) === 404) return undefined;
      throw failure('head', bucket, base + key, error);
    }
  }

  async function putObject(key: string, body: Uint8Array, contentType: string | undefined): Promise<void> {
    checkObjectKey(key);
    // An explicit length, also for an empty body (the SDK would warn of a stream of unknown length).
    await call('put', key, () =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: base + key, Body: body, ContentLength: body.byteLength, ContentType: contentType })));
  }

  /** Uploads the file in PART_BYTES parts, read one at a time; aborts the upload on any failure. */
  async function putInParts(key: string, path: string, contentType: string | undefined): Promise<void> {
    const Key = base + key;
    const file = await open(path, 'r');
    let UploadId: string | undefined;
    try {
      ({ UploadId } = await call('start multipart upload of', key, () =>
        client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key, ContentType: contentType }))));
      const parts: CompletedPart[] = [];
      for (let PartNumber = 1; ; PartNumber++) {
        const chunk = Buffer.alloc(PART_BYTES);
        let filled = 0;
        while (filled < chunk.length) {
          const { bytesRead } = await file.read(chunk, filled, chunk.length - filled, null);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        if (filled === 0 && parts.length > 0) break;
        const { ETag } = await call(`upload part ${PartNumber} of`, key, () =>
          client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber, Body: chunk.subarray(0, filled) })));
        parts.push({ ETag, PartNumber });
        if (filled < chunk.length) break;
      }
      await call('complete multipart upload of', key, () =>
        client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts: parts } })));
    } catch (error) {
      if (UploadId) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId })).catch(() => undefined);
      throw error;
    } finally {
      await file.close();
    }
  }

  return {
    kind: 's3',

    async put(key, body, options) {
      await putObject(key, typeof body === 'string' ? Buffer.from(body, 'utf8') : body, options?.contentType);
    },

    async putFile(key, path, options) {
      checkObjectKey(key);
      const { size } = await stat(path);
      if (size > PART_BYTES) return putInParts(key, path, options?.contentType);
      await putObject(key, await readFile(path), options?.contentType);
    },

    async get(key, range) {
      checkObjectKey(key);
      checkByteRange(range);
      // S3 cannot express an empty range, and answers 416 to one that starts past the end.
      if (range?.end !== undefined && range.end <= range.start) {
        const head = await headObject(key);
        return head && { body: Buffer.alloc(0), size: head.size };
      }
      const Range = range ? `bytes=${range.start}-${range.end === undefined ? '' : range.end - 1}` : undefined;
      try {
        const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: base + key, Range }));
        const bytes = (await got.Body?.transformToByteArray()) ?? new Uint8Array();
        const total = /\/(\d+)$/.exec(got.ContentRange ?? '')?.[1];
        return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), size: total ? Number(total) : (got.ContentLength ?? bytes.byteLength) };
      } catch (error) {
        if (nameOf(error) === 'NoSuchKey') return undefined; // not NoSuchBucket, also a 404
        if (statusOf(error) !== 416) throw failure('get', bucket, base + key, error);
        const head = await headObject(key);
        return head && { body: Buffer.alloc(0), size: head.size };
      }
    },

    head: headObject,

    async list(prefix) {
      checkObjectPrefix(prefix);
      const out: { key: string; size: number }[] = [];
      let ContinuationToken: string | undefined;
      do {
        const page = await call('list', `${prefix}*`, () =>
          client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base + prefix, ContinuationToken })));
        for (const object of page.Contents ?? []) {
          if (object.Key !== undefined) out.push({ key: object.Key.slice(base.length), size: object.Size ?? 0 });
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken);
      return out.sort((a, b) => compareKeys(a.key, b.key));
    },

    async delete(keys) {
      keys.forEach(checkObjectKey);
      for (let at = 0; at < keys.length; at += DELETE_BATCH) {
        const batch = keys.slice(at, at + DELETE_BATCH);
        const done = await call('delete', batch.length === 1 ? batch[0]! : `${batch[0]}… (${batch.length} keys)`, () =>
          client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((key) => ({ Key: base + key })), Quiet: true } })));
        const first = done.Errors?.find((e) => e.Code !== 'NoSuchKey');
        if (first) throw failure('delete', bucket, first.Key ?? '', new Error(`${first.Code}: ${first.Message}`));
      }
    },

    async close() {
      client.destroy();
    },
  };
}

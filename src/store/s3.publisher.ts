/**
 * The `s3` publisher: a file artifact (binary, archive) becomes the object
 * `[<prefix>/]<owner>/<repo>/<project>/<version>/<file>` in the destination's `bucket`, with its
 * sha256 as user metadata (`x-amz-meta-sha256`). Idempotent: HEAD first; an object whose sha256
 * metadata is the artifact's is not uploaded again (`skipped`); any other object there is replaced.
 *
 * Retries: the SDK's own retries are off (maxAttempts 1) so that attempts are counted once, by
 * withPublishRetries (backoffDelay, 5 attempts): network errors, 5xx, 429 and S3's SlowDown are
 * retried; 401/403 (bad keys, signature, policy) fail at once; anything else is final with S3's
 * error code and message. Connection settings (endpoint, keys) come from the worker's settings;
 * repo.cue gives `bucket`, optional `prefix` and `public_url` (a base URL the bucket is served at).
 * Limit: one PUT per object, so files up to 5 GiB.
 */
import { createReadStream } from 'node:fs';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { s3Client } from './object-store.s3.ts';
import { ForgeError, invalid, type ErrorCode } from '../domain/errors.ts';
import type { Publisher, PublishResult } from '../engine/ports.ts';
import { artifactPath, checkDestinationType, configString, withPublishRetries, type RetryOptions } from '../engine/publishing.ts';
import { checkObjectKey } from './object-keys.ts';
import type { S3Settings } from './object-store.s3.ts';

/** S3's limit for a single PUT. */
const MAX_PUT_BYTES = 5 * 1024 ** 3;

export interface S3PublisherOptions extends Omit<S3Settings, 'bucket' | 'prefix'> {
  retry?: RetryOptions;
}

interface S3Failure {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

/** An S3 call's failure as a ForgeError whose code says whether to retry (see the module comment). */
function failure(operation: string, bucket: string, key: string, error: unknown): ForgeError {
  const e = error as S3Failure;
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  let code: ErrorCode;
  if (status === 401) code = 'authentication_required';
  else if (status === 403) code = 'permission_denied';
  else if (status === 429 || e.name === 'SlowDown') code = 'rate_limited';
  else if (status === undefined || status >= 500) code = 'service_unavailable';
  else if (status === 404) code = 'not_found';
  else code = 'validation_error';
  const reason = `${status ?? 'no answer'} ${e.name ?? 'Error'}: ${e.message ?? String(error)}`;
  return new ForgeError(code, `s3 publisher: ${operation} s3://${bucket}/${key} failed: ${reason}`, { bucket, key, status, s3_code: e.name, s3_message: e.message }, { cause: error });
}

export function createS3Publisher(options: S3PublisherOptions): Publisher {
  // The SDK's retries are off: withPublishRetries alone counts attempts.
  const client = s3Client(options, { maxAttempts: 1 });

  return {
    type: 's3',
    async publish(artifact, destination): Promise<PublishResult> {
      checkDestinationType(destination, 's3');
      const bucket = configString(destination, 'bucket', true);
      const prefix = configString(destination, 'prefix')?.replace(/^\/+|\/+$/g, '');
      const key = prefix ? `${prefix}/${artifactPath(artifact)}` : artifactPath(artifact);
      checkObjectKey(key);
      const output = artifact.output;
      if (output.location_type !== 'file') throw invalid('unreachable: artifactPath takes files only');
      if (output.size > MAX_PUT_BYTES) throw invalid(`artifact ${artifact.name} is ${output.size} bytes; the s3 publisher uploads up to 5 GiB`, { size: output.size });
      const sha256 = output.digest.slice('sha256:'.length);
      const publicBase = configString(destination, 'public_url')?.replace(/\/+$/, '');
      const uri = `s3://${bucket}/${key}`;
      const result = (skipped: boolean, replaced: boolean): PublishResult => ({
        uri, digest: output.digest, skipped,
        metadata: { uri, bucket, key, ...(publicBase ? { public_url: `${publicBase}/${key}` } : {}), ...(replaced ? { replaced: 'true' } : {}) },
      });

      const what = `publish ${artifact.name} to s3://${bucket}/${key}`;
      const existing = await withPublishRetries(what, async () => {
        try {
          const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
          return { sha256: head.Metadata?.sha256 };
        } catch (error) {
          if ((error as S3Failure).$metadata?.httpStatusCode === 404) return undefined;
          throw failure('head', bucket, key, error);
        }
      }, options.retry);
      if (existing?.sha256 === sha256) return result(true, false);

      await withPublishRetries(what, async () => {
        try {
          await client.send(new PutObjectCommand({
            Bucket: bucket, Key: key, Body: createReadStream(output.path), ContentLength: output.size,
            ContentType: output.media_type, Metadata: { sha256 },
          }));
        } catch (error) {
          throw failure('put', bucket, key, error);
        }
      }, options.retry);
      return result(false, existing !== undefined);
    },
    async close() {
      client.destroy();
    },
  };
}

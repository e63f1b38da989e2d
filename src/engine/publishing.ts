/**
 * What every publisher adapter shares (digest §3.3): the retry rule, where a file artifact goes
 * (names and keys derived from repository/project/version/file), and reading a destination's fields.
 *
 * Retry rule: an attempt that fails `service_unavailable` or `rate_limited` (network error, timeout,
 * 5xx, 429: the adapter maps them) or throws RetryableError is tried again after backoffDelay(), up
 * to `maxAttempts` attempts in all; every other failure (401/403 above all) is final at once.
 */
import { ForgeError, invalid, isForgeError, RetryableError } from '../domain/errors.ts';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../domain/jobs.ts';
import type { ProducedArtifact, PublishDestination } from './ports.ts';

export interface RetryOptions {
  backoff?: BackoffPolicy;
  /** Called before each retry (logs). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function isTransient(error: unknown): boolean {
  if (error instanceof RetryableError) return true;
  return isForgeError(error) && (error.code === 'service_unavailable' || error.code === 'rate_limited');
}

/** Runs `attempt` until it succeeds, fails for good, or attempts run out (see the module comment). */
export async function withPublishRetries<T>(what: string, attempt: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (n + 1 >= backoff.maxAttempts) {
        const code = isForgeError(error) ? error.code : 'service_unavailable';
        const details = isForgeError(error) ? error.details : {};
        throw new ForgeError(code, `${what} failed after ${n + 1} attempts: ${(error as Error).message}`, { ...details, attempts: n + 1 }, { cause: error });
      }
      const delay = Math.max(backoffDelay(n, backoff), error instanceof RetryableError ? (error.retryAfterMs ?? 0) : 0);
      options.onRetry?.(error, n + 1, delay);
      await sleep(Math.min(delay, backoff.maxMs));
    }
  }
}

/** A version usable as an OCI tag and a path segment (OCI tag rule). */
const VERSION = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * The version artifacts of a release are published under: the tag's last segment when the release
 * came from a tag (`auth/v1.2.0` → `v1.2.0`), else the full commit SHA.
 */
export function artifactVersion(commitSha: string, tag?: string): string {
  const version = tag?.split('/').pop();
  if (version && VERSION.test(version)) return version;
  return commitSha;
}

export function checkVersion(version: string): string {
  if (!VERSION.test(version)) throw invalid(`invalid artifact version ${JSON.stringify(version)}: 1-128 letters, digits, "_", "." and "-", not starting with "." or "-"`, { version });
  return version;
}

/** The file name a file artifact is published as: the produced file's own name. */
export function artifactFileName(artifact: ProducedArtifact): string {
  if (artifact.output.location_type !== 'file') {
    throw invalid(`artifact ${artifact.name} is a ${artifact.type} image; this publisher takes files (binary, archive): publish it with a docker publisher`, { artifact: artifact.name });
  }
  const name = artifact.output.path.split('/').pop() ?? '';
  if (name === '' || name === '.' || name === '..') throw invalid(`artifact ${artifact.name}: no file name in ${artifact.output.path}`);
  return name;
}

/** `<owner>/<repo>/<project>/<version>/<file>`: where directory and S3 publishers put a file artifact. */
export function artifactPath(artifact: ProducedArtifact): string {
  const [owner, repo, ...rest] = artifact.repository.split('/');
  if (!owner || !repo || rest.length > 0) throw invalid(`repository must be owner/name, not ${JSON.stringify(artifact.repository)}`);
  return [owner, repo, artifact.project, checkVersion(artifact.version), artifactFileName(artifact)].join('/');
}

/** A string field of a destination's config; `undefined` when absent, `validation_error` when not a string. */
export function configString(destination: PublishDestination, field: string, required: true): string;
export function configString(destination: PublishDestination, field: string, required?: false): string | undefined;
export function configString(destination: PublishDestination, field: string, required = false): string | undefined {
  const value = destination.config[field];
  if (value === undefined || value === null || value === '') {
    if (required) throw invalid(`publisher ${destination.name} (${destination.type}) needs ${field}: add it to the publisher in repo.cue`, { publisher: destination.name, field });
    return undefined;
  }
  if (typeof value !== 'string') throw invalid(`publisher ${destination.name}: ${field} must be a string`, { publisher: destination.name, field });
  return value;
}

export function checkDestinationType(destination: PublishDestination, type: string): void {
  if (destination.type !== type) {
    throw invalid(`publisher ${destination.name} is of type ${destination.type}; this adapter publishes type ${type}`, { publisher: destination.name, type: destination.type });
  }
}

/** A publisher's `credentials` once resolved, in the form its type signs in with. */
export type PublisherCredentials =
  | { type: 'docker'; username: string; password: string }
  | { type: 's3'; accessKeyId: string; secretAccessKey: string }
  | { type: 'github'; token: string };

/**
 * Reads the resolved value of a publisher's `credentials` (`reference` names it in messages; the
 * value never appears): docker → JSON {username, password}; s3 → JSON {accessKeyId,
 * secretAccessKey}; github → the token (or JSON {token}). Other types take no credentials.
 */
export function publisherCredentials(destination: PublishDestination, value: string, reference: string): PublisherCredentials {
  const details = { publisher: destination.name, secret: reference };
  const fields = (names: string[]): Record<string, string> => {
    let doc: unknown;
    try {
      doc = JSON.parse(value);
    } catch {
      doc = undefined;
    }
    const record = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined;
    if (!record || !names.every((n) => typeof record[n] === 'string' && record[n] !== '')) {
      throw invalid(`publisher ${destination.name} (${destination.type}): its credentials ${reference} must be a JSON object {${names.join(', ')}} of strings${record ? `; it has ${Object.keys(record).sort().join(', ') || 'no fields'}` : ''}`, details);
    }
    return record as Record<string, string>;
  };
  switch (destination.type) {
    case 'docker': {
      const { username, password } = fields(['username', 'password']);
      return { type: 'docker', username: username!, password: password! };
    }
    case 's3': {
      const { accessKeyId, secretAccessKey } = fields(['accessKeyId', 'secretAccessKey']);
      return { type: 's3', accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! };
    }
    case 'github': {
      const token = value.trim().startsWith('{') ? fields(['token']).token! : value.trim();
      if (token === '') throw invalid(`publisher ${destination.name} (github): its credentials ${reference} are empty`, details);
      return { type: 'github', token };
    }
    default:
      throw invalid(`publisher ${destination.name} (${destination.type}) takes no credentials; remove credentials from it in repo.cue`, details);
  }
}

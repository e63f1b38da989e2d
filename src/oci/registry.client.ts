/**
 * OciStore over an OCI distribution registry (distribution spec v1.0: Docker's registry 2.x, Harbor,
 * ECR, GHCR…), a small client of our own over fetch.
 *
 * Requests. Every request gets a per-request timeout. Network errors, timeouts, 429 and 5xx are
 * retried with backoffDelay() (digest §2.5) up to `backoff.maxAttempts` attempts (5) in all, honouring
 * a Retry-After that asks for longer; then the call fails `service_unavailable` (`rate_limited` for
 * 429) carrying the registry's last error body. Any other answer is final at once.
 *
 * Authentication, per client (one registry):
 *   unknown ──401 + WWW-Authenticate──▶ basic | bearer(realm, service)
 * A request goes out bare while the scheme is unknown; the 401 that teaches it is answered by sending
 * the request again with credentials. From then on every request carries them: Basic with the
 * configured credentials, or a Bearer token fetched from `realm` (with the credentials as Basic, if
 * any) for the request's scope (`repository:<repo>:pull` or `:pull,push`) and cached per scope until
 * it expires (a push token serves pulls too). A 401 to a request that carried a cached token fetches
 * one fresh token; a 401 or 403 to freshly sent credentials fails at once (`authentication_required`;
 * `permission_denied` for 403 and for a Bearer `insufficient_scope`). A 401 without credentials to
 * send fails at once too.
 *
 * Uploads. Blobs up to `chunkBytes` go up monolithically (POST, then PUT ?digest= with the bytes);
 * larger ones in chunks (POST, PATCH with Content-Range per chunk, PUT ?digest=), streamed from the
 * source one chunk at a time and hashed on the way; a digest mismatch found at the end cancels the
 * upload (DELETE) before anything is committed. A retried chunk is sent whole again; a registry that
 * kept part of it answers 416 and the push fails (pushing again starts over). Blobs and manifests are
 * checked with HEAD first and not sent when present. Content read back is checked against its digest.
 */
import { ForgeError, invalid, notFound, type ErrorCode } from '../domain/errors.ts';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../domain/jobs.ts';
import type { OciContent, OciManifest, OciPushResult, OciStore } from '../engine/ports.ts';
import { abandon, digestMismatch, digestOfHash, newDigester, sha256Digest } from './content.ts';
import { parseChallenge, type Challenge } from './challenge.ts';
import { bareMediaType, checkManifest, MANIFEST_MEDIA_TYPES } from './manifest.ts';
import { checkDigest, checkRepository, checkTag, parseReference } from './reference.ts';

export interface RegistryClientOptions {
  /** The registry's host and optional port, e.g. `127.0.0.1:5000` or `ghcr.io`. */
  registry: string;
  /** Plain HTTP instead of HTTPS (FORGE_REGISTRY_INSECURE). */
  insecure?: boolean;
  credentials?: { username: string; password: string };
  /** Per request; default 30 s. */
  timeoutMs?: number;
  /** Blobs up to this size go up in one PUT, larger ones in PATCH chunks of this size; default 8 MiB. */
  chunkBytes?: number;
  /** Retries of network errors, 429 and 5xx; default DEFAULT_BACKOFF (5 attempts, 1 s base). */
  backoff?: BackoffPolicy;
  /** The fetch to use (tests observe requests through it); default globalThis.fetch. */
  fetch?: typeof fetch;
  userAgent?: string;
}

export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
/** Tokens are used until this long before they expire. */
const TOKEN_MARGIN_MS = 5_000;
/** The distribution spec's default token lifetime when the token endpoint names none. */
const DEFAULT_TOKEN_SECONDS = 60;

/** One entry of a registry's `{"errors": [...]}` body. */
interface RegistryErrorEntry {
  code?: string;
  message?: string;
  detail?: unknown;
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Call {
  /** For messages: `push blob`, `get manifest`… */
  operation: string;
  repo: string;
  /** What the call is about (`a/b@sha256:…`, `a/b:tag`), for messages. */
  subject: string;
  method: Method;
  /** Absolute URL. */
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  push?: boolean;
}

const STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  400: 'validation_error',
  401: 'authentication_required',
  403: 'permission_denied',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  429: 'rate_limited',
};

const isRetryableStatus = (status: number) => status === 429 || status >= 500;

/** fetch's "fetch failed" with what really happened (ECONNREFUSED…), which undici keeps as the cause. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  return `${(error as Error).message}${cause instanceof Error ? ` (${cause.message})` : ''}`;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fixed-size chunks from any stream of chunks (the last one may be shorter). */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const piece of source) {
    let chunk = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    while (held + chunk.length >= size) {
      const take = size - held;
      parts.push(chunk.subarray(0, take));
      yield Buffer.concat(parts);
      chunk = chunk.subarray(take);
      parts = [];
      held = 0;
    }
    if (chunk.length > 0) {
      // Copied: a stream may reuse the memory of a chunk it has handed out.
      parts.push(Buffer.from(chunk));
      held += chunk.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

export function createRegistryClient(options: RegistryClientOptions): OciStore {
  const registry = options.registry;
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(registry)) {
    throw invalid(`invalid registry ${JSON.stringify(registry)}: a host name or IP address with an optional ":port", without scheme or path`, { registry });
  }
  const base = `${options.insecure ? 'http' : 'https'}://${registry}/v2/`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw invalid(`invalid chunkBytes ${chunkBytes}: a positive integer`);
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const userAgent = options.userAgent ?? 'forge-oci-client';
  const basicAuth = options.credentials
    ? `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`
    : undefined;

  let challenge: Challenge | undefined;
  const tokens = new Map<string, { token: string; expiresAt: number }>();
  const tokenFetches = new Map<string, Promise<string>>();

  const url = (repo: string, path: string) => `${base}${repo}/${path}`;
  const scopeOf = (repo: string, push: boolean) => `repository:${repo}:${push ? 'pull,push' : 'pull'}`;

  function failure(code: ErrorCode, call: Pick<Call, 'operation' | 'subject' | 'repo'>, reason: string, extra: Record<string, unknown> = {}, cause?: unknown): ForgeError {
    return new ForgeError(code, `registry ${registry}: ${call.operation} ${call.subject} failed: ${reason}`, { registry, repository: call.repo, ...extra }, cause === undefined ? undefined : { cause });
  }

  /** The registry's error body as one line (`MANIFEST_BLOB_UNKNOWN: blob unknown to registry (…)`) and as entries. */
  async function errorBody(response: Response): Promise<{ text: string; errors: RegistryErrorEntry[] }> {
    const raw = await response.text().catch(() => '');
    let errors: RegistryErrorEntry[] = [];
    try {
      const parsed = JSON.parse(raw) as { errors?: unknown };
      if (Array.isArray(parsed.errors)) errors = parsed.errors as RegistryErrorEntry[];
    } catch {
      // not JSON: the raw text says what there is to say
    }
    const text = errors.length > 0
      ? errors.map((e) => {
        const detail = e.detail === undefined || e.detail === null ? '' : JSON.stringify(e.detail);
        return `${e.code ?? 'ERROR'}: ${e.message ?? ''}${detail && detail !== '{}' ? ` (${detail.slice(0, 300)})` : ''}`;
      }).join('; ')
      : raw.trim().slice(0, 500);
    return { text, errors };
  }

  async function statusFailure(call: Call, response: Response, note = ''): Promise<ForgeError> {
    const { text, errors } = await errorBody(response);
    const code = STATUS_CODES[response.status] ?? (response.status >= 500 ? 'service_unavailable' : 'validation_error');
    const reason = `${response.status} ${response.statusText}${text ? `: ${text}` : ''}${note}`;
    return failure(code, call, reason, { status: response.status, errors });
  }

  /**
   * Sends `init` to `target` until it gets an answer that is not retryable (or attempts run out):
   * network errors, timeouts, 429 and 5xx are tried again after backoffDelay().
   */
  async function withRetries(call: Call, target: string, init: RequestInit): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= backoff.maxAttempts;
      let response: Response;
      try {
        response = await fetchImpl(target, { ...init, signal: AbortSignal.timeout(timeoutMs) });
      } catch (error) {
        const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : networkReason(error);
        if (last) throw failure('service_unavailable', call, `${reason}, after ${attempt + 1} attempts`, { attempts: attempt + 1 }, error);
        await sleep(backoffDelay(attempt, backoff));
        continue;
      }
      if (!isRetryableStatus(response.status)) return response;
      if (last) throw await statusFailure(call, response, `, after ${attempt + 1} attempts`);
      const retryAfter = Number(response.headers.get('retry-after'));
      await response.body?.cancel();
      await sleep(Math.min(backoff.maxMs, Math.max(backoffDelay(attempt, backoff), Number.isFinite(retryAfter) ? retryAfter * 1000 : 0)));
    }
  }

  async function fetchToken(call: Call, bearer: Extract<Challenge, { scheme: 'bearer' }>, scope: string): Promise<string> {
    const target = new URL(bearer.realm);
    if (bearer.service !== undefined) target.searchParams.set('service', bearer.service);
    target.searchParams.set('scope', scope);
    if (options.credentials) target.searchParams.set('account', options.credentials.username);
    const tokenCall = { ...call, operation: `${call.operation}: token for ${scope} from ${bearer.realm}` };
    const response = await withRetries(tokenCall, target.toString(), {
      method: 'GET',
      headers: { 'user-agent': userAgent, ...(basicAuth ? { authorization: basicAuth } : {}) },
    });
    if (!response.ok) {
      const error = await statusFailure(tokenCall, response);
      throw response.status === 401 || response.status === 403
        ? new ForgeError(response.status === 401 ? 'authentication_required' : 'permission_denied', error.message, error.details, { cause: error })
        : error;
    }
    const body = (await response.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw failure('authentication_required', tokenCall, 'the token endpoint answered without a token');
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    tokens.set(scope, { token, expiresAt: Date.now() + seconds * 1000 - TOKEN_MARGIN_MS });
    return token;
  }

  /**
   * The Authorization header for a call now (none while the scheme is unknown), and whether it was
   * made for this request (a cached token is not: the registry may refuse it, and then a fresh one is fetched).
   */
  async function authorization(call: Call, refresh: boolean): Promise<{ header: string; fresh: boolean } | undefined> {
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return basicAuth ? { header: basicAuth, fresh: true } : undefined;
    const scope = scopeOf(call.repo, call.push ?? false);
    if (!refresh) {
      const now = Date.now();
      const cached = [tokens.get(scope), tokens.get(scopeOf(call.repo, true))].find((t) => t && t.expiresAt > now);
      if (cached) return { header: `Bearer ${cached.token}`, fresh: false };
    }
    // Concurrent requests of one scope share one token fetch.
    let pending = tokenFetches.get(scope);
    if (!pending) {
      pending = fetchToken(call, challenge, scope).finally(() => tokenFetches.delete(scope));
      tokenFetches.set(scope, pending);
    }
    return { header: `Bearer ${await pending}`, fresh: true };
  }

  /** Sends a call with authentication and retries; returns any answer but 401 and 403, which fail. */
  async function send(call: Call): Promise<Response> {
    let refresh = false;
    for (;;) {
      const auth = await authorization(call, refresh);
      const headers: Record<string, string> = { 'user-agent': userAgent, ...call.headers, ...(auth ? { authorization: auth.header } : {}) };
      const response = await withRetries(call, call.url, { method: call.method, headers, ...(call.body ? { body: call.body } : {}) });
      if (response.status !== 401 && response.status !== 403) return response;
      const header = response.headers.get('www-authenticate');
      const learned = header ? parseChallenge(header) : undefined;
      if (response.status === 403) throw await statusFailure(call, response);
      if (learned?.scheme === 'bearer' && learned.error === 'insufficient_scope') {
        const error = await statusFailure(call, response, ' (the token does not grant this scope)');
        throw new ForgeError('permission_denied', error.message, error.details);
      }
      if (auth?.fresh) throw await statusFailure(call, response, ' (credentials refused)');
      if (!learned) throw await statusFailure(call, response, ' (no WWW-Authenticate challenge Forge can answer)');
      if (learned.scheme === 'basic' && !basicAuth) {
        throw await statusFailure(call, response, ' (the registry asks for credentials and none are configured)');
      }
      // Unknown scheme, or a cached token refused: once more with what the challenge asks for.
      await response.body?.cancel();
      challenge = learned;
      refresh = auth !== undefined;
    }
  }

  /** Sends a call and fails unless the answer has one of the `ok` statuses. */
  async function sendExpecting(call: Call, ok: number[]): Promise<Response> {
    const response = await send(call);
    if (!ok.includes(response.status)) throw await statusFailure(call, response);
    return response;
  }

  /** HEAD: true on 200, false on 404. */
  async function present(call: Call): Promise<Response | undefined> {
    const response = await send({ ...call, method: 'HEAD' });
    if (response.status === 404) return undefined;
    if (response.ok) return response;
    throw await statusFailure(call, response);
  }

  const blobCall = (operation: string, repo: string, digest: string, method: Method): Call =>
    ({ operation, repo, subject: `${repo}@${digest}`, method, url: url(repo, `blobs/${digest}`) });

  /** Where the next request of an upload goes (Location may be relative). */
  function uploadUrl(response: Response, from: string, call: Call): string {
    const location = response.headers.get('location');
    if (!location) throw failure('service_unavailable', call, `${response.status} without a Location header`);
    return new URL(location, from).toString();
  }

  async function startUpload(repo: string, subject: string): Promise<{ location: string; call: Call }> {
    const call: Call = { operation: 'push blob', repo, subject, method: 'POST', url: url(repo, 'blobs/uploads/'), push: true };
    const response = await sendExpecting(call, [202]);
    return { location: uploadUrl(response, call.url, call), call };
  }

  async function finishUpload(call: Call, location: string, digest: string, body?: Uint8Array): Promise<void> {
    const target = new URL(location);
    target.searchParams.set('digest', digest);
    const put: Call = { ...call, method: 'PUT', url: target.toString(), headers: { 'content-type': 'application/octet-stream' }, ...(body ? { body } : {}) };
    const response = await sendExpecting(put, [201]);
    await response.body?.cancel();
  }

  async function cancelUpload(call: Call, location: string): Promise<void> {
    try {
      const response = await send({ ...call, method: 'DELETE', url: location });
      await response.body?.cancel();
    } catch {
      // Best effort: the registry expires abandoned uploads itself.
    }
  }

  /**
   * Pushes whole bytes unless the registry has them (HEAD first, unless the caller already asked
   * for `expected` and it was absent): monolithic up to chunkBytes, else in chunks.
   */
  async function pushWhole(repo: string, bytes: Uint8Array, expected: string | undefined, checked: boolean): Promise<OciPushResult> {
    const digest = sha256Digest(bytes);
    const size = bytes.byteLength;
    if (expected !== undefined && digest !== expected) throw digestMismatch(expected, digest, `blob pushed to ${repo}`);
    if (!checked && (await present(blobCall('check blob', repo, digest, 'HEAD')))) return { digest, size, pushed: false };
    if (size > chunkBytes) {
      const slices = (function* () {
        for (let offset = chunkBytes; offset < size; offset += chunkBytes) yield Buffer.from(bytes.buffer, bytes.byteOffset + offset, Math.min(chunkBytes, size - offset));
      })();
      return pushChunked(repo, Buffer.from(bytes.buffer, bytes.byteOffset, chunkBytes), slices, digest);
    }
    const { location, call } = await startUpload(repo, `${repo}@${digest}`);
    await finishUpload(call, location, digest, bytes);
    return { digest, size, pushed: true };
  }

  async function patchChunk(call: Call, location: string, offset: number, chunk: Uint8Array): Promise<string> {
    const patch: Call = {
      ...call,
      method: 'PATCH',
      url: location,
      body: chunk,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.byteLength - 1}` },
    };
    const response = await sendExpecting(patch, [202]);
    await response.body?.cancel();
    return uploadUrl(response, location, patch);
  }

  /** A stream larger than one chunk: upload it chunk by chunk, hashing; the digest is checked before the upload is committed. */
  async function pushChunked(repo: string, first: Buffer, rest: Iterator<Buffer> | AsyncIterator<Buffer>, expected: string | undefined): Promise<OciPushResult> {
    const { location, call } = await startUpload(repo, `${repo}@${expected ?? '(streamed)'}`);
    const hash = newDigester();
    let next = location;
    let size = 0;
    try {
      for (let chunk: Buffer | undefined = first; chunk; ) {
        hash.update(chunk);
        next = await patchChunk(call, next, size, chunk);
        size += chunk.length;
        const step: IteratorResult<Buffer> = await rest.next();
        chunk = step.done ? undefined : step.value;
      }
      const digest = digestOfHash(hash);
      if (expected !== undefined && digest !== expected) throw digestMismatch(expected, digest, `blob pushed to ${repo}`);
      await finishUpload(call, next, digest);
      return { digest, size, pushed: true };
    } catch (error) {
      await cancelUpload(call, next);
      throw error;
    }
  }

  const manifestCall = (operation: string, repo: string, reference: string, method: Method): Call =>
    ({ operation, repo, subject: `${repo}${reference.includes(':') ? '@' : ':'}${reference}`, method, url: url(repo, `manifests/${reference}`) });

  const store: OciStore = {
    kind: 'registry',

    async blobExists(repo, digest) {
      checkRepository(repo);
      checkDigest(digest);
      return (await present(blobCall('check blob', repo, digest, 'HEAD'))) !== undefined;
    },

    async pushBlob(repo, content: OciContent, digest) {
      checkRepository(repo);
      if (digest !== undefined) checkDigest(digest);
      if (content instanceof Uint8Array) return pushWhole(repo, content, digest, false);
      if (digest !== undefined) {
        const head = await present(blobCall('check blob', repo, digest, 'HEAD'));
        if (head) {
          await abandon(content);
          return { digest, size: Number(head.headers.get('content-length') ?? 0), pushed: false };
        }
      }
      const chunks = rechunk(content, chunkBytes);
      const first = await chunks.next();
      if (first.done) return pushWhole(repo, new Uint8Array(0), digest, digest !== undefined);
      const second = await chunks.next();
      // The whole blob fits one chunk: it is known now, so it goes up as bytes.
      if (second.done) return pushWhole(repo, first.value, digest, digest !== undefined);
      const following = second.value;
      try {
        return await pushChunked(repo, first.value, (async function* () {
          yield following;
          yield* chunks;
        })(), digest);
      } finally {
        await chunks.return(undefined); // ends the source when the upload stopped early
      }
    },

    async getBlob(repo, digest) {
      checkRepository(repo);
      checkDigest(digest);
      const call = blobCall('get blob', repo, digest, 'GET');
      const response = await send(call);
      if (response.status === 404) throw notFound(`blob ${repo}@${digest}`, { registry, repository: repo, digest, errors: (await errorBody(response)).errors });
      if (!response.ok) throw await statusFailure(call, response);
      const bytes = Buffer.from(await response.arrayBuffer());
      const actual = sha256Digest(bytes);
      if (actual !== digest) throw failure('internal_error', call, `the registry sent content whose digest is ${actual}`, { digest, actual });
      return bytes;
    },

    async pushManifest(repo, reference, bytes, mediaType) {
      checkRepository(repo);
      const ref = parseReference(reference);
      checkManifest(bytes, mediaType);
      const digest = sha256Digest(bytes);
      if (ref.kind === 'digest' && ref.digest !== digest) throw digestMismatch(ref.digest, digest, `manifest ${repo}@${ref.digest}`);
      const size = bytes.byteLength;
      const head = await present({ ...manifestCall('check manifest', repo, reference, 'HEAD'), headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') } });
      if (head && head.headers.get('docker-content-digest') === digest) return { digest, size, pushed: false };
      const call = { ...manifestCall('push manifest', repo, reference, 'PUT'), push: true, body: bytes, headers: { 'content-type': mediaType } };
      const response = await sendExpecting(call, [201]);
      await response.body?.cancel();
      const stored = response.headers.get('docker-content-digest');
      if (stored && stored !== digest) throw failure('internal_error', call, `the registry stored it as ${stored}, not ${digest}`, { digest, stored });
      return { digest, size, pushed: true };
    },

    async getManifest(repo, reference, accept = MANIFEST_MEDIA_TYPES): Promise<OciManifest> {
      checkRepository(repo);
      const ref = parseReference(reference);
      const call = { ...manifestCall('get manifest', repo, reference, 'GET'), headers: { accept: accept.join(', ') } };
      const response = await send(call);
      if (response.status === 404) {
        const { text, errors } = await errorBody(response);
        throw new ForgeError('not_found', `manifest ${repo}:${reference} not found in ${registry} (404${text ? `: ${text}` : ''})`, { registry, repository: repo, reference, errors });
      }
      if (!response.ok) throw await statusFailure(call, response);
      const mediaType = bareMediaType(response.headers.get('content-type') ?? '');
      const bytes = Buffer.from(await response.arrayBuffer());
      const digest = sha256Digest(bytes);
      const claimed = ref.kind === 'digest' ? ref.digest : response.headers.get('docker-content-digest');
      if (claimed && claimed !== digest) throw failure('internal_error', call, `the registry sent content whose digest is ${digest}, not ${claimed}`, { digest, claimed });
      if (!accept.includes(mediaType)) {
        throw notFound(`manifest ${repo}:${reference} of an accepted media type (it is ${mediaType}, accepted: ${accept.join(', ')})`, { registry, repository: repo, reference, mediaType });
      }
      return { bytes, mediaType, digest };
    },

    async resolve(repo, tag) {
      checkRepository(repo);
      checkTag(tag);
      const head = await present({ ...manifestCall('resolve', repo, tag, 'HEAD'), headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') } });
      if (!head) return undefined;
      const digest = head.headers.get('docker-content-digest');
      return digest ?? (await store.getManifest(repo, tag)).digest;
    },

    async listTags(repo) {
      checkRepository(repo);
      const tags: string[] = [];
      // Paginated: each page's Link header names the next one.
      for (let next: string | undefined = url(repo, 'tags/list?n=1000'); next;) {
        const call: Call = { operation: 'list tags', repo, subject: repo, method: 'GET', url: next };
        const response = await send(call);
        if (response.status === 404) {
          await response.body?.cancel();
          return [];
        }
        if (!response.ok) throw await statusFailure(call, response);
        const body = (await response.json()) as { tags?: string[] | null };
        tags.push(...(body.tags ?? []));
        const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(response.headers.get('link') ?? '');
        next = link ? new URL(link[1]!, next).toString() : undefined;
      }
      return [...new Set(tags)].sort();
    },

    async close() {
      tokens.clear();
    },
  };
  return store;
}

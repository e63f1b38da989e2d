/**
 * The Forge API client of the CLI: JSON over the global fetch with a bearer token, and server-sent
 * event streams. Every failure becomes a CliError that already reads well (message, detail lines)
 * and carries its exit code: 1 the API answered with an error, 2 the command line is wrong, 3 the
 * server could not be reached. Commands that wait for a run end with its outcome: 0 success,
 * 1 failed, 4 cancelled (`runs watch`).
 */
import { parseEventStream, type ServerSentEvent } from '../lib/sse.ts';

export const EXIT = { api: 1, usage: 2, unreachable: 3, runFailed: 1, runCancelled: 4 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** Printed under the message, indented. */
    readonly lines: string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const usageError = (message: string, lines: string[] = []) => new CliError(EXIT.usage, message, lines);

/** The seed's error body {"error": {code, message, details}}. */
export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export function isApiErrorBody(body: unknown): body is ApiErrorBody {
  const error = (body as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  return typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string';
}

/** The server answered with an error status. */
export class HttpError extends CliError {
  constructor(readonly status: number, message: string, lines: string[] = []) {
    super(EXIT.api, message, lines);
  }
}

/** The server answered with an error in Forge's shape. */
export class ApiError extends HttpError {
  constructor(status: number, readonly body: ApiErrorBody) {
    const { code, message, details = {} } = body.error;
    super(status, `${message} (${code}, HTTP ${status})`, [...detailLines(details), ...hintsFor(code)]);
  }

  get code(): string {
    return this.body.error.code;
  }
}

export const DEV_TOKEN_HINT = 'with the embedded dev issuer: export FORGE_TOKEN=$(npx forge dev-token --sub you --roles developer)';

function hintsFor(code: string): string[] {
  return code === 'authentication_required' ? [`check FORGE_TOKEN (or --token); ${DEV_TOKEN_HINT}`] : [];
}

function show(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (Array.isArray(value)) return value.map(show).join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * The details of an error body as lines: validation problems (field, message, allowed values)
 * and policy violations one per line, anything else as "key: value".
 */
export function detailLines(details: Record<string, unknown>): string[] {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(details)) {
    if (key === 'errors' && Array.isArray(value)) {
      for (const problem of value as Record<string, unknown>[]) {
        const extra = [
          problem.allowed !== undefined ? `allowed: ${show(problem.allowed)}` : '',
          problem.unknown_field !== undefined ? `unknown field: ${show(problem.unknown_field)}` : '',
        ].filter(Boolean).join('; ');
        lines.push(`${show(problem.field)}: ${show(problem.message)}${extra ? ` (${extra})` : ''}`);
      }
    } else if (key === 'violations' && Array.isArray(value)) {
      for (const v of value as Record<string, unknown>[]) {
        lines.push(`violation: ${show(v.requirement)} requires ${show(v.required)}; actual: ${show(v.actual)}`);
      }
    } else {
      lines.push(`${key.replace(/_/g, ' ')}: ${show(value)}`);
    }
  }
  return lines;
}

export interface ApiResponse<T> {
  status: number;
  /** undefined for a response without a body (204). */
  body: T;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
}

/** `/v1/releases/acme/shop/api/feature%2Fx-3`: every segment URL-encoded, so a ref holding `/` stays one segment. */
export function apiPath(...segments: string[]): string {
  return `/v1/${segments.map(encodeURIComponent).join('/')}`;
}

/** `{repo}` in a path is two segments, owner and name, each encoded on its own. */
export function repoSegments(repository: string): [string, string] {
  const [owner = '', name = ''] = repository.split('/');
  return [owner, name];
}

const TIMEOUT_MS = 60_000;

/**
 * Worth asking again: the server could not be reached or did not answer in time, is overloaded
 * (429) or failing (5xx, a proxy's 502/503/504 included). Anything else is an answer.
 */
export function isTransient(error: unknown): error is CliError {
  if (error instanceof HttpError) return error.status === 429 || error.status >= 500;
  return error instanceof CliError && error.exitCode === EXIT.unreachable;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  get<T>(path: string, query?: RequestOptions['query']) {
    return this.request<T>('GET', path, { query });
  }

  post<T>(path: string, body: unknown) {
    return this.request<T>('POST', path, { body });
  }

  delete<T>(path: string) {
    return this.request<T>('DELETE', path);
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method, headers, signal: AbortSignal.timeout(TIMEOUT_MS),
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      });
    } catch (error) {
      throw this.unreachable(error);
    }
    const text = await response.text();
    if (!response.ok) throw failure(method, url, response, text);
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new CliError(EXIT.api, `${method} ${path} answered HTTP ${response.status} with a body that is not JSON`, [snippet(text)]);
    }
    return { status: response.status, body: body as T };
  }

  /**
   * GET a server-sent event stream. Only connecting is timed: the stream itself may stay quiet for
   * as long as the server likes. Breaking out of the loop over the events closes the connection.
   */
  async stream(path: string, query?: RequestOptions['query']): Promise<AsyncGenerator<ServerSentEvent>> {
    const url = this.url(path, query);
    const abort = new AbortController();
    const connectTimer = setTimeout(() => abort.abort(new DOMException('connect timeout', 'TimeoutError')), TIMEOUT_MS);
    let response: Response;
    try {
      response = await this.fetchImpl(url, { headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }, signal: abort.signal });
    } catch (error) {
      throw this.unreachable(error);
    } finally {
      clearTimeout(connectTimer);
    }
    if (!response.ok) throw failure('GET', url, response, await response.text());
    if (!response.body || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      abort.abort();
      throw new CliError(EXIT.api, `GET ${path} answered HTTP ${response.status} without an event stream (content-type ${response.headers.get('content-type') ?? 'none'})`);
    }
    return this.events(response.body, abort);
  }

  private async *events(body: ReadableStream<Uint8Array>, abort: AbortController): AsyncGenerator<ServerSentEvent> {
    try {
      yield* parseEventStream(body);
    } catch (error) {
      // The connection broke mid-stream: as transient as a refused one.
      throw this.unreachable(error, 'lost the connection to');
    } finally {
      abort.abort();
    }
  }

  private url(path: string, query: RequestOptions['query'] = {}): URL {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url;
  }

  private unreachable(error: unknown, what = 'cannot reach'): CliError {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === 'TimeoutError'
      ? `no answer within ${TIMEOUT_MS / 1000}s`
      : cause?.code ?? cause?.message ?? (error as Error).message;
    return new CliError(EXIT.unreachable, `${what} the Forge API at ${this.baseUrl} (${reason})`, [
      'is the server running? start one with `npm start` (or `npx forge server`)',
      'or point the CLI at another server with FORGE_URL or --url',
    ], { cause: error });
  }
}

/** An error answer: Forge's error body, or (a proxy or another server answered) the status line. */
function failure(method: string, url: URL, response: Response, text: string): HttpError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (isApiErrorBody(body)) return new ApiError(response.status, body);
  return new HttpError(response.status, `HTTP ${response.status} ${response.statusText} from ${method} ${url.href}`, text ? [snippet(text)] : []);
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

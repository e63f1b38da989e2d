/** The /v1 client: the user's bearer token on every call, the API's error body turned into ApiError. */
import { currentToken, signOut } from './auth.ts';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

/** Called when the server says the token is no good: the app shows the login form. */
let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(handler: () => void): void {
  onUnauthenticated = handler;
}

export async function authHeaders(): Promise<Record<string, string>> {
  const token = await currentToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...(await authHeaders()) };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method: init.method ?? 'GET', headers, signal: init.signal,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(0, 'network_error', 'the Forge server could not be reached; check your connection');
  }
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error;
    if (response.status === 401) {
      signOut();
      onUnauthenticated();
    }
    throw new ApiError(response.status, error?.code ?? `http_${response.status}`, error?.message ?? `${response.status} ${response.statusText}`, error?.details ?? {});
  }
  return json as T;
}

/** `{a: 1, b: undefined}` → `?a=1`. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const enc = encodeURIComponent;

/** `owner/name` → the two path segments the release and deployment routes take. */
export function repoPath(repository: string): string {
  const [owner = '', name = ''] = repository.split('/');
  return `${enc(owner)}/${enc(name)}`;
}

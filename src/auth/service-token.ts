/**
 * Where a worker's service-account token comes from, as a function the internal API client calls
 * before each report. Three sources, in the order a deployment would pick them:
 *  - a fixed token (FORGE_TOKEN): the operator renews it;
 *  - the OAuth2 client-credentials grant (Keycloak service-account clients): fetched, kept until a
 *    minute before it expires, fetched again;
 *  - the embedded dev issuer (development only): minted from the key in the data dir.
 */
import { decodeJwt } from 'jose';
import { ForgeError } from '../domain/errors.ts';
import type { DevIssuer } from './dev-issuer.ts';

export type TokenSource = () => Promise<string>;

const REFRESH_BEFORE_MS = 60_000;

export function staticToken(token: string): TokenSource {
  return () => Promise.resolve(token);
}

/** Caches what `fetchToken` returns until shortly before it expires. */
function cached(fetchToken: () => Promise<{ token: string; expiresAtMs: number }>): TokenSource {
  let current: { token: string; expiresAtMs: number } | undefined;
  let inFlight: Promise<string> | undefined;
  return async () => {
    if (current && Date.now() < current.expiresAtMs - REFRESH_BEFORE_MS) return current.token;
    inFlight ??= fetchToken()
      .then((next) => {
        current = next;
        return next.token;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}

/** The expiry a token says it has, else `fallbackMs` from now. */
function expiryOf(token: string, fallbackMs: number): number {
  try {
    const { exp } = decodeJwt(token);
    if (typeof exp === 'number') return exp * 1000;
  } catch {
    // An opaque token: trust the grant's expires_in.
  }
  return Date.now() + fallbackMs;
}

export function clientCredentialsToken(options: { tokenUrl: string; clientId: string; clientSecret: string; timeoutMs?: number }): TokenSource {
  return cached(async () => {
    let response: Response;
    try {
      response = await fetch(options.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: options.clientId, client_secret: options.clientSecret }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      throw new ForgeError('service_unavailable', `cannot reach the token endpoint ${options.tokenUrl}: ${(error as Error).message}`, {}, { cause: error });
    }
    const body = (await response.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown };
    if (!response.ok || typeof body.access_token !== 'string') {
      const why = typeof body.error_description === 'string' ? body.error_description : typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
      throw new ForgeError('authentication_required', `the token endpoint ${options.tokenUrl} refused client ${options.clientId}: ${why}`, {});
    }
    const expiresIn = typeof body.expires_in === 'number' ? body.expires_in * 1000 : 300_000;
    return { token: body.access_token, expiresAtMs: expiryOf(body.access_token, expiresIn) };
  });
}

export function devServiceToken(issuer: Pick<DevIssuer, 'sign'>, subject = 'forge-worker', ttlSeconds = 3600): TokenSource {
  return cached(async () => ({
    token: await issuer.sign({ sub: subject, roles: ['service-account'], ttlSeconds }),
    expiresAtMs: Date.now() + ttlSeconds * 1000,
  }));
}

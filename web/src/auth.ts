/**
 * Who the dashboard is: a bearer token for /v1, kept in this browser's localStorage until it expires.
 * Dev servers: a pasted token (`npx forge dev-token …`) or the one-click link the server prints
 * (`/#token=…`). OIDC servers: authorization code + PKCE as a public client (oauth4webapi), with the
 * refresh token used before the access token runs out. oauth4webapi loads only when OIDC is used.
 */

const oauthLib = () => import('oauth4webapi');
import type * as OAuth from 'oauth4webapi';
import type { AuthConfig } from './types.ts';

const TOKEN_KEY = 'forge.token';
const REFRESH_KEY = 'forge.refresh';
const PKCE_KEY = 'forge.pkce';
const CALLBACK_PATH = '/login/callback';

/** Seconds since the epoch at which a JWT expires, or undefined when it is not a JWT with `exp`. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const json = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown };
    return typeof json.exp === 'number' ? json.exp : undefined;
  } catch {
    return undefined;
  }
}

export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

export function storedToken(): string | undefined {
  const token = localStorage.getItem(TOKEN_KEY) ?? undefined;
  if (!token) return undefined;
  const exp = tokenExpiry(token);
  if (exp !== undefined && exp * 1000 <= Date.now() && !localStorage.getItem(REFRESH_KEY)) {
    signOut();
    return undefined;
  }
  return token;
}

export function saveToken(token: string, refreshToken?: string): void {
  localStorage.setItem(TOKEN_KEY, token);
  if (refreshToken) localStorage.setItem(REFRESH_KEY, refreshToken);
  else localStorage.removeItem(REFRESH_KEY);
}

export function signOut(): void {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(REFRESH_KEY);
}

/** A token handed over in the URL fragment (the dev server's one-click link); the fragment is cleared at once. */
export function takeTokenFromFragment(): boolean {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match?.[1]) return false;
  saveToken(decodeURIComponent(match[1]));
  history.replaceState(null, '', location.pathname + location.search);
  return true;
}

let authConfig: Promise<AuthConfig> | undefined;
export function loadAuthConfig(): Promise<AuthConfig> {
  authConfig ??= fetch('/v1/auth/config').then(async (r) => {
    if (!r.ok) throw new Error(`GET /v1/auth/config answered ${r.status}`);
    return (await r.json()) as AuthConfig;
  }).catch((error: unknown) => {
    authConfig = undefined; // a blip must not disable sign-in until the tab reloads
    throw error;
  });
  return authConfig;
}

/** What every oauth4webapi call needs: the library, the issuer's metadata, the client, HTTP options. */
interface Oidc {
  oauth: typeof OAuth;
  as: OAuth.AuthorizationServer;
  client: OAuth.Client;
  /**
   * oauth4webapi refuses plain-http endpoints unless told otherwise. The server accepts an http
   * issuer (a Keycloak on the operator's own machine or network) and fetches its keys over http
   * itself, so the dashboard follows the same choice, for that issuer only (decision 88).
   */
  http: { [OAuth.allowInsecureRequests]?: boolean };
}

let discovered: { issuer: string; oidc: Promise<Oidc> } | undefined;
/** The issuer's discovery document, fetched once per page load (again after a failure). */
function oidcFor(config: AuthConfig): Promise<Oidc> {
  const { issuer, client_id: clientId } = config;
  if (!issuer) return Promise.reject(new Error('the server names no OIDC issuer'));
  if (!clientId) return Promise.reject(new Error('the server has no dashboard client id (FORGE_UI_CLIENT_ID)'));
  if (discovered?.issuer !== issuer) {
    const oidc = (async (): Promise<Oidc> => {
      const oauth = await oauthLib();
      const url = new URL(issuer);
      const http = { [oauth.allowInsecureRequests]: url.protocol === 'http:' };
      const as = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, http));
      return { oauth, as, client: { client_id: clientId }, http };
    })();
    oidc.catch(() => { if (discovered?.oidc === oidc) discovered = undefined; });
    discovered = { issuer, oidc };
  }
  return discovered.oidc;
}

/** What went wrong, in words for the login page; nothing about it is stored. */
function signInProblem(oauth: typeof OAuth, error: unknown): string {
  if (error instanceof oauth.AuthorizationResponseError) {
    return `the issuer refused the sign-in: ${error.error_description ?? error.error}`;
  }
  if (error instanceof oauth.ResponseBodyError) {
    return `the issuer refused to hand out tokens: ${error.error_description ?? error.error}`;
  }
  if (error instanceof oauth.OperationProcessingError && /"state"/.test(error.message)) {
    return 'the answer from the sign-in page does not belong to the sign-in this tab started (its state does not match), so it was not used';
  }
  return (error as Error).message;
}

const redirectUri = () => `${location.origin}${CALLBACK_PATH}`;

/** Leaves for the issuer's login page; `returnTo` is where the callback lands afterwards. */
export async function beginOidcLogin(config: AuthConfig, returnTo: string): Promise<void> {
  const { oauth, as, client } = await oidcFor(config);
  if (!as.authorization_endpoint) throw new Error('the issuer has no authorization endpoint');
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, returnTo }));
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('client_id', client.client_id);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', config.scopes);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('state', state);
  if (config.resource) url.searchParams.set('resource', config.resource);
  location.assign(url.href);
}

export const isOidcCallback = () => location.pathname === CALLBACK_PATH;

/** Finishes the login on /login/callback: code + verifier → tokens. Returns where to go next. */
export async function completeOidcLogin(config: AuthConfig): Promise<string> {
  const saved = sessionStorage.getItem(PKCE_KEY);
  sessionStorage.removeItem(PKCE_KEY);
  if (!saved) throw new Error('this tab has no sign-in in progress (it was finished or never started here)');
  const { verifier, state, returnTo } = JSON.parse(saved) as { verifier: string; state: string; returnTo: string };
  const { oauth, as, client, http } = await oidcFor(config);
  try {
    const params = oauth.validateAuthResponse(as, client, new URL(location.href), state);
    const options = { ...http, ...(config.resource ? { additionalParameters: { resource: config.resource } } : {}) };
    const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri(), verifier, options);
    const result = await oauth.processAuthorizationCodeResponse(as, client, response);
    saveToken(result.access_token, result.refresh_token);
  } catch (error) {
    throw new Error(signInProblem(oauth, error), { cause: error });
  }
  return returnTo.startsWith('/') && !returnTo.startsWith('//') ? returnTo : '/';
}

/** How long before its expiry an access token is refreshed. */
const REFRESH_AHEAD_MS = 30_000;
const needsRefresh = (token: string) => {
  const exp = tokenExpiry(token);
  return exp !== undefined && exp * 1000 - Date.now() <= REFRESH_AHEAD_MS;
};

let refreshing: Promise<string | undefined> | undefined;
/** The token to send: refreshed first when it ends within 30 s and a refresh token is at hand. */
export async function currentToken(): Promise<string | undefined> {
  const token = storedToken();
  if (!token || !localStorage.getItem(REFRESH_KEY) || !needsRefresh(token)) return token;
  refreshing ??= refreshOnce(token).finally(() => { refreshing = undefined; });
  return refreshing;
}

/**
 * One refresh at a time across this browser's tabs: issuers that rotate refresh tokens (oidc-provider
 * for public clients, Keycloak with "revoke refresh token", Auth0, Okta) take a used one as stolen and
 * end the whole session. A tab that waited for the lock takes the token another tab got meanwhile.
 */
async function refreshOnce(token: string): Promise<string | undefined> {
  const refresh = async (): Promise<string | undefined> => {
    const latest = localStorage.getItem(TOKEN_KEY) ?? undefined;
    const refreshToken = localStorage.getItem(REFRESH_KEY);
    if (latest !== token || !refreshToken) return latest;
    const config = await loadAuthConfig();
    const { oauth, as, client, http } = await oidcFor(config);
    try {
      const options = { ...http, ...(config.resource ? { additionalParameters: { resource: config.resource } } : {}) };
      const result = await oauth.processRefreshTokenResponse(as, client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, options));
      saveToken(result.access_token, result.refresh_token ?? refreshToken);
      return result.access_token;
    } catch (error) {
      // The issuer said no (expired, revoked, reused): signed out. Anything else (the issuer is
      // unreachable a moment): the token as it is, and the server decides.
      if (error instanceof oauth.ResponseBodyError) {
        signOut();
        return undefined;
      }
      return token;
    }
  };
  try {
    return await (typeof navigator.locks === 'undefined' ? refresh() : navigator.locks.request('forge.refresh', refresh));
  } catch {
    return token;
  }
}

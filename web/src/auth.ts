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
  });
  return authConfig;
}

async function authorizationServer(config: AuthConfig): Promise<OAuth.AuthorizationServer> {
  if (!config.issuer) throw new Error('the server names no OIDC issuer');
  const oauth = await oauthLib();
  const issuer = new URL(config.issuer);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer));
}

const redirectUri = () => `${location.origin}${CALLBACK_PATH}`;

/** Leaves for the issuer's login page; `returnTo` is where the callback lands afterwards. */
export async function beginOidcLogin(config: AuthConfig, returnTo: string): Promise<void> {
  if (!config.client_id) throw new Error('the server has no dashboard client id (FORGE_UI_CLIENT_ID)');
  const oauth = await oauthLib();
  const as = await authorizationServer(config);
  if (!as.authorization_endpoint) throw new Error('the issuer has no authorization endpoint');
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, returnTo }));
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set('client_id', config.client_id);
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
  if (!saved || !config.client_id) throw new Error('no login was started from this tab; sign in again');
  const { verifier, state, returnTo } = JSON.parse(saved) as { verifier: string; state: string; returnTo: string };
  const oauth = await oauthLib();
  const as = await authorizationServer(config);
  const client: OAuth.Client = { client_id: config.client_id };
  const params = oauth.validateAuthResponse(as, client, new URL(location.href), state);
  const extra = config.resource ? { additionalParameters: { resource: config.resource } } : {};
  const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri(), verifier, extra);
  const result = await oauth.processAuthorizationCodeResponse(as, client, response);
  saveToken(result.access_token, result.refresh_token);
  return returnTo.startsWith('/') && !returnTo.startsWith('//') ? returnTo : '/';
}

let refreshing: Promise<string | undefined> | undefined;
/** The token to send: refreshed first when it ends within 30 s and a refresh token is at hand. */
export async function currentToken(): Promise<string | undefined> {
  const token = storedToken();
  const refreshToken = localStorage.getItem(REFRESH_KEY);
  const exp = token ? tokenExpiry(token) : undefined;
  if (!token || !refreshToken || exp === undefined || exp * 1000 - Date.now() > 30_000) return token;
  refreshing ??= (async () => {
    try {
      const config = await loadAuthConfig();
      if (!config.client_id) return token;
      const oauth = await oauthLib();
      const as = await authorizationServer(config);
      const client: OAuth.Client = { client_id: config.client_id };
      const extra = config.resource ? { additionalParameters: { resource: config.resource } } : {};
      const result = await oauth.processRefreshTokenResponse(as, client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, extra));
      saveToken(result.access_token, result.refresh_token ?? refreshToken);
      return result.access_token;
    } catch {
      signOut();
      return undefined;
    } finally {
      refreshing = undefined;
    }
  })();
  return refreshing;
}

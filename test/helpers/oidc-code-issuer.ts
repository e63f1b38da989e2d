/**
 * A real OIDC provider (oidc-provider) for the dashboard's browser sign-in: authorization code + PKCE
 * for a public client, with refresh tokens, JWT access tokens for the Forge API through a resource
 * indicator (RFC 8707), claims shaped like a Keycloak realm's, RS256, and oidc-provider's own
 * development login page (any password).
 *
 * The dashboard's redirect URI (<forge>/login/callback) is only known once Forge listens, and Forge
 * needs the issuer's URL in its settings before it starts. So the issuer listens first (its URL is
 * fixed) and the provider itself is built by `registerDashboard(forgeUrl)`; until then every request
 * answers 503, which the Forge verifier treats as an issuer that is briefly down.
 *
 * Consent is implied for the dashboard (a first-party client, as a Keycloak client with consent off):
 * `loadExistingGrant` grants it the OIDC scopes and the Forge resource on first use.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors as oidcErrors, type KoaContextWithOIDC } from 'oidc-provider';
import { makeKey } from '../auth/tokens.ts';
import { FORGE_API } from './oidc-issuer.ts';

export const DASHBOARD_CLIENT = 'forge-dashboard';
/** FORGE_UI_RESOURCE: the resource indicator whose access tokens carry FORGE_AUDIENCE. */
export const FORGE_RESOURCE = FORGE_API;
/** FORGE_OIDC_AUDIENCE. */
export const FORGE_AUDIENCE = 'forge';
const DASHBOARD_SCOPES = 'openid profile';

export interface CodeIssuerOptions {
  /** Login name → realm roles; other logins are refused by findAccount. */
  accounts: Record<string, string[]>;
  /** Lifetime of the Forge access tokens, seconds (default 600). */
  accessTokenTtl?: number;
}

export interface CodeIssuer {
  issuer: string;
  /** Milliseconds each token request waits before it is handled (0 at first), so that requests sent close together overlap. */
  tokenDelayMs: number;
  /** Builds the provider with the dashboard client redirecting to `<forgeUrl>/login/callback`. */
  registerDashboard(forgeUrl: string): void;
  /** Every successful token grant, in order: `authorization_code`, `refresh_token`. */
  grants: string[];
  /** Every refused token request: `<grant_type>: <error description>`. */
  grantErrors: string[];
  close(): Promise<void>;
}

export async function startCodeIssuer(options: CodeIssuerOptions): Promise<CodeIssuer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const key = await makeKey('RS256');
  const grants: string[] = [];
  const grantErrors: string[] = [];
  let handle: ReturnType<Provider['callback']> | undefined;

  const registerDashboard = (forgeUrl: string) => {
    if (handle) throw new Error('the dashboard is registered already');
    const origin = new URL(forgeUrl).origin;
    const provider: Provider = new Provider(issuer, {
      jwks: { keys: [key.privateJwk] },
      cookies: { keys: ['forge-test-issuer-cookie-key'] },
      clients: [{
        client_id: DASHBOARD_CLIENT,
        token_endpoint_auth_method: 'none',
        application_type: 'web',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${origin}/login/callback`],
      }],
      // PKCE (S256 is the only method oidc-provider 9 knows) for every client, not only public ones.
      pkce: { required: () => true },
      // The token endpoint answers the dashboard's origin, and only it.
      clientBasedCORS: (_ctx, requestOrigin, client) => client.clientId === DASHBOARD_CLIENT && requestOrigin === origin,
      async findAccount(_ctx, id) {
        const roles = options.accounts[id];
        if (roles === undefined) return undefined;
        return { accountId: id, claims: () => ({ sub: id, preferred_username: id }) };
      },
      claims: { openid: ['sub'], profile: ['preferred_username'] },
      // Like Keycloak's standard flow: a refresh token without asking for offline_access.
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      async loadExistingGrant(ctx: KoaContextWithOIDC) {
        const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(ctx.oidc.client!.clientId);
        if (grantId) return ctx.oidc.provider.Grant.find(grantId);
        if (ctx.oidc.client?.clientId !== DASHBOARD_CLIENT || !ctx.oidc.session?.accountId) return undefined;
        const grant = new ctx.oidc.provider.Grant({ clientId: DASHBOARD_CLIENT, accountId: ctx.oidc.session.accountId });
        grant.addOIDCScope(DASHBOARD_SCOPES);
        grant.addResourceScope(FORGE_RESOURCE, 'api');
        await grant.save();
        return grant;
      },
      features: {
        devInteractions: { enabled: true },
        resourceIndicators: {
          enabled: true,
          async getResourceServerInfo(_ctx, resource) {
            if (resource !== FORGE_RESOURCE) throw new oidcErrors.InvalidTarget();
            return {
              scope: 'api', audience: FORGE_AUDIENCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
              accessTokenTTL: options.accessTokenTtl ?? 600,
            };
          },
        },
      },
      // What a Keycloak realm puts in the access tokens of a logged-in user.
      extraTokenClaims(_ctx, token) {
        const accountId = 'accountId' in token ? token.accountId : undefined;
        if (accountId === undefined) return undefined;
        return { preferred_username: accountId, realm_access: { roles: [...(options.accounts[accountId] ?? []), 'offline_access'] } };
      },
    });
    provider.on('grant.success', (ctx: KoaContextWithOIDC) => grants.push(String(ctx.oidc.params?.grant_type)));
    provider.on('grant.error', (ctx: KoaContextWithOIDC, error: Error & { error_description?: string }) =>
      grantErrors.push(`${String(ctx.oidc.params?.grant_type)}: ${error.error_description ?? error.message}`));
    handle = provider.callback();
  };

  const state: CodeIssuer = {
    issuer,
    tokenDelayMs: 0,
    registerDashboard,
    grants,
    grantErrors,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    }),
  };
  server.on('request', (req, res) => {
    const serve = handle;
    if (!serve) {
      res.writeHead(503).end();
      return;
    }
    if (state.tokenDelayMs > 0 && req.url?.startsWith('/token')) setTimeout(() => void serve(req, res), state.tokenDelayMs);
    else void serve(req, res);
  });
  return state;
}

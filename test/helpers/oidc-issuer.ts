/**
 * A real OIDC provider for tests (oidc-provider, the certified Node implementation) issuing JWT access
 * tokens shaped like Keycloak's through a real client_credentials grant.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors as oidcErrors } from 'oidc-provider';
import { makeKey } from '../auth/tokens.ts';

export const FORGE_API = 'https://forge.test/api';
export const OTHER_API = 'https://other.test/api';
export const CLIENT = { id: 'ci-bot', secret: 'ci-bot-secret' };

export interface TestIssuer {
  issuer: string;
  /** The signing key's kid, as published in the issuer's JWKS. */
  kid: string;
  /** Requests left that answer discovery with 503, to play an issuer that is briefly down. */
  failDiscovery: number;
  accessToken(resource: string): Promise<string>;
  close(): Promise<void>;
}

export async function startIssuer(): Promise<TestIssuer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // RS256, as a Keycloak realm signs by default.
  const key = await makeKey('RS256');

  const provider = new Provider(issuer, {
    // Our own key, so the provider does not fall back to (and warn about) its development keys.
    jwks: { keys: [key.privateJwk] },
    clients: [{
      client_id: CLIENT.id,
      client_secret: CLIENT.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo(_ctx, resource) {
          const audience = { [FORGE_API]: 'forge', [OTHER_API]: 'other' }[resource];
          if (audience === undefined) throw new oidcErrors.InvalidTarget();
          return { scope: 'api', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    // What a Keycloak realm puts in its access tokens.
    extraTokenClaims: () => ({
      preferred_username: 'ci-bot-user',
      realm_access: { roles: ['developer', 'offline_access', 'uma_authorization'] },
      resource_access: { forge: { roles: ['approver'] }, account: { roles: ['operator', 'manage-account'] } },
    }),
  });
  const handle = provider.callback();
  const state: TestIssuer = {
    issuer,
    kid: key.publicJwk.kid,
    failDiscovery: 0,
    async accessToken(resource) {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource }),
      });
      const body = (await response.json()) as { access_token?: string };
      if (!response.ok || body.access_token === undefined) throw new Error(`token request failed: ${response.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    }),
  };
  server.on('request', (req, res) => {
    if (state.failDiscovery > 0 && req.url?.startsWith('/.well-known/')) {
      state.failDiscovery--;
      res.writeHead(503).end();
      return;
    }
    void handle(req, res);
  });
  return state;
}


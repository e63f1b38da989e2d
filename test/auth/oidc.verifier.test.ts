/**
 * createOidcVerifier against a real OIDC provider (oidc-provider, the certified Node implementation)
 * issuing JWT access tokens shaped like Keycloak's, fetched with a real client_credentials grant.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Provider, { errors as oidcErrors } from 'oidc-provider';
import { createOidcVerifier } from '../../src/auth/oidc.verifier.ts';
import { expectRefusal, makeKey, nowSeconds, signToken } from './tokens.ts';

const FORGE_API = 'https://forge.test/api';
const OTHER_API = 'https://other.test/api';
const CLIENT = { id: 'ci-bot', secret: 'ci-bot-secret' };

interface TestIssuer {
  issuer: string;
  /** The signing key's kid, as published in the issuer's JWKS. */
  kid: string;
  /** Requests left that answer discovery with 503, to play an issuer that is briefly down. */
  failDiscovery: number;
  accessToken(resource: string): Promise<string>;
  close(): Promise<void>;
}

async function startIssuer(): Promise<TestIssuer> {
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

describe('OIDC verifier against a real OIDC provider', () => {
  let main: TestIssuer;
  let second: TestIssuer;
  beforeAll(async () => {
    [main, second] = await Promise.all([startIssuer(), startIssuer()]);
  });
  afterAll(async () => {
    await Promise.all([main?.close(), second?.close()]);
  });

  it('verifies a client_credentials JWT access token with Keycloak-shaped roles', async () => {
    const verifier = createOidcVerifier({ issuer: main.issuer, audience: 'forge' });
    const token = await main.accessToken(FORGE_API);

    expect(verifier.mode).toBe('oidc');
    expect(verifier.issuer).toBe(main.issuer);
    expect(await verifier.verify(token)).toEqual({
      subject: CLIENT.id,
      actor: 'ci-bot-user',
      roles: ['developer', 'approver'],
      issuer: main.issuer,
    });
  });

  it('counts the resource_access roles of clientId when it is not the audience', async () => {
    const verifier = createOidcVerifier({ issuer: main.issuer, audience: 'forge', clientId: 'account' });
    expect((await verifier.verify(await main.accessToken(FORGE_API))).roles).toEqual(['developer', 'operator']);
  });

  it('refuses a token for another audience', async () => {
    const verifier = createOidcVerifier({ issuer: main.issuer, audience: 'forge' });
    await expectRefusal(verifier.verify(await main.accessToken(OTHER_API)), 'authentication_required', 'wrong_audience');
  });

  it('refuses a token from another issuer', async () => {
    const token = await second.accessToken(FORGE_API);
    expect((await createOidcVerifier({ issuer: second.issuer, audience: 'forge' }).verify(token)).issuer).toBe(second.issuer);
    // The signature is checked before the claims, so the other issuer's key is what gives it away.
    await expectRefusal(createOidcVerifier({ issuer: main.issuer, audience: 'forge' }).verify(token), 'authentication_required', 'unknown_key');
  });

  it('refuses tokens that claim the issuer but are signed by a key it did not publish', async () => {
    const verifier = createOidcVerifier({ issuer: main.issuer, audience: 'forge' });
    const forger = await makeKey('RS256');
    const claims = { sub: 'mallory', iss: main.issuer, aud: 'forge', exp: nowSeconds() + 600, realm_access: { roles: ['operator'] } };
    await expectRefusal(verifier.verify(await signToken(forger, claims)), 'authentication_required', 'unknown_key');
    await expectRefusal(verifier.verify(await signToken(forger, claims, { kid: main.kid })), 'authentication_required', 'bad_signature');
  });

  it('reports an unreachable issuer as service_unavailable and discovers again on the next call', async () => {
    const verifier = createOidcVerifier({ issuer: main.issuer, audience: 'forge' });
    const token = await main.accessToken(FORGE_API);
    main.failDiscovery = 1;
    await expectRefusal(verifier.verify(token), 'service_unavailable');
    expect(main.failDiscovery).toBe(0);
    expect((await verifier.verify(token)).subject).toBe(CLIENT.id);
  });

  it('reports a closed port and a mismatched issuer as service_unavailable', async () => {
    const gone = await startIssuer();
    const token = await gone.accessToken(FORGE_API);
    await gone.close();
    await expectRefusal(createOidcVerifier({ issuer: gone.issuer, audience: 'forge' }).verify(token), 'service_unavailable');

    const slash = createOidcVerifier({ issuer: `${main.issuer}/`, audience: 'forge' });
    await expectRefusal(slash.verify(await main.accessToken(FORGE_API)), 'service_unavailable');
  });
});

/**
 * createOidcVerifier against a real OIDC provider (oidc-provider, the certified Node implementation)
 * issuing JWT access tokens shaped like Keycloak's, fetched with a real client_credentials grant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcVerifier } from '../../src/auth/oidc.verifier.ts';
import { CLIENT, FORGE_API, OTHER_API, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.ts';
import { expectRefusal, makeKey, nowSeconds, signToken } from './tokens.ts';

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

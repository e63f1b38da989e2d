import { describe, expect, it } from 'vitest';
import { createLocalJWKSet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { createJwtVerifier, type JwtVerifierOptions } from '../../src/auth/token-verifier.ts';
import { ForgeError } from '../../src/domain/errors.ts';
import { expectRefusal, makeKey, signToken, type TestKey } from './tokens.ts';

const ISSUER = 'https://issuer.test/realms/forge';
const T0 = Date.UTC(2030, 0, 1) / 1000;

/** A verifier on a settable clock whose key lookups are counted: a lookup means no cache hit. */
async function setup(options: Partial<JwtVerifierOptions> = {}) {
  const key = await makeKey();
  const jwks = createLocalJWKSet({ keys: [key.publicJwk] });
  const clock = { seconds: T0 };
  const counter = { lookups: 0 };
  const keys: JWTVerifyGetKey = (header, token) => {
    counter.lookups++;
    return jwks(header, token);
  };
  const verifier = createJwtVerifier({ mode: 'oidc', issuer: ISSUER, audience: 'forge', keys, now: () => clock.seconds * 1000, ...options });
  const sign = (claims: JWTPayload = {}, signer: TestKey = key) =>
    signToken(signer, { sub: 'svc', iss: ISSUER, aud: ['forge', 'account'], iat: T0, exp: T0 + 3600, ...claims });
  return { verifier, sign, clock, counter };
}

describe('JWT verifier cache', () => {
  it('verifies a repeated token once', async () => {
    const { verifier, sign, counter } = await setup();
    const token = await sign();
    for (let i = 0; i < 1000; i++) await verifier.verify(token);
    expect(counter.lookups).toBe(1);
  });

  it('forgets a token when it expires, even when cached a moment before', async () => {
    const { verifier, sign, clock } = await setup();
    const token = await sign({ exp: T0 + 60 });
    await verifier.verify(token);
    clock.seconds = T0 + 59;
    await verifier.verify(token);
    // Past exp + 30 s of tolerance the cache must not answer: jose refuses it again.
    clock.seconds = T0 + 91;
    await expectRefusal(verifier.verify(token), 'authentication_required', 'expired');
  });

  it('re-checks a long-lived token after five minutes', async () => {
    const { verifier, sign, clock, counter } = await setup();
    const token = await sign();
    await verifier.verify(token);
    clock.seconds = T0 + 4 * 60;
    await verifier.verify(token);
    expect(counter.lookups).toBe(1);
    clock.seconds = T0 + 5 * 60 + 1;
    await verifier.verify(token);
    expect(counter.lookups).toBe(2);
  });

  it('never caches a refusal', async () => {
    const { verifier, sign, clock } = await setup();
    const token = await sign({ nbf: T0 + 120 });
    await expectRefusal(verifier.verify(token), 'authentication_required', 'not_yet_valid');
    clock.seconds = T0 + 120;
    expect((await verifier.verify(token)).subject).toBe('svc');
  });

  it('holds at most cacheSize tokens, dropping the oldest', async () => {
    const { verifier, sign, counter } = await setup({ cacheSize: 2 });
    const [a, b, c] = await Promise.all([sign({ sub: 'a' }), sign({ sub: 'b' }), sign({ sub: 'c' })]);
    for (const token of [a, b, c, c, b]) await verifier.verify(token as string);
    expect(counter.lookups).toBe(3);
    await verifier.verify(a as string);
    expect(counter.lookups).toBe(4);
  });

  it('hands out copies, so a caller cannot change what the cache returns next', async () => {
    const { verifier, sign } = await setup();
    const token = await sign({ realm_access: { roles: ['developer'] } });
    const first = await verifier.verify(token);
    first.roles.push('operator');
    expect((await verifier.verify(token)).roles).toEqual(['developer']);
  });

  it('uses the roles of clientId, which defaults to the audience', async () => {
    const access = { realm_access: { roles: ['approver'] }, resource_access: { forge: { roles: ['developer'] }, 'forge-ui': { roles: ['operator'] } } };
    const byAudience = await setup();
    expect((await byAudience.verifier.verify(await byAudience.sign(access))).roles).toEqual(['approver', 'developer']);
    const byClient = await setup({ clientId: 'forge-ui' });
    expect((await byClient.verifier.verify(await byClient.sign(access))).roles).toEqual(['approver', 'operator']);
  });

  it('passes a platform failure from the key source through unchanged', async () => {
    const down = new ForgeError('service_unavailable', 'issuer down');
    const { verifier, sign } = await setup({ keys: () => Promise.reject(down) });
    await expect(verifier.verify(await sign())).rejects.toBe(down);
  });
});

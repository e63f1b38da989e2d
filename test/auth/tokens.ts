/** Hand-made tokens for the auth tests: claims and headers the real issuers would never produce. */
import { expect } from 'vitest';
import {
  base64url, calculateJwkThumbprint, exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT,
  type CryptoKey, type JWK, type JWTPayload,
} from 'jose';
import { isForgeError } from '../../src/domain/errors.ts';

export interface TestKey {
  privateKey: CryptoKey;
  /** The public half as a JWK with kid, alg and use, ready for a JWKS. */
  publicJwk: JWK & { kid: string };
  privateJwk: JWK & { kid: string };
}

export async function makeKey(alg = 'ES256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    privateKey,
    publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' },
  };
}

export async function keyFromJwk(privateJwk: JWK & { kid: string }): Promise<TestKey> {
  const { d: _private, ...publicJwk } = privateJwk;
  return { privateKey: (await importJWK(privateJwk, privateJwk.alg)) as CryptoKey, publicJwk, privateJwk };
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Signs any claims; `kid` defaults to the key's own so only what a test changes differs. */
export function signToken(key: TestKey, claims: JWTPayload, header: { kid?: string } = {}): Promise<string> {
  const alg = key.publicJwk.alg ?? 'ES256';
  return new SignJWT(claims).setProtectedHeader({ alg, kid: header.kid ?? key.publicJwk.kid }).sign(key.privateKey);
}

/** `alg: none`: no signature at all. */
export function unsecuredToken(claims: JWTPayload): string {
  const part = (value: object) => base64url.encode(JSON.stringify(value));
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

/** The algorithm-confusion attack: HMAC "signed" with the issuer's public key as the secret. */
export async function hs256WithPublicKey(key: TestKey, claims: JWTPayload): Promise<string[]> {
  const publicKey = await importJWK(key.publicJwk, key.publicJwk.alg);
  const secrets = [await exportSPKI(publicKey as CryptoKey), JSON.stringify(key.publicJwk)];
  return Promise.all(secrets.map((secret) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: key.publicJwk.kid }).sign(new TextEncoder().encode(secret))));
}

/** Replaces the signature's first character so the bytes change but the shape stays valid. */
export function tamper(token: string): string {
  const [header, payload, signature = ''] = token.split('.');
  const first = signature.startsWith('A') ? 'B' : 'A';
  return `${header}.${payload}.${first}${signature.slice(1)}`;
}

/** Asserts the promise fails with a ForgeError of this code (and refusal reason, when given). */
export async function expectRefusal(promise: Promise<unknown>, code: string, reason?: string): Promise<void> {
  const error: unknown = await promise.then(
    () => expect.fail(`expected ${code}${reason ? ` (${reason})` : ''}, but it was accepted`),
    (e: unknown) => e,
  );
  if (!isForgeError(error)) throw error;
  expect(error.code).toBe(code);
  if (reason !== undefined) expect(error.details).toMatchObject({ reason });
}

/**
 * The embedded dev issuer: signs tokens with a key kept in the data dir, so `forge dev-token` and
 * the API agree on identity without Keycloak. It is for development only: anyone who can read the
 * data dir can mint any role, which is why its issuer is a `urn:` that no real issuer uses.
 *
 * Key file states: absent → present (never rewritten). Processes that start at once each write a
 * candidate to a temp file and hard-link it into place; link refuses to replace an existing file,
 * so exactly one candidate wins and every process then reads the winner.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { invalid } from '../domain/errors.ts';
import { ROLES, isRole } from '../domain/identity.ts';
import { createJwtVerifier, REPOSITORY_CLAIM, type TokenVerifier } from './token-verifier.ts';

export const DEV_ISSUER = 'urn:forge:dev-issuer';
export const DEV_AUDIENCE = 'forge';
const ALG = 'ES256';
const DEFAULT_TTL_SECONDS = 12 * 60 * 60;

export interface DevTokenRequest {
  sub: string;
  /** Each must be one of ROLES. */
  roles: readonly string[];
  /** Default 12 hours. */
  ttlSeconds?: number;
  /** Default: sub. */
  preferredUsername?: string;
  /** A platform token's repository (owner/name): the token then acts for it alone. */
  repository?: string;
}

export interface DevIssuer {
  readonly issuer: typeof DEV_ISSUER;
  readonly audience: typeof DEV_AUDIENCE;
  sign(request: DevTokenRequest): Promise<string>;
  readonly verifier: TokenVerifier;
}

/** Where the private key (a JWK) lives inside the data dir. */
export function devIssuerKeyPath(dataDir: string): string {
  return join(dataDir, 'dev-issuer', 'key.json');
}

export async function openDevIssuer(dataDir: string): Promise<DevIssuer> {
  const privateJwk = await loadOrCreateKey(devIssuerKeyPath(dataDir));
  const { kid } = privateJwk;
  const privateKey = await importJWK(privateJwk, ALG);
  const { d: _private, ...publicJwk } = privateJwk;
  const verifier = createJwtVerifier({
    mode: 'dev',
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    keys: createLocalJWKSet({ keys: [publicJwk] }),
  });

  return {
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    verifier,
    async sign({ sub, roles, ttlSeconds = DEFAULT_TTL_SECONDS, preferredUsername = sub, repository }) {
      if (sub === '') throw invalid('a dev token needs a non-empty subject');
      const unknown = roles.filter((role) => !isRole(role));
      if (unknown.length > 0) {
        throw invalid(`unknown role ${unknown.join(', ')}: roles must be among ${ROLES.join(', ')}`, { unknown, allowed: ROLES });
      }
      if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw invalid(`ttlSeconds must be a positive whole number, not ${ttlSeconds}`);
      const issuedAt = Math.floor(Date.now() / 1000);
      const scope = repository === undefined ? {} : { [REPOSITORY_CLAIM]: repository };
      return new SignJWT({ preferred_username: preferredUsername, realm_access: { roles: [...roles] }, ...scope })
        .setProtectedHeader({ alg: ALG, kid, typ: 'JWT' })
        .setSubject(sub)
        .setIssuer(DEV_ISSUER)
        .setAudience(DEV_AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + ttlSeconds)
        .sign(privateKey);
    },
  };
}

type KeyJwk = JWK & { kid: string };

async function loadOrCreateKey(path: string): Promise<KeyJwk> {
  const existing = await readKey(path);
  if (existing !== undefined) return existing;
  // Only the key's own folder is made private; the data dir keeps the mode its creator gave it.
  const dir = dirname(path);
  await mkdir(dirname(dir), { recursive: true });
  await mkdir(dir, { mode: 0o700 }).catch(unlessItExists);
  const candidate = `${path}.${process.pid}.${randomUUID()}.tmp`;
  try {
    const file = await open(candidate, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(await newKey(), null, 2)}\n`);
      // On disk before it gets its real name, so no process ever reads a half-written key.
      await file.sync();
    } finally {
      await file.close();
    }
    await link(candidate, path).catch(unlessItExists);
  } finally {
    await unlink(candidate).catch(() => undefined);
  }
  const winner = await readKey(path);
  if (winner === undefined) throw new Error(`dev issuer key ${path} vanished while it was being created`);
  return winner;
}

/** The one failure that is fine here: another process created it first. */
function unlessItExists(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EEXIST') throw error;
}

async function newKey(): Promise<KeyJwk> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: ALG, use: 'sig' };
}

async function readKey(path: string): Promise<KeyJwk | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the dev issuer key ${path}: ${(error as Error).message}`, { cause: error });
  }
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch (error) {
    throw new Error(`dev issuer key ${path} is not JSON; delete it to make a new key`, { cause: error });
  }
  const { kty, crv, d, kid } = (jwk ?? {}) as JWK;
  if (kty !== 'EC' || crv !== 'P-256' || typeof d !== 'string' || typeof kid !== 'string') {
    throw new Error(`dev issuer key ${path} is not a private P-256 JWK with a kid; delete it to make a new key`);
  }
  return jwk as KeyJwk;
}

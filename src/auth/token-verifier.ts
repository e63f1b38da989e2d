/**
 * Bearer token → Identity. Both identity sources (an OIDC issuer such as Keycloak, and the embedded
 * dev issuer) produce signed JWTs, so they share this one verifier and differ only in where the
 * public keys come from.
 *
 * Cache states per token string: absent → verified (until min(exp, verified + 5 min)) → absent
 * (expired on lookup, or evicted oldest-first once the cache is full). Failures never enter it, so
 * a token refused now (e.g. not yet valid, or the issuer was unreachable) is checked again next time.
 */
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ForgeError } from '../domain/errors.ts';
import { isRole, type Identity, type Role } from '../domain/identity.ts';
import { isValidName } from '../domain/names.ts';

export interface TokenVerifier {
  readonly mode: 'oidc' | 'dev';
  readonly issuer: string;
  /** Throws ForgeError('authentication_required', …, { reason }) for any token it does not accept. */
  verify(token: string): Promise<Identity>;
}

/** Asymmetric algorithms only: naming them stops `alg: none` and HS256 signed with a public key. */
export const ACCEPTED_ALGORITHMS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA',
] as const;

/** Seconds of clock skew forgiven between the issuer and us (exp, nbf, iat). */
export const CLOCK_TOLERANCE_SECONDS = 30;
/**
 * The claim of a platform token (POST /v1/auth/github) naming the one repository it acts for. A
 * token that carries it but not as an owner/name string is refused: scoping fails closed.
 */
export const REPOSITORY_CLAIM = 'forge_repository';
const CACHE_TTL_MS = 5 * 60_000;
const DEFAULT_CACHE_SIZE = 10_000;

export type RefusalReason =
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'missing_claim'
  | 'invalid_claims'
  | 'algorithm_not_allowed'
  | 'bad_signature'
  | 'unknown_key'
  | 'malformed';

export interface JwtVerifierOptions {
  mode: TokenVerifier['mode'];
  issuer: string;
  audience: string;
  /** The client whose `resource_access[clientId].roles` count; defaults to the audience. */
  clientId?: string | undefined;
  /** Resolves the public key for a token's header (jose's local or remote JWKS). */
  keys: JWTVerifyGetKey;
  /** Most tokens remembered at once. */
  cacheSize?: number;
  /** Milliseconds since the epoch; tests move it to check expiry of cached tokens. */
  now?: () => number;
}

interface CachedIdentity {
  identity: Identity;
  validUntilMs: number;
}

export function createJwtVerifier(options: JwtVerifierOptions): TokenVerifier {
  const { mode, issuer, audience, keys } = options;
  const clientId = options.clientId ?? audience;
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CachedIdentity>();

  function remember(token: string, identity: Identity, expSeconds: number): void {
    // Map keeps insertion order, so the first key is the oldest entry: cheap FIFO eviction.
    while (cache.size >= cacheSize) {
      const oldest = cache.keys().next();
      if (oldest.done) break;
      cache.delete(oldest.value);
    }
    cache.set(token, { identity, validUntilMs: Math.min(expSeconds * 1000, now() + CACHE_TTL_MS) });
  }

  return {
    mode,
    issuer,
    async verify(token) {
      const cached = cache.get(token);
      if (cached !== undefined) {
        if (now() < cached.validUntilMs) return copyIdentity(cached.identity);
        cache.delete(token);
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          algorithms: [...ACCEPTED_ALGORITHMS],
          issuer,
          audience,
          // exp is required: a token that never expires could never leave the cache or be revoked.
          requiredClaims: ['sub', 'exp'],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          currentDate: new Date(now()),
        }));
      } catch (error) {
        throw refusal(error, { issuer, audience });
      }
      // jose checks iat only with maxTokenAge; a token issued in the future is not valid yet either.
      if (issuedInFuture(payload, now())) throw refused('not_yet_valid', 'it was issued in the future ("iat")');
      const identity = identityFrom(payload, clientId);
      remember(token, identity, payload.exp as number);
      return copyIdentity(identity);
    },
  };
}

/** Callers get their own copy so nothing they do can change what the cache hands out next. */
function copyIdentity(identity: Identity): Identity {
  return { ...identity, roles: [...identity.roles] };
}

function identityFrom(payload: JWTPayload, clientId: string): Identity {
  const { sub, iss, preferred_username: preferredUsername } = payload;
  if (typeof sub !== 'string' || sub === '') throw refused('invalid_claims', 'the token\'s "sub" claim is not a non-empty string');
  const repository = payload[REPOSITORY_CLAIM];
  if (repository !== undefined && (typeof repository !== 'string' || !isValidName('repository', repository))) {
    throw refused('invalid_claims', `the token's "${REPOSITORY_CLAIM}" claim is not a repository owner/name`);
  }
  return {
    subject: sub,
    actor: typeof preferredUsername === 'string' && preferredUsername !== '' ? preferredUsername : sub,
    roles: rolesFrom(payload, clientId),
    // jwtVerify checked iss against the configured issuer, so it is that string.
    issuer: iss as string,
    ...(repository !== undefined ? { repository } : {}),
  };
}

/** `iat` later than now plus the leeway (jose checks iat only when given a maximum token age). */
export function issuedInFuture(payload: JWTPayload, nowMs: number, toleranceSeconds = CLOCK_TOLERANCE_SECONDS): boolean {
  return typeof payload.iat === 'number' && payload.iat > nowMs / 1000 + toleranceSeconds;
}

/** Keycloak's shape: realm roles plus the roles of our client; anything else there is ignored. */
function rolesFrom(payload: JWTPayload, clientId: string): Role[] {
  const realmRoles = rolesIn(payload.realm_access);
  const resourceAccess = payload.resource_access;
  const clientRoles = isRecord(resourceAccess) ? rolesIn(resourceAccess[clientId]) : [];
  return [...new Set([...realmRoles, ...clientRoles])];
}

function rolesIn(access: unknown): Role[] {
  if (!isRecord(access) || !Array.isArray(access.roles)) return [];
  return access.roles.filter((role): role is Role => typeof role === 'string' && isRole(role));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function refused(reason: RefusalReason, why: string, cause?: unknown): ForgeError {
  return new ForgeError('authentication_required', `bearer token refused: ${why}`, { reason }, { cause });
}

/**
 * jose's errors → our refusal reasons. A ForgeError (the key source could not reach the issuer)
 * and anything that is not a JOSE error (a bug of ours) pass through unchanged.
 */
function refusal(error: unknown, expected: { issuer: string; audience: string }): unknown {
  if (error instanceof errors.JWTExpired) return refused('expired', 'it has expired', error);
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return refused('missing_claim', `it has no "${error.claim}" claim`, error);
    switch (error.claim) {
      case 'nbf':
        return refused('not_yet_valid', 'it is not valid yet ("nbf" is in the future)', error);
      case 'iss':
        return refused('wrong_issuer', `it was not issued by ${expected.issuer}`, error);
      case 'aud':
        return refused('wrong_audience', `its audience does not include ${expected.audience}`, error);
      default:
        return refused('invalid_claims', `its "${error.claim}" claim is invalid`, error);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return refused('algorithm_not_allowed', `its algorithm is not one of ${ACCEPTED_ALGORITHMS.join(', ')}`, error);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return refused('bad_signature', 'its signature does not verify', error);
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return refused('unknown_key', 'it is not signed by a known key of the issuer', error);
  }
  if (error instanceof errors.JOSEError) return refused('malformed', 'it is not a well-formed signed JWT', error);
  return error;
}

/**
 * GitHub Actions OIDC token → platform token (digest §2.8, behaviour 55). Any GitHub workflow can
 * get an Actions token, so the repository claim must name a registered repository; the platform
 * token then acts for that repository alone (REPOSITORY_CLAIM; auth/permissions.ts keeps it to
 * reading, and to runs and releases of that repository) and expires no later than the GitHub token did.
 */
import { createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ForgeError } from '../domain/errors.ts';
import type { Role } from '../domain/identity.ts';
import type { DevIssuer } from './dev-issuer.ts';
import { ACCEPTED_ALGORITHMS, issuedInFuture, type RefusalReason } from './token-verifier.ts';

export const GITHUB_ACTIONS_ISSUER = 'https://token.actions.githubusercontent.com';
/** Seconds of clock skew forgiven between GitHub and us (exp, nbf, iat). */
export const GITHUB_CLOCK_TOLERANCE_SECONDS = 60;
const DEFAULT_TTL_SECONDS = 3600;
const PLATFORM_ROLES: Role[] = ['service-account'];

/** `repository` goes in the token's REPOSITORY_CLAIM: the platform token acts for that repository alone. */
export type PlatformTokenSigner = (claims: { sub: string; roles: Role[]; repository: string; expiresAt: Date }) => Promise<string>;

export interface GitHubOidcOptions {
  /** Exactly the `iss` of the tokens. Default: GitHub Actions' issuer. */
  issuer?: string | undefined;
  /** Default: `<issuer>/.well-known/jwks` (what GitHub's discovery document names). */
  jwksUrl?: string | undefined;
  /** When set, the token's `aud` must include it. */
  audience?: string | undefined;
  /** owner/name of each repository allowed to exchange tokens (compared case-insensitively, as GitHub does). */
  registeredRepositories: readonly string[];
  signPlatformToken: PlatformTokenSigner;
  /** Longest platform token lifetime; default 1 hour. */
  maxTtlSeconds?: number;
}

export interface PlatformGrant {
  token: string;
  expiresAt: Date;
  /** The registered spelling of the repository. */
  repository: string;
}

export interface GitHubOidcExchange {
  readonly issuer: string;
  /** `audience`, when given, is what the caller says its token is for; it must match the configured one. */
  exchange(token: string, audience?: string): Promise<PlatformGrant>;
}

function refused(reason: RefusalReason, why: string, cause?: unknown): ForgeError {
  return new ForgeError('authentication_required', `GitHub token refused: ${why}`, { reason }, { cause });
}

/** jose's failures → 401 with a reason; our own errors (an unreachable key set: 503) pass through. */
function toForgeError(error: unknown, issuer: string, audience: string | undefined): unknown {
  if (error instanceof ForgeError) return error;
  if (error instanceof errors.JWTExpired) return refused('expired', 'it has expired', error);
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return refused('wrong_issuer', `it was not issued by ${issuer}`, error);
    if (error.claim === 'aud') return refused('wrong_audience', `its audience does not include ${String(audience)}`, error);
    return refused(error.reason === 'missing' ? 'missing_claim' : 'invalid_claims', `its "${error.claim}" claim is ${error.reason === 'missing' ? 'missing' : 'invalid'}`, error);
  }
  if (error instanceof errors.JWKSNoMatchingKey) return refused('unknown_key', `it is not signed by a key of ${issuer}`, error);
  if (!(error instanceof errors.JOSEError)) return error;
  if (error instanceof errors.JOSEAlgNotAllowed) return refused('algorithm_not_allowed', 'its algorithm is not allowed', error);
  if (error instanceof errors.JWSSignatureVerificationFailed) return refused('bad_signature', 'its signature does not verify', error);
  return refused('malformed', 'it is not a well-formed signed JWT', error);
}

export function createGitHubOidcExchange(options: GitHubOidcOptions): GitHubOidcExchange {
  const issuer = options.issuer ?? GITHUB_ACTIONS_ISSUER;
  const jwksUrl = new URL(options.jwksUrl ?? `${issuer.replace(/\/+$/, '')}/.well-known/jwks`);
  const remote = createRemoteJWKSet(jwksUrl);
  const keys: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      // A kid the key set lacks is the token's fault; an unreachable or broken key set is ours.
      if (error instanceof errors.JWKSNoMatchingKey) throw error;
      throw new ForgeError('service_unavailable', `cannot fetch the signing keys of ${issuer} from ${jwksUrl.href}: ${(error as Error).message}`, { issuer }, { cause: error });
    }
  };
  const registered = new Map(options.registeredRepositories.map((r) => [r.toLowerCase(), r]));
  const maxTtlMs = (options.maxTtlSeconds ?? DEFAULT_TTL_SECONDS) * 1000;

  return {
    issuer,
    async exchange(token, requestedAudience) {
      const configured = options.audience;
      if (configured !== undefined && requestedAudience !== undefined && requestedAudience !== configured) {
        throw refused('wrong_audience', `this server accepts tokens for audience ${configured}, not ${requestedAudience}`);
      }
      const audience = configured ?? requestedAudience;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          algorithms: [...ACCEPTED_ALGORITHMS], issuer, ...(audience !== undefined ? { audience } : {}),
          requiredClaims: ['exp', 'repository'], clockTolerance: GITHUB_CLOCK_TOLERANCE_SECONDS,
        }));
      } catch (error) {
        throw toForgeError(error, issuer, audience);
      }
      if (issuedInFuture(payload, Date.now(), GITHUB_CLOCK_TOLERANCE_SECONDS)) throw refused('not_yet_valid', 'it was issued in the future ("iat")');
      const claim = payload.repository;
      if (typeof claim !== 'string' || claim === '') throw refused('invalid_claims', 'its "repository" claim is not a non-empty string');
      const repository = registered.get(claim.toLowerCase());
      if (repository === undefined) {
        throw new ForgeError('permission_denied', `repository ${claim} is not registered with Forge`, { repository: claim });
      }
      const now = Date.now();
      const expiresAt = new Date(Math.min(now + maxTtlMs, (payload.exp as number) * 1000));
      // Inside the leeway a token may verify after its exp; a platform token cannot outlive it, so there is nothing left to give.
      if (expiresAt.getTime() - now < 1000) throw refused('expired', 'it expires before a platform token could be used');
      const minted = await options.signPlatformToken({ sub: `repo:${repository}`, roles: [...PLATFORM_ROLES], repository, expiresAt });
      const exp = decodeJwt(minted).exp;
      return { token: minted, expiresAt: exp === undefined ? expiresAt : new Date(exp * 1000), repository };
    },
  };
}

/** Platform tokens signed by the embedded dev issuer; whole seconds, rounded down so they never outlive `expiresAt`. */
export function devIssuerSigner(issuer: Pick<DevIssuer, 'sign'>): PlatformTokenSigner {
  return ({ sub, roles, repository, expiresAt }) =>
    issuer.sign({ sub, roles, repository, ttlSeconds: Math.max(1, Math.floor((expiresAt.getTime() - Date.now()) / 1000)) });
}

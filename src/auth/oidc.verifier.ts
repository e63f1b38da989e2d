/**
 * Tokens from a real OIDC issuer (Keycloak realm, or any issuer publishing a JWKS).
 *
 * Key source states: undiscovered → discovering → discovered. Discovery happens on the first
 * verify, not at start-up, so the API can start while the issuer is down; a failed discovery goes
 * back to undiscovered and the next verify tries again. Once discovered, jose's remote JWKS
 * refetches the key set itself when a token names a key it has not seen (key rotation).
 */
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose';
import { ForgeError } from '../domain/errors.ts';
import { createJwtVerifier, type TokenVerifier } from './token-verifier.ts';

export interface OidcVerifierOptions {
  /** Exactly the `iss` of the tokens, e.g. https://keycloak.example.com/realms/forge */
  issuer: string;
  audience: string;
  /** The client whose `resource_access[clientId].roles` count; defaults to the audience. */
  clientId?: string | undefined;
}

const DISCOVERY_TIMEOUT_MS = 5_000;

export function createOidcVerifier(options: OidcVerifierOptions): TokenVerifier {
  const { issuer } = options;
  let discovering: Promise<JWTVerifyGetKey> | undefined;

  /** One discovery in flight however many requests arrive at once; forgotten if it fails. */
  function remoteKeys(): Promise<JWTVerifyGetKey> {
    discovering ??= discover(issuer).catch((error: unknown) => {
      discovering = undefined;
      throw error;
    });
    return discovering;
  }

  const keys: JWTVerifyGetKey = async (header, token) => {
    const getKey = await remoteKeys();
    try {
      return await getKey(header, token);
    } catch (error) {
      // No key with the token's kid is the token's fault; the rest (network, bad JWKS) is ours.
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error;
      throw unavailable(issuer, `cannot fetch its signing keys: ${(error as Error).message}`, error);
    }
  };

  return createJwtVerifier({ mode: 'oidc', issuer, audience: options.audience, clientId: options.clientId, keys });
}

async function discover(issuer: string): Promise<JWTVerifyGetKey> {
  // OIDC Discovery 1.0 §4: the issuer without its trailing slash, then the well-known path.
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let metadata: unknown;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS), headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
    metadata = await response.json();
  } catch (error) {
    throw unavailable(issuer, `discovery failed: ${(error as Error).message}`, error);
  }
  const { issuer: announced, jwks_uri: jwksUri } = (metadata ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
  // §4.3: a mismatch means every token would fail the iss check; say so once, clearly.
  if (announced !== issuer) {
    throw unavailable(issuer, `${url} announces issuer ${JSON.stringify(announced)}; set the configured issuer to exactly that`);
  }
  if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) {
    throw unavailable(issuer, `${url} has no valid jwks_uri`);
  }
  return createRemoteJWKSet(new URL(jwksUri));
}

function unavailable(issuer: string, why: string, cause?: unknown): ForgeError {
  return new ForgeError('service_unavailable', `the OIDC issuer ${issuer} cannot be used to check tokens: ${why}`, { issuer }, { cause });
}

/**
 * POST /v1/auth/github (behaviour 55): a local issuer plays GitHub Actions' OIDC provider (its own
 * key pair, discovery document and JWKS over real HTTP) and signs GitHub-shaped tokens; the platform
 * tokens that come back are checked by the platform's own verifier and used on the real API.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { decodeJwt, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleError } from '../../src/api/errors.ts';
import { githubRoutes } from '../../src/api/github.routes.ts';
import { createGitHubOidcExchange, devIssuerSigner } from '../../src/auth/github-oidc.ts';
import { pgliteAdapter } from '../helpers/stores.ts';
import { apiSuite, sha } from '../helpers/app.ts';
import { expectRefusal, makeKey, nowSeconds, signToken, type TestKey } from './tokens.ts';

const AUDIENCE = 'https://forge.test';
let issuer: string;
let key: TestKey;
let close: () => Promise<void>;

beforeAll(async () => {
  // RS256, as GitHub signs.
  key = await makeKey('RS256');
  const server = createServer((req, res) => {
    const documents: Record<string, unknown> = {
      '/.well-known/openid-configuration': { issuer, jwks_uri: `${issuer}/.well-known/jwks` },
      '/.well-known/jwks': { keys: [key.publicJwk] },
    };
    const document = documents[req.url ?? ''];
    res.writeHead(document ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(document ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
});
afterAll(() => close?.());

/** What GitHub Actions puts in its tokens; `lifetime` seconds from now (GitHub gives about 5 minutes). */
function githubClaims(extra: JWTPayload = {}, lifetime = 300): JWTPayload {
  const iat = nowSeconds();
  return {
    iss: issuer, aud: AUDIENCE, sub: 'repo:acme/shop:ref:refs/heads/main', iat, nbf: iat - 5, exp: iat + lifetime,
    repository: 'acme/shop', repository_owner: 'acme', ref: 'refs/heads/main', sha: sha(), workflow: 'ci',
    job_workflow_ref: 'acme/shop/.github/workflows/ci.yml@refs/heads/main', run_id: '42', ...extra,
  };
}

describe('GitHub OIDC token exchange', () => {
  const s = apiSuite(pgliteAdapter, {});
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify({ logger: false });
    app.setErrorHandler(handleError);
    await app.register(githubRoutes({
      ctx: s.t.ctx, webhookSecret: undefined, registeredRepositories: ['acme/shop'],
      signPlatformToken: devIssuerSigner(s.t.issuer), oidc: { issuer, audience: AUDIENCE },
    }));
  });
  afterAll(() => app?.close());
  const exchange = async (claims: JWTPayload, audience?: string, signer: TestKey = key) =>
    app.inject({ method: 'POST', url: '/v1/auth/github', payload: { token: await signToken(signer, claims), ...(audience ? { audience } : {}) } });

  it('gives a registered repository a service-account token that the platform accepts and that expires no later than GitHub\'s', async () => {
    const claims = githubClaims();
    const res = await exchange(claims, AUDIENCE);
    expect(res.statusCode).toBe(200);
    const body = res.json<{ token: string; expires_at: string; repository: string }>();
    expect(body.repository).toBe('acme/shop');
    const exp = decodeJwt(body.token).exp ?? Infinity;
    expect(exp).toBeLessThanOrEqual(claims.exp as number);
    expect(body.expires_at).toBe(new Date(exp * 1000).toISOString());

    expect(await s.t.issuer.verifier.verify(body.token)).toMatchObject({ subject: 'repo:acme/shop', roles: ['service-account'] });
    const run = await s.t.app.inject({
      method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${body.token}` },
      payload: { repository: 'acme/shop', branch: 'main', commit_sha: claims.sha, trigger_type: 'push', triggered_by: 'octocat' },
    });
    expect(run.statusCode).toBe(201);
  });

  it('caps the platform token at one hour, and matches the repository case-insensitively', async () => {
    const res = await exchange(githubClaims({ repository: 'ACME/Shop' }, 6 * 3600));
    expect(res.statusCode).toBe(200);
    const { token, repository } = res.json<{ token: string; repository: string }>();
    expect(repository).toBe('acme/shop');
    expect(decodeJwt(token).exp).toBeLessThanOrEqual(nowSeconds() + 3600);
    expect(decodeJwt(token).exp).toBeGreaterThan(nowSeconds() + 3500);
  });

  it('refuses an unregistered repository with 403 naming it', async () => {
    const res = await exchange(githubClaims({ repository: 'mallory/tools', sub: 'repo:mallory/tools:ref:refs/heads/main' }));
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: { code: 'permission_denied', message: expect.stringContaining('mallory/tools'), details: { repository: 'mallory/tools' } } });
  });

  it('refuses with 401: expired, wrong issuer, wrong audience, unknown key, no repository claim', async () => {
    const now = nowSeconds();
    const other = await makeKey('RS256');
    const cases: [JWTPayload, string, string?, TestKey?][] = [
      [githubClaims({ iat: now - 900, nbf: now - 900, exp: now - 120 }), 'expired'],
      // Inside the 60 s leeway the token verifies, but nothing of its lifetime is left to hand on.
      [githubClaims({ iat: now - 330, nbf: now - 330, exp: now - 30 }), 'expired'],
      [githubClaims({ iss: 'https://token.actions.example.com' }), 'wrong_issuer'],
      [githubClaims({ aud: 'https://github.com/acme' }), 'wrong_audience'],
      [githubClaims(), 'wrong_audience', 'https://other.test'],
      [githubClaims(), 'unknown_key', undefined, other],
      [githubClaims({ repository: undefined }), 'missing_claim'],
    ];
    for (const [claims, reason, audience, signer] of cases) {
      const res = await exchange(claims, audience, signer);
      expect(res.statusCode, reason).toBe(401);
      expect(res.json().error, reason).toMatchObject({ code: 'authentication_required', details: { reason } });
    }
  });
});

describe('GitHub OIDC exchange without a configured audience', () => {
  const sign = async ({ sub, expiresAt }: { sub: string; expiresAt: Date }) => signToken(key, { sub, exp: Math.floor(expiresAt.getTime() / 1000) });

  it('checks the audience the caller names, and any audience passes when neither names one', async () => {
    const exchange = createGitHubOidcExchange({ issuer, registeredRepositories: ['acme/shop'], signPlatformToken: sign });
    const token = await signToken(key, githubClaims({ aud: 'https://github.com/acme' }));
    await expect(exchange.exchange(token)).resolves.toMatchObject({ repository: 'acme/shop' });
    await expect(exchange.exchange(token, 'https://github.com/acme')).resolves.toMatchObject({ repository: 'acme/shop' });
    await expectRefusal(exchange.exchange(token, AUDIENCE), 'authentication_required', 'wrong_audience');
  });

  it('answers service_unavailable when the issuer\'s keys cannot be fetched', async () => {
    const exchange = createGitHubOidcExchange({ issuer, jwksUrl: `${issuer}/missing-jwks`, registeredRepositories: ['acme/shop'], signPlatformToken: sign });
    await expectRefusal(exchange.exchange(await signToken(key, githubClaims())), 'service_unavailable');
  });
});

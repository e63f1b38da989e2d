/**
 * JWT attacks over HTTP, against the embedded dev issuer and against the OIDC verifier with a real
 * issuer (oidc-provider): every forged or stale token is a 401 with the error body and the refusal
 * reason, and nothing is written. Then the GitHub Actions token exchange: a platform token minted
 * for repository A acts for A only.
 *
 * Every attack is sent as POST /v1/runs with operator-level claims, so a token the verifier let
 * through would create a run; a control request with an honest token of the same shape shows it.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { base64url, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { DEV_AUDIENCE, DEV_ISSUER, devIssuerKeyPath } from '../../src/auth/dev-issuer.ts';
import { devIssuerSigner } from '../../src/auth/github-oidc.ts';
import { createOidcVerifier } from '../../src/auth/oidc.verifier.ts';
import { REPOSITORY_CLAIM } from '../../src/auth/token-verifier.ts';
import { apiSuite, sha } from '../helpers/app.ts';
import { postgresAdapter } from '../helpers/stores.ts';
import { hs256WithPublicKey, keyFromJwk, makeKey, nowSeconds, signToken, tamper, unsecuredToken, type TestKey } from '../auth/tokens.ts';
import { expectError, rowCounts, startGitHubIssuer, startHeldKeyIssuer, uuid, type HeldKeyIssuer } from './support.ts';

/** A token forged one way, and the refusal reason it must get. */
type Attack = [name: string, token: string, reason: string];

const runBody = () => ({ repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' });

/** Replaces the payload, keeping header and signature: what an attacker does to raise their roles. */
function withPayload(token: string, change: (claims: JWTPayload) => JWTPayload): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload))) as JWTPayload;
  return `${header}.${base64url.encode(JSON.stringify(change(claims)))}.${signature}`;
}

/** Signs with arbitrary protected header fields (jku, jwk, crit…). */
async function signWithHeader(key: TestKey, claims: JWTPayload, header: Record<string, unknown>): Promise<string> {
  const alg = key.publicJwk.alg ?? 'ES256';
  // jose signs a `crit` header only when told the extension is understood (the verifier is not told).
  const crit = Array.isArray(header.crit) ? Object.fromEntries((header.crit as string[]).map((name) => [name, true])) : undefined;
  return new SignJWT(claims).setProtectedHeader({ alg, ...header }).sign(key.privateKey, crit ? { crit } : {});
}

/**
 * The attacks any issuer must refuse, built from `key` (the issuer's own signing key) and `claims`
 * (an honest token's claims, valid now).
 */
async function attacksWith(key: TestKey, claims: (extra?: JWTPayload) => JWTPayload): Promise<Attack[]> {
  const now = nowSeconds();
  const honest = await signToken(key, claims());
  const attacker = await makeKey(key.publicJwk.alg);
  const [hsPem, hsJwk] = await hs256WithPublicKey(key, claims());
  return [
    ['expired beyond the leeway', await signToken(key, claims({ iat: now - 3600, exp: now - 120 })), 'expired'],
    ['not yet valid (nbf in the future)', await signToken(key, claims({ nbf: now + 300 })), 'not_yet_valid'],
    ['issued in the future (iat beyond the leeway)', await signToken(key, claims({ iat: now + 3600, exp: now + 7200 })), 'not_yet_valid'],
    ['wrong issuer', await signToken(key, claims({ iss: 'https://evil.example.com/realms/forge' })), 'wrong_issuer'],
    ['wrong audience', await signToken(key, claims({ aud: 'another-service' })), 'wrong_audience'],
    ['no exp', await signToken(key, claims({ exp: undefined })), 'missing_claim'],
    ['no sub', await signToken(key, claims({ sub: undefined })), 'missing_claim'],
    ['alg none', unsecuredToken(claims()), 'algorithm_not_allowed'],
    ['alg none, signature kept', `${unsecuredToken(claims())}${honest.split('.')[2]}`, 'algorithm_not_allowed'],
    ['HS256 keyed with the public key (PEM)', hsPem!, 'algorithm_not_allowed'],
    ['HS256 keyed with the public key (JWK)', hsJwk!, 'algorithm_not_allowed'],
    ['unknown kid', await signToken(attacker, claims()), 'unknown_key'],
    ['kid with a path and SQL in it', await signToken(attacker, claims(), { kid: "../../../../etc/passwd' OR 1=1 --" }), 'unknown_key'],
    ['another key under the issuer\'s kid', await signToken(attacker, claims(), { kid: key.publicJwk.kid }), 'bad_signature'],
    ['payload tampered (roles raised), signature kept', withPayload(honest, (c) => ({ ...c, realm_access: { roles: ['operator', 'service-account'] } })), 'bad_signature'],
    ['payload tampered (exp extended), signature kept', withPayload(honest, (c) => ({ ...c, exp: now + 86_400 * 365 })), 'bad_signature'],
    ['signature tampered', tamper(honest), 'bad_signature'],
    ['signature stripped', honest.slice(0, honest.lastIndexOf('.') + 1), 'bad_signature'],
    ['own key embedded in the header (jwk)', await signWithHeader(attacker, claims(), { jwk: attacker.publicJwk, kid: key.publicJwk.kid }), 'bad_signature'],
    ['own key set named in the header (jku)', await signWithHeader(attacker, claims(), { jku: 'http://127.0.0.1:1/jwks.json', kid: attacker.publicJwk.kid }), 'unknown_key'],
    ['unknown critical header', await signWithHeader(key, claims(), { kid: key.publicJwk.kid, crit: ['forge-bypass'], 'forge-bypass': true }), 'malformed'],
    ['three dots of nothing', '..', 'malformed'],
    ['not base64', '%%%.%%%.%%%', 'malformed'],
    ['header is not JSON', `${base64url.encode('not json')}.${honest.split('.')[1]}.${honest.split('.')[2]}`, 'malformed'],
    ['16 KiB of junk', 'A'.repeat(16_384), 'malformed'],
  ];
}

/** Sends each attack as POST /v1/runs; every one is a 401 with its reason, and no row is written. */
async function expectAllRefused(app: FastifyInstance, attacks: Attack[], counts: () => Promise<Record<string, number>>): Promise<number> {
  const before = await counts();
  for (const [name, token, reason] of attacks) {
    const res = await app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${token}` }, payload: runBody() });
    const error = expectError(res, 401, 'authentication_required', name);
    expect(error.details, name).toMatchObject({ reason });
    expect(res.headers['www-authenticate'], name).toBe('Bearer');
  }
  expect(await counts()).toEqual(before);
  return attacks.length;
}

describe('JWT attacks on the dev issuer', () => {
  const s = apiSuite(postgresAdapter, {});
  let key: TestKey;
  const claims = (extra: JWTPayload = {}): JWTPayload => {
    const iat = nowSeconds();
    return { sub: 'mallory', iss: DEV_ISSUER, aud: DEV_AUDIENCE, iat, exp: iat + 600, realm_access: { roles: ['operator'] }, ...extra };
  };
  beforeAll(async () => {
    key = await keyFromJwk(JSON.parse(await readFile(devIssuerKeyPath(s.t.dataDir), 'utf8')) as JWK & { kid: string });
  });

  it('refuses every forged, stale or malformed token with 401 and its reason, writing nothing', async () => {
    const refused = await expectAllRefused(s.t.app, await attacksWith(key, claims), () => rowCounts(s.test.db));
    expect(refused).toBeGreaterThanOrEqual(25);
    // The control: the same claims, honestly signed, do create a run.
    const honest = await s.call('POST', '/v1/runs', await signToken(key, claims()), runBody());
    expect(honest.statusCode).toBe(201);
  });

  it('refuses malformed Authorization headers with 401 before looking at any token', async () => {
    const token = await signToken(key, claims());
    for (const [header, reason] of [
      [`Basic ${Buffer.from('admin:admin').toString('base64')}`, 'malformed_authorization_header'],
      [`Bearer ${token} ${token}`, 'malformed_authorization_header'],
      ['Bearer', 'malformed_authorization_header'],
      [`Token ${token}`, 'malformed_authorization_header'],
      ['', 'missing_token'],
    ] as const) {
      const res = await s.t.app.inject({ method: 'POST', url: '/v1/runs', headers: header === '' ? {} : { authorization: header }, payload: runBody() });
      expect(expectError(res, 401, 'authentication_required', header).details).toMatchObject({ reason });
    }
    expect((await rowCounts(s.test.db)).pipeline_runs).toBe(0);
  });
});

describe('JWT attacks on the OIDC verifier with a real issuer', () => {
  const s = apiSuite(postgresAdapter, {});
  let issuer: HeldKeyIssuer;
  let app: FastifyInstance;
  beforeAll(async () => {
    issuer = await startHeldKeyIssuer(['operator']);
    app = await buildApp({ ctx: s.t.ctx, verifier: createOidcVerifier({ issuer: issuer.issuer, audience: 'forge' }), bus: s.t.bus, rateLimits: 'off', logLevel: 'silent' });
  });
  afterAll(async () => {
    await app?.close();
    await issuer?.close();
  });
  const claims = (extra: JWTPayload = {}): JWTPayload => {
    const iat = nowSeconds();
    return { sub: 'mallory', iss: issuer.issuer, aud: 'forge', iat, exp: iat + 600, realm_access: { roles: ['operator'] }, ...extra };
  };

  it('accepts the issuer\'s real access token (the control), and refuses it once tampered', async () => {
    const real = await issuer.accessToken();
    const ok = await app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${real}` }, payload: runBody() });
    expect(ok.statusCode, ok.body).toBe(201);
    const before = await rowCounts(s.test.db);
    const [hsPem] = await hs256WithPublicKey(issuer.key, JSON.parse(new TextDecoder().decode(base64url.decode(real.split('.')[1]!))) as JWTPayload);
    await expectAllRefused(app, [
      ['real token, roles raised', withPayload(real, (c) => ({ ...c, realm_access: { roles: ['operator', 'service-account'] } })), 'bad_signature'],
      ['real token, signature tampered', tamper(real), 'bad_signature'],
      ['real claims re-signed HS256 with the issuer\'s public key', hsPem!, 'algorithm_not_allowed'],
    ], () => rowCounts(s.test.db));
    expect(await rowCounts(s.test.db)).toEqual(before);
  });

  it('refuses every forged, stale or malformed token with 401 and its reason, writing nothing', async () => {
    await expectAllRefused(app, await attacksWith(issuer.key, claims), () => rowCounts(s.test.db));
    const honest = await app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${await signToken(issuer.key, claims())}` }, payload: runBody() });
    expect(honest.statusCode).toBe(201);
  });

  it('refuses a dev-issuer token: a server on a real issuer trusts no other key', async () => {
    const dev = await s.t.token('mallory', ['operator']);
    const res = await app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${dev}` }, payload: runBody() });
    expectError(res, 401, 'authentication_required');
    expect((await rowCounts(s.test.db)).pipeline_runs).toBe(0);
  });
});

describe('a platform token from the GitHub Actions exchange acts for its repository only', () => {
  const s = apiSuite(postgresAdapter, { admin: ['admin', ['operator', 'service-account']] });
  let github: Awaited<ReturnType<typeof startGitHubIssuer>>;
  let app: FastifyInstance;
  const AUDIENCE = 'https://forge.test';
  beforeAll(async () => {
    github = await startGitHubIssuer();
    app = await buildApp({
      ctx: s.t.ctx, verifier: s.t.issuer.verifier, bus: s.t.bus, rateLimits: 'off', logLevel: 'silent',
      github: {
        webhookSecret: undefined, registeredRepositories: ['acme/shop', 'acme/other'], signPlatformToken: devIssuerSigner(s.t.issuer),
        oidc: { issuer: github.issuer, audience: AUDIENCE },
      },
    });
  });
  afterAll(async () => {
    await app?.close();
    await github?.close();
  });

  async function platformToken(repository: string): Promise<string> {
    const iat = nowSeconds();
    const actions = await signToken(github.key, {
      iss: github.issuer, aud: AUDIENCE, sub: `repo:${repository}:ref:refs/heads/main`, iat, nbf: iat - 5, exp: iat + 300,
      repository, repository_owner: repository.split('/')[0], ref: 'refs/heads/main', sha: sha(), workflow: 'ci', run_id: '7',
    });
    const res = await app.inject({ method: 'POST', url: '/v1/auth/github', payload: { token: actions, audience: AUDIENCE } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ token: string }>().token;
  }
  const as = (token: string, method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });

  it('creates runs, releases and release builds for repository A, and none for repository B', async () => {
    const tokenA = await platformToken('acme/shop');
    const commit = sha();
    expect((await as(tokenA, 'POST', '/v1/runs', { repository: 'acme/shop', branch: 'main', commit_sha: commit, trigger_type: 'push', triggered_by: 'octocat' })).statusCode).toBe(201);
    const before = await rowCounts(s.test.db);

    const attempts: [string, 'POST', string, object][] = [
      ['run for B', 'POST', '/v1/runs', { repository: 'acme/other', branch: 'main', commit_sha: sha(), trigger_type: 'push' }],
      ['run for B, case changed', 'POST', '/v1/runs', { repository: 'ACME/Other', branch: 'main', commit_sha: sha(), trigger_type: 'push' }],
      ['release for B', 'POST', '/v1/releases', { repository: 'acme/other', project: 'api', commit_sha: sha(), artifacts: [] }],
      ['release build for B', 'POST', '/v1/release-builds', { repository: 'acme/other', project: 'api', commit_sha: sha() }],
    ];
    for (const [what, method, url, payload] of attempts) {
      const error = expectError(await as(tokenA, method, url, payload), 403, 'permission_denied', what);
      expect(error.details, what).toMatchObject({ token_repository: 'acme/shop' });
    }
    expect(await rowCounts(s.test.db)).toEqual(before);
  });

  it('cannot retry a run or rebuild a release of repository B by its id', async () => {
    const admin = s.tokens.admin!;
    const run = await s.call('POST', '/v1/runs', admin, { repository: 'acme/other', branch: 'main', commit_sha: sha(), trigger_type: 'push' });
    const runId = run.json<{ id: string }>().id;
    await s.call('DELETE', `/v1/runs/${runId}`, admin);
    const release = await s.call('POST', '/v1/releases', admin, { repository: 'acme/other', project: 'api', commit_sha: sha(), artifacts: [] });
    expect(release.statusCode).toBe(201);
    const before = await rowCounts(s.test.db);
    const tokenA = await platformToken('acme/shop');
    expectError(await as(tokenA, 'POST', `/v1/runs/${runId}/retry`), 403, 'permission_denied', 'retry B');
    expectError(await as(tokenA, 'POST', '/v1/release-builds', { release_id: release.json<{ id: string }>().id }), 403, 'permission_denied', 'rebuild B');
    expect(await rowCounts(s.test.db)).toEqual(before);
  });

  it('does not carry the platform\'s own service-account powers: no status reports, no deployments, no cancels', async () => {
    const tokenA = await platformToken('acme/shop');
    const before = await rowCounts(s.test.db);
    for (const [what, method, url, payload] of [
      ['task status', 'PUT', `/v1/tasks/${uuid()}/status`, { status: 'success' }],
      ['step status', 'PUT', `/v1/steps/${uuid()}/status`, { status: 'success', exit_code: 0 }],
      ['task claim', 'POST', `/v1/tasks/${uuid()}/claim`, undefined],
      ['stage jobs (Argo dispatcher pods)', 'POST', `/v1/runs/${uuid()}/jobs`, { stage: 'ci' }],
      ['job reply (Argo dispatcher pods)', 'POST', '/v1/job-replies', { job_id: uuid(), type: 'ci', run_id: uuid(), run_attempt: 1, ok: true, delivery: 1 }],
      ['deployment', 'POST', '/v1/deployments', { release_id: uuid(), environment: 'production' }],
      ['cancel', 'DELETE', `/v1/runs/${uuid()}`, undefined],
    ] as const) {
      expectError(await as(tokenA, method, url, payload), 403, 'permission_denied', what);
    }
    expect(await rowCounts(s.test.db)).toEqual(before);
    const me = await app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${tokenA}` } });
    expect(me.json()).toMatchObject({ subject: 'repo:acme/shop', permissions: ['read', 'runs:create', 'releases:create'] });
  });

  it('refuses a token whose repository claim is not a repository name: scoping fails closed', async () => {
    const key = await keyFromJwk(JSON.parse(await readFile(devIssuerKeyPath(s.t.dataDir), 'utf8')) as JWK & { kid: string });
    const iat = nowSeconds();
    for (const claim of ['', 42, ['acme/shop', 'acme/other'], 'acme/*', null]) {
      const token = await signToken(key, { sub: 'repo:x', iss: DEV_ISSUER, aud: DEV_AUDIENCE, iat, exp: iat + 600, realm_access: { roles: ['service-account'] }, [REPOSITORY_CLAIM]: claim });
      const error = expectError(await as(token, 'POST', '/v1/runs', runBody()), 401, 'authentication_required', JSON.stringify(claim));
      expect(error.details).toMatchObject({ reason: 'invalid_claims' });
    }
    expect((await rowCounts(s.test.db)).pipeline_runs).toBe(0);
  });
});

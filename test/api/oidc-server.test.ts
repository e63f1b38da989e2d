/** `forge server` with FORGE_OIDC_ISSUER: real OIDC tokens end to end, and no dev issuer. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { FORGE_API, OTHER_API, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.ts';
import { sha } from '../helpers/app.ts';

describe('server with an OIDC issuer', () => {
  let issuer: TestIssuer;
  let server: RunningServer;
  let dataDir: string;

  beforeAll(async () => {
    issuer = await startIssuer();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-oidc-'));
    server = await startServer(parseServerSettings({ port: '0', dataDir, logLevel: 'silent', rateLimits: 'off' }, {
      FORGE_OIDC_ISSUER: issuer.issuer, FORGE_OIDC_AUDIENCE: 'forge',
      // Identity only: in-process workers would need a service token from this issuer.
      FORGE_WORKERS: 'none',
    }));
  });
  afterAll(async () => {
    await server?.close();
    await issuer?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('accepts a Keycloak-shaped token: realm and client roles, preferred_username as the actor', async () => {
    expect(server.devIssuer).toBeUndefined();
    const token = await issuer.accessToken(FORGE_API);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers, body: JSON.stringify({ repository: 'acme/oidc', branch: 'main', commit_sha: sha(), trigger_type: 'push' }) });
    expect(created.status).toBe(201);
    const run = await (await fetch(`${server.url}/v1/runs/${((await created.json()) as { id: string }).id}`, { headers })).json() as { triggered_by: string };
    expect(run.triggered_by).toBe('ci-bot-user');
    // realm role developer may create runs; the token has no operator role in the forge client.
    const internal = await fetch(`${server.url}/v1/tasks/8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11/status`, { method: 'PUT', headers, body: JSON.stringify({ status: 'running' }) });
    expect(internal.status).toBe(403);
  });

  it('refuses a token for another audience, and a dev-issuer-style token', async () => {
    const other = await issuer.accessToken(OTHER_API);
    const res = await fetch(`${server.url}/v1/runs`, { headers: { authorization: `Bearer ${other}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('authentication_required');
    // With a real issuer configured, the embedded dev issuer's tokens mean nothing.
    const dev = await (await openDevIssuer(dataDir)).sign({ sub: 'mallory', roles: ['operator'] });
    expect((await fetch(`${server.url}/v1/runs`, { headers: { authorization: `Bearer ${dev}` } })).status).toBe(401);
  });

  it('refuses to start in-process workers without a service token for them, saying which settings give one', async () => {
    const other = mkdtempSync(join(tmpdir(), 'forge-oidc-'));
    try {
      await expect(startServer(parseServerSettings({ port: '0', dataDir: other, logLevel: 'silent' }, { FORGE_OIDC_ISSUER: issuer.issuer })))
        .rejects.toThrow(/workers need a service-account token .*FORGE_WORKER_TOKEN.*FORGE_OIDC_TOKEN_URL/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

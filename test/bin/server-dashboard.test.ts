/**
 * `forge server` and the dashboard (beyond the seed), composed by the real composition root: the
 * dashboard is served at /, the server prints where, and with the dev issuer a dev-only login link
 * whose token works; with an OIDC issuer the dashboard is told how to log in, and no link is printed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_WEB_ROOT, startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';

const INDEX = '<!doctype html><title>Forge</title><div id="root"></div>';

describe('forge server serves the dashboard', () => {
  const dirs: string[] = [];
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const server of servers) await server.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>): Promise<{ running: RunningServer; printed: string[] }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'forge-server-web-'));
    dirs.push(dataDir);
    const printed: string[] = [];
    const settings = parseServerSettings({}, { FORGE_DATA_DIR: dataDir, FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_WORKERS: 'none', ...env });
    const running = await startServer(settings, { announce: (line) => printed.push(line) });
    servers.push(running);
    await new Promise((resolve) => setImmediate(resolve));
    return { running, printed };
  }

  it('with the dev issuer: prints the dashboard URL and a dev-only login link whose 12 h token signs in as dev', async () => {
    const site = mkdtempSync(join(tmpdir(), 'forge-site-'));
    dirs.push(site);
    mkdirSync(join(site, 'assets'));
    writeFileSync(join(site, 'index.html'), INDEX);
    const { running, printed } = await start({ FORGE_WEB_ROOT: site });
    expect(printed[0]).toBe(`  dashboard: ${running.url}/`);
    expect(printed[1]).toMatch(/^ {2}DEV-ONLY login link \(dev issuer; .*\): http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(printed).toHaveLength(2);
    expect(running.dashboard).toMatchObject({ url: `${running.url}/`, root: site, built: true });

    const page = await fetch(`${running.url}/runs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toBe(INDEX);
    expect(await (await fetch(`${running.url}/v1/auth/config`)).json()).toEqual({ mode: 'dev', issuer: null, client_id: null, scopes: 'openid profile', resource: null });

    const token = new URL(running.dashboard.devLoginUrl!).hash.replace(/^#token=/, '');
    const claims = decodeJwt(token);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(12 * 3600);
    const me = await fetch(`${running.url}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(await me.json()).toMatchObject({ subject: 'dev', username: 'dev', roles: ['developer', 'approver', 'operator'] });
  }, 60_000);

  it('with an OIDC issuer: tells the dashboard the issuer and client, prints no login link, and says when the dashboard is not built', async () => {
    const missing = join(tmpdir(), `forge-no-site-${process.pid}`);
    const { running, printed } = await start({
      FORGE_OIDC_ISSUER: 'https://id.example.com/realms/forge', FORGE_WEB_ROOT: missing,
      FORGE_UI_CLIENT_ID: 'forge-dashboard', FORGE_UI_SCOPES: 'openid profile email', FORGE_UI_RESOURCE: 'https://forge.example.com',
    });
    expect(printed).toEqual([`  dashboard: ${running.url}/   (not built in ${missing}: run \`npm run build:web\`)`]);
    expect(running.dashboard.devLoginUrl).toBeUndefined();
    expect(await (await fetch(`${running.url}/v1/auth/config`)).json()).toEqual({
      mode: 'oidc', issuer: 'https://id.example.com/realms/forge', client_id: 'forge-dashboard', scopes: 'openid profile email', resource: 'https://forge.example.com',
    });
    const page = await fetch(`${running.url}/`);
    expect(page.status).toBe(503);
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self' https://id.example.com;");
    expect(await page.text()).toContain('npm run build:web');
  }, 60_000);

  it('serves dist/web of the package unless FORGE_WEB_ROOT says otherwise', () => {
    expect(PACKAGE_WEB_ROOT).toBe(fileURLToPath(new URL('../../dist/web', import.meta.url)));
    expect(parseServerSettings({}, {}).webRoot).toBeUndefined();
  });
});

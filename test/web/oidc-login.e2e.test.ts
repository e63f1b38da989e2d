/**
 * The dashboard's OIDC sign-in end to end, in headless Chromium (Debian's, driven by playwright-core):
 * a real OpenID provider (oidc-provider, test/helpers/oidc-code-issuer.ts) and the real server
 * (startServer on embedded defaults, FORGE_OIDC_ISSUER set, no in-process workers: this needs only
 * sign-in and /v1 reads).
 *
 *   /runs → "Sign in with SSO" → the provider's login page → olga → back at /login/callback
 *   (authorization code + PKCE S256, the resource indicator for the Forge audience) → /runs signed
 *   in as olga (operator), /v1 answering her access token
 *   → a callback whose state is not the one this tab sent: refused, nothing stored
 *   → the refresh path: the browser's clock moved past the refresh threshold, the next /v1 call
 *   goes with a token from the refresh grant.
 *
 * Screenshots: test-results/dashboard/oidc-*.png.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { chromiumMissing, launchBrowser, screenshot } from '../helpers/browser.ts';
import { DASHBOARD_CLIENT, FORGE_AUDIENCE, FORGE_RESOURCE, startCodeIssuer, type CodeIssuer } from '../helpers/oidc-code-issuer.ts';
import { ROOT } from '../helpers/web.ts';

/** Forge access tokens live 40 s: the dashboard refreshes them in their last 30 s. */
const ACCESS_TOKEN_TTL = 40;

interface ApiCall { path: string; token: string | undefined; status: number }

describe.skipIf(chromiumMissing)('the dashboard signs in at a real OpenID provider (code + PKCE)', () => {
  let dir: string;
  let issuer: CodeIssuer;
  let running: RunningServer;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'forge-e2e-oidc-'));
    issuer = await startCodeIssuer({ accounts: { olga: ['operator'] }, accessTokenTtl: ACCESS_TOKEN_TTL });
    const settings = parseServerSettings({}, {
      FORGE_DATA_DIR: join(dir, 'data'), FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_RATE_LIMITS: 'off',
      FORGE_WEB_ROOT: join(ROOT, 'dist', 'web'), FORGE_WORKERS: 'none',
      FORGE_OIDC_ISSUER: issuer.issuer, FORGE_OIDC_AUDIENCE: FORGE_AUDIENCE,
      FORGE_UI_CLIENT_ID: DASHBOARD_CLIENT, FORGE_UI_RESOURCE: FORGE_RESOURCE,
    });
    running = await startServer(settings, { announce: false });
    issuer.registerDashboard(running.url);
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await running?.close();
    await issuer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Every /v1 call the page makes (but the public /v1/auth/config): its bearer token and answer. */
  const recordApiCalls = (page: Page): ApiCall[] => {
    const calls: ApiCall[] = [];
    page.on('response', (response) => {
      const url = new URL(response.url());
      if (url.origin !== new URL(running.url).origin || !url.pathname.startsWith('/v1/') || url.pathname === '/v1/auth/config') return;
      const auth = response.request().headers().authorization;
      calls.push({ path: url.pathname, token: auth?.replace(/^Bearer /, ''), status: response.status() });
    });
    return calls;
  };

  /** What the dashboard keeps in this page's storage (the test's tsconfig has no DOM types). */
  const stored = (page: Page) => page.evaluate(() => {
    type Storage = { getItem(key: string): string | null };
    const { localStorage: local, sessionStorage: session } = globalThis as unknown as { localStorage: Storage; sessionStorage: Storage };
    return { token: local.getItem('forge.token'), refresh: local.getItem('forge.refresh'), pkce: session.getItem('forge.pkce') };
  });

  /** From the dashboard's login page through the provider's login form; `shot` names the screenshots. */
  const signInAtIssuer = async (page: Page, shot?: string) => {
    await page.getByRole('button', { name: 'Sign in with SSO' }).click();
    await page.waitForURL((url) => url.origin === issuer.issuer);
    await page.locator('input[name="login"]').waitFor();
    if (shot) await screenshot(page, `${shot}-issuer-login`);
    await page.locator('input[name="login"]').fill('olga');
    await page.locator('input[name="password"]').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    // The dashboard is a first-party client: no consent page (see the helper's loadExistingGrant).
    await page.waitForURL((url) => url.origin === new URL(running.url).origin && url.pathname === '/runs', { timeout: 15_000 });
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
  };

  const newPage = async (context?: BrowserContext): Promise<{ context: BrowserContext; page: Page }> => {
    const ctx = context ?? (await browser.newContext({ viewport: { width: 1280, height: 800 } }));
    const page = await ctx.newPage();
    // Each step fails on its own, well inside the test's time.
    page.setDefaultTimeout(10_000);
    return { context: ctx, page };
  };

  it('signs in with SSO: /runs → the provider → back on /runs as olga, /v1 answering her access token', async () => {
    const { context, page } = await newPage();
    const calls = recordApiCalls(page);
    await page.goto(`${running.url}/runs`);
    await page.getByRole('heading', { name: 'Sign in to Forge' }).waitFor();
    expect(await page.getByText(`Sign in at ${issuer.issuer}`).count()).toBe(1);
    await screenshot(page, 'oidc-01-login');

    await signInAtIssuer(page, 'oidc-02');
    expect(await page.locator('.user').textContent()).toContain('olga');
    expect(await page.locator('.user .roles').textContent()).toBe('operator');
    expect(await page.locator('.error-banner').count()).toBe(0);
    // The callback's code and state are gone from the address bar (and the history entry).
    expect(new URL(page.url()).search).toBe('');
    // The list itself came from /v1/runs (no runs on this server yet).
    await page.getByText('No runs match.').waitFor();
    await screenshot(page, 'oidc-03-signed-in');

    const saved = await stored(page);
    expect(saved.pkce).toBeNull();
    expect(saved.refresh).toBeTruthy();
    const claims = decodeJwt(saved.token ?? '');
    expect(claims).toMatchObject({ iss: issuer.issuer, aud: FORGE_AUDIENCE, sub: 'olga', preferred_username: 'olga', client_id: DASHBOARD_CLIENT });
    expect((claims.realm_access as { roles: string[] }).roles).toContain('operator');
    expect(issuer.grants).toContain('authorization_code');
    // /v1/me and /v1/runs went with that very token and were answered.
    const me = calls.find((c) => c.path === '/v1/me');
    expect(me).toMatchObject({ token: saved.token, status: 200 });
    expect(calls.find((c) => c.path === '/v1/runs')).toMatchObject({ token: saved.token, status: 200 });
    expect(calls.filter((c) => c.status >= 400)).toEqual([]);
    await context.close();
  });

  it('refuses a callback whose state is not the one this tab sent, stores no token, and signs in afterwards', async () => {
    const { context, page } = await newPage();
    await page.goto(`${running.url}/runs`);
    await page.getByRole('button', { name: 'Sign in with SSO' }).click();
    await page.waitForURL((url) => url.origin === issuer.issuer);
    // A forged redirect back (right issuer, wrong state) in the tab that started the login.
    const forged = new URL('/login/callback', running.url);
    forged.search = new URLSearchParams({ code: 'x', state: 'wrong', iss: issuer.issuer }).toString();
    const before = issuer.grants.length;
    await page.goto(forged.href);
    const notice = page.getByRole('status');
    await notice.waitFor();
    expect(await notice.textContent()).toMatch(/^Sign-in failed: .*state/i);
    expect(await page.getByRole('heading', { name: 'Sign in to Forge' }).count()).toBe(1);
    // Off the spent callback, so that signing in again does not come back to it.
    expect(new URL(page.url()).pathname).toBe('/login');
    const saved = await stored(page);
    expect(saved).toEqual({ token: null, refresh: null, pkce: null });
    // The code was never sent to the token endpoint.
    expect(issuer.grants.length).toBe(before);
    await screenshot(page, 'oidc-04-state-mismatch');

    // Signing in again from there lands on the app, not on the spent callback.
    await signInAtIssuer(page);
    expect(await page.locator('.user').textContent()).toContain('olga');
    await context.close();
  });

  it('refreshes the access token near its expiry and the next /v1 call goes with the new one', async () => {
    const { context, page } = await newPage();
    // The page's clock runs with real time until the test moves it.
    await context.clock.install();
    const calls = recordApiCalls(page);
    await page.goto(`${running.url}/runs`);
    await signInAtIssuer(page);
    const first = (await stored(page)).token ?? '';
    const refreshesBefore = issuer.grants.filter((g) => g === 'refresh_token').length;
    expect(calls.every((c) => c.token === first)).toBe(true);

    // 15 s on: the token (40 s) has less than the 30 s left at which the dashboard refreshes.
    await page.clock.setSystemTime(Date.now() + 15_000);
    calls.length = 0;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Releases' }).click();
    await page.getByRole('heading', { name: /^Releases/ }).waitFor();
    await expect.poll(async () => (await stored(page)).token, { timeout: 10_000 }).not.toBe(first);
    expect(issuer.grants.filter((g) => g === 'refresh_token').length).toBeGreaterThan(refreshesBefore);
    // The page's reads may still be on their way when the stored token changes: wait for one to answer.
    await expect.poll(() => calls.some((c) => c.path === '/v1/projects'), { timeout: 10_000 }).toBe(true);
    expect(calls.every((c) => c.token !== first && c.status === 200)).toBe(true);

    // The clock back to real time: the new token is fresh and used as it is.
    await page.clock.setSystemTime(Date.now());
    const refreshed = (await stored(page)).token ?? '';
    const refreshes = issuer.grants.length;
    calls.length = 0;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    await expect.poll(() => calls.find((c) => c.path === '/v1/runs')).toMatchObject({ token: refreshed, status: 200 });
    expect(issuer.grants.length).toBe(refreshes);
    const claims = decodeJwt(refreshed);
    expect(claims).toMatchObject({ iss: issuer.issuer, aud: FORGE_AUDIENCE, sub: 'olga' });
    expect(await page.locator('.user').textContent()).toContain('olga');
    expect(await page.locator('.error-banner').count()).toBe(0);
    await screenshot(page, 'oidc-05-refreshed');
    await context.close();
  });

  it('refreshes once at a time across tabs, so a rotating issuer never sees a refresh token used twice', async () => {
    const { context, page: first } = await newPage();
    await context.clock.install();
    await first.goto(`${running.url}/runs`);
    await signInAtIssuer(first);
    // A second tab of the same browser: signed in through the shared localStorage.
    const { page: second } = await newPage(context);
    await second.goto(`${running.url}/runs`);
    await second.getByRole('heading', { name: 'Runs' }).waitFor();
    const token = (await stored(first)).token;
    const refreshes = issuer.grants.filter((g) => g === 'refresh_token').length;

    // Both tabs past the refresh threshold, both calling /v1 at once; the token endpoint slow enough
    // that two refreshes sent together would overlap there.
    issuer.tokenDelayMs = 500;
    onTestFinished(() => { issuer.tokenDelayMs = 0; });
    await context.clock.setSystemTime(Date.now() + 15_000);
    const releases = (page: Page) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Releases' }).click();
    await Promise.all([releases(first), releases(second)]);
    for (const page of [first, second]) await page.getByRole('heading', { name: /^Releases/ }).waitFor();
    await expect.poll(async () => (await stored(first)).token).not.toBe(token);
    // oidc-provider rotates public clients' refresh tokens and ends the whole grant when one is reused.
    expect(issuer.grantErrors).toEqual([]);
    expect(issuer.grants.filter((g) => g === 'refresh_token').length).toBeGreaterThan(refreshes);
    for (const page of [first, second]) {
      expect(await page.getByRole('heading', { name: 'Sign in to Forge' }).count()).toBe(0);
      expect(await page.locator('.error-banner').count()).toBe(0);
    }
    expect((await stored(second)).refresh).toBeTruthy();
    await context.close();
  });
});

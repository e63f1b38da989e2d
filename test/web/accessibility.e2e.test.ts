/**
 * The dashboard for people who do not use a mouse or a big screen (issue 7): axe-core's WCAG 2 A/AA
 * rules on every page, keyboard-only navigation (skip link, links, the focused log's Home/End), no
 * horizontal scrolling on a 1366×768 laptop, and no layout jumps (cumulative layout shift) while a
 * run's live updates arrive. Real server on embedded defaults, Debian Chromium via playwright-core.
 * (These contexts bypass the CSP only so axe's script can be injected; the CSP itself is exercised
 * by dashboard.e2e.test.ts.)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { chromiumMissing, launchBrowser, screenshot } from '../helpers/browser.ts';
import { finishedRun } from '../helpers/runs.ts';
import { ROOT } from '../helpers/web.ts';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const LAPTOP = { width: 1366, height: 768 };

interface AxeViolation { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }

describe.skipIf(chromiumMissing)('the dashboard, accessible and steady on a laptop screen', () => {
  let dir: string;
  let running: RunningServer;
  let browser: Browser;
  let token = '';
  let runId = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'forge-e2e-a11y-'));
    running = await startServer(parseServerSettings({ example: true }, {
      FORGE_DATA_DIR: join(dir, 'data'), FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_RATE_LIMITS: 'off', FORGE_WEB_ROOT: join(ROOT, 'dist', 'web'),
    }), { announce: false });
    runId = running.exampleRun!.id;
    expect((await finishedRun(running.ctx, runId, 150_000)).status).toBe('success');
    token = await running.devIssuer!.sign({ sub: 'olga', roles: ['operator'] });
    browser = await launchBrowser();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await running?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const signedInPage = async (): Promise<Page> => {
    const context = await browser.newContext({ viewport: LAPTOP, bypassCSP: true });
    await context.addInitScript({ content: `localStorage.setItem('forge.token', ${JSON.stringify(token)})` });
    return context.newPage();
  };
  const axe = async (page: Page): Promise<AxeViolation[]> => {
    await page.addScriptTag({ content: AXE });
    const result = await page.evaluate(`axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })`) as { violations: AxeViolation[] };
    return result.violations;
  };
  const noHorizontalScroll = (page: Page) => page.evaluate('document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth') as Promise<boolean>;

  it('passes axe-core\'s WCAG 2.1 A/AA rules on every page, without horizontal scrolling at 1366×768', async () => {
    const tree = await finishedRun(running.ctx, runId);
    const step = tree.phases[0]!.tasks[0]!.steps[0]!;
    const pages: [string, string, (page: Page) => Promise<unknown>][] = [
      ['runs', '/runs', (p) => p.locator(`tr[data-run-id="${runId}"]`).waitFor()],
      ['run', `/runs/${runId}`, (p) => p.locator('.task .status').first().waitFor()],
      ['log', `/runs/${runId}/steps/${step.id}`, (p) => p.locator('.log-stats', { hasText: 'lines' }).waitFor()],
      ['releases', '/releases', (p) => p.locator('tr[data-release="1"]').waitFor()],
      ['environments', '/environments?repository=forge-examples%2Fmonorepo&project=api&environment=production', (p) => p.locator('.target-panel h2').waitFor()],
    ];
    const report: string[] = [];
    for (const [name, path, ready] of pages) {
      const page = await signedInPage();
      await page.goto(`${running.url}${path}`);
      await ready(page);
      const violations = await axe(page);
      for (const v of violations) report.push(`${name}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
      expect(await noHorizontalScroll(page), `${name} scrolls sideways at 1366 px`).toBe(true);
      await screenshot(page, `a11y-${name}-1366x768`);
      await page.context().close();
    }
    // The sign-in page too.
    const context = await browser.newContext({ viewport: LAPTOP, bypassCSP: true });
    const login = await context.newPage();
    await login.goto(`${running.url}/runs`);
    await login.getByLabel('Access token').waitFor();
    for (const v of await axe(login)) report.push(`login: ${v.id} (${v.impact}) ${v.help}`);
    await context.close();
    expect(report).toEqual([]);
  }, 120_000);

  it('works from the keyboard: skip link, a run opened with Enter, Home/End in the focused log', async () => {
    const page = await signedInPage();
    await page.goto(`${running.url}/runs`);
    await page.locator(`tr[data-run-id="${runId}"]`).waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement.id')).toBe('main');
    // Tab to the run's first link and open it.
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      const label = await page.evaluate('document.activeElement.getAttribute("aria-label") || ""') as string;
      if (label.startsWith('Run ')) break;
    }
    await page.keyboard.press('Enter');
    await page.locator('.run-head h1 .status[data-status="success"]').waitFor();
    // Tab to a step and open its log with Enter; the log takes focus with Tab and scrolls with End.
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate('document.activeElement.hasAttribute("data-step")')) break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('region', { name: 'Log output' }).waitFor();
    await page.getByRole('region', { name: 'Log output' }).focus();
    await page.keyboard.press('End');
    expect(await page.evaluate(`(() => { const el = document.querySelector('.log-viewport'); return el.scrollTop + el.clientHeight >= el.scrollHeight - 2; })()`)).toBe(true);
    await page.context().close();
  }, 60_000);

  it('does not jump while a run\'s live updates arrive (cumulative layout shift < 0.1)', async () => {
    const source = join(dir, 'src', 'steady');
    mkdirSync(join(source, '.forge'), { recursive: true });
    for (const project of ['one', 'two', 'three']) {
      mkdirSync(join(source, project, '.forge'), { recursive: true });
      writeFileSync(join(source, project, '.forge', 'project.cue'), `package project\nname: "${project}"\nphases: {\n  check: steps: [{ name: "lint", action: "script", run: "sleep 1; echo linted" }]\n  test: steps: [{ name: "unit", action: "script", run: "for i in 1 2 3; do echo test $i; sleep 0.5; done" }]\n}\n`);
    }
    writeFileSync(join(source, '.forge', 'repo.cue'), 'package repo\nforgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: {\n  check: { group: 1 }\n  test: { group: 2, required: true }\n}\n');
    const { commitSha } = await seedRepository({ bareDir: join(dir, 'data', 'git', 'forge-tests', 'steady.git'), sourceDir: source, message: 'steady' });
    const page = await signedInPage();
    await page.goto(`${running.url}/runs`);
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    const created = await fetch(`${running.url}/v1/runs`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ repository: 'forge-tests/steady', branch: 'main', commit_sha: commitSha, trigger_type: 'manual' }),
    }).then((r) => r.json() as Promise<{ id: string }>);
    await page.goto(`${running.url}/runs/${created.id}`);
    await page.evaluate(`(() => {
      window.__cls = 0;
      new PerformanceObserver((list) => { for (const e of list.getEntries()) if (!e.hadRecentInput) window.__cls += e.value; })
        .observe({ type: 'layout-shift', buffered: true });
    })()`);
    await page.locator('.run-head h1 .status[data-status="success"]').waitFor({ timeout: 60_000 });
    const cls = await page.evaluate('window.__cls') as number;
    console.log(`cumulative layout shift while the run went live → success: ${cls.toFixed(4)}`);
    expect(cls).toBeLessThan(0.1);
    await page.context().close();
  }, 90_000);
});

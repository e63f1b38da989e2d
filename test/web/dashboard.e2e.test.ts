/**
 * The dashboard end to end (issue 7) in headless Chromium (Debian's, driven by playwright-core)
 * against a real server on embedded defaults: PGlite, in-process queue and workers, log files,
 * the OCI image layout, a bare GitOps repository and the dev issuer — `npm start` plus a policy
 * file whose production takes main's releases with one approval.
 *
 *   sign in with a pasted dev token → a pushed commit's run appears in the open list and reaches
 *   success on its page without reloading
 *   → open a 100,001-line log, jump to its end (button and keyboard), search it on the server,
 *   follow a #L link → cancel a running run and read the stopped marker → approve and deploy to
 *   production (a refusal first), deploy a second release, roll back → releases page.
 *
 * Screenshots: test-results/dashboard/*.png.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { chromiumMissing, launchBrowser, screenshot } from '../helpers/browser.ts';
import { eventually, finishedRun } from '../helpers/runs.ts';
import { ROOT } from '../helpers/web.ts';

const POLICIES = `environments:
  - name: dev
    allowed_triggers: [branch_push, tag, manual]
    allowed_branches: ["*"]
    auto_deploy: true
  - name: production
    allowed_triggers: [branch_push, tag, manual]
    allowed_branches: [main]
    requires_approval: true
    approvals_required: 1
`;

const REPO_CUE = `package repo
forgeVersion: "0.1.0"
tagging: strategy: "monorepo"
phases: test: { group: 1, required: true, timeout: "10m" }
`;
const projectCue = (name: string, run: string) => `package project
name: "${name}"
phases: test: steps: [{ name: "${name}-step", action: "script", run: ${JSON.stringify(run)} }]
`;
/** 100,000 green-tagged lines, then a failure: the log's 100,001st line is the worker's marker. */
const PRINT_SH = `awk 'BEGIN { for (i = 1; i <= 100000; i++) printf "\\033[32mok\\033[0m line %d of the big log\\n", i }'
exit 3
`;

const LINES = 100_001;

describe.skipIf(chromiumMissing)('the dashboard in Chromium, against a real server on embedded defaults', () => {
  let dir: string;
  let running: RunningServer;
  let browser: Browser;
  const tokens: Record<'olga' | 'bob' | 'vera', string> = { olga: '', bob: '', vera: '' };
  let exampleRunId = '';
  let secondRunId = '';

  const api = async <T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${running.url}${path}`, {
      method, headers: { authorization: `Bearer ${tokens.olga}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  };

  /** A repository of one project whose test step runs `run`, pushed to the data dir's git root. */
  const seed = async (repository: string, project: string, run: string, files: Record<string, string> = {}, repoCue = REPO_CUE) => {
    const source = join(dir, 'src', repository);
    mkdirSync(join(source, '.forge'), { recursive: true });
    mkdirSync(join(source, project, '.forge'), { recursive: true });
    writeFileSync(join(source, '.forge', 'repo.cue'), repoCue);
    writeFileSync(join(source, project, '.forge', 'project.cue'), projectCue(project, run));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(source, project, name), text);
    const { commitSha } = await seedRepository({ bareDir: join(dir, 'data', 'git', `${repository}.git`), sourceDir: source, message: `seed ${repository}` });
    return commitSha;
  };

  /** A fresh browser context signed in by pasting `who`'s token into the login form. */
  const signIn = async (who: keyof typeof tokens, path = '/runs'): Promise<{ context: BrowserContext; page: Page }> => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${running.url}${path}`);
    await page.getByLabel('Access token').fill(tokens[who]);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    return { context, page };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'forge-e2e-web-'));
    writeFileSync(join(dir, 'environments.yaml'), POLICIES);
    const settings = parseServerSettings({ example: true }, {
      FORGE_DATA_DIR: join(dir, 'data'), FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_RATE_LIMITS: 'off',
      FORGE_ENVIRONMENTS: join(dir, 'environments.yaml'), FORGE_WEB_ROOT: join(ROOT, 'dist', 'web'),
    });
    running = await startServer(settings, { announce: false });
    exampleRunId = running.exampleRun!.id;
    const issuer = running.devIssuer!;
    tokens.olga = await issuer.sign({ sub: 'olga', roles: ['operator'] });
    tokens.bob = await issuer.sign({ sub: 'bob', roles: ['approver'] });
    tokens.vera = await issuer.sign({ sub: 'vera', roles: [] });
    // Release 1 of api comes from the example run, before the browser opens.
    expect((await finishedRun(running.ctx, exampleRunId, 150_000)).status).toBe('success');
    browser = await launchBrowser();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await running?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs in with a pasted dev token and watches the example pipeline reach success live', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${running.url}/`);
    await page.getByRole('heading', { name: 'Sign in to Forge' }).waitFor();
    // Not a token: refused on the spot with what to paste instead.
    await page.getByLabel('Access token').fill('hello');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/not a token/);
    await screenshot(page, '01-login');
    await page.getByLabel('Access token').fill(tokens.olga);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    expect(await page.locator('.user').textContent()).toContain('olga');

    // The example run (finished before the browser opened) is in the list.
    const first = page.locator(`tr[data-run-id="${exampleRunId}"]`);
    await first.waitFor();
    expect(await first.locator('.status').getAttribute('data-status')).toBe('success');
    await page.evaluate(() => { (globalThis as unknown as { stillHere: boolean }).stillHere = true; });

    // A push of a second commit of the example monorepo: its run appears in the open list by itself.
    const source = join(dir, 'src', 'monorepo');
    cpSync(join(ROOT, 'examples', 'monorepo'), source, { recursive: true });
    writeFileSync(join(source, 'services', 'api', 'CHANGELOG.md'), 'second release\n');
    const { commitSha } = await seedRepository({ bareDir: join(dir, 'data', 'git', 'forge-examples', 'monorepo.git'), sourceDir: source, message: 'api: second release' });
    const second = await api<{ id: string }>('POST', '/v1/runs', { repository: 'forge-examples/monorepo', branch: 'main', commit_sha: commitSha, trigger_type: 'push' });
    expect(second.status).toBe(201);
    secondRunId = second.body.id;
    const row = page.locator(`tr[data-run-id="${secondRunId}"]`);
    await row.waitFor({ timeout: 15_000 });
    await screenshot(page, '02-runs');
    await row.getByRole('link').first().click();
    await page.locator('.run-head h1 .status').waitFor();
    const seen: string[] = [];
    const deadline = Date.now() + 150_000;
    for (;;) {
      const status = await page.locator('.run-head h1 .status').getAttribute('data-status');
      if (status && seen.at(-1) !== status) seen.push(status);
      if (status === 'success' || status === 'failed' || status === 'cancelled' || Date.now() > deadline) break;
      if (seen.length === 1 && status === 'running') await screenshot(page, '03-run-live');
      await page.waitForTimeout(100);
    }
    // Seen moving (pending/running first), then success, all on the same page: no reload.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.at(-1)).toBe('success');
    expect(await page.evaluate(() => (globalThis as unknown as { stillHere?: boolean }).stillHere)).toBe(true);
    // Every phase group, phase and task is shown with its final status; no step failed.
    await expect(page.getByRole('group', { name: 'Group 1' }).isVisible()).resolves.toBe(true);
    expect(await page.locator('.step.failing').count()).toBe(0);
    expect(await page.locator('.task .status[data-status="success"]').count()).toBeGreaterThanOrEqual(3);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    // The release phase: the api release build of this run, live too.
    await page.getByRole('group', { name: 'Release' }).locator('.status[data-status="success"]').first().waitFor({ timeout: 60_000 });
    await screenshot(page, '04-run-success');
    expect((await finishedRun(running.ctx, secondRunId)).status).toBe('success');
    await context.close();
  }, 180_000);

  it('opens a 100,001-line log at once, jumps to its end, searches it on the server and links to a line', async () => {
    const commit = await seed('forge-tests/biglog', 'biglog', 'sh print.sh', { 'print.sh': PRINT_SH });
    const created = await api<{ id: string }>('POST', '/v1/runs', { repository: 'forge-tests/biglog', branch: 'main', commit_sha: commit, trigger_type: 'manual' });
    expect(created.status).toBe(201);
    const runId = created.body.id;
    const tree = await finishedRun(running.ctx, runId);
    expect(tree.status).toBe('failed');
    const step = tree.phases[0]!.tasks[0]!.steps[0]!;

    const { context, page } = await signIn('olga', `/runs/${runId}`);
    // The failing step is marked, and the summary links to it.
    await page.locator('.step.failing').waitFor();
    await page.getByRole('link', { name: /biglog › test › biglog-step/ }).click();
    const viewer = page.getByRole('region', { name: 'Log output' });
    const started = Date.now();
    await expect.poll(() => viewer.getAttribute('data-lines'), { timeout: 20_000 }).toBe(String(LINES));
    await page.locator('.log-line[data-line="1"] .line-text', { hasText: 'line 1 of the big log' }).waitFor();
    const firstScreenMs = Date.now() - started;
    expect(await page.locator('.log-stats').textContent()).toContain('100,001 lines');
    // Virtual: only what is near the viewport is in the page.
    expect(await page.locator('.log-line').count()).toBeLessThan(300);
    // ANSI colour kept: "ok" is green, rendered as a span, not escape bytes.
    const ok = page.locator('.log-line[data-line="1"] .line-text span').first();
    expect(await ok.textContent()).toBe('ok');
    expect(await ok.evaluate((el) => (el as unknown as { style: { color: string } }).style.color)).toBe('rgb(74, 222, 128)');
    expect(await page.locator('.log-line[data-line="1"]').textContent()).not.toContain('\u001b');
    // The worker's final marker is announced above the log.
    await expect(page.locator('.log-final').textContent()).resolves.toMatch(/Failed:.*exit(ed with)? code 3/);
    await screenshot(page, '05-log-start');

    // Jump to the end with the button: the marker line and line 100,000 are on screen.
    await page.getByRole('button', { name: 'Jump to end' }).click();
    await page.locator(`.log-line[data-line="${LINES}"].log-marker`).waitFor();
    await page.locator('.log-line[data-line="100000"] .line-text', { hasText: 'line 100000 of the big log' }).waitFor();
    expect(await page.locator('.log-line').count()).toBeLessThan(300);
    await screenshot(page, '06-log-end');

    // Home and End from the keyboard on the focused log.
    await viewer.focus();
    await page.keyboard.press('Home');
    await page.locator('.log-line[data-line="1"] .line-text', { hasText: 'line 1 of' }).waitFor();
    await page.keyboard.press('End');
    await page.locator(`.log-line[data-line="${LINES}"]`).waitFor();

    // Server-side search: one match, scrolled to and highlighted.
    await page.getByRole('searchbox', { name: 'Search this log' }).fill('line 77777 of');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await expect.poll(() => page.locator('.match-count').textContent()).toBe('1 of 1 matches');
    const match = page.locator('.log-line[data-line="77777"]');
    await expect.poll(() => match.getAttribute('class')).toContain('highlight');
    await expect.poll(() => match.locator('.line-text').textContent()).toContain('line 77777 of the big log');
    expect(page.url()).toMatch(/#L77777$/);
    await screenshot(page, '07-log-search');

    // A link to a line opens the log there.
    const linkPage = await context.newPage();
    await linkPage.goto(`${running.url}/runs/${runId}/steps/${step.id}#L50000`);
    const linked = linkPage.locator('.log-line[data-line="50000"]');
    await expect.poll(() => linked.getAttribute('class'), { timeout: 20_000 }).toContain('highlight');
    await expect.poll(() => linked.locator('.line-text').textContent()).toContain('line 50000 of the big log');
    expect(await linked.isVisible()).toBe(true);
    await screenshot(linkPage, '08-log-line-link');
    console.log(`100,001-line log: first screen in ${firstScreenMs} ms`);
    await context.close();
  }, 120_000);

  it('cancels a running run from its page and shows the step\'s stopped marker', async () => {
    const commit = await seed('forge-tests/slow', 'slow', 'echo started; sleep 120');
    const created = await api<{ id: string }>('POST', '/v1/runs', { repository: 'forge-tests/slow', branch: 'main', commit_sha: commit, trigger_type: 'manual' });
    const runId = created.body.id;
    const { context, page } = await signIn('olga', `/runs/${runId}`);
    // Follow the step while it runs: its log says "started", live.
    const stepLink = page.getByRole('link', { name: /slow › test, running: step slow-step/ });
    await stepLink.waitFor({ timeout: 60_000 });
    await stepLink.click();
    await page.locator('.log-line .line-text', { hasText: 'started' }).waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await expect.poll(() => page.locator('.run-head h1 .status').getAttribute('data-status'), { timeout: 30_000 }).toBe('cancelled');
    await expect.poll(() => page.locator('.log-final').textContent(), { timeout: 20_000 }).toMatch(/Stopped:/);
    await page.locator('.log-line.log-marker', { hasText: '--- step stopped' }).waitFor();
    await screenshot(page, '09-run-cancelled');

    // The runs list filtered by status (the filter lives in the URL, so it survives a reload).
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
    await page.getByLabel('Status').selectOption('cancelled');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('tbody tr[data-run-id]').count()).toBe(1);
    expect(await page.locator(`tr[data-run-id="${runId}"]`).count()).toBe(1);
    expect(page.url()).toContain('status=cancelled');
    await page.reload();
    await page.locator(`tr[data-run-id="${runId}"]`).waitFor();
    expect(await page.locator('tbody tr[data-run-id]').count()).toBe(1);
    await context.close();
  }, 120_000);

  it('shows a timed-out step\'s marker as such', async () => {
    const commit = await seed('forge-tests/timeout', 'late', 'echo waiting; sleep 30', {}, REPO_CUE.replace('timeout: "10m"', 'timeout: "2s"'));
    const created = await api<{ id: string }>('POST', '/v1/runs', { repository: 'forge-tests/timeout', branch: 'main', commit_sha: commit, trigger_type: 'manual' });
    const tree = await finishedRun(running.ctx, created.body.id, 60_000);
    expect(tree.status).toBe('failed');
    const step = tree.phases[0]!.tasks[0]!.steps[0]!;
    const { context, page } = await signIn('olga', `/runs/${created.body.id}/steps/${step.id}`);
    await expect.poll(() => page.locator('.log-final').textContent(), { timeout: 20_000 }).toMatch(/^Timed out:.*timed out: phase test allows 2s/);
    await page.locator('.log-line.log-marker', { hasText: 'timed out' }).waitFor();
    await screenshot(page, '09b-step-timed-out');
    await context.close();
  }, 90_000);

  it('approves and deploys to production (a refusal first), deploys a second release and rolls back', async () => {
    // Release 1 of api came from the example run, release 2 from the second commit's run (first test).
    await eventually(() => api<{ releases: { release_number: number }[] }>('GET', '/v1/releases/forge-examples/monorepo/api'),
      (r) => r.body.releases.some((x) => x.release_number === 2), 60_000);

    const cell = (page: Page) => page.locator('.matrix a[data-cell="forge-examples/monorepo/api@production"]');
    const selectRelease = async (page: Page, n: number) => {
      const value = await page.locator('#release-select option').filter({ hasText: new RegExp(`^#${n} `) }).getAttribute('value');
      await page.getByLabel('Release', { exact: true }).selectOption(value!);
    };

    // A viewer sees the matrix but no actions.
    {
      const { context, page } = await signIn('vera', '/environments');
      await cell(page).click();
      await page.getByRole('heading', { name: /api in production/ }).waitFor();
      expect(await page.getByRole('button', { name: /^Deploy/ }).count()).toBe(0);
      expect(await page.getByRole('button', { name: /^Approve/ }).count()).toBe(0);
      expect(await page.locator('.target-panel').textContent()).toContain('needs deployments:create:any');
      await context.close();
    }

    const olga = await signIn('olga', '/environments');
    await cell(olga.page).click();
    await olga.page.getByRole('heading', { name: /api in production/ }).waitFor();
    // dev has release 2 (auto-deploy); production has nothing yet.
    await expect.poll(() => olga.page.locator('.matrix a[data-cell="forge-examples/monorepo/api@dev"]').getAttribute('data-release')).toBe('2');
    // Deploying release 1 without an approval: refused, and the page says why.
    await selectRelease(olga.page, 1);
    await olga.page.getByRole('button', { name: 'Deploy #1 to production' }).click();
    const refusal = olga.page.locator('.error-banner');
    await refusal.waitFor();
    expect(await refusal.textContent()).toMatch(/Deploy refused.*needs 1 active approval.*it has 0/);
    expect(await refusal.getAttribute('role')).toBe('alert');
    await screenshot(olga.page, '10-deploy-refused');

    // bob approves release 1 with a justification.
    const bob = await signIn('bob', '/environments');
    await cell(bob.page).click();
    await selectRelease(bob.page, 1);
    await bob.page.getByLabel('Justification').fill('smoke tests passed on dev');
    await bob.page.getByRole('button', { name: 'Approve #1' }).click();
    await bob.page.getByRole('status').filter({ hasText: 'Approved for production.' }).waitFor();
    await bob.page.locator('.approvals li', { hasText: 'bob' }).waitFor();
    expect(await bob.page.getByRole('button', { name: /^Deploy/ }).count()).toBe(0);
    await screenshot(bob.page, '11-approved');

    // olga deploys release 1: the pointer commit lands and the matrix shows who deployed and approved it.
    await selectRelease(olga.page, 1);
    await olga.page.getByRole('button', { name: 'Deploy #1 to production' }).click();
    await olga.page.getByRole('status').filter({ hasText: 'Release #1 is active in production' }).waitFor({ timeout: 30_000 });
    await expect.poll(() => cell(olga.page).getAttribute('data-release')).toBe('1');
    await expect.poll(() => cell(olga.page).textContent()).toMatch(/#1.*by olga.*approved: bob/);
    await screenshot(olga.page, '12-deployed-1');

    // bob approves release 2 (his page follows the live events), olga deploys it.
    await selectRelease(bob.page, 2);
    await bob.page.getByLabel('Justification').fill('release 2 verified');
    await bob.page.getByRole('button', { name: 'Approve #2' }).click();
    await bob.page.getByRole('status').filter({ hasText: 'Approved for production.' }).waitFor();
    await selectRelease(olga.page, 2);
    await olga.page.getByRole('button', { name: 'Deploy #2 to production' }).click();
    await olga.page.getByRole('status').filter({ hasText: 'Release #2 is active in production' }).waitFor({ timeout: 30_000 });
    await expect.poll(() => cell(olga.page).getAttribute('data-release')).toBe('2');
    // bob's page saw it too, without a reload.
    await expect.poll(() => cell(bob.page).getAttribute('data-release'), { timeout: 20_000 }).toBe('2');

    // Roll back: a confirmation, then release 1 is active again, recorded as a rollback.
    olga.page.once('dialog', (dialog) => void dialog.accept());
    await olga.page.getByRole('button', { name: 'Roll back to #1' }).click();
    await olga.page.getByRole('status').filter({ hasText: 'Release #1 is active in production' }).waitFor({ timeout: 30_000 });
    await expect.poll(() => cell(olga.page).getAttribute('data-release')).toBe('1');
    await expect.poll(() => cell(olga.page).textContent()).toContain('rollback');
    await expect.poll(() => olga.page.locator('.history-table tbody tr').count()).toBe(3);
    expect(await olga.page.locator('.history-table tbody tr').first().textContent()).toMatch(/#1.*rollback.*active.*olga/);
    await screenshot(olga.page, '13-rolled-back');

    const current = await api<{ release_number: number; rollback: boolean; status: string }>('GET', '/v1/deployments/production/forge-examples/monorepo/api');
    expect(current.body).toMatchObject({ release_number: 1, rollback: true, status: 'active' });

    // The releases page: both releases, their aliases and artifacts, and where each is deployed.
    await olga.page.getByRole('link', { name: 'Releases' }).click();
    await olga.page.getByRole('link', { name: /api forge-examples\/monorepo/ }).click();
    const row1 = olga.page.locator('tr[data-release="1"]');
    await row1.waitFor();
    await expect.poll(() => row1.textContent()).toMatch(/production/);
    expect(await olga.page.locator('tr[data-release="2"]').textContent()).toMatch(/dev/);
    expect(await row1.textContent()).toContain('main-1');
    expect(await row1.locator('.artifacts li').count()).toBeGreaterThan(0);
    // Each artifact's tracking image: its signature verified by the server against the platform key.
    await row1.locator('.sig.signed', { hasText: 'signature verified' }).first().waitFor();
    expect(await row1.locator('.sig:not(.signed)').count()).toBe(0);
    await screenshot(olga.page, '14-releases');
    await bob.context.close();
    await olga.context.close();
  }, 300_000);
});

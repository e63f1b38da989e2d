/**
 * Headless Chromium for the dashboard's end-to-end tests: Debian's /usr/bin/chromium driven by
 * playwright-core (no browser download). Screenshots go to test-results/dashboard/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from './web.ts';

export const CHROMIUM = process.env.FORGE_CHROMIUM ?? '/usr/bin/chromium';
/** Outside CI a machine without Chromium skips the browser tests; in CI (which installs it) they run. */
export const chromiumMissing = !existsSync(CHROMIUM) && process.env.CI !== 'true';
export const SCREENSHOTS = join(ROOT, 'test-results', 'dashboard');

export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // This machine's network is closed: no background connections, no sandbox as root.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

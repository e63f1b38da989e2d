/**
 * The dashboard's build for tests: dist/web is (re)built with Vite when it is missing or older than
 * any file under web/ (global setup calls this once per `npm test`).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const WEB_DIST = join(ROOT, 'dist', 'web');

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

export async function ensureWebBuilt(): Promise<void> {
  const index = join(WEB_DIST, 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newest(join(ROOT, 'web'))) return;
  const { build } = await import('vite');
  // Vitest sets NODE_ENV=test, and Vite builds React for whatever NODE_ENV says: the tests must load
  // the production build users get (and leave it in dist/web), not React's development build.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({ configFile: join(ROOT, 'web', 'vite.config.ts'), logLevel: 'warn', mode: 'production' });
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
}

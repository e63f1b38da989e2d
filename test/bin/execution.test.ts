/** One worker process per git cache dir: the lock file of `forge worker` and in-process workers. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockCacheDir } from '../../src/bin/execution.ts';

describe('worker cache lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-cache-lock-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const lockFile = join(dir, 'forge-worker.lock');

  it('is taken with this process\'s pid and released', () => {
    const unlock = lockCacheDir(dir);
    expect(readFileSync(lockFile, 'utf8')).toBe(String(process.pid));
    unlock();
    expect(existsSync(lockFile)).toBe(false);
  });

  it('refuses a cache held by another live process, naming it and the setting', () => {
    writeFileSync(lockFile, String(process.ppid));
    expect(() => lockCacheDir(dir)).toThrow(new RegExp(`in use by process ${process.ppid}; .*FORGE_WORKER_CACHE_DIR`));
    expect(readFileSync(lockFile, 'utf8')).toBe(String(process.ppid));
    rmSync(lockFile);
  });

  it('takes over a lock left by a process that died', () => {
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(lockFile, dead);
    const unlock = lockCacheDir(dir);
    expect(readFileSync(lockFile, 'utf8')).toBe(String(process.pid));
    unlock();
  });
});

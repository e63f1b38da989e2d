import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createGitGitOps, type GitGitOps } from '../../src/gitops/git.gitops.ts';
import { aPointer, git } from './git-helpers.ts';

const POINTER = 'environments/dev/acme/shop/web/release.yaml';
const tempDirs: string[] = [];
const writers: GitGitOps[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(os.tmpdir() + '/forge-gitops-');
  tempDirs.push(dir);
  return dir;
}

async function writer(options: Parameters<typeof createGitGitOps>[0]): Promise<GitGitOps> {
  const gitops = await createGitGitOps(options);
  writers.push(gitops);
  return gitops;
}

const commitCount = (bare: string) => Number(git(bare, 'rev-list', '--count', 'main'));

afterAll(async () => {
  await Promise.all(writers.map((w) => w.close()));
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe('createGitGitOps (embedded bare repository)', () => {
  let gitops: GitGitOps;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDir();
    gitops = await writer({ dataDir });
  });

  it('creates the bare repository in the data dir and has no commits before the first write', () => {
    expect(gitops.url).toBe(path.join(dataDir, 'gitops.git'));
    expect(git(gitops.url, 'rev-parse', '--is-bare-repository')).toBe('true');
    expect(git(gitops.url, 'symbolic-ref', 'HEAD')).toBe('refs/heads/main');
    expect(() => git(gitops.url, 'rev-parse', '--verify', '--quiet', 'main')).toThrow();
  });

  it('writes a ReleasePointer that is readable from main of the bare repository', async () => {
    const p = aPointer({
      releaseNumber: 7,
      approvedBy: 'bob@example.com',
      approvedAt: new Date('2025-01-02T03:04:30Z'),
      message: '#7 deploy web to dev\n\napproved by bob',
    });
    p.aliases.push({ ...p.aliases[0]!, alias: 'v1.2.3', alias_type: 'tag' });

    const { commitSha } = await gitops.writePointer(p);

    expect(commitSha).toMatch(/^[0-9a-f]{40}$/);
    expect(git(gitops.url, 'rev-parse', 'main')).toBe(commitSha);
    const doc = parse(git(gitops.url, 'show', `main:${POINTER}`));
    expect(doc).toEqual({
      apiVersion: 'forge.projectcatalyst.io/v1',
      kind: 'ReleasePointer',
      metadata: {
        name: 'web',
        labels: {
          'forge.projectcatalyst.io/environment': 'dev',
          'forge.projectcatalyst.io/repository': 'acme.shop',
          'forge.projectcatalyst.io/project': 'web',
        },
        annotations: { 'forge.projectcatalyst.io/release-number': '7' },
      },
      spec: {
        release: p.release.commit_sha,
        repository: 'acme/shop',
        project: 'web',
        releaseNumber: 7,
        ociUri: p.release.oci_uri,
        aliases: { numeric: '7', tag: 'v1.2.3', branch: 'main' },
        deployedBy: 'alice@example.com',
        deployedAt: '2025-01-02T03:05:00.000Z',
        approvedBy: 'bob@example.com',
        approvedAt: '2025-01-02T03:04:30.000Z',
      },
    });
    // The message is kept verbatim (a leading '#' is not a comment), author and committer are Forge.
    expect(git(gitops.url, 'log', '-1', '--format=%B', 'main')).toBe(p.message);
    expect(git(gitops.url, 'log', '-1', '--format=%an <%ae>|%cn <%ce>', 'main')).toBe('Forge <forge@localhost>|Forge <forge@localhost>');
    expect(git(gitops.url, 'ls-tree', '-r', '--name-only', 'main')).toBe(POINTER);
  });

  it('omits approval fields and a missing tag alias', async () => {
    await gitops.writePointer(aPointer({ releaseNumber: 8 }));
    const { spec } = parse(git(gitops.url, 'show', `main:${POINTER}`)) as { spec: Record<string, unknown> };
    expect(spec.aliases).toEqual({ numeric: '8', branch: 'main' });
    expect(spec).not.toHaveProperty('approvedBy');
    expect(spec).not.toHaveProperty('approvedAt');
  });

  it('makes one commit per write, even when the pointer is unchanged', async () => {
    const before = commitCount(gitops.url);
    const p = aPointer({ releaseNumber: 9 });
    const first = await gitops.writePointer(p);
    const second = await gitops.writePointer(p);
    expect(commitCount(gitops.url)).toBe(before + 2);
    expect(second.commitSha).not.toBe(first.commitSha);
    expect(git(gitops.url, 'rev-parse', `${second.commitSha}^`)).toBe(first.commitSha);
    expect(git(gitops.url, 'diff', '--name-only', first.commitSha, second.commitSha)).toBe('');
  });

  it('keeps pointers of different targets side by side', async () => {
    await gitops.writePointer(aPointer({ environment: 'staging', repository: 'acme/shop', project: 'api', releaseNumber: 1 }));
    const files = git(gitops.url, 'ls-tree', '-r', '--name-only', 'main').split('\n');
    expect(files).toEqual(expect.arrayContaining([POINTER, 'environments/staging/acme/shop/api/release.yaml']));
  });

  it('reuses the working clone when a writer is built again on the same data dir', async () => {
    const before = commitCount(gitops.url);
    const again = await writer({ dataDir });
    expect(again.url).toBe(gitops.url);
    await again.writePointer(aPointer({ releaseNumber: 10 }));
    expect(commitCount(gitops.url)).toBe(before + 1);
    expect(parse(git(gitops.url, 'show', `main:${POINTER}`)).spec.releaseNumber).toBe(10);
  });

  it('rejects names that could escape the layout, and commits nothing for them', async () => {
    const before = commitCount(gitops.url);
    const bad = [
      { environment: 'Dev' },
      { environment: '../prod' },
      { environment: 'dev/x' },
      { project: 'a/b' },
      { project: '..' },
      { project: '-web' },
      { repository: 'acme/..' },
      { repository: 'acme/../../etc' },
      { repository: '../acme/shop' },
      { repository: 'acme' },
      { repository: 'acme/shop/x' },
      { repository: 'acme/.git' },
    ];
    for (const overrides of bad) {
      await expect(gitops.writePointer(aPointer(overrides)), JSON.stringify(overrides)).rejects.toMatchObject({
        code: 'validation_error',
      });
    }
    await expect(gitops.writePointer(aPointer({ commitSha: 'not-a-sha' }))).rejects.toMatchObject({ code: 'validation_error' });
    const otherProject = aPointer();
    otherProject.release = { ...otherProject.release, project: 'api' };
    await expect(gitops.writePointer(otherProject)).rejects.toThrow(/belongs to acme\/shop\/api/);
    await expect(gitops.writePointer(aPointer({ message: '  ' }))).rejects.toThrow(/message is empty/);
    expect(commitCount(gitops.url)).toBe(before);
  });

  it('refuses a layout that is absolute, climbs out, or lacks a placeholder', async () => {
    for (const layout of [
      '/etc/{environment}/{repository}/{project}.yaml',
      '{environment}/../{repository}/{project}.yaml',
      '{environment}/.git/{repository}/{project}.yaml',
      '{environment}/{repository}/release.yaml',
      '{environment}/{repository}/{project}/{unknown}.yaml',
    ]) {
      await expect(createGitGitOps({ dataDir: tempDir(), layout }), layout).rejects.toMatchObject({ code: 'validation_error' });
    }
    await expect(createGitGitOps({ dataDir: tempDir(), authorEmail: 'x>y' })).rejects.toMatchObject({ code: 'validation_error' });
  });
});

describe('createGitGitOps (two writers on one remote)', () => {
  it('lands every commit of two concurrent writers, and the repository stays consistent', async () => {
    const first = await writer({ dataDir: tempDir() });
    const second = await writer({ dataDir: tempDir(), url: first.url, authorName: 'Forge Two', authorEmail: 'two@forge.test' });

    const writes = Array.from({ length: 10 }, (_, i) => [
      first.writePointer(aPointer({ releaseNumber: i + 1, message: `first #${i + 1}` })),
      second.writePointer(aPointer({ releaseNumber: i + 1, project: 'api', message: `second #${i + 1}` })),
    ]).flat();
    const results = await Promise.all(writes);

    expect(commitCount(first.url)).toBe(20);
    const history = new Set(git(first.url, 'rev-list', 'main').split('\n'));
    expect(new Set(results.map((r) => r.commitSha)).size).toBe(20);
    for (const { commitSha } of results) expect(history.has(commitSha)).toBe(true);
    expect(git(first.url, 'log', '--format=%an', 'main').split('\n').filter((a) => a === 'Forge Two')).toHaveLength(10);
    expect(parse(git(first.url, 'show', 'main:environments/dev/acme/shop/web/release.yaml')).spec.releaseNumber).toBe(10);
    expect(parse(git(first.url, 'show', 'main:environments/dev/acme/shop/api/release.yaml')).spec.releaseNumber).toBe(10);
    git(first.url, 'fsck', '--strict', '--no-dangling'); // throws on a non-zero exit
  }, 60_000);

  it('gives up after six rejected pushes, then recovers once the remote moves again', async () => {
    const gitops = await writer({ dataDir: tempDir() });
    await gitops.writePointer(aPointer());
    // A held ref lock is what a concurrent push looks like to us: every push is rejected.
    const lockFile = path.join(gitops.url, 'refs/heads/main.lock');
    fs.writeFileSync(lockFile, '');
    await expect(gitops.writePointer(aPointer({ releaseNumber: 2 }))).rejects.toThrow(/rejected 6 times/);
    fs.rmSync(lockFile);

    await gitops.writePointer(aPointer({ releaseNumber: 3 }));
    expect(commitCount(gitops.url)).toBe(2);
    expect(parse(git(gitops.url, 'show', `main:${POINTER}`)).spec.releaseNumber).toBe(3);
  }, 30_000);
});

describe('createGitGitOps (hostile repository content)', () => {
  it('does not follow a committed symlink out of the work tree', async () => {
    const gitops = await writer({ dataDir: tempDir() });
    const outside = tempDir();
    const attacker = path.join(tempDir(), 'clone');
    git(os.tmpdir(), 'clone', '--quiet', gitops.url, attacker);
    fs.symlinkSync(outside, path.join(attacker, 'environments'));
    git(attacker, 'add', 'environments');
    git(attacker, '-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '--quiet', '-m', 'symlink');
    git(attacker, 'push', '--quiet', 'origin', 'HEAD:main');

    await expect(gitops.writePointer(aPointer())).rejects.toThrow(/not a plain directory/);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(commitCount(gitops.url)).toBe(1);
  });

  it('does not write through a committed symlink at the pointer file itself', async () => {
    const gitops = await writer({ dataDir: tempDir() });
    const outside = path.join(tempDir(), 'target.yaml');
    fs.writeFileSync(outside, 'untouched\n');
    const attacker = path.join(tempDir(), 'clone');
    git(os.tmpdir(), 'clone', '--quiet', gitops.url, attacker);
    fs.mkdirSync(path.join(attacker, path.dirname(POINTER)), { recursive: true });
    fs.symlinkSync(outside, path.join(attacker, POINTER));
    git(attacker, 'add', '.');
    git(attacker, '-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '--quiet', '-m', 'symlink');
    git(attacker, 'push', '--quiet', 'origin', 'HEAD:main');

    await expect(gitops.writePointer(aPointer())).rejects.toThrow(/refusing to write/);
    expect(fs.readFileSync(outside, 'utf8')).toBe('untouched\n');
  });
});

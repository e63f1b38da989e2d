/** The workers' git cache against real git: bare repositories served over file:// and smart HTTP. */
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForgeError, RetryableError } from '../../src/domain/errors.ts';
import { createGitWorkspaces, repositoryUrl, seedRepository, type GitWorkspaceOptions } from '../../src/worker/git-workspace.ts';
import { git, randomSha } from '../gitops/git-helpers.ts';
import { startGitHttpServer } from '../helpers/git-http.ts';

const temps: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'forge-git-ws-'));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** Writes `files` (path → content) below dir. */
function writeTree(dir: string, files: Record<string, string>): string {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

/** Every file below dir, recursively (a job repository's `.git` and the bare repo included). */
function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name));
}

/** Command lines of the running processes that contain `text`. */
function processesMentioning(text: string): string[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        return ''; // ended meanwhile
      }
    })
    .filter((cmdline) => cmdline.includes(text));
}


describe('repositoryUrl', () => {
  it('fills {repository}, or {owner} and {name}', () => {
    expect(repositoryUrl('https://github.com/{repository}.git', 'acme/shop')).toBe('https://github.com/acme/shop.git');
    expect(repositoryUrl('file:///srv/git/{repository}.git', 'Acme-1/my.repo_x')).toBe('file:///srv/git/Acme-1/my.repo_x.git');
    expect(repositoryUrl('ssh://git@example.com/{owner}/x-{name}', 'acme/shop')).toBe('ssh://git@example.com/acme/x-shop');
  });

  it.each([
    'acme', 'acme/shop/x', '-acme/shop', 'ac_me/shop', `${'a'.repeat(40)}/shop`, `acme/${'s'.repeat(101)}`,
    'acme/.', 'acme/..', 'acme/a..b', 'acme/shop.git', 'acme/shop.GIT', 'acme/sh op', 'acme/', '/shop', 'acme/shop\n',
  ])('refuses the repository %j, saying what is allowed', (repository) => {
    expect(() => repositoryUrl('https://github.com/{repository}.git', repository)).toThrow(
      expect.objectContaining({ code: 'validation_error', message: expect.stringMatching(/expected owner\/name: .*must not end in "\.git"/) }),
    );
  });

  it('refuses a template without the repository, or with a password in it', () => {
    expect(() => repositoryUrl('https://github.com/acme.git', 'acme/shop')).toThrow(/must contain \{repository\}/);
    expect(() => repositoryUrl('https://github.com/{owner}.git', 'acme/shop')).toThrow(/must contain \{repository\}/);
    expect(() => repositoryUrl('https://bot:secret@github.com/{repository}.git', 'acme/shop')).toThrow(/password/);
  });
});

describe('seedRepository', () => {
  it('commits the tree as it is (dotfiles, ignored files, modes, links; no .git) and is idempotent', async () => {
    const source = writeTree(tempDir(), {
      '.forge/repo.cue': 'repo: {}\n',
      '.gitignore': 'ignored.txt\n',
      'ignored.txt': 'still here\n',
      'bin/run.sh': '#!/bin/sh\necho hi\n',
      'nested/.git/HEAD': 'not ours\n',
      '.git': 'gitdir: elsewhere\n',
    });
    chmodSync(join(source, 'bin/run.sh'), 0o755);
    symlinkSync('bin/run.sh', join(source, 'run'));
    const bareDir = join(tempDir(), 'acme', 'shop.git');

    const first = await seedRepository({ bareDir, sourceDir: source, message: 'seed', author: 'Seeder <seed@example.com>' });
    expect(git(bareDir, 'rev-parse', 'refs/heads/main')).toBe(first.commitSha);
    expect(git(bareDir, 'ls-tree', '-r', '--format=%(objectmode) %(path)', 'main').split('\n')).toEqual([
      '100644 .forge/repo.cue', '100644 .gitignore', '100755 bin/run.sh', '100644 ignored.txt', '120000 run',
    ]);
    expect(git(bareDir, 'cat-file', 'blob', 'main:run')).toBe('bin/run.sh'); // a link, not its target's content
    expect(git(bareDir, 'log', '-1', '--format=%an <%ae> %s', 'main')).toBe('Seeder <seed@example.com> seed');
    expect(await seedRepository({ bareDir, sourceDir: source })).toEqual(first);

    writeFileSync(join(source, 'ignored.txt'), 'changed\n');
    const second = await seedRepository({ bareDir, sourceDir: source, branch: 'release/1' });
    expect(second.commitSha).not.toBe(first.commitSha);
    expect(git(bareDir, 'rev-parse', 'refs/heads/release/1')).toBe(second.commitSha);
    expect(git(bareDir, 'rev-parse', 'refs/heads/main')).toBe(first.commitSha);
  });
});

describe('createGitWorkspaces over file://', () => {
  let gitRoot: string;
  let options: GitWorkspaceOptions;
  let monorepoSha: string;
  let shopSha: string;
  let source: string;
  beforeAll(async () => {
    gitRoot = tempDir();
    options = { cacheDir: tempDir(), urlTemplate: `file://${gitRoot}/{repository}.git` };
    source = writeTree(tempDir(), { 'README.md': 'v1\n', '.forge/project.cue': 'name: "shop"\n' });
    shopSha = (await seedRepository({ bareDir: join(gitRoot, 'acme/shop.git'), sourceDir: source })).commitSha;
    const monorepo = resolve(import.meta.dirname, '../../examples/monorepo');
    monorepoSha = (await seedRepository({ bareDir: join(gitRoot, 'acme/monorepo.git'), sourceDir: monorepo })).commitSha;
  });

  it('checks out the example monorepo at its SHA in a repository of its own, removes it afterwards', async () => {
    const workspaces = createGitWorkspaces(options);
    const ws = await workspaces.checkout('acme/monorepo', monorepoSha.toUpperCase(), 'job-1');
    expect(ws).toMatchObject({ dir: join(options.cacheDir, 'workspace', 'job-1'), commitSha: monorepoSha });
    expect(git(ws.dir, 'rev-parse', 'HEAD')).toBe(monorepoSha);
    expect(git(ws.dir, 'status', '--porcelain')).toBe('');
    for (const file of ['.forge/repo.cue', '.gitignore', 'services/api/.forge/project.cue', 'scratch/.forge/project.cue']) {
      expect(existsSync(join(ws.dir, file)), file).toBe(true);
    }
    const bareDir = join(options.cacheDir, 'repos', 'acme', 'monorepo.git');
    // The job's repository borrows the cache's objects and copies none; the cache keeps no trace of the job.
    expect(readFileSync(join(ws.dir, '.git', 'objects', 'info', 'alternates'), 'utf8')).toBe(`${join(bareDir, 'objects')}\n`);
    expect(git(ws.dir, 'count-objects')).toMatch(/^0 objects/);
    expect(git(ws.dir, 'remote', 'get-url', 'origin')).toBe(`file://${gitRoot}/acme/monorepo.git`);
    expect(git(ws.dir, 'log', '-1', '--format=%H')).toBe(monorepoSha);
    expect(existsSync(join(bareDir, 'worktrees'))).toBe(false);

    await ws.remove();
    expect(existsSync(ws.dir)).toBe(false);
    await ws.remove(); // idempotent
    await workspaces.close();
  });

  it('runs jobs of one repository and of another at once, and fetches a new commit into the cache', async () => {
    const workspaces = createGitWorkspaces(options);
    const all = await Promise.all([
      workspaces.checkout('acme/shop', shopSha, 'c-1'),
      workspaces.checkout('acme/shop', shopSha, 'c-2'),
      workspaces.checkout('acme/monorepo', monorepoSha, 'c-3'),
      workspaces.checkout('acme/shop', shopSha, 'c-4'),
    ]);
    for (const ws of all) expect(git(ws.dir, 'rev-parse', 'HEAD')).toBe(ws.commitSha);
    expect(readFileSync(join(all[1]!.dir, 'README.md'), 'utf8')).toBe('v1\n');

    writeFileSync(join(source, 'README.md'), 'v2\n');
    const next = (await seedRepository({ bareDir: join(gitRoot, 'acme/shop.git'), sourceDir: source })).commitSha;
    const [newer, older] = await Promise.all([workspaces.checkout('acme/shop', next, 'c-5'), workspaces.checkout('acme/shop', shopSha, 'c-6')]);
    expect(readFileSync(join(newer.dir, 'README.md'), 'utf8')).toBe('v2\n');
    expect(readFileSync(join(older.dir, 'README.md'), 'utf8')).toBe('v1\n');
    const bareDir = join(options.cacheDir, 'repos', 'acme', 'shop.git');
    expect(git(bareDir, 'for-each-ref', '--format=%(refname)', 'refs/forge/').split('\n').sort()).toEqual(
      [`refs/forge/commits/${shopSha}`, `refs/forge/commits/${next}`].sort(),
    );

    await Promise.all([...all, newer, older].map((ws) => ws.remove()));
    expect(readdirSync(join(options.cacheDir, 'workspace')).filter((name) => name.startsWith('c-'))).toEqual([]);
    await workspaces.close();
    await expect(workspaces.checkout('acme/shop', shopSha, 'late')).rejects.toThrow(/closed/);
  });

  it('checks out one commit for many jobs at once (a monorepo run fanning out) and removes them all', async () => {
    const workspaces = createGitWorkspaces(options);
    const bareDir = join(options.cacheDir, 'repos', 'acme', 'shop.git');
    for (let round = 0; round < 2; round++) {
      const all = await Promise.all(Array.from({ length: 12 }, (_, i) => workspaces.checkout('acme/shop', shopSha, `fan-${round}-${i}`)));
      for (const ws of all) expect(readFileSync(join(ws.dir, 'README.md'), 'utf8')).toBe('v1\n');
      for (const ws of all) expect(git(ws.dir, 'status', '--porcelain')).toBe('');
      await Promise.all(all.map((ws) => ws.remove()));
      for (const ws of all) expect(existsSync(ws.dir)).toBe(false);
    }
    expect(existsSync(join(bareDir, 'worktrees'))).toBe(false);
    await workspaces.close();
  });

  it('replaces a leftover dir, or a checkout never removed, of the same job', async () => {
    const workspaces = createGitWorkspaces(options);
    const dir = join(options.cacheDir, 'workspace', 'crashed');
    writeTree(dir, { 'junk.txt': 'from a crashed attempt\n', 'deep/er.txt': 'x' });
    const ws = await workspaces.checkout('acme/shop', shopSha, 'crashed');
    expect(existsSync(join(dir, 'junk.txt'))).toBe(false);
    expect(git(dir, 'rev-parse', 'HEAD')).toBe(shopSha);

    // The attempt crashed before remove(): its checkout, changed, is still there.
    writeFileSync(join(dir, 'README.md'), 'edited\n');
    const again = await workspaces.checkout('acme/monorepo', monorepoSha, 'crashed');
    expect(git(dir, 'rev-parse', 'HEAD')).toBe(monorepoSha);
    expect(existsSync(join(dir, 'README.md'))).toBe(true);
    expect(git(dir, 'status', '--porcelain')).toBe('');
    await again.remove();
    await ws.remove(); // its dir is gone already: nothing to do
    expect(existsSync(dir)).toBe(false);

    // A half-made checkout: its dir is gone already.
    const half = await workspaces.checkout('acme/shop', shopSha, 'half');
    rmSync(half.dir, { recursive: true });
    await half.remove();
    expect(existsSync(half.dir)).toBe(false);
  });

  it('refuses a commit the remote does not have, naming repository and SHA, not retryable', async () => {
    const workspaces = createGitWorkspaces(options);
    const sha = randomSha();
    const error = await workspaces.checkout('acme/shop', sha, 'missing').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForgeError);
    expect(error).not.toBeInstanceOf(RetryableError);
    expect(error).toMatchObject({ code: 'validation_error', message: expect.stringMatching(new RegExp(`commit ${sha} not found in repository acme/shop`)) });
    expect(existsSync(join(options.cacheDir, 'workspace', 'missing'))).toBe(false);
  });

  it('makes an unreachable remote a RetryableError carrying git\'s message', async () => {
    // A fresh cache: a cached commit is checked out without asking the remote.
    const workspaces = createGitWorkspaces({ cacheDir: tempDir(), urlTemplate: `file://${gitRoot}/nowhere/{repository}.git` });
    const error = await workspaces.checkout('acme/shop', shopSha, 'unreachable').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toMatch(/could not fetch acme\/shop from file:.*does not appear to be a git repository/s);
  });

  it('refuses bad repositories, SHAs and job ids before touching the disk', async () => {
    const cacheDir = join(tempDir(), 'cache');
    const workspaces = createGitWorkspaces({ ...options, cacheDir });
    for (const [repository, sha, jobId] of [
      ['acme/../etc', shopSha, 'j'], ['acme/shop.git', shopSha, 'j'], ['acme/shop', 'HEAD', 'j'], ['acme/shop', `-${shopSha.slice(1)}`, 'j'],
      ['acme/shop', shopSha, '..'], ['acme/shop', shopSha, '.'], ['acme/shop', shopSha, 'a/b'], ['acme/shop', shopSha, 'x..y'], ['acme/shop', shopSha, ''],
    ] as const) {
      await expect(workspaces.checkout(repository, sha, jobId), `${repository} ${sha} ${jobId}`).rejects.toMatchObject({ code: 'validation_error' });
    }
    expect(existsSync(cacheDir)).toBe(false);
  });

  it('does not start git when the signal is aborted already', async () => {
    const workspaces = createGitWorkspaces({ ...options, cacheDir: tempDir() });
    const aborted = AbortSignal.abort(new Error('job cancelled'));
    await expect(workspaces.checkout('acme/shop', shopSha, 'cancelled', aborted)).rejects.toThrow('job cancelled');
  });
});

describe('createGitWorkspaces over smart HTTP with Basic auth', () => {
  const token = 'tok-9f8e7d6c5b4a';
  let server: Server;
  let origin: string;
  /** The older commit (not a branch tip) and main's head. */
  let first: string;
  let sha: string;
  beforeAll(async () => {
    const root = tempDir();
    const source = writeTree(tempDir(), { 'secret.txt': 'old\n' });
    first = (await seedRepository({ bareDir: join(root, 'acme/private.git'), sourceDir: source })).commitSha;
    writeFileSync(join(source, 'secret.txt'), 's\n');
    sha = (await seedRepository({ bareDir: join(root, 'acme/private.git'), sourceDir: source })).commitSha;
    ({ server, origin } = await startGitHttpServer(root, { user: 'ci-bot', password: token }));
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('checks out with credentials, which are sent as a header and stored nowhere', async () => {
    const cacheDir = tempDir();
    const workspaces = createGitWorkspaces({ cacheDir, urlTemplate: `${origin}/{repository}.git`, credentials: { username: 'ci-bot', token } });
    const ws = await workspaces.checkout('acme/private', sha, 'auth-1');
    expect(readFileSync(join(ws.dir, 'secret.txt'), 'utf8')).toBe('s\n');
    expect(git(ws.dir, 'rev-parse', 'HEAD')).toBe(sha);
    const bareDir = join(cacheDir, 'repos', 'acme', 'private.git');
    expect(git(bareDir, 'remote', 'get-url', 'origin')).toBe(`${origin}/acme/private.git`);
    const basic = Buffer.from(`ci-bot:${token}`).toString('base64');
    for (const file of allFiles(cacheDir)) {
      if (lstatSync(file).isSymbolicLink()) continue;
      const content = readFileSync(file, 'latin1');
      expect(content.includes(token) || content.includes(basic), file).toBe(false);
    }
    await ws.remove();
    await workspaces.close();
  });

  it('falls back to fetching all heads and tags when the server refuses a SHA want', async () => {
    const cacheDir = tempDir();
    const workspaces = createGitWorkspaces({ cacheDir, urlTemplate: `${origin}/strict/{repository}.git`, credentials: { username: 'ci-bot', token } });
    const ws = await workspaces.checkout('acme/private', first, 'strict-1');
    expect(git(ws.dir, 'rev-parse', 'HEAD')).toBe(first);
    const bareDir = join(cacheDir, 'repos', 'acme', 'private.git');
    expect(git(bareDir, 'rev-parse', 'refs/remotes/origin/main')).toBe(sha);
    expect(git(bareDir, 'rev-parse', `refs/forge/commits/${first}`)).toBe(first);
    const missing = randomSha();
    await expect(workspaces.checkout('acme/private', missing, 'strict-2')).rejects.toMatchObject({
      code: 'validation_error', message: expect.stringContaining(`commit ${missing} not found in repository acme/private`),
    });
    await ws.remove();
  });

  it('fails without credentials, or with wrong ones, as permission_denied (not retryable)', async () => {
    for (const credentials of [undefined, { username: 'ci-bot', token: 'wrong' }]) {
      const workspaces = createGitWorkspaces({ cacheDir: tempDir(), urlTemplate: `${origin}/{repository}.git`, credentials });
      const error = await workspaces.checkout('acme/private', sha, 'auth-2').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ForgeError);
      expect(error).toMatchObject({ code: 'permission_denied', message: expect.stringContaining(`${origin}/acme/private.git`) });
      expect((error as Error).message).not.toContain(token);
    }
  });

  it('times out a hanging remote as a RetryableError, and an abort stops the fetch', async () => {
    const urlTemplate = `${origin}/hang/{repository}.git`;
    const slow = createGitWorkspaces({ cacheDir: tempDir(), urlTemplate, timeoutMs: 300 });
    const timeout = await slow.checkout('acme/private', sha, 'hang-1').catch((e: unknown) => e);
    expect(timeout).toBeInstanceOf(RetryableError);
    expect((timeout as Error).message).toMatch(/could not fetch acme\/private from .*timed out after 300 ms/);

    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('job cancelled')), 200);
    const cacheDir = tempDir();
    const cancellable = createGitWorkspaces({ cacheDir, urlTemplate });
    await expect(cancellable.checkout('acme/private', sha, 'hang-2', controller.signal)).rejects.toThrow('job cancelled');
    expect(Date.now() - started).toBeLessThan(5_000);
    // Neither `git fetch` (its --git-dir is in the cache) nor its git-remote-http (given the URL) is left.
    expect(processesMentioning(cacheDir)).toEqual([]);
    expect(processesMentioning(`${origin}/hang/`)).toEqual([]);
  });
});

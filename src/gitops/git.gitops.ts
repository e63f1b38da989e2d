/**
 * GitOps writer on the git CLI: one commit per deployment, pushed to `main` of the GitOps remote.
 *
 * Embedded default: a bare repository at `<dataDir>/gitops.git`; production: any git remote (`url`).
 * One working clone at `<dataDir>/gitops-work`, shared by every write of this process, so writes
 * are serialised. States of a write (all under the mutex):
 *
 *   sync      fetch origin; reset to origin/main, or to an empty unborn `main` when the remote has
 *             no commits yet (the first push creates it)
 *   commit    write the pointer file, `git add`, `git commit --allow-empty` (every deployment gets
 *             its own audit commit, even when the pointer is unchanged)
 *   push      `git push origin HEAD:main` → done
 *             rejected because another writer moved main → wait (jittered backoff) → sync again;
 *             after MAX_PUSH_ATTEMPTS rejections → RetryableError
 *             any other failure (auth, network, hook) → Error at once
 *
 * git runs without a shell, without the user's global or system config, without prompts and
 * without hooks, so the result does not depend on who runs the process.
 */
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { lstat, mkdir, open, realpath, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Mutex } from 'async-mutex';
import { invalid, RetryableError } from '../domain/errors.ts';
import type { GitOpsWriter, PointerWrite } from '../engine/ports.ts';
import {
  buildReleasePointer,
  checkPointerLayout,
  DEFAULT_POINTER_LAYOUT,
  pointerPath,
  renderReleasePointer,
} from './release-pointer.ts';

export interface GitGitOpsOptions {
  /** The GitOps remote; without it, the embedded bare repository in `dataDir`. */
  url?: string;
  dataDir: string;
  authorName?: string;
  authorEmail?: string;
  /** Path template with {environment}, {repository}, {project}; see DEFAULT_POINTER_LAYOUT. */
  layout?: string;
}

export interface GitGitOps extends GitOpsWriter {
  /** The remote pushed to (the bare repository's path in the embedded default). */
  readonly url: string;
  /** Waits for accepted writes to finish; later writes are refused. */
  close(): Promise<void>;
}

export const MAX_PUSH_ATTEMPTS = 6;
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2_000;
const BRANCH_REF = 'refs/heads/main';
const REMOTE_REF = 'refs/remotes/origin/main';

/** One mutex per working clone, so two writers built on the same dataDir in one process still queue. */
const cloneLocks = new Map<string, Mutex>();

export async function createGitGitOps(options: GitGitOpsOptions): Promise<GitGitOps> {
  const dataDir = resolve(options.dataDir);
  const layout = checkPointerLayout(options.layout ?? DEFAULT_POINTER_LAYOUT);
  const identity = [
    '-c', `user.name=${checkIdentity('authorName', options.authorName ?? 'Forge')}`,
    '-c', `user.email=${checkIdentity('authorEmail', options.authorEmail ?? 'forge@localhost')}`,
  ];
  await mkdir(dataDir, { recursive: true });
  const url = options.url ?? (await ensureBareRepository(join(dataDir, 'gitops.git')));
  if (url === '' || url.startsWith('-')) throw invalid(`invalid gitops url ${JSON.stringify(url)}`, { field: 'url' });
  const workDir = await ensureClone(url, join(dataDir, 'gitops-work'));
  const lock = cloneLocks.get(workDir) ?? new Mutex();
  cloneLocks.set(workDir, lock);
  let closed = false;

  async function sync(): Promise<void> {
    await git(workDir, ['fetch', '--quiet', '--prune', '--no-tags', 'origin']);
    await git(workDir, ['symbolic-ref', 'HEAD', BRANCH_REF]);
    if (await refExists(workDir, REMOTE_REF)) {
      await git(workDir, ['reset', '--quiet', '--hard', REMOTE_REF]);
    } else {
      // The remote has no commits yet: start from an empty unborn main.
      await git(workDir, ['update-ref', '-d', BRANCH_REF]);
      await git(workDir, ['read-tree', '--empty']);
    }
    await git(workDir, ['clean', '-ffdxq']);
  }

  async function commitAndPush(path: string, content: string, message: string): Promise<{ commitSha: string }> {
    for (let attempt = 1; ; attempt++) {
      await sync();
      await writeInsideWorkTree(workDir, path, content);
      await git(workDir, ['add', '--', path]);
      await git(workDir, [
        ...identity, 'commit', '--quiet', '--allow-empty', '--no-verify', '--no-gpg-sign', '--cleanup=whitespace', '-m', message,
      ]);
      const commitSha = (await git(workDir, ['rev-parse', 'HEAD'])).trim();
      if (await push(workDir)) { if (process.env.GITOPS_DEBUG) console.error("attempts", attempt); return { commitSha }; }
      if (attempt >= MAX_PUSH_ATTEMPTS) {
        throw new RetryableError(
          `gitops push to ${url} was rejected ${attempt} times: main kept moving (another writer is pushing)`,
          BACKOFF_CAP_MS,
        );
      }
      await sleep(backoffMs(attempt));
    }
  }

  return {
    url,
    async writePointer(p: PointerWrite) {
      if (closed) throw new Error('gitops writer is closed');
      // Everything that can be refused is refused before the write queues.
      const path = pointerPath(layout, p);
      const content = renderReleasePointer(buildReleasePointer(p));
      if (p.message.trim() === '') throw invalid('gitops commit message is empty', { field: 'message' });
      return lock.runExclusive(() => commitAndPush(path, content, p.message));
    },
    async close() {
      closed = true;
      await lock.waitForUnlock();
    },
  };
}

/** Equal jitter: half the exponential step fixed, half random, so a loser always yields a little. */
function backoffMs(attempt: number): number {
  const step = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return step / 2 + Math.random() * (step / 2);
}

function checkIdentity(field: string, value: string): string {
  // git would silently strip these; refuse instead so the audit trail shows what was configured.
  if (value.trim() === '' || /[<>\u0000-\u001f\u007f]/u.test(value)) {
    throw invalid(`invalid gitops ${field} ${JSON.stringify(value)}`, { field });
  }
  return value;
}

async function ensureBareRepository(dir: string): Promise<string> {
  if (!existsSync(join(dir, 'HEAD'))) await git(resolve(dir, '..'), ['init', '--quiet', '--bare', '-b', 'main', dir]);
  return dir;
}

/** Clones once (into a side directory, renamed when complete, so a crash never leaves half a clone). */
async function ensureClone(url: string, workDir: string): Promise<string> {
  if (existsSync(join(workDir, '.git'))) {
    await git(workDir, ['remote', 'set-url', 'origin', url]);
  } else {
    const partial = `${workDir}.partial`;
    await rm(partial, { recursive: true, force: true });
    await git(resolve(workDir, '..'), ['clone', '--quiet', '--no-tags', '--', url, partial]);
    // Whatever sits at workDir without a .git is not a clone of ours to keep.
    await rm(workDir, { recursive: true, force: true });
    await rename(partial, workDir);
  }
  return realpath(workDir);
}

async function refExists(cwd: string, ref: string): Promise<boolean> {
  try {
    await git(cwd, ['rev-parse', '--verify', '--quiet', ref]);
    return true;
  } catch (error) {
    if (error instanceof GitError && error.exitCode === 1) return false;
    throw error;
  }
}

/**
 * True when pushed, false when the remote refused because main moved under us: `[rejected]`
 * (non-fast-forward, fetch first) or `[remote rejected]` while another push held the ref lock.
 */
async function push(cwd: string): Promise<boolean> {
  try {
    await git(cwd, ['push', '--porcelain', '--no-verify', 'origin', `HEAD:${BRANCH_REF}`]);
    return true;
  } catch (error) {
    if (error instanceof GitError && CONTENTION.test(error.stdout)) return false;
    throw error;
  }
}

const CONTENTION = /^!\t\S+\t(?:\[rejected\]|\[remote rejected\] \((?:failed to update ref|cannot lock ref|failed to lock|incorrect old value)[^)]*\))/m;

/**
 * Writes `content` at `path` under `root` without following any symlink: every existing directory
 * on the way must be a real directory, the file is opened with O_NOFOLLOW, and the parent's real
 * path must still lie inside the work tree.
 */
async function writeInsideWorkTree(root: string, path: string, content: string): Promise<void> {
  const segments = path.split('/');
  const fileName = segments.pop();
  if (fileName === undefined) throw invalid('empty pointer path');
  let dir = root;
  for (const segment of segments) {
    dir = join(dir, segment);
    const stat = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (stat === undefined) await mkdir(dir);
    else if (stat.isSymbolicLink() || !stat.isDirectory()) {
      throw new Error(`refusing to write ${path} in the gitops work tree: ${relative(root, dir)} is not a plain directory`);
    }
  }
  const inside = relative(root, await realpath(dir));
  if (inside.startsWith('..') || isAbsolute(inside)) throw new Error(`refusing to write ${path}: it resolves outside the gitops work tree`);
  const file = await open(join(dir, fileName), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644)
    .catch((error: NodeJS.ErrnoException) => {
      throw new Error(`refusing to write ${path} in the gitops work tree: ${error.code ?? error.message}`, { cause: error });
    });
  try {
    await file.writeFile(content, 'utf8');
  } finally {
    await file.close();
  }
}

class GitError extends Error {
  override readonly name = 'GitError';
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | string | null | undefined,
    readonly stdout: string,
    readonly stderr: string,
    options: { cause: unknown },
  ) {
    super(`git ${args.join(' ')} failed (${String(exitCode)}): ${(stderr.trim() || stdout.trim()).slice(0, 2_000)}`, options);
  }
}

/** Variables of the caller's git that would redirect us elsewhere (GIT_DIR, GIT_INDEX_FILE, author…). */
const KEPT_GIT_ENV = new Set(['GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_SSH_VARIANT', 'GIT_ASKPASS']);

const gitEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('GIT_') || KEPT_GIT_ENV.has(key))),
  GIT_TERMINAL_PROMPT: '0',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_LITERAL_PATHSPECS: '1',
  // English messages, so push outcomes can be read.
  LC_ALL: 'C',
};

/** No hooks of any clone, and no gc left running in the background after a write returns. */
const BASE_CONFIG = ['-c', 'core.hooksPath=/dev/null', '-c', 'gc.autoDetach=false'];

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('git', [...BASE_CONFIG, ...args], { cwd, env: gitEnv, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new GitError(args, error.code, stdout, stderr, { cause: error }));
      else resolvePromise(stdout);
    });
  });
}

/**
 * GitOps writer on the git CLI: one commit per deployment, pushed to `main` of the GitOps remote.
 *
 * Embedded default: a bare repository at `<dataDir>/gitops.git`; production: any git remote (`url`).
 * One working clone at `<dataDir>/gitops-work` serves every write of this process. Writes queue;
 * the queue drains in batches, one batch at a time (a mutex per clone). A batch goes through:
 *
 *   sync      fetch origin; reset to origin/main, or to an empty unborn `main` when the remote has
 *             no commits yet (the first push creates it)
 *   commit    per write: write its pointer file, `git add`, `git commit --allow-empty` (every
 *             deployment has its own audit commit, even when the pointer is unchanged); a write
 *             that cannot be made on this tree fails alone
 *   push      `git push origin HEAD:main` → every write resolves with its own commit SHA
 *             rejected because another writer moved main → backoff (jittered) → sync again;
 *             after MAX_PUSH_ATTEMPTS rejections → RetryableError for the batch
 *             any other failure (auth, network, a hook, the fetch) → backoff → sync again; after
 *             MAX_FAILED_ATTEMPTS → RetryableError for the batch (the job queue redelivers the job)
 *
 * A write for a deployment carries its id as a `Deployment: <id>` trailer. With `checkExisting`
 * (a redelivered job), a commit with that trailer already on main is returned instead of a new one.
 *
 * Why batches: with one push per write, a writer with a backlog pushes back to back and another
 * writer on the same remote keeps losing the race; one push per batch keeps the remote's main
 * still long enough for the other side to land (and costs one fetch and one push, not N).
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
/** Attempts of a batch whose fetch or push fails for another reason than contention. */
export const MAX_FAILED_ATTEMPTS = 3;
/** Writes queued while a push is in flight go out together, each as its own commit. */
const MAX_BATCH = 20;
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
  const queue: QueuedWrite[] = [];
  let draining: Promise<void> | undefined;
  let closed = false;

  /** Resets index, work tree and `main` to `ref`, or to an empty unborn `main` when there is none. */
  async function resetWorkTree(ref: string | undefined): Promise<void> {
    if (ref === undefined) {
      await git(workDir, ['update-ref', '-d', BRANCH_REF]);
      await git(workDir, ['read-tree', '--empty']);
    } else {
      await git(workDir, ['reset', '--quiet', '--hard', ref]);
    }
    await git(workDir, ['clean', '-ffdxq']);
  }

  async function sync(): Promise<void> {
    await git(workDir, ['fetch', '--quiet', '--prune', '--no-tags', 'origin']);
    await git(workDir, ['symbolic-ref', 'HEAD', BRANCH_REF]);
    // No origin/main yet: the remote has no commits, the first push creates main.
    await resetWorkTree((await refExists(workDir, REMOTE_REF)) ? REMOTE_REF : undefined);
  }

  async function commit(write: QueuedWrite): Promise<void> {
    await writeInsideWorkTree(workDir, write.path, write.content);
    await git(workDir, ['add', '--', write.path]);
    await git(workDir, [
      ...identity, 'commit', '--quiet', '--allow-empty', '--no-verify', '--no-gpg-sign', '--cleanup=whitespace', '-m', write.message,
    ]);
  }

  /** The commit on HEAD's history that carries the deployment's trailer, if any. */
  async function existingCommit(deploymentId: string): Promise<string | undefined> {
    if (!(await refExists(workDir, 'HEAD'))) return undefined;
    const sha = (await git(workDir, ['log', '-n', '1', '--format=%H', '--fixed-strings', `--grep=${trailer(deploymentId)}`, 'HEAD'])).trim();
    return sha === '' ? undefined : sha;
  }

  /**
   * One attempt: sync, commit each write (a redelivered deployment's existing commit is returned
   * instead), push. Returns the writes still to push when main moved; throws when git failed.
   */
  async function attemptBatch(pending: QueuedWrite[]): Promise<QueuedWrite[]> {
    await sync();
    const committed: QueuedWrite[] = [];
    for (const write of pending) {
      try {
        const existing = write.checkExisting && write.deploymentId !== undefined ? await existingCommit(write.deploymentId) : undefined;
        if (existing !== undefined) {
          write.resolve({ commitSha: existing, existing: true });
          continue;
        }
        await commit(write);
        committed.push(write);
      } catch (error) {
        // This write cannot be made on the current tree (e.g. a symlink in its path); the others can.
        write.reject(error);
        await resetWorkTree((await refExists(workDir, 'HEAD')) ? 'HEAD' : undefined);
      }
    }
    if (committed.length === 0) return [];
    const shas = (await git(workDir, ['rev-list', '--first-parent', '--reverse', '-n', String(committed.length), 'HEAD']))
      .trim()
      .split('\n');
    if (await push(workDir)) {
      committed.forEach((write, i) => write.resolve({ commitSha: shas[i] ?? '' }));
      return [];
    }
    return committed;
  }

  /** Settles every write of the batch: contention and git failures are retried with backoff. */
  async function commitAndPush(batch: QueuedWrite[]): Promise<void> {
    let pending = batch;
    let rejected = 0;
    let failed = 0;
    for (let attempt = 1; pending.length > 0; attempt++) {
      let error: RetryableError | undefined;
      try {
        const left = await attemptBatch(pending);
        if (left.length > 0) {
          rejected++;
          if (rejected >= MAX_PUSH_ATTEMPTS) {
            error = new RetryableError(`gitops push to ${url} was rejected ${rejected} times: main kept moving (another writer is pushing)`, BACKOFF_CAP_MS);
          }
        }
        pending = left;
      } catch (cause) {
        // Writes that were resolved or rejected on their own stay so; the rest are tried again. A
        // push can land although git reports a failure: deployments look for their commit first.
        pending = pending.filter((write) => !write.settled);
        for (const write of pending) write.checkExisting = true;
        failed++;
        if (failed >= MAX_FAILED_ATTEMPTS) {
          error = new RetryableError(`gitops write to ${url} failed ${failed} times: ${cause instanceof Error ? cause.message : String(cause)}`, BACKOFF_CAP_MS);
        }
      }
      if (error) {
        for (const write of pending) write.reject(error);
        return;
      }
      if (pending.length > 0) await sleep(backoffMs(attempt));
    }
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, MAX_BATCH);
        await lock.runExclusive(() => commitAndPush(batch)).catch((error: unknown) => {
          for (const write of batch) write.reject(error); // no-op for writes already settled
        });
      }
    } finally {
      draining = undefined;
    }
  }

  return {
    url,
    writePointer(p: PointerWrite) {
      return new Promise((resolvePromise, reject) => {
        if (closed) throw new Error('gitops writer is closed');
        // Everything that can be refused up front is refused before the write queues.
        const path = pointerPath(layout, p);
        const content = renderReleasePointer(buildReleasePointer(p));
        if (p.message.trim() === '') throw invalid('gitops commit message is empty', { field: 'message' });
        if (p.deploymentId !== undefined && !/^[A-Za-z0-9-]{1,64}$/.test(p.deploymentId)) throw invalid('invalid deployment id', { field: 'deploymentId' });
        const message = p.deploymentId === undefined || p.message.includes(trailer(p.deploymentId)) ? p.message : `${p.message.trimEnd()}\n\n${trailer(p.deploymentId)}`;
        const write: QueuedWrite = {
          path, content, message, settled: false,
          resolve: (result) => { write.settled = true; resolvePromise(result); },
          reject: (error) => { write.settled = true; reject(error); },
          ...(p.deploymentId === undefined ? {} : { deploymentId: p.deploymentId, checkExisting: p.checkExisting === true }),
        };
        queue.push(write);
        draining ??= drain();
      });
    },
    async close() {
      closed = true;
      await draining;
    },
  };
}

interface QueuedWrite {
  path: string;
  content: string;
  message: string;
  deploymentId?: string;
  checkExisting?: boolean;
  settled: boolean;
  resolve(result: { commitSha: string; existing?: boolean }): void;
  reject(error: unknown): void;
}

const trailer = (deploymentId: string) => `Deployment: ${deploymentId}`;

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
    // A changed url takes effect; the config is not rewritten when it did not change.
    if ((await git(workDir, ['remote', 'get-url', 'origin'])).trim() !== url) await git(workDir, ['remote', 'set-url', 'origin', url]);
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

/** The environment every git this process runs gets: the caller's GIT_* redirections dropped, no global or system config, no prompts. */
export const gitEnv: NodeJS.ProcessEnv = {
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

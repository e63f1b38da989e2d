/**
 * The worker's git cache (digest §2.1): one bare repository per repository, one checkout per job.
 *
 *   <cacheDir>/repos/<owner>/<name>.git   bare repository; remote `origin` = the run's clone URL
 *   <cacheDir>/workspace/<jobId>          the job's checkout at the run's commit: a repository of its
 *                                         own whose objects are the bare repository's (alternates)
 *
 * checkout:
 *   init      `git init --bare` + origin's URL, once per process and repository (both idempotent)
 *   fetch     skipped when the commit is cached; else `fetch origin +<sha>:refs/forge/commits/<sha>`;
 *             a server that refuses SHA wants → fetch all heads and tags, then look again
 *   job repo  a leftover dir of the same job (a crashed attempt) is deleted; the dir gets the `.git`
 *             that `git init` would write, with `objects/info/alternates` naming the cache's
 *             objects (what `clone --shared` does), then `git checkout --detach <sha>`
 *   Init and fetch run under the repository's lock, so two jobs of one repository never write its
 *   cache at once; other repositories go on in parallel. A commit this process has seen in the
 *   cache skips them and the lock. The job repository leaves nothing in the cache, so checkouts
 *   of one repository run side by side: a monorepo run starts all its tasks of a commit at once,
 *   and each starts one git process.
 * remove: delete the dir. Idempotent.
 *
 * Why not `git worktree add`: two of them at once on one repository fail (each reads the other's
 * half-written `worktrees/<id>` entry), so they had to queue on the lock; on a busy CI worker that
 * queue, not the steps, set the pace (a lock held ~50 ms per task, tasks waiting ~2.7 s for it).
 * Starting processes is the other cost of a short task: each spawn blocks the event loop for
 * 1-10 ms (a fork of a large process), hence one git process per task.
 *
 * Every fetched commit keeps a ref, so git's automatic gc never prunes what a later job (or a job
 * repository borrowing the objects) needs, and the next fetch negotiates from everything cached.
 *
 * Failures: a commit the remote does not have → validation_error naming repository and SHA;
 * refused or missing credentials → permission_denied (a retry sends the same credentials);
 * anything else from the remote (unreachable, timeout) → RetryableError with git's stderr.
 *
 * Credentials reach git only as GIT_CONFIG_* variables (an `http.<origin>/.extraHeader` scoped to
 * the remote's origin), never in argv, the URL or a file of the cache. git runs without the user's
 * global and system config, without prompts or askpass, without hooks, in its own process group:
 * a timeout or an abort stops the whole group (SIGTERM, which lets git drop its lock files; SIGKILL
 * after a grace period).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { denied, invalid, RetryableError } from '../domain/errors.ts';
import { isValidName, NAME_RULES, normaliseSha } from '../domain/names.ts';
import { KeyedMutex } from '../lib/keyed-mutex.ts';
import { Lru } from '../lib/lru.ts';
import { KILL_GRACE_MS } from './steps.ts';

export const DEFAULT_GIT_URL_TEMPLATE = 'https://github.com/{repository}.git';

export interface GitCredentials {
  /** Default `x-access-token` (what GitHub expects with an installation or personal token). */
  username?: string;
  token: string;
}

export interface GitWorkspaceOptions {
  cacheDir: string;
  /** `{repository}` (or `{owner}` and `{name}`) is replaced by the run's repository. */
  urlTemplate: string;
  credentials?: GitCredentials;
  /** Limit for each git command (a fetch of a large repository is one command). Default 10 minutes. */
  timeoutMs?: number;
}

export interface Workspace {
  dir: string;
  commitSha: string;
  remove(): Promise<void>;
}

export interface GitWorkspaces {
  checkout(repository: string, commitSha: string, jobId: string, signal?: AbortSignal): Promise<Workspace>;
  /** Refuses new checkouts and waits for the operations under way. */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const REPOSITORY_RULE = `${NAME_RULES.repository}; the name must not end in ".git"`;
const JOB_ID = /^(?!.*\.\.)(?!\.$)[A-Za-z0-9._-]{1,128}$/u;
const JOB_ID_RULE = 'letters, digits, ".", "_", "-" (1-128), no ".."';
/** What git says when the remote wants credentials it was not given, or refused the ones it was. */
const AUTH_FAILURE = /could not read (?:Username|Password)|Authentication failed|terminal prompts disabled|returned error: 40[13]|Permission denied \(publickey/i;

/** Maps `repository` (GitHub's `owner/name`) to its clone URL through the settings' template. */
export function repositoryUrl(template: string, repository: string): string {
  if (!isValidName('repository', repository) || /\.git$/iu.test(repository)) {
    throw invalid(`invalid repository ${JSON.stringify(repository.slice(0, 200))}: expected ${REPOSITORY_RULE}`, {
      field: 'repository',
      allowed: REPOSITORY_RULE,
    });
  }
  if (!template.includes('{repository}') && !(template.includes('{owner}') && template.includes('{name}'))) {
    throw invalid(`git URL template ${JSON.stringify(template)} must contain {repository} (or {owner} and {name})`, { field: 'urlTemplate' });
  }
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/iu.test(template)) {
    throw invalid('git URL template must not carry a password: configure the worker\'s git credentials instead', { field: 'urlTemplate' });
  }
  const [owner = '', name = ''] = repository.split('/');
  return template.replaceAll('{repository}', repository).replaceAll('{owner}', owner).replaceAll('{name}', name);
}

/** One lock per bare repository for the whole process, so two instances on one cache still queue. */
const repositoryLocks = new KeyedMutex();
/** Bare repositories initialised by this process: their origin's URL and the commits seen in them. */
const initialised = new Map<string, { url: string; commits: Lru<string, true> }>();
/** Commits remembered per repository; one more than this costs a `rev-parse` when it comes back. */
const KNOWN_COMMITS = 10_000;

export function createGitWorkspaces(options: GitWorkspaceOptions): GitWorkspaces {
  const cacheDir = resolve(options.cacheDir);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;

  function track<T>(operation: Promise<T>): Promise<T> {
    inFlight.add(operation);
    const forget = () => inFlight.delete(operation);
    operation.then(forget, forget);
    return operation;
  }

  return {
    async checkout(repository, commitSha, jobId, signal) {
      if (closed) throw new Error('git workspaces are closed');
      const url = repositoryUrl(options.urlTemplate, repository);
      if (!isValidName('commitSha', commitSha)) {
        throw invalid(`invalid commit SHA ${JSON.stringify(commitSha.slice(0, 100))}: expected ${NAME_RULES.commitSha}`, { field: 'commitSha' });
      }
      if (!JOB_ID.test(jobId)) {
        throw invalid(`invalid job id ${JSON.stringify(jobId.slice(0, 200))}: expected ${JOB_ID_RULE}`, { field: 'jobId', allowed: JOB_ID_RULE });
      }
      const sha = normaliseSha(commitSha);
      const bareDir = join(cacheDir, 'repos', `${repository}.git`);
      const dir = join(cacheDir, 'workspace', jobId);
      const call: GitCall = { env: remoteEnv(url, options.credentials), timeoutMs, signal };

      try {
        // A dir left by a crashed attempt of this job goes first.
        await rm(dir, { recursive: true, force: true });
        const cache = () => {
          const state = initialised.get(bareDir);
          return state?.url === url && existsSync(join(bareDir, 'config')) ? state : undefined;
        };
        if (cache()?.commits.get(sha) === undefined) {
          await track(
            repositoryLocks.run(bareDir, async () => {
              let state = cache();
              if (!state) {
                await git(undefined, ['init', '--quiet', '--bare', '--template=', bareDir], call);
                await git(bareDir, ['config', 'remote.origin.url', url], call);
                state = { url, commits: new Lru(KNOWN_COMMITS) };
                initialised.set(bareDir, state);
              }
              if (state.commits.get(sha) === undefined) {
                await fetchCommit(bareDir, repository, url, sha, call);
                state.commits.set(sha, true);
              }
            }),
          );
        }
        await track((async () => {
          await writeJobRepository(join(dir, '.git'), join(bareDir, 'objects'), url);
          await git(join(dir, '.git'), [`--work-tree=${dir}`, 'checkout', '--quiet', '--detach', sha], { ...call, env: GIT_ENV });
        })());
      } catch (error) {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        throw error;
      }
      return { dir, commitSha: sha, remove: () => track(rm(dir, { recursive: true, force: true })) };
    },
    async close() {
      closed = true;
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * The `.git` of a job repository: what `git clone --shared --no-checkout` writes, without starting
 * git: `init --template=`'s files, alternates naming the cache's objects (the job reads every cached
 * commit and copies none), and origin's URL (its credentials stay with the worker, as before).
 */
async function writeJobRepository(gitDir: string, objects: string, url: string): Promise<void> {
  await mkdir(join(gitDir, 'objects', 'info'), { recursive: true });
  await Promise.all([
    mkdir(join(gitDir, 'refs', 'heads'), { recursive: true }),
    mkdir(join(gitDir, 'refs', 'tags'), { recursive: true }),
    writeFile(join(gitDir, 'HEAD'), 'ref: refs/heads/main\n'),
    writeFile(join(gitDir, 'config'), [
      '[core]', '\trepositoryformatversion = 0', '\tfilemode = true', '\tbare = false', '\tlogallrefupdates = true',
      '[remote "origin"]', `\turl = ${JSON.stringify(url)}`, '\tfetch = +refs/heads/*:refs/remotes/origin/*', '',
    ].join('\n')),
    writeFile(join(gitDir, 'objects', 'info', 'alternates'), `${objects}\n`),
  ]);
}

async function fetchCommit(bareDir: string, repository: string, url: string, sha: string, call: GitCall): Promise<void> {
  if (await hasCommit(bareDir, sha, call)) return;
  const ref = `refs/forge/commits/${sha}`;
  try {
    await git(bareDir, ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', 'origin', `+${sha}:${ref}`], call);
    return;
  } catch (error) {
    const failure = fetchFailure(error, repository, url);
    // A timeout or an abort is final; any other git failure may be the server refusing SHA wants.
    if (!(failure instanceof RetryableError) || !(error instanceof GitFailure)) throw failure;
  }
  // The server refuses SHA wants (protocol v0 without uploadpack.allowReachableSHA1InWant), or
  // does not have the commit: fetch what it advertises and look again.
  try {
    await git(bareDir, ['fetch', '--quiet', '--no-write-fetch-head', 'origin', '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'], call);
  } catch (error) {
    throw fetchFailure(error, repository, url);
  }
  if (!(await hasCommit(bareDir, sha, call))) {
    throw invalid(`commit ${sha} not found in repository ${repository} (${url}): it is not on any branch or tag the remote has`, {
      repository,
      commitSha: sha,
    });
  }
  await git(bareDir, ['update-ref', ref, sha], call);
}

/** A failed fetch as what it means: permission_denied for credentials, RetryableError for the rest. */
function fetchFailure(error: unknown, repository: string, url: string): unknown {
  const reason = error instanceof GitFailure ? error.stderr.trim().slice(0, 2_000) : error instanceof RetryableError ? error.message : undefined;
  if (reason === undefined) return error; // aborted, or git could not start
  if (AUTH_FAILURE.test(reason)) {
    return denied(`git remote ${url} of ${repository} refused this worker (credentials missing or rejected; they come from the worker's settings): ${reason}`, {
      repository,
    });
  }
  return new RetryableError(`could not fetch ${repository} from ${url}: ${reason}`, undefined, { cause: error });
}

async function hasCommit(bareDir: string, sha: string, call: GitCall): Promise<boolean> {
  try {
    await git(bareDir, ['rev-parse', '--quiet', '--verify', `${sha}^{commit}`], call);
    return true;
  } catch (error) {
    if (error instanceof GitFailure && error.exitCode === 1) return false;
    throw error;
  }
}

export interface SeedOptions {
  bareDir: string;
  sourceDir: string;
  /** Default `main`. */
  branch?: string;
  message?: string;
  /** `Name <email>` or a name. Default `Forge <forge@localhost>`. */
  author?: string;
}

/**
 * Commits sourceDir's files as they are (dotfiles and ignored files included, any `.git` left out)
 * onto `branch` of the bare repository at bareDir, creating it if needed. An unchanged tree returns
 * the branch's head commit.
 */
export async function seedRepository(options: SeedOptions): Promise<{ commitSha: string }> {
  const branch = options.branch ?? 'main';
  if (!isValidName('branch', branch)) throw invalid(`invalid branch ${JSON.stringify(branch)}: expected ${NAME_RULES.branch}`, { field: 'branch' });
  const bareDir = resolve(options.bareDir);
  const entries = await listFiles(resolve(options.sourceDir));
  const scratch = await mkdtemp(join(tmpdir(), 'forge-seed-'));
  const call: GitCall = { env: { ...GIT_ENV, GIT_INDEX_FILE: join(scratch, 'index') }, timeoutMs: DEFAULT_TIMEOUT_MS };
  try {
    await git(undefined, ['init', '--quiet', '--bare', '--template=', `--initial-branch=${branch}`, bareDir], call);
    // A symlink's blob is its target: written to a scratch file so one hash-object reads every blob.
    const paths = await Promise.all(
      entries.map(async (entry, i) => {
        if (entry.linkTarget === undefined) return entry.absolute;
        const file = join(scratch, `link-${i}`);
        await writeFile(file, entry.linkTarget);
        return file;
      }),
    );
    if (entries.length > 0) {
      const blobs = (await git(bareDir, ['hash-object', '-w', '--no-filters', '--stdin-paths'], { ...call, input: `${paths.join('\n')}\n` })).trim().split('\n');
      const index = entries.map((entry, i) => `${entry.mode} ${blobs[i] ?? ''}\t${entry.path}\n`).join('');
      await git(bareDir, ['update-index', '--add', '--index-info'], { ...call, input: index });
    }
    const tree = (await git(bareDir, ['write-tree'], call)).trim();
    const branchRef = `refs/heads/${branch}`;
    const [head, headTree] = (await git(bareDir, ['for-each-ref', '--format=%(objectname) %(tree)', branchRef], call)).trim().split(' ');
    if (head && headTree === tree) return { commitSha: head };
    const { name, email } = parseAuthor(options.author ?? 'Forge <forge@localhost>');
    const identity = { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
    const parents = head ? ['-p', head] : [];
    const commit = (
      await git(bareDir, ['commit-tree', tree, ...parents, '-m', options.message ?? `Seed from ${options.sourceDir}`], { ...call, env: { ...call.env, ...identity } })
    ).trim();
    // Compare-and-swap: a concurrent seed of the same branch fails instead of being overwritten.
    await git(bareDir, ['update-ref', branchRef, commit, head ?? ''], call);
    return { commitSha: commit };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

interface TreeEntry {
  /** Relative, `/`-separated. */
  path: string;
  absolute: string;
  mode: '100644' | '100755' | '120000';
  linkTarget?: string;
}

/** Regular files and symlinks below root, any `.git` left out; empty dirs cannot be committed. */
async function listFiles(root: string, prefix = ''): Promise<TreeEntry[]> {
  const dirents = await readdir(join(root, prefix), { withFileTypes: true });
  const nested = await Promise.all(
    dirents
      .filter((dirent) => dirent.name !== '.git')
      .map(async (dirent): Promise<TreeEntry[]> => {
        const path = prefix === '' ? dirent.name : `${prefix}/${dirent.name}`;
        const absolute = join(root, path);
        if (path.includes('\n')) throw invalid(`cannot seed ${JSON.stringify(absolute)}: file names with a newline are not supported`);
        if (dirent.isDirectory()) return listFiles(root, path);
        if (dirent.isSymbolicLink()) return [{ path, absolute, mode: '120000', linkTarget: await readlink(absolute) }];
        if (!dirent.isFile()) return [];
        const executable = ((await lstat(absolute)).mode & 0o111) !== 0;
        return [{ path, absolute, mode: executable ? '100755' : '100644' }];
      }),
  );
  return nested.flat();
}

function parseAuthor(author: string): { name: string; email: string } {
  const match = /^(.*?)\s*<([^<>]+)>$/u.exec(author.trim());
  const name = (match ? match[1] : author)?.trim() ?? '';
  if (name === '' || /[<>\u0000-\u001f\u007f]/u.test(name)) throw invalid(`invalid author ${JSON.stringify(author)}: expected "Name <email>" or a name`, { field: 'author' });
  return { name, email: match?.[2] ?? 'forge@localhost' };
}

/* ---- running git ---- */

/** The caller's GIT_* variables (GIT_DIR, GIT_INDEX_FILE…) would redirect us; only ssh's are kept. */
const KEPT_GIT_ENV = new Set(['GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_SSH_VARIANT']);

const GIT_ENV: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => (!key.startsWith('GIT_') || KEPT_GIT_ENV.has(key)) && key !== 'SSH_ASKPASS')),
  GIT_TERMINAL_PROMPT: '0',
  // Empty, so git neither prompts nor falls back to SSH_ASKPASS or core.askPass.
  GIT_ASKPASS: '',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  LC_ALL: 'C',
};

/** No hooks, no gc left running after the lock is released, no advice on stderr. */
const BASE_CONFIG = ['-c', 'core.hooksPath=/dev/null', '-c', 'gc.autoDetach=false', '-c', 'advice.detachedHead=false'];

/** The environment for talking to `url`: with credentials, a Basic header for that origin only. */
function remoteEnv(url: string, credentials: GitCredentials | undefined): NodeJS.ProcessEnv {
  if (!credentials || !/^https?:\/\//iu.test(url)) return GIT_ENV;
  const basic = Buffer.from(`${credentials.username ?? 'x-access-token'}:${credentials.token}`).toString('base64');
  return {
    ...GIT_ENV,
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${new URL(url).origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
}

interface GitCall {
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  input?: string;
}

class GitFailure extends Error {
  override readonly name = 'GitFailure';
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`git ${args.join(' ')} failed (${String(exitCode)}): ${stderr.trim().slice(0, 2_000)}`);
  }
}

/** Runs git in its own process group; settles when the group's output is closed. */
function git(gitDir: string | undefined, args: string[], call: GitCall): Promise<string> {
  return new Promise((settle, reject) => {
    if (call.signal?.aborted) {
      reject(call.signal.reason);
      return;
    }
    const argv = [...BASE_CONFIG, ...(gitDir === undefined ? [] : [`--git-dir=${gitDir}`]), ...args];
    const child = spawn('git', argv, { env: call.env, detached: true, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    let stopped: { reason: unknown } | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    const stop = (reason: unknown) => {
      if (stopped !== undefined) return;
      stopped = { reason };
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const onAbort = () => stop(call.signal?.reason);
    const limit = setTimeout(() => stop(new RetryableError(`git ${args.join(' ')} timed out after ${call.timeoutMs} ms`)), call.timeoutMs);
    call.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-16_384)));
    child.stdin.on('error', () => undefined).end(call.input); // EPIPE when git exits without reading
    child.on('error', (error) => {
      // Spawning failed (no git on PATH); errors after a start are followed by 'close'.
      if (child.pid === undefined) stop(new Error(`could not run git: ${error.message}`, { cause: error }));
    });
    child.on('close', (code) => {
      clearTimeout(limit);
      clearTimeout(killTimer);
      call.signal?.removeEventListener('abort', onAbort);
      if (stopped !== undefined) reject(stopped.reason);
      else if (code === 0) settle(stdout);
      else reject(new GitFailure(args, code, stderr));
    });
  });
}

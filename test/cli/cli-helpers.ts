/** A real Forge server (embedded defaults, temp data dir) and the `forge` CLI run as a child process. */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Role } from '../../src/domain/identity.ts';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The parent's environment without anything that would steer the CLI, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const { FORGE_URL: _url, FORGE_TOKEN: _token, NO_COLOR: _noColor, ...rest } = process.env;
  return { ...rest, ...env };
}

export async function forge(args: string[], env: Record<string, string>): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/forge.mjs', ...args], { cwd: ROOT, env: childEnv(env) });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

export interface RunningCli {
  /** What it has printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout (or stderr) matches; fails after `timeoutMs` with what was printed. */
  waitFor(pattern: RegExp, stream?: 'stdout' | 'stderr', timeoutMs?: number): Promise<void>;
  /** Resolves when it exits. */
  done: Promise<CliResult>;
}

/** `forge …` started and left running, for commands that wait (watch, follow). */
export function startForge(args: string[], env: Record<string, string>): RunningCli {
  const child = spawn(process.execPath, ['bin/forge.mjs', ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    out[stream] += chunk.toString('utf8');
    for (const check of waiters) check();
  };
  child.stdout.on('data', collect('stdout'));
  child.stderr.on('data', collect('stderr'));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      for (const check of waiters) check();
      resolve({ code: code ?? -1, stdout: out.stdout, stderr: out.stderr });
    });
  });
  return {
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    done,
    waitFor: (pattern, stream = 'stdout', timeoutMs = 15_000) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${pattern} on ${stream} within ${timeoutMs} ms; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`));
      }, timeoutMs);
      const check = () => {
        if (pattern.test(out[stream])) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        } else if (child.exitCode !== null) {
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`forge exited ${child.exitCode} before ${pattern} on ${stream}; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`));
        }
      };
      waiters.add(check);
      check();
    }),
  };
}

export interface TestServer {
  server: RunningServer;
  url: string;
  token(sub: string, roles: Role[]): Promise<string>;
  close(): Promise<void>;
}

/** No workers in the server: the CLI tests drive every status themselves, as workers would. */
/** A real server on embedded defaults with only a release worker (it commits deployments' pointers). */
export async function startTestServer(): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'forge-cli-'));
  const server = await startServer(parseServerSettings({ port: '0', dataDir, rateLimits: 'off', logLevel: 'silent', workers: 'release' }, {}));
  return {
    server,
    url: server.url,
    token: (sub, roles) => server.devIssuer!.sign({ sub, roles }),
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A URL nothing listens on: a port that was just free. */
export async function closedUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

export const lines = (text: string) => text.trimEnd().split('\n');

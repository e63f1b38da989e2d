/**
 * A `forge` command (node bin/forge.mjs …) as a real, separate process, for tests that kill or
 * freeze it: `forge server`, `forge worker`. Output is captured; every process started here is
 * remembered, so a test's afterAll can end them all (`killAllForgeProcesses`) whatever state they
 * were left in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FORGE_BIN = fileURLToPath(new URL('../../bin/forge.mjs', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ForgeProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** stdout and stderr so far, each line prefixed with the process name and the stream. */
  output(): string;
  /** Resolves with the first match of `ready` in the output (the start banner); rejects if the process ends first. */
  ready: Promise<RegExpMatchArray>;
  /** Resolves with the exit code or signal once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process has ended. */
  ended(): boolean;
  signal(signal: NodeJS.Signals): void;
  /** SIGCONT (in case it is stopped), SIGTERM, and SIGKILL if it has not ended within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const started = new Set<ForgeProcess>();

export function spawnForgeProcess(name: string, args: string[], env: Record<string, string>, ready: RegExp): ForgeProcess {
  const child = spawn(process.execPath, [FORGE_BIN, ...args], { cwd: REPO_ROOT, env, detached: false, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name} did not start`);
  let text = '';
  let onReady: ((match: RegExpMatchArray) => void) | undefined;
  let onEnd: ((error: Error) => void) | undefined;
  const readyPromise = new Promise<RegExpMatchArray>((resolve, reject) => {
    onReady = resolve;
    onEnd = reject;
  });
  readyPromise.catch(() => undefined); // a caller that never awaits it must not see an unhandled rejection
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]!.setEncoding('utf8');
    child[stream]!.on('data', (chunk: string) => {
      text += chunk.split('\n').filter(Boolean).map((line) => `[${name} ${stream}] ${line}\n`).join('');
      const match = ready.exec(text);
      if (match) onReady?.(match);
    });
  }
  let hasEnded = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      hasEnded = true;
      onEnd?.(new Error(`${name} ended (${signal ?? code}) before it was ready:\n${text}`));
      resolve({ code, signal });
    });
  });
  const forge: ForgeProcess = {
    name, child, pid: child.pid, ready: readyPromise, exited,
    output: () => text,
    ended: () => hasEnded,
    signal(signal) {
      if (!hasEnded) child.kill(signal);
    },
    async stop(graceMs = 5000) {
      if (!hasEnded) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      started.delete(forge);
    },
  };
  started.add(forge);
  void exited.then(() => started.delete(forge));
  return forge;
}

/** Ends every process started here and not ended yet (SIGCONT, then SIGKILL). */
export async function killAllForgeProcesses(): Promise<void> {
  await Promise.all([...started].map(async (forge) => {
    forge.signal('SIGCONT');
    forge.signal('SIGKILL');
    await forge.exited;
  }));
}

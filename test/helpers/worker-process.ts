/**
 * `forge worker` as a real, separate process (node bin/forge.mjs worker), for tests that kill or
 * freeze a worker. Output is captured; every process started here is remembered, so a test's
 * afterAll can end them all (`killAllWorkerProcesses`) whatever state they were left in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const FORGE_BIN = fileURLToPath(new URL('../../bin/forge.mjs', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface WorkerProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** stdout and stderr so far, each line prefixed with the stream. */
  output(): string;
  /** Resolves once the worker printed its start banner (it takes jobs from then on). */
  ready: Promise<void>;
  /** Resolves with the exit code or signal once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(signal: NodeJS.Signals): void;
  /** Groups (pgids) of the step processes this worker runs now: each step runs in its own group. */
  stepGroups(): number[];
  /** SIGCONT (in case it is stopped), SIGTERM, and SIGKILL if it has not ended within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const started = new Set<WorkerProcess>();

/** Children of `pid` that lead their own process group (what runStep's detached spawn makes). */
function groupLeadersUnder(pid: number): number[] {
  const leaders: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const [, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) === pid && Number(pgrp) === Number(entry)) leaders.push(Number(entry));
  }
  return leaders;
}

/** Sends `signal` to a process group, ignoring one that is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

export function spawnWorkerProcess(name: string, env: Record<string, string>, types: string[] = ['discovery', 'ci']): WorkerProcess {
  const child = spawn(process.execPath, [FORGE_BIN, 'worker', ...types.flatMap((t) => ['--type', t])], {
    cwd: REPO_ROOT, env, detached: false, stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`worker ${name} did not start`);
  let text = '';
  let onBanner: (() => void) | undefined;
  const ready = new Promise<void>((resolve) => (onBanner = resolve));
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]!.setEncoding('utf8');
    child[stream]!.on('data', (chunk: string) => {
      text += chunk.split('\n').filter(Boolean).map((line) => `[${name} ${stream}] ${line}\n`).join('');
      if (/forge worker .*jobs from/.test(text)) onBanner?.();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let ended = false;
  void exited.then(() => (ended = true));
  const pid = child.pid;
  const worker: WorkerProcess = {
    name, child, pid, ready, exited,
    output: () => text,
    signal(signal) {
      if (!ended) child.kill(signal);
    },
    stepGroups: () => (ended ? [] : groupLeadersUnder(pid)),
    async stop(graceMs = 5000) {
      const groups = worker.stepGroups();
      if (!ended) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      for (const group of groups) signalGroup(group, 'SIGKILL');
      started.delete(worker);
    },
  };
  started.add(worker);
  return worker;
}

/** Ends every worker process started here and not stopped yet (SIGCONT, then SIGKILL). */
export async function killAllWorkerProcesses(): Promise<void> {
  await Promise.all([...started].map(async (worker) => {
    const groups = worker.stepGroups();
    worker.signal('SIGCONT');
    worker.signal('SIGKILL');
    await worker.exited;
    for (const group of groups) signalGroup(group, 'SIGKILL');
    started.delete(worker);
  }));
}

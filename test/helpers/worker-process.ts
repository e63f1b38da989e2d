/**
 * `forge worker` as a real, separate process (node bin/forge.mjs worker), for tests that kill or
 * freeze a worker. Output is captured; every process started here is remembered, so a test's
 * afterAll can end them all (`killAllWorkerProcesses`) whatever state they were left in.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { spawnForgeProcess, type ForgeProcess } from './forge-process.ts';

export interface WorkerProcess extends ForgeProcess {
  /** Groups (pgids) of the step processes this worker runs now: each step runs in its own group. */
  stepGroups(): number[];
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
  const forge = spawnForgeProcess(name, ['worker', ...types.flatMap((t) => ['--type', t])], env, /forge worker .*jobs from/);
  const stepGroups = () => (forge.ended() ? [] : groupLeadersUnder(forge.pid));
  const worker: WorkerProcess = {
    ...forge,
    stepGroups,
    async stop(graceMs = 5000) {
      const groups = stepGroups();
      await forge.stop(graceMs);
      for (const group of groups) signalGroup(group, 'SIGKILL');
      started.delete(worker);
    },
  };
  started.add(worker);
  return worker;
}

/** Ends every worker process started here and not stopped yet (SIGCONT, then SIGKILL), and the steps it ran. */
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

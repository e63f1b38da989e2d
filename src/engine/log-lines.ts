/**
 * Lines of a step log: a line index (how many lines, and the byte offset of every 1000th line, so a
 * viewer can jump to line n with one ranged read) and a literal search. Both read the log in 1 MiB
 * ranges from the object store, never whole.
 *
 * Logs only grow (parts while the step runs, then the whole object holding the same bytes and
 * more), so an index is kept per log key, per object store, in a small LRU cache, and extended
 * from where the last scan stopped. Cache entry per key: absent → scanned to n bytes → scanned to
 * m ≥ n bytes (a later call found more) → evicted (least recently used, beyond 64 keys). A log
 * found shorter than its entry (replaced, which Forge does not do) is scanned again from 0.
 */
import { notFound } from '../domain/errors.ts';
import { logPartsPrefix } from '../domain/logs.ts';
import { KeyedMutex } from '../lib/keyed-mutex.ts';
import { Lru } from '../lib/lru.ts';
import { readLogParts, stepLogOf } from './logs.ts';
import type { ObjectStore, Repos } from './ports.ts';

/** A checkpoint every this many lines. */
export const LINE_INDEX_EVERY = 1000;
/** Bytes read per request while scanning. */
export const SCAN_BYTES = 1024 * 1024;
/** Logs whose index is kept, per object store. */
const CACHED_LOGS = 64;
/** Only the first this many bytes of a line are searched (a log of one endless line must not fill memory). */
export const SEARCHED_LINE_BYTES = 1024 * 1024;
/** Characters of a matching line returned. */
export const MATCH_TEXT_CHARS = 1000;

/** A log as stored now: the whole object once the step ended, else its parts, read by byte range. */
interface StoredLog {
  size: number;
  /** The whole object (nothing more will be written to it once its step has ended). */
  whole: boolean;
  read(start: number, end: number): Promise<Buffer>;
}

async function openStoredLog(objects: ObjectStore, key: string): Promise<StoredLog> {
  const readWhole = async (start: number, end: number) => {
    const got = await objects.get(key, { start, end });
    if (!got) throw notFound(`log object ${key}`, { key });
    return got.body;
  };
  for (let attempt = 1; ; attempt++) {
    const head = await objects.head(key);
    if (head) return { size: head.size, whole: true, read: readWhole };
    const parts = await objects.list(logPartsPrefix(key));
    // No parts and no whole object: nothing flushed yet, or the step ended between the two calls.
    if (parts.length > 0 || attempt === 2) {
      return {
        size: parts.reduce((sum, p) => sum + p.size, 0),
        whole: false,
        // A part gone meanwhile: the whole object replaced the parts and holds the same bytes.
        read: async (start, end) => (await readLogParts(objects, parts, start, end)) ?? readWhole(start, end),
      };
    }
  }
}

/** [offset, body] ranges of at most SCAN_BYTES covering [from, to). */
async function* ranges(log: StoredLog, from: number, to: number): AsyncGenerator<[number, Buffer]> {
  let offset = from;
  while (offset < to) {
    const body = await log.read(offset, Math.min(to, offset + SCAN_BYTES));
    if (body.length === 0) return;
    yield [offset, body];
    offset += body.length;
  }
}

// ---- Line index --------------------------------------------------------------------------------

interface LineScan {
  scannedTo: number;
  newlines: number;
  /** Where the line after the last newline starts (0 before any). */
  lastLineStart: number;
  /** Start of line k * LINE_INDEX_EVERY, for each k reached; the last may be the end of the log. */
  checkpoints: number[];
}

const scans = new WeakMap<ObjectStore, Lru<string, LineScan>>();
const scanning = new KeyedMutex();

function scanCache(objects: ObjectStore): Lru<string, LineScan> {
  let cache = scans.get(objects);
  if (!cache) {
    cache = new Lru(CACHED_LOGS);
    scans.set(objects, cache);
  }
  return cache;
}

export interface LogLineIndex {
  size: number;
  whole: boolean;
  /** Lines in the log; a last line without a newline counts. */
  lines: number;
  every: number;
  /** checkpoints[k]: the byte offset where (0-based) line k * every starts. */
  checkpoints: number[];
}

/** The line index of the log stored under `key`, extending the cached one by what was written since. */
export function indexLog(objects: ObjectStore, key: string): Promise<LogLineIndex> {
  return scanning.run(key, async () => {
    const log = await openStoredLog(objects, key);
    const cache = scanCache(objects);
    const cached = cache.get(key);
    const scan: LineScan = cached && cached.scannedTo <= log.size
      ? { ...cached, checkpoints: [...cached.checkpoints] }
      : { scannedTo: 0, newlines: 0, lastLineStart: 0, checkpoints: [0] };
    for await (const [offset, body] of ranges(log, scan.scannedTo, log.size)) {
      for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, i + 1)) {
        scan.newlines += 1;
        scan.lastLineStart = offset + i + 1;
        if (scan.newlines % LINE_INDEX_EVERY === 0) scan.checkpoints.push(scan.lastLineStart);
      }
      scan.scannedTo = offset + body.length;
    }
    cache.set(key, scan);
    return {
      size: scan.scannedTo,
      whole: log.whole,
      lines: scan.newlines + (scan.scannedTo > scan.lastLineStart ? 1 : 0),
      every: LINE_INDEX_EVERY,
      checkpoints: scan.checkpoints.filter((c) => c < scan.scannedTo),
    };
  });
}

// ---- Search --------------------------------------------------------------------------------------

/** CSI (`ESC [ … final`), OSC (`ESC ] … BEL | ESC \`, or to the end of the line), and other two-byte and nF escapes. */
const ANSI_ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]+[0-~]|\x1b[@-Z\\^_]|\x9b[0-?]*[ -/]*[@-~]/g;

export function stripAnsi(text: string): string {
  return text.includes('\x1b') || text.includes('\x9b') ? text.replace(ANSI_ESCAPES, '') : text;
}

/** At most `max` characters, never ending in half a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

export interface LogSearch {
  query: string;
  limit: number;
  caseSensitive: boolean;
}

export interface LogMatch {
  /** 1-based. */
  line: number;
  /** Byte offset where the line starts. */
  offset: number;
  /** The line without its newline (and carriage return) and without ANSI escapes, cut to MATCH_TEXT_CHARS. */
  text: string;
}

export interface LogSearchResult {
  size: number;
  whole: boolean;
  matches: LogMatch[];
  /** More lines matched than `limit`. */
  truncated: boolean;
}

/**
 * Lines of the log under `key` containing `query` literally, after ANSI escapes are removed
 * (case-insensitively unless asked). Stops at the first match past `limit`.
 */
export async function searchLog(objects: ObjectStore, key: string, search: LogSearch): Promise<LogSearchResult> {
  const log = await openStoredLog(objects, key);
  const needle = search.caseSensitive ? search.query : search.query.toLowerCase();
  const matches: LogMatch[] = [];
  let line = 1;
  let lineStart = 0;
  /** The current line's bytes so far (up to SEARCHED_LINE_BYTES), when it began in an earlier range. */
  let carry: Buffer[] = [];
  let carried = 0;
  const test = (bytes: Buffer) => {
    let text = bytes.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    text = stripAnsi(text);
    if ((search.caseSensitive ? text : text.toLowerCase()).includes(needle)) {
      matches.push({ line, offset: lineStart, text: cut(text, MATCH_TEXT_CHARS) });
    }
  };
  const keep = (bytes: Buffer) => {
    const room = SEARCHED_LINE_BYTES - carried;
    if (room <= 0 || bytes.length === 0) return;
    const kept = Buffer.from(bytes.subarray(0, room)); // a copy: the range it came from can go
    carry.push(kept);
    carried += kept.length;
  };
  scan: for await (const [offset, body] of ranges(log, 0, log.size)) {
    let from = 0;
    for (let i = body.indexOf(0x0a); i !== -1; i = body.indexOf(0x0a, from)) {
      const rest = body.subarray(from, Math.min(i, from + SEARCHED_LINE_BYTES));
      if (carried === 0) test(rest);
      else {
        keep(rest);
        test(Buffer.concat(carry));
        carry = [];
        carried = 0;
      }
      if (matches.length > search.limit) break scan;
      line += 1;
      lineStart = offset + i + 1;
      from = i + 1;
    }
    keep(body.subarray(from));
  }
  if (carried > 0 && matches.length <= search.limit) test(Buffer.concat(carry));
  return { size: log.size, whole: log.whole, matches: matches.slice(0, search.limit), truncated: matches.length > search.limit };
}

// ---- Steps ---------------------------------------------------------------------------------------

export interface StepLogIndex extends Omit<LogLineIndex, 'whole'> {
  step_id: string;
  key: string | null;
  complete: boolean;
}

export interface StepLogSearch extends Omit<LogSearchResult, 'whole'> {
  step_id: string;
  query: string;
  complete: boolean;
}

/** GET /v1/steps/{id}/logs/index. `complete`: the step ended and its whole log is stored. */
export async function stepLogIndex(store: Pick<Repos, 'getStep'>, objects: ObjectStore | undefined, stepId: string): Promise<StepLogIndex> {
  const log = await stepLogOf(store, objects, stepId);
  if (log.key === null) return { step_id: stepId, key: null, size: 0, complete: log.ended, lines: 0, every: LINE_INDEX_EVERY, checkpoints: [] };
  const { whole, ...index } = await indexLog(log.objects, log.key);
  return { step_id: stepId, key: log.key, ...index, complete: log.ended && whole };
}

/** GET /v1/steps/{id}/logs/search. */
export async function searchStepLog(store: Pick<Repos, 'getStep'>, objects: ObjectStore | undefined, stepId: string, search: LogSearch): Promise<StepLogSearch> {
  const log = await stepLogOf(store, objects, stepId);
  if (log.key === null) return { step_id: stepId, query: search.query, matches: [], truncated: false, size: 0, complete: log.ended };
  const { whole, ...found } = await searchLog(log.objects, log.key, search);
  return { step_id: stepId, query: search.query, ...found, complete: log.ended && whole };
}

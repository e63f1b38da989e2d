/**
 * Line index and search of step logs, read in ranges from a real object store (files; S3 on Ceph
 * when FORGE_TEST_S3_* is set): a generated 100k-line log with ANSI colours, a running step's parts
 * growing between two index calls (written by the worker's own StepLog), and the edge cases.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { logPartsPrefix } from '../../src/domain/logs.ts';
import { LINE_INDEX_EVERY, MATCH_TEXT_CHARS, SCAN_BYTES, indexLog, searchLog, stripAnsi } from '../../src/engine/log-lines.ts';
import type { ObjectStore } from '../../src/engine/ports.ts';
import { StepLog } from '../../src/worker/step-log.ts';
import { objectStoreAdapters } from '../helpers/object-stores.ts';

const GREEN = '\x1b[32m';
const RED = '\x1b[1;31m';
const RESET = '\x1b[0m';

/** Line i (0-based) of the generated log: coloured levels, now and then a failure, Unicode, a hyperlink. */
function generatedLine(i: number): string {
  if (i % 9973 === 0) return `${RED}ERR${RESET}OR: step ${i} failed — retrying 🔁`;
  if (i % 5000 === 1) return `\x1b]8;;https://forge.example/runs/${i}\x07link ${i}\x1b]8;;\x07 Ünïcödé line`;
  return `${GREEN}[info]${RESET} compiling module-${i} ${'.'.repeat(i % 61)} done in ${i % 997} ms`;
}

/** The log as bytes, and where each line starts (the reference the scanner is checked against). */
function generatedLog(lines: number): { bytes: Buffer; starts: number[] } {
  const starts: number[] = [];
  const chunks: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < lines; i++) {
    const line = Buffer.from(`${generatedLine(i)}\n`);
    starts.push(at);
    chunks.push(line);
    at += line.length;
  }
  return { bytes: Buffer.concat(chunks), starts };
}

/** The store, counting the bytes it is asked for and the largest range (reads go through the real adapter). */
function counting(objects: ObjectStore) {
  const seen = { bytes: 0, largest: 0, unbounded: 0 };
  const store: ObjectStore = {
    kind: objects.kind,
    async get(key, range) {
      const got = await objects.get(key, range);
      if (!range || range.end === undefined) seen.unbounded += 1;
      if (got) {
        seen.bytes += got.body.length;
        seen.largest = Math.max(seen.largest, got.body.length);
      }
      return got;
    },
    put: (...args) => objects.put(...args),
    putFile: (...args) => objects.putFile(...args),
    head: (...args) => objects.head(...args),
    list: (...args) => objects.list(...args),
    delete: (...args) => objects.delete(...args),
    close: () => objects.close(),
  };
  return { store, seen, reset: () => Object.assign(seen, { bytes: 0, largest: 0, unbounded: 0 }) };
}

describe('stripAnsi', () => {
  it('removes CSI and OSC sequences (BEL- or ST-terminated) and leaves other text alone', () => {
    expect(stripAnsi(`${RED}ERR${RESET}OR`)).toBe('ERROR');
    expect(stripAnsi('\x1b[38;5;208mamber\x1b[K\x1b[2J')).toBe('amber');
    expect(stripAnsi('\x1b]0;title\x07after \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\')).toBe('after link');
    expect(stripAnsi('plain [32m text ✓')).toBe('plain [32m text ✓');
  });
});

for (const adapter of objectStoreAdapters('log lines')) {
  describe(`step log lines on ${adapter.name}`, () => {
    let objects: ObjectStore;
    let dispose: (() => Promise<void>) | undefined;
    let n = 0;
    let p = '';
    const big = generatedLog(100_000);

    beforeAll(async () => {
      if (adapter.unavailable) return;
      ({ store: objects, dispose } = await adapter.open());
      await objects.put('fixed/big.log', big.bytes);
    });
    afterAll(async () => {
      await objects?.close();
      await dispose?.();
    });
    beforeEach((context) => {
      if (adapter.unavailable) context.skip(adapter.unavailable);
      p = `t${++n}/pipeline-runs/r/logs/ci/api/`;
    });

    it('indexes a 100k-line log in ranges of at most 1 MiB: line count and every 1000th line start', async () => {
      expect(big.bytes.length).toBeGreaterThan(5 * SCAN_BYTES);
      const { store, seen } = counting(objects);
      const started = performance.now();
      const index = await indexLog(store, 'fixed/big.log');
      const ms = performance.now() - started;
      expect(index).toMatchObject({ size: big.bytes.length, whole: true, lines: 100_000, every: LINE_INDEX_EVERY });
      expect(index.checkpoints).toEqual(big.starts.filter((_, i) => i % LINE_INDEX_EVERY === 0));
      expect(index.checkpoints).toHaveLength(100);
      // Each checkpoint is where its line starts: the byte before it is a newline.
      for (const at of index.checkpoints.slice(1)) expect(big.bytes[at - 1]).toBe(0x0a);
      expect(seen.largest).toBeLessThanOrEqual(SCAN_BYTES);
      expect(seen.unbounded).toBe(0);
      expect(seen.bytes).toBe(big.bytes.length);
      console.info(`log lines on ${adapter.name}: indexed ${big.bytes.length} bytes / 100000 lines in ${ms.toFixed(0)} ms`);
    });

    it('answers again from its cache (one per object store) without reading the log', async () => {
      const { store, seen, reset } = counting(objects);
      await indexLog(store, 'fixed/big.log');
      reset();
      const again = await indexLog(store, 'fixed/big.log');
      expect(again.lines).toBe(100_000);
      expect(seen.bytes).toBe(0);
    });

    it('searches literally and case-insensitively in lines without their ANSI escapes', async () => {
      const { store, seen } = counting(objects);
      const found = await searchLog(store, 'fixed/big.log', { query: 'error: STEP', limit: 200, caseSensitive: false });
      const expected = big.starts.map((offset, i) => ({ i, offset })).filter(({ i }) => i % 9973 === 0);
      expect(found.matches).toEqual(expected.map(({ i, offset }) => ({ line: i + 1, offset, text: `ERROR: step ${i} failed — retrying 🔁` })));
      expect(found).toMatchObject({ truncated: false, size: big.bytes.length, whole: true });
      expect(seen.largest).toBeLessThanOrEqual(SCAN_BYTES);
      // The escape sequences themselves are not searched, nor is the query a pattern.
      expect((await searchLog(objects, 'fixed/big.log', { query: '[32m', limit: 10, caseSensitive: false })).matches).toEqual([]);
      expect((await searchLog(objects, 'fixed/big.log', { query: 'module-1.', limit: 10, caseSensitive: false })).matches).toEqual([]);
      expect((await searchLog(objects, 'fixed/big.log', { query: 'module-12 .', limit: 10, caseSensitive: false })).matches.map((m) => m.line)).toEqual([13]);
      // OSC hyperlinks: only their visible text is searched and returned.
      const link = await searchLog(objects, 'fixed/big.log', { query: 'LINK 5001 ünïcödé', limit: 10, caseSensitive: false });
      expect(link.matches).toEqual([{ line: 5002, offset: big.starts[5001], text: 'link 5001 Ünïcödé line' }]);
    });

    it('matches case-sensitively with case on, and stops after limit matches saying so', async () => {
      expect((await searchLog(objects, 'fixed/big.log', { query: 'error:', limit: 200, caseSensitive: true })).matches).toEqual([]);
      expect((await searchLog(objects, 'fixed/big.log', { query: 'ERROR:', limit: 200, caseSensitive: true })).matches).toHaveLength(11);
      const capped = await searchLog(objects, 'fixed/big.log', { query: 'compiling', limit: 5, caseSensitive: false });
      expect(capped.truncated).toBe(true);
      expect(capped.matches.map((m) => m.line)).toEqual([3, 4, 5, 6, 7]);
      const exact = await searchLog(objects, 'fixed/big.log', { query: 'ERROR', limit: 11, caseSensitive: true });
      expect(exact).toMatchObject({ truncated: false });
      expect(exact.matches).toHaveLength(11);
    });

    it('counts a last line without a newline, cuts long matching lines, handles CRLF and empty logs', async () => {
      const long = `start ${'x'.repeat(3 * SCAN_BYTES)} needle end`;
      await objects.put(`${p}edge.log`, `first\r\n\n${long}\nsecond needle\r\nlast needle`);
      const index = await indexLog(objects, `${p}edge.log`);
      expect(index).toMatchObject({ lines: 5, checkpoints: [0] });
      const found = await searchLog(objects, `${p}edge.log`, { query: 'NEEDLE', limit: 10, caseSensitive: false });
      const longStart = Buffer.byteLength('first\r\n\n');
      const secondStart = longStart + Buffer.byteLength(`${long}\n`);
      expect(found.matches.map(({ line, offset }) => ({ line, offset }))).toEqual([
        // The long line's needle lies past the 1 MiB searched of a line: it is not found there.
        { line: 4, offset: secondStart },
        { line: 5, offset: secondStart + Buffer.byteLength('second needle\r\n') },
      ]);
      expect(found.matches.map((m) => m.text)).toEqual(['second needle', 'last needle']);
      const start = await searchLog(objects, `${p}edge.log`, { query: 'start x', limit: 10, caseSensitive: false });
      expect(start.matches).toHaveLength(1);
      expect(start.matches[0]?.text).toHaveLength(MATCH_TEXT_CHARS);
      expect(start.matches[0]).toMatchObject({ line: 3, offset: longStart });

      await objects.put(`${p}empty.log`, '');
      expect(await indexLog(objects, `${p}empty.log`)).toMatchObject({ size: 0, lines: 0, checkpoints: [] });
      expect((await searchLog(objects, `${p}empty.log`, { query: 'x', limit: 1, caseSensitive: false })).matches).toEqual([]);
      // Exactly 1000 lines: no checkpoint for line 1000, which does not exist (yet).
      await objects.put(`${p}thousand.log`, 'l\n'.repeat(1000));
      expect(await indexLog(objects, `${p}thousand.log`)).toMatchObject({ lines: 1000, checkpoints: [0] });
    });

    it('extends the index of a running step as its parts grow, reading only what is new, then of its whole log', async () => {
      const key = `${p}running.log`;
      const log = new StepLog(objects, key, 60_000);
      const first = big.bytes.subarray(0, big.starts[2500]);
      // Written in uneven pieces so part boundaries fall inside lines.
      for (let at = 0; at < first.length; at += 70_001) {
        log.write(first.subarray(at, Math.min(first.length, at + 70_001)));
        await log.flush();
      }
      log.write('half a li');
      await log.flush();
      expect((await objects.list(logPartsPrefix(key))).length).toBeGreaterThan(2);
      expect(await objects.head(key)).toBeUndefined();
      const { store, seen, reset } = counting(objects);
      const before = await indexLog(store, key);
      expect(before).toMatchObject({ whole: false, size: first.length + 9, lines: 2501, checkpoints: [0, big.starts[1000], big.starts[2000]] });
      expect(seen.bytes).toBe(first.length + 9);

      reset();
      const more = Buffer.from(`ne\n${'more output\n'.repeat(1999)}`);
      log.write(more);
      await log.flush();
      const after = await indexLog(store, key);
      expect(after).toMatchObject({ whole: false, size: first.length + 9 + more.length, lines: 4500 });
      // Line 2501 ('more output', 12 bytes each) starts after 'half a line\n'.
      const more0 = first.length + 12;
      expect(after.checkpoints).toEqual([0, big.starts[1000], big.starts[2000], more0 + 499 * 12, more0 + 1499 * 12]);
      expect(seen.bytes).toBe(more.length);
      const running = await searchLog(objects, key, { query: 'half a line', limit: 5, caseSensitive: true });
      expect(running.matches).toEqual([{ line: 2501, offset: first.length, text: 'half a line' }]);

      await log.finish('--- step succeeded');
      reset();
      const done = await indexLog(store, key);
      expect(done).toMatchObject({ whole: true, lines: 4501, size: after.size + Buffer.byteLength('--- step succeeded\n') });
      expect(done.checkpoints).toEqual(after.checkpoints);
      expect(seen.bytes).toBe(Buffer.byteLength('--- step succeeded\n'));
    });
  });
}

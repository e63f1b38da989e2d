/** StepLog against the files object store: parts while it runs, one whole object at the end. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logPartsPrefix } from '../../src/domain/logs.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import { Masker } from '../../src/lib/masker.ts';
import { SPILL_BYTES, StepLog } from '../../src/worker/step-log.ts';

const root = mkdtempSync(join(tmpdir(), 'forge-steplog-'));
const objects = createFileObjectStore(root);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const text = async (key: string) => (await objects.get(key))?.body.toString('utf8');
const leftovers = () => readdirSync(tmpdir()).filter((name) => name.startsWith('forge-log-'));

describe('StepLog', () => {
  it('stores a step that printed nothing as an empty log, with no parts', async () => {
    const log = new StepLog(objects, 'logs/empty.log', 10);
    await log.finish();
    expect(await text('logs/empty.log')).toBe('');
    expect(await objects.list(logPartsPrefix('logs/empty.log'))).toEqual([]);
  });

  it('flushes parts while the step runs, then stores the whole log with its marker and deletes the parts', async () => {
    const log = new StepLog(objects, 'logs/small.log', 10);
    log.write('one\n');
    await log.flush();
    log.write(Buffer.from('two\n'));
    await log.flush();
    expect((await objects.list(logPartsPrefix('logs/small.log'))).map((p) => p.size)).toEqual([4, 4]);
    expect(await text('logs/small.log')).toBeUndefined();
    await log.finish('--- step failed');
    expect(await text('logs/small.log')).toBe('one\ntwo\n--- step failed\n');
    expect(await objects.list(logPartsPrefix('logs/small.log'))).toEqual([]);
  });

  it('keeps a log larger than memory allows in a temporary file, removed at the end', async () => {
    const before = leftovers();
    const log = new StepLog(objects, 'logs/large.log', 60_000);
    const line = `${'x'.repeat(1023)}\n`;
    const lines = Math.ceil((SPILL_BYTES * 1.5) / line.length);
    for (let i = 0; i < lines; i++) log.write(line);
    await new Promise((r) => setTimeout(r, 50)); // the file opens asynchronously
    expect(leftovers().length).toBe(before.length + 1);
    await log.finish();
    const stored = await objects.get('logs/large.log');
    expect(stored?.size).toBe(lines * line.length);
    expect(stored?.body.toString('utf8', 0, 2048)).toBe(line + line);
    expect(leftovers()).toEqual(before);
  });

  it('masks secrets in parts and in the whole log, also split across writes and flushes, and in the marker', async () => {
    const secret = 'canary-steplog-8d1f0c2a';
    const log = new StepLog(objects, 'logs/masked.log', 60_000, new Masker([secret]));
    log.write(`token=${secret.slice(0, 10)}`);
    await log.flush(); // the start of the secret is kept back: nothing of it goes up
    log.write(`${secret.slice(10)}\nlast: ${secret.slice(0, 5)}`);
    await log.flush();
    const parts = await Promise.all((await objects.list(logPartsPrefix('logs/masked.log'))).map((p) => text(p.key)));
    expect(parts.join('')).toBe('token=***\nlast: ');
    await log.finish(`--- step failed: exited with ${secret}`);
    const whole = await text('logs/masked.log');
    expect(whole).toBe(`token=***\nlast: ${secret.slice(0, 5)}--- step failed: exited with ***\n`);
    expect(whole).not.toContain(secret);
  });
});

/**
 * Reading a step's log in ranges, while it runs (from the part objects the worker flushes) and after
 * (from the whole object), so a 100k-line log is never loaded whole. Offsets are bytes; a range
 * ends at a line end unless a single line is longer than the limit.
 */
import { ForgeError, notFound } from '../domain/errors.ts';
import { logPartsPrefix } from '../domain/logs.ts';
import { isExecutionTerminal } from '../domain/statuses.ts';
import type { ObjectStore, Repos } from './ports.ts';

export interface LogRange {
  step_id: string;
  key: string | null;
  offset: number;
  next_offset: number;
  /** Bytes written so far (the whole log once complete). */
  size: number;
  /** The step has ended and its whole log is stored: nothing more will come. */
  complete: boolean;
  text: string;
}

export async function readStepLog(store: Pick<Repos, 'getStep'>, objects: ObjectStore | undefined, stepId: string, offset: number, limit: number): Promise<LogRange> {
  const step = await store.getStep(stepId);
  if (!step) throw notFound('step', { id: stepId });
  const ended = isExecutionTerminal(step.status);
  const empty = { step_id: stepId, key: step.logs_s3_key, offset, next_offset: offset, size: 0, complete: ended, text: '' };
  if (step.logs_s3_key === null) return empty;
  if (!objects) throw new ForgeError('service_unavailable', 'no object store is configured for logs');
  const key = step.logs_s3_key;
  const whole = await objects.get(key, { start: offset, end: offset + limit });
  let body: Buffer;
  let size: number;
  let complete: boolean;
  if (whole) {
    ({ body, size } = whole);
    complete = ended;
  } else {
    const parts = await objects.list(logPartsPrefix(key));
    size = parts.reduce((sum, p) => sum + p.size, 0);
    const chunks: Buffer[] = [];
    let at = 0;
    for (const part of parts) {
      const start = Math.max(offset, at);
      const end = Math.min(offset + limit, at + part.size);
      if (end > start) {
        const got = await objects.get(part.key, { start: start - at, end: end - at });
        if (got) chunks.push(got.body);
      }
      at += part.size;
      if (at >= offset + limit) break;
    }
    body = Buffer.concat(chunks);
    complete = false;
  }
  // Whole lines only, unless one line does not fit or the log ends here.
  if (offset + body.length < size) {
    const lastNewline = body.lastIndexOf(0x0a);
    if (lastNewline >= 0) body = body.subarray(0, lastNewline + 1);
  }
  return { ...empty, next_offset: offset + body.length, size, complete: complete && offset + body.length >= size, text: body.toString('utf8') };
}

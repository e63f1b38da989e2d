/**
 * Reading a step's log in ranges, while it runs (from the part objects the worker flushes) and after
 * (from the whole object), so a 100k-line log is never loaded whole. Offsets are bytes; a range
 * ends at a line end unless a single line is longer than the limit.
 */
import { ForgeError, gone, notFound } from '../domain/errors.ts';
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

/** A step's log as the API reads it: its key (null: nothing written yet) and whether the step ended. */
export type StepLogRef = { step_id: string; ended: boolean } & ({ key: null } | { key: string; objects: ObjectStore });

export async function stepLogOf(store: Pick<Repos, 'getStep'>, objects: ObjectStore | undefined, stepId: string): Promise<StepLogRef> {
  const step = await store.getStep(stepId);
  if (!step) throw notFound('step', { id: stepId });
  const ended = isExecutionTerminal(step.status);
  if (step.logs_s3_key === null && step.logs_expired_at !== null) {
    throw gone(`the log of step ${stepId} expired: the retention job deleted it at ${step.logs_expired_at.toISOString()} (step logs are kept for FORGE_LOG_RETENTION, default 30 days)`, {
      step_id: stepId, expired_at: step.logs_expired_at.toISOString(),
    });
  }
  if (step.logs_s3_key === null) return { step_id: stepId, ended, key: null };
  if (!objects) throw new ForgeError('service_unavailable', 'no object store is configured for logs');
  return { step_id: stepId, ended, key: step.logs_s3_key, objects };
}

/**
 * Bytes [start, end) of a running step's log from its parts (in key order, sizes as listed), or
 * undefined when a part it needs is gone: the step ended meanwhile and its whole object replaced them.
 */
export async function readLogParts(objects: ObjectStore, parts: { key: string; size: number }[], start: number, end: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let at = 0;
  for (const part of parts) {
    const from = Math.max(start, at);
    const to = Math.min(end, at + part.size);
    if (to > from) {
      const got = await objects.get(part.key, { start: from - at, end: to - at });
      if (!got) return undefined;
      chunks.push(got.body);
    }
    at += part.size;
    if (at >= end) break;
  }
  return Buffer.concat(chunks);
}

export async function readStepLog(store: Pick<Repos, 'getStep'>, objects: ObjectStore | undefined, stepId: string, offset: number, limit: number): Promise<LogRange> {
  const log = await stepLogOf(store, objects, stepId);
  const empty = { step_id: stepId, key: log.key, offset, next_offset: offset, size: 0, complete: log.ended, text: '' };
  if (log.key === null) return empty;
  const { key } = log;
  const range = { start: offset, end: offset + limit };
  const whole = await log.objects.get(key, range);
  let body: Buffer;
  let size: number;
  let complete: boolean;
  if (whole) {
    ({ body, size } = whole);
    complete = log.ended;
  } else {
    const parts = await log.objects.list(logPartsPrefix(key));
    size = parts.reduce((sum, p) => sum + p.size, 0);
    const fromParts = await readLogParts(log.objects, parts, range.start, range.end);
    // A part went between listing and reading: the step ended, and its whole object has it all.
    const ended = fromParts === undefined ? await log.objects.get(key, range) : undefined;
    if (ended) ({ body, size } = ended);
    else body = fromParts ?? Buffer.alloc(0);
    complete = false;
  }
  // Whole lines only, unless one line does not fit (then whole characters: a range must not end
  // inside a UTF-8 sequence, or its text would carry U+FFFD for bytes the next range starts with).
  if (offset + body.length < size) {
    const lastNewline = body.lastIndexOf(0x0a);
    body = body.subarray(0, lastNewline >= 0 ? lastNewline + 1 : wholeCharacters(body));
  }
  return { ...empty, next_offset: offset + body.length, size, complete: complete && offset + body.length >= size, text: body.toString('utf8') };
}

/**
 * The length of `body` without a UTF-8 sequence its end cuts short; all of it when that would leave
 * nothing (a range smaller than one character still moves on).
 */
export function wholeCharacters(body: Buffer): number {
  // The last lead byte is at most 3 bytes back; continuation bytes are 10xxxxxx.
  for (let i = body.length - 1; i >= 0 && i >= body.length - 4; i--) {
    const byte = body[i]!;
    if ((byte & 0xc0) === 0x80) continue;
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return i + length <= body.length || i === 0 ? body.length : i;
  }
  return body.length;
}

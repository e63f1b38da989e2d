/**
 * The rules both object-store adapters apply, so a key valid for one is valid for the other: keys
 * are `/`-separated relative paths that map safely onto a file system and onto S3.
 */
import { invalid } from '../domain/errors.ts';

/** The files adapter keeps partial writes in this top-level directory; no key may start with it. */
export const RESERVED_SEGMENT = '.forge-tmp';

const KEY_RULE =
  `an object key is "/"-separated segments such as "pipeline-runs/<run>/logs/<phase>/<project>/<step>.log": ` +
  `not empty, not starting or ending with "/", no empty, "." or ".." segment, no backslash or NUL, ` +
  `and not under "${RESERVED_SEGMENT}/"`;

function badSegment(segment: string): boolean {
  return segment === '' || segment === '.' || segment === '..';
}

function refuse(what: string, value: string, problem: string): never {
  throw invalid(`invalid object ${what} ${JSON.stringify(value)}: ${problem}; ${KEY_RULE}`, { [what]: value });
}

function checkCharacters(what: 'key' | 'prefix', value: string): void {
  if (value.includes('\\')) refuse(what, value, 'contains a backslash');
  if (value.includes('\0')) refuse(what, value, 'contains NUL');
  if (value.startsWith('/')) refuse(what, value, 'is absolute');
}

/** Throws a validation error unless `key` is a valid object key. */
export function checkObjectKey(key: string): void {
  if (key === '') refuse('key', key, 'is empty');
  checkCharacters('key', key);
  const segments = key.split('/');
  if (segments.some(badSegment)) refuse('key', key, 'has an empty, "." or ".." segment');
  if (segments[0] === RESERVED_SEGMENT) refuse('key', key, 'is in the reserved directory');
}

/**
 * Throws unless `prefix` can begin a valid key: every complete segment is valid; the last one may
 * be cut anywhere (`logs/ste` lists `logs/step.log`), and "" lists everything.
 */
export function checkObjectPrefix(prefix: string): void {
  checkCharacters('prefix', prefix);
  const complete = prefix.split('/').slice(0, -1);
  if (complete.some(badSegment)) refuse('prefix', prefix, 'has an empty, "." or ".." segment');
  if (complete[0] === RESERVED_SEGMENT) refuse('prefix', prefix, 'is in the reserved directory');
}

/** Throws unless the byte range is `0 <= start <= end` in whole numbers. */
export function checkByteRange(range: { start: number; end?: number } | undefined): void {
  if (!range) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw invalid(`invalid byte range ${JSON.stringify(range)}: need whole numbers 0 <= start <= end`, { range });
  }
}

/** S3's listing order: by the keys' UTF-8 bytes (differs from `<` on strings past U+FFFF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * A deterministic tar (POSIX ustar) of in-memory files: entries sorted by name (byte order), every
 * header with mode 0644, uid/gid 0, no user or group names and mtime 0, so the same files always
 * give the same bytes, whatever order they came in or when they were written. Only regular files;
 * names are relative paths without "." or ".." components, at most 255 bytes (split into ustar's
 * prefix and name fields at a "/").
 */
import { invalid } from '../domain/errors.ts';

export interface TarFile {
  name: string;
  content: Uint8Array;
}

const BLOCK = 512;
const NAME_RULE = 'a tar entry name is a relative path of "/"-separated parts (no empty, "." or ".." part, no NUL or control character), at most 255 bytes';

function checkEntryName(name: string): void {
  const parts = name.split('/');
  if (name === '' || Buffer.byteLength(name) > 255 || /[\u0000-\u001f\u007f]/.test(name)
    || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw invalid(`invalid file name ${JSON.stringify(name.slice(0, 300))}: ${NAME_RULE}`, { name, rule: NAME_RULE });
  }
}

/** Splits a name into ustar's (prefix ≤155, name ≤100) at a "/", or undefined when it cannot. */
function splitName(name: string): [prefix: string, rest: string] | undefined {
  if (Buffer.byteLength(name) <= 100) return ['', name];
  for (let at = name.indexOf('/'); at !== -1; at = name.indexOf('/', at + 1)) {
    const prefix = name.slice(0, at);
    const rest = name.slice(at + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return [prefix, rest];
  }
  return undefined;
}

/** An octal field of `width` bytes: digits, then NUL. */
function octal(header: Buffer, offset: number, width: number, value: number): void {
  const digits = value.toString(8).padStart(width - 1, '0');
  if (digits.length > width - 1) throw invalid(`a tar field of ${width} bytes cannot hold ${value}`);
  header.write(`${digits}\0`, offset, width, 'ascii');
}

function header(name: string, size: number): Buffer {
  const split = splitName(name);
  if (!split) throw invalid(`file name ${JSON.stringify(name)} does not fit a ustar header (name part ≤100 bytes after a "/", directory part ≤155)`, { name });
  const block = Buffer.alloc(BLOCK);
  block.write(split[1], 0, 100, 'utf8');
  octal(block, 100, 8, 0o644);
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, size);
  octal(block, 136, 12, 0);
  block.fill(' ', 148, 156); // the checksum is computed with its own field as spaces
  block.write('0', 156, 1, 'ascii'); // regular file
  block.write('ustar\0', 257, 6, 'ascii');
  block.write('00', 263, 2, 'ascii');
  block.write(split[0], 345, 155, 'utf8');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

export function deterministicTar(files: readonly TarFile[]): Buffer {
  const sorted = [...files].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  const parts: Buffer[] = [];
  let previous: string | undefined;
  for (const file of sorted) {
    checkEntryName(file.name);
    if (file.name === previous) throw invalid(`two files are named ${JSON.stringify(file.name)}`, { name: file.name });
    previous = file.name;
    parts.push(header(file.name, file.content.byteLength), Buffer.from(file.content));
    const pad = (BLOCK - (file.content.byteLength % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK)); // end of archive
  return Buffer.concat(parts);
}

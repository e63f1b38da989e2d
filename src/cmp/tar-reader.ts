/**
 * Reads the regular files of a tar archive held in memory: what Forge's deterministicTar writes
 * (ustar, src/oci/tar.ts) and what GNU tar, bsdtar or Go's archive/tar write for a resources layer
 * built elsewhere (pax `path` records, GNU long names). Directories, links and other entry types
 * are skipped: the plugin only reads files. A bad header checksum, a size field that is not octal
 * or an entry running past the end is an error, never a silently shorter list.
 */
import { invalid } from '../domain/errors.ts';

export interface TarEntry {
  /** The entry's path, without a leading `./`. */
  name: string;
  content: Buffer;
}

const BLOCK = 512;

const text = (block: Buffer, offset: number, width: number) => {
  const field = block.subarray(offset, offset + width);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? width : end).toString('utf8');
};

function octalField(block: Buffer, offset: number, width: number, what: string, at: number): number {
  if ((block[offset]! & 0x80) !== 0) throw invalid(`tar entry at byte ${at}: base-256 ${what} fields are not supported`);
  const digits = text(block, offset, width).trim();
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw invalid(`tar entry at byte ${at}: ${what} field ${JSON.stringify(digits)} is not octal`);
  return parseInt(digits, 8);
}

function checkChecksum(block: Buffer, at: number): void {
  const field = text(block, 148, 8).trim();
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (!/^[0-7]+$/.test(field) || parseInt(field, 8) !== sum) {
    throw invalid(`tar entry at byte ${at}: header checksum ${JSON.stringify(field.slice(0, 8))} does not match its content (${sum}): not a tar archive, or a corrupt one`);
  }
}

/** `<length> <key>=<value>\n` records of a pax extended header. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = space === -1 ? NaN : Number(data.subarray(offset, space).toString('ascii'));
    if (!Number.isSafeInteger(length) || length <= 0 || offset + length > data.length) break;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return records;
}

const isZeroBlock = (block: Buffer) => block.every((byte) => byte === 0);

export function readTar(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let longName: string | undefined;
  let offset = 0;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (isZeroBlock(header)) break;
    checkChecksum(header, offset);
    const size = octalField(header, 124, 12, 'size', offset);
    const start = offset + BLOCK;
    if (start + size > archive.length) throw invalid(`tar entry at byte ${offset}: its ${size} bytes run past the end of the archive (${archive.length} bytes): truncated`);
    const content = archive.subarray(start, start + size);
    const type = String.fromCharCode(header[156]!);
    const ustar = text(header, 257, 6) === 'ustar';
    const prefix = ustar ? text(header, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    longName = undefined;
    if (type === 'x') {
      longName = paxRecords(content).get('path');
    } else if (type === 'L') {
      longName = text(content, 0, content.length);
    } else if (type === '0' || type === '\0' || type === '7') {
      entries.push({ name: name.replace(/^(?:\.\/)+/, ''), content: Buffer.from(content) });
    }
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  if (offset + BLOCK > archive.length && offset < archive.length) {
    throw invalid(`tar archive ends inside a header at byte ${offset}: truncated`);
  }
  return entries;
}

/** Digests of content (sha256, the one algorithm Forge stores) and handling of content streams. */
import { createHash, type Hash } from 'node:crypto';
import { invalid } from '../domain/errors.ts';
import type { OciContent } from '../engine/ports.ts';

export const sha256Digest = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
export const newDigester = (): Hash => createHash('sha256');
export const digestOfHash = (hash: Hash): string => `sha256:${hash.digest('hex')}`;
export const hexOf = (digest: string): string => digest.slice('sha256:'.length);

export function digestMismatch(expected: string, actual: string, what: string) {
  return invalid(`digest mismatch for ${what}: expected ${expected}, the content is ${actual}`, { expected, actual });
}

/**
 * Releases a stream that will not be read (its blob is already stored): a Node stream is destroyed
 * (returning an iterator that was never started would not end it), any other iterable is returned.
 */
export async function abandon(content: Exclude<OciContent, Uint8Array>): Promise<void> {
  const destroy = (content as { destroy?: unknown }).destroy;
  if (typeof destroy === 'function') destroy.call(content);
  else await content[Symbol.asyncIterator]().return?.();
}

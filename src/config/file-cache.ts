/**
 * A configuration cache on disk, beside the in-memory one, so a command run again on an unchanged
 * tree skips CUE entirely. Entries are named by the content hash of what was evaluated (the file,
 * the schema, the definition), so they never go stale; a corrupt or unreadable entry is a miss.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MEMORY_CACHE, type ConfigCache } from './config-file.ts';

export function fileCache(dir: string): ConfigCache {
  const root = join(dir, 'cue-v1');
  let made = false;
  return {
    get(key) {
      const hit = MEMORY_CACHE.get(key);
      if (hit !== undefined) return hit;
      try {
        const value: unknown = JSON.parse(readFileSync(join(root, `${key}.json`), 'utf8'));
        MEMORY_CACHE.set(key, value);
        return value;
      } catch {
        return undefined;
      }
    },
    set(key, value) {
      MEMORY_CACHE.set(key, value);
      try {
        if (!made) mkdirSync(root, { recursive: true });
        made = true;
        // Written aside and renamed, so a reader never sees half an entry.
        const temp = join(root, `${key}.${process.pid}.tmp`);
        writeFileSync(temp, JSON.stringify(value));
        renameSync(temp, join(root, `${key}.json`));
      } catch {
        // A cache that cannot be written only costs time.
      }
    },
  };
}

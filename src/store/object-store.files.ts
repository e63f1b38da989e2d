/**
 * The embedded object store: each key is a file under `rootDir` (`a/b/c.log` → `rootDir/a/b/c.log`).
 * A write goes to a temporary file in `rootDir/.forge-tmp/` and is renamed into place, so a reader
 * sees the old object or the new one, never part of one; concurrent writers of a key leave one
 * whole object (the last rename). Deleting a key removes the directories it leaves empty.
 *
 * A key cannot be both an object and the directory of other keys here (`a` and `a/b`), as it can on
 * S3: such a write is refused as a conflict. Content types are not kept.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { conflict } from '../domain/errors.ts';
import type { ObjectStore } from '../engine/ports.ts';
import { checkByteRange, checkObjectKey, checkObjectPrefix, compareKeys, RESERVED_SEGMENT } from './object-keys.ts';

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

export function createFileObjectStore(root: string): ObjectStore {
  const rootDir = resolve(root);
  const tmpDir = join(rootDir, RESERVED_SEGMENT);
  const pathOf = (key: string) => {
    checkObjectKey(key);
    return join(rootDir, ...key.split('/'));
  };

  /** Writes a temporary file with `fill`, then renames it to the key's path. */
  async function replace(key: string, fill: (tmp: string) => Promise<void>): Promise<void> {
    const target = pathOf(key);
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, randomBytes(12).toString('hex'));
    try {
      await fill(tmp);
      // A concurrent delete may remove the parent directory between mkdir and rename: once more.
      for (let attempt = 1; ; attempt++) {
        try {
          await mkdir(dirname(target), { recursive: true });
          await rename(tmp, target);
          return;
        } catch (error) {
          const code = errorCode(error);
          if (code === 'ENOENT' && attempt < 3) continue;
          if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR') {
            throw conflict(`object key ${JSON.stringify(key)} clashes with another key: a key cannot be both an object and a prefix of other objects in the files store`, { key });
          }
          throw error;
        }
      }
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Stats the key's file; undefined when there is no such object (missing, or a directory). */
  async function statObject(path: string) {
    try {
      const info = await stat(path);
      return info.isFile() ? info : undefined;
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  /** Every file below `dir` whose name (in `dir`) starts with `namePrefix`, as keys under `keyPrefix`. */
  async function walk(dir: string, keyPrefix: string, namePrefix: string, out: { key: string; size: number }[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return;
      throw error;
    }
    await Promise.all(entries.map(async (entry) => {
      if (!entry.name.startsWith(namePrefix) || (dir === rootDir && entry.name === RESERVED_SEGMENT)) return;
      const key = keyPrefix + entry.name;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return walk(path, `${key}/`, '', out);
      const info = entry.isFile() ? await statObject(path) : undefined;
      if (info) out.push({ key, size: info.size });
    }));
  }

  /** Removes the now-empty directories from `dir` up to (not including) rootDir. */
  async function pruneEmpty(dir: string): Promise<void> {
    for (let at = dir; at.startsWith(rootDir) && at.length > rootDir.length; at = dirname(at)) {
      try {
        await rmdir(at);
      } catch {
        return; // not empty (or already gone): the directories above are not empty either
      }
    }
  }

  return {
    kind: 'files',

    async put(key, body) {
      await replace(key, (tmp) => writeFile(tmp, body));
    },

    async putFile(key, path) {
      await replace(key, (tmp) => copyFile(path, tmp));
    },

    async get(key, range) {
      const path = pathOf(key);
      checkByteRange(range);
      let handle;
      try {
        handle = await open(path, 'r');
      } catch (error) {
        if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return undefined;
        throw error;
      }
      try {
        const info = await handle.stat();
        if (!info.isFile()) return undefined;
        const size = info.size;
        const start = Math.min(range?.start ?? 0, size);
        const end = Math.min(range?.end ?? size, size);
        const body = Buffer.alloc(end - start);
        for (let read = 0; read < body.length;) {
          const { bytesRead } = await handle.read(body, read, body.length - read, start + read);
          if (bytesRead === 0) return { body: body.subarray(0, read), size };
          read += bytesRead;
        }
        return { body, size };
      } finally {
        await handle.close();
      }
    },

    async head(key) {
      const info = await statObject(pathOf(key));
      return info && { size: info.size };
    },

    async list(prefix) {
      checkObjectPrefix(prefix);
      const slash = prefix.lastIndexOf('/');
      const dirKey = prefix.slice(0, slash + 1);
      const out: { key: string; size: number }[] = [];
      await walk(join(rootDir, ...dirKey.split('/').filter(Boolean)), dirKey, prefix.slice(slash + 1), out);
      return out.sort((a, b) => compareKeys(a.key, b.key));
    },

    async delete(keys) {
      const paths = keys.map(pathOf);
      await Promise.all(paths.map(async (path) => {
        if (!(await statObject(path))) return;
        await rm(path, { force: true });
        await pruneEmpty(dirname(path));
      }));
    },

    async close() {},
  };
}

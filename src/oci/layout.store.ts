/**
 * The embedded OciStore: one OCI image layout per repository under `rootDir`, at
 * `<rootDir>/<repo>/_layout/` (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so any OCI tool
 * reads it (`skopeo inspect oci:<rootDir>/<repo>/_layout:<tag>`). `_layout` and `_tmp` cannot be
 * repository components (those start with a letter or digit), so repository `a` and `a/blobs` never
 * share a directory.
 *
 * index.json lists every manifest pushed: a tag is an entry annotated
 * `org.opencontainers.image.ref.name`; a manifest pushed by digest, or one whose tag moved on, stays
 * as an entry without that annotation, so it is still found by digest.
 *
 * Every file is written to `<rootDir>/_tmp/` and renamed into place (a reader sees the old file or
 * the new one); blobs are hashed while written and renamed only when they match. Updates of one
 * repository's index.json take turns within this process (the embedded store has one process).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ForgeError, invalid, notFound } from '../domain/errors.ts';
import type { OciContent, OciManifest, OciPushResult, OciStore } from '../engine/ports.ts';
import { KeyedMutex } from '../lib/keyed-mutex.ts';
import { abandon, digestMismatch, digestOfHash, hexOf, newDigester, sha256Digest } from './content.ts';
import { checkManifest, MANIFEST_MEDIA_TYPES, MEDIA_TYPES } from './manifest.ts';
import { checkDigest, checkRepository, checkTag, parseReference } from './reference.ts';

export const LAYOUT_DIR = '_layout';
const TMP_DIR = '_tmp';
const REF_NAME = 'org.opencontainers.image.ref.name';

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: IndexEntry[];
}

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;
const tagOf = (entry: IndexEntry) => entry.annotations?.[REF_NAME];

export function createLayoutStore(root: string): OciStore {
  const rootDir = resolve(root);
  const tmpDir = join(rootDir, TMP_DIR);
  const indexTurns = new KeyedMutex();

  const layoutDir = (repo: string) => join(rootDir, ...checkRepository(repo).split('/'), LAYOUT_DIR);
  const blobPath = (repo: string, digest: string) => join(layoutDir(repo), 'blobs', 'sha256', hexOf(digest));
  const tmpPath = () => join(tmpDir, randomBytes(12).toString('hex'));

  async function exists(path: string): Promise<boolean> {
    try {
      return (await stat(path)).isFile();
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return false;
      throw error;
    }
  }

  /** Writes `data` whole to `path` through a temporary file. */
  async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
    await mkdir(tmpDir, { recursive: true });
    const tmp = tmpPath();
    try {
      await writeFile(tmp, data);
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Creates the layout's directories and `oci-layout` file when missing. */
  async function ensureLayout(repo: string): Promise<void> {
    const dir = layoutDir(repo);
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    const marker = join(dir, 'oci-layout');
    if (!(await exists(marker))) await writeAtomic(marker, '{"imageLayoutVersion":"1.0.0"}');
  }

  async function readIndex(repo: string): Promise<ImageIndex> {
    try {
      return JSON.parse(await readFile(join(layoutDir(repo), 'index.json'), 'utf8')) as ImageIndex;
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
      throw error;
    }
  }

  /** Reads a blob and checks it against its digest (a changed file is an error, not content). */
  async function readBlob(repo: string, digest: string, what: string): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(blobPath(repo, digest));
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') throw notFound(`${what} ${repo}@${digest}`, { repository: repo, digest });
      throw error;
    }
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      throw new ForgeError('internal_error', `${what} ${repo}@${digest} in the OCI layout is corrupt: its content is ${actual}`, { repository: repo, digest, actual });
    }
    return bytes;
  }

  /** Streams `content` into a temporary file, hashing it; renames it into place when it matches. */
  async function writeStream(repo: string, content: AsyncIterable<Uint8Array>, expected: string | undefined): Promise<OciPushResult> {
    await mkdir(tmpDir, { recursive: true });
    const tmp = tmpPath();
    const hash = newDigester();
    let size = 0;
    try {
      const file = await open(tmp, 'w');
      try {
        for await (const chunk of content) {
          hash.update(chunk);
          size += chunk.byteLength;
          await file.write(chunk);
        }
      } finally {
        await file.close();
      }
      const digest = digestOfHash(hash);
      if (expected !== undefined && digest !== expected) throw digestMismatch(expected, digest, `blob pushed to ${repo}`);
      const target = blobPath(repo, digest);
      if (await exists(target)) return { digest, size, pushed: false };
      await ensureLayout(repo);
      await rename(tmp, target);
      return { digest, size, pushed: true };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async function findEntry(repo: string, reference: string): Promise<IndexEntry | undefined> {
    const ref = parseReference(reference);
    const { manifests } = await readIndex(repo);
    return ref.kind === 'tag' ? manifests.find((m) => tagOf(m) === ref.tag) : manifests.find((m) => m.digest === ref.digest);
  }

  return {
    kind: 'layout',

    async blobExists(repo, digest) {
      return exists(blobPath(repo, checkDigest(digest)));
    },

    async pushBlob(repo, content: OciContent, digest) {
      checkRepository(repo);
      if (digest !== undefined) checkDigest(digest);
      if (content instanceof Uint8Array) {
        const actual = sha256Digest(content);
        if (digest !== undefined && actual !== digest) throw digestMismatch(digest, actual, `blob pushed to ${repo}`);
        if (await exists(blobPath(repo, actual))) return { digest: actual, size: content.byteLength, pushed: false };
        await ensureLayout(repo);
        await writeAtomic(blobPath(repo, actual), content);
        return { digest: actual, size: content.byteLength, pushed: true };
      }
      if (digest !== undefined && (await exists(blobPath(repo, digest)))) {
        await abandon(content);
        return { digest, size: (await stat(blobPath(repo, digest))).size, pushed: false };
      }
      return writeStream(repo, content, digest);
    },

    async getBlob(repo, digest) {
      return readBlob(repo, checkDigest(digest), 'blob');
    },

    async pushManifest(repo, reference, bytes, mediaType) {
      checkRepository(repo);
      const ref = parseReference(reference);
      const refs = checkManifest(bytes, mediaType);
      const digest = sha256Digest(bytes);
      if (ref.kind === 'digest' && ref.digest !== digest) throw digestMismatch(ref.digest, digest, `manifest ${repo}@${ref.digest}`);
      for (const needed of refs.digests) {
        if (!(await exists(blobPath(repo, needed)))) {
          const what = refs.kind === 'index' ? 'manifest' : 'blob';
          throw invalid(`manifest refers to ${what} ${needed}, which ${repo} does not have: push it first`, { repository: repo, digest: needed });
        }
      }
      const entry: IndexEntry = { mediaType, digest, size: bytes.byteLength };
      return indexTurns.run(repo, async () => {
        const index = await readIndex(repo);
        const current = ref.kind === 'tag' ? index.manifests.find((m) => tagOf(m) === ref.tag) : index.manifests.find((m) => m.digest === digest);
        if (current?.digest === digest && (await exists(blobPath(repo, digest)))) return { digest, size: bytes.byteLength, pushed: false };

        await ensureLayout(repo);
        if (!(await exists(blobPath(repo, digest)))) await writeAtomic(blobPath(repo, digest), bytes);
        let manifests = index.manifests;
        if (ref.kind === 'tag') {
          // The tag moves: its old manifest stays reachable by digest as an untagged entry.
          manifests = manifests.flatMap((m) => {
            if (tagOf(m) !== ref.tag) return [m];
            if (index.manifests.some((o) => o !== m && o.digest === m.digest)) return [];
            const { [REF_NAME]: _dropped, ...rest } = m.annotations ?? {};
            return [{ mediaType: m.mediaType, digest: m.digest, size: m.size, ...(Object.keys(rest).length ? { annotations: rest } : {}) }];
          });
          manifests = manifests.filter((m) => !(m.digest === digest && tagOf(m) === undefined));
          manifests.push({ ...entry, annotations: { [REF_NAME]: ref.tag } });
        } else if (!manifests.some((m) => m.digest === digest)) {
          manifests.push(entry);
        }
        await writeAtomic(join(layoutDir(repo), 'index.json'), JSON.stringify({ ...index, manifests }));
        return { digest, size: bytes.byteLength, pushed: true };
      });
    },

    async getManifest(repo, reference, accept = MANIFEST_MEDIA_TYPES): Promise<OciManifest> {
      checkRepository(repo);
      const entry = await findEntry(repo, reference);
      if (!entry) throw notFound(`manifest ${repo}:${reference}`, { repository: repo, reference });
      if (!accept.includes(entry.mediaType)) {
        throw notFound(`manifest ${repo}:${reference} of an accepted media type (it is ${entry.mediaType}, accepted: ${accept.join(', ')})`, { repository: repo, reference, mediaType: entry.mediaType });
      }
      return { bytes: await readBlob(repo, entry.digest, 'manifest'), mediaType: entry.mediaType, digest: entry.digest };
    },

    async resolve(repo, tag) {
      checkRepository(repo);
      return (await findEntry(repo, checkTag(tag)))?.digest;
    },

    async listTags(repo) {
      checkRepository(repo);
      const tags = (await readIndex(repo)).manifests.map(tagOf).filter((t): t is string => t !== undefined);
      return [...new Set(tags)].sort();
    },

    async close() {},
  };
}

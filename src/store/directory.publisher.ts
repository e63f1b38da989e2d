/**
 * The embedded default publisher (type `directory`): file artifacts (binary, archive) are copied to
 * `<root>/<owner>/<repo>/<project>/<version>/<file>` (root: `<dataDir>/artifacts`); the URI is a
 * `file://` URL. Idempotent by content: a file already there with the same sha256 is left alone
 * (`skipped`), a different one is replaced. The copy goes to a temporary file beside the target and
 * is renamed into place, so a reader sees the old file or the new one. Container images are not
 * files: the embedded default for those is the `docker` publisher over the OCI layout store.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { conflict } from '../domain/errors.ts';
import type { Publisher, PublishResult } from '../engine/ports.ts';
import { artifactPath } from '../engine/publishing.ts';
import { fileDigest } from '../lib/file-digest.ts';

export const ARTIFACTS_DIR = 'artifacts';

export function createDirectoryPublisher(options: { root: string }): Publisher {
  const root = resolve(options.root);
  return {
    type: 'directory',
    async publish(artifact, _destination): Promise<PublishResult> {
      const path = artifactPath(artifact);
      const target = join(root, ...path.split('/'));
      const output = artifact.output;
      const uri = pathToFileURL(target).toString();
      const result = (skipped: boolean, replaced: boolean): PublishResult => ({
        uri, digest: output.digest, skipped,
        metadata: { uri, path: target, ...(replaced ? { replaced: 'true' } : {}) },
      });
      // Hashing the file there only when its size matches (a different size is a different file).
      const there = await stat(target).catch(() => undefined);
      const existing = there === undefined ? undefined
        : there.size === output.size ? await fileDigest(target) : { digest: 'other' };
      if (existing?.digest === output.digest) return result(true, false);

      await mkdir(dirname(target), { recursive: true });
      const tmp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
      try {
        await copyFile(output.path, tmp);
        const copied = await fileDigest(tmp);
        if (copied.digest !== output.digest) {
          throw conflict(`artifact ${artifact.name} changed after it was produced: ${output.path} is ${copied.digest}, the producer reported ${output.digest}`, { path: output.path });
        }
        await rename(tmp, target);
      } finally {
        await rm(tmp, { force: true });
      }
      return result(false, existing !== undefined);
    },
    async close() {},
  };
}

/**
 * A software bill of materials made by Forge itself from what an artifact's staging directory holds:
 * CycloneDX 1.5 JSON listing every regular file (path, size, SHA-256), sorted by path, with a serial
 * number and time derived from the inputs, so the same files give the same bytes. Symbolic links and
 * other non-regular entries are not followed or listed (a staging dir is the producer's output, and a
 * link could point anywhere on the worker).
 */
import { createHash } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileDigest } from '../lib/file-digest.ts';
import { canonicalJson } from './image.ts';

export const SBOM_MEDIA_TYPE = 'application/vnd.cyclonedx+json';

export interface ListedFile {
  /** Relative to the listed directory, "/"-separated. */
  path: string;
  size: number;
  /** Lowercase hex. */
  sha256: string;
}

/** Every regular file under `dir` (recursively), sorted by path; fails when `dir` cannot be read. */
export async function listFiles(dir: string): Promise<ListedFile[]> {
  const root = await lstat(dir);
  if (!root.isDirectory()) throw new Error(`${dir} is not a directory`);
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = await Promise.all(entries.filter((entry) => entry.isFile()).map(async (entry) => {
    const path = join(entry.parentPath, entry.name);
    const { digest, size } = await fileDigest(path);
    return { path: relative(dir, path).split(sep).join('/'), size, sha256: digest.slice('sha256:'.length) };
  }));
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface SbomSubject {
  name: string;
  /** Forge's artifact type: container, binary, archive. */
  type: string;
  /** `sha256:<hex>` of the artifact. */
  digest: string;
  version?: string;
}

/** A UUID (version 8: application-defined) made from a hash, so the same inputs give the same serial. */
function uuidFrom(bytes: Buffer): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const COMPONENT_TYPE: Record<string, string> = { container: 'container', binary: 'application', archive: 'file' };

/** CycloneDX 1.5 JSON describing `subject` and the files it consists of. `created` is RFC 3339. */
export function cycloneDxSbom(subject: SbomSubject, files: readonly ListedFile[], created: string, tool: { name: string; version: string }): Buffer {
  const subjectHex = subject.digest.replace(/^sha256:/, '');
  const components = files.map((file) => ({
    type: 'file',
    'bom-ref': `file:${file.path}`,
    name: file.path,
    hashes: [{ alg: 'SHA-256', content: file.sha256 }],
    properties: [{ name: 'catalyst-forge:file:size', value: String(file.size) }],
  }));
  const body = {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: {
      timestamp: created,
      tools: { components: [{ type: 'application', name: tool.name, version: tool.version }] },
      component: {
        type: COMPONENT_TYPE[subject.type] ?? 'file',
        'bom-ref': `artifact:${subject.name}`,
        name: subject.name,
        ...(subject.version ? { version: subject.version } : {}),
        hashes: [{ alg: 'SHA-256', content: subjectHex }],
      },
    },
    components,
  };
  const serialNumber = `urn:uuid:${uuidFrom(createHash('sha256').update(canonicalJson(body)).digest())}`;
  return canonicalJson({ ...body, serialNumber });
}

/**
 * From a Release image's resources layer to the manifests Argo CD applies (digest §4.3, §4.7): the
 * layer is found by media type (seed/01's `…release.resources.v1+tar`, or D-HEAD's gzip variant),
 * unpacked in memory, its `.yaml`/`.yml` files split into documents; empty documents are dropped,
 * every other one must be a mapping with apiVersion and kind. Documents are printed as they were
 * written (comments and scalar spelling kept: re-serialising would turn `0755` into `755` and
 * could unquote `"on"`), sorted by (kind, metadata.name), then the application directory's
 * `env.yaml` (or `env.yml`) in its own order.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseAllDocuments } from 'yaml';
import { ENV_CONFIG_FILE_NAMES } from '../domain/environment-config.ts';
import { RELEASE_MEDIA_TYPES } from '../oci/release-image.ts';
import { CmpError, permanent } from './cmp-error.ts';
import { readTar } from './tar-reader.ts';

/** Every media type a resources layer may have; the first is what Forge writes. */
export const RESOURCES_MEDIA_TYPES: readonly string[] = [RELEASE_MEDIA_TYPES.resources, 'application/vnd.forge.resources.v1.tar+gzip'];

/** A gunzipped layer larger than this is refused (a release's manifests are kilobytes). */
export const MAX_RESOURCES_BYTES = 256 * 1024 * 1024;

/** The per-project EnvironmentConfig file names (one rule with `forge env resolve`). */
export const ENV_FILES = ENV_CONFIG_FILE_NAMES;

export interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The one resources layer among a manifest's layers, wherever it is. */
export function selectResourcesLayer(layers: readonly LayerDescriptor[], details: Record<string, string>): LayerDescriptor {
  const found = layers.filter((layer) => RESOURCES_MEDIA_TYPES.includes(layer.mediaType));
  const listed = { ...details, layers: layers.map((l) => l.mediaType).join(', ') || '(none)', accepted: RESOURCES_MEDIA_TYPES.join(', ') };
  if (found.length === 0) throw permanent('layer.resources', 'the release image has no resources layer', listed);
  if (found.length > 1) throw permanent('layer.resources', `the release image has ${found.length} resources layers; exactly one is expected`, listed);
  return found[0]!;
}

const isGzip = (bytes: Buffer) => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;

/** The layer's files (gunzipped first when it says `+gzip` or starts with gzip's magic bytes). */
export function unpackLayer(bytes: Buffer, mediaType: string, details: Record<string, string>): { name: string; content: Buffer }[] {
  const declared = mediaType.endsWith('+gzip');
  if (declared && !isGzip(bytes)) throw permanent('layer.archive', `the resources layer is ${mediaType} but its content is not gzip`, details);
  let tar = bytes;
  if (declared || isGzip(bytes)) {
    try {
      tar = gunzipSync(bytes, { maxOutputLength: MAX_RESOURCES_BYTES });
    } catch (error) {
      throw permanent('layer.archive', `cannot gunzip the resources layer: ${(error as Error).message}`, details, error);
    }
  }
  try {
    return readTar(tar);
  } catch (error) {
    throw permanent('layer.archive', `cannot read the resources layer as a tar archive: ${(error as Error).message}`, details, error);
  }
}

export const isYamlFile = (name: string) => /\.ya?ml$/i.test(name);

export interface ResourceDocument {
  /** The file it came from (a path in the layer, or `env.yaml`). */
  file: string;
  /** 1-based, counting every document of the file, empty ones included. */
  index: number;
  apiVersion: string;
  kind: string;
  /** metadata.name; '' when there is none (it sorts first). */
  name: string;
  /** The document's source text (its leading comments kept, without `---`/`...` markers), ending in one newline. */
  text: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Leading blank, comment and directive lines, then the `---` marker (what follows it on its line stays). */
const LEADING_MARKER = /^((?:[ \t]*(?:#[^\n]*)?\r?\n|%[^\n]*\r?\n)*)---(?:[ \t]*\r?\n|[ \t]+|$)/;
const TRAILING_END = /(?:^|\n)\.\.\.[ \t]*(?:#[^\n]*)?[\s]*$/;

function documentText(slice: string): string {
  const text = slice
    .replace(LEADING_MARKER, (_, prefix: string) => prefix.replace(/^%[^\n]*\r?\n/gm, ''))
    .replace(TRAILING_END, '\n')
    .replace(/^(?:[ \t]*\r?\n)+/, '')
    .replace(/\s+$/, '');
  return `${text}\n`;
}

/**
 * The documents of one YAML file. Empty documents (nothing, or only comments) are dropped; a
 * document that does not parse, is not a mapping, or lacks apiVersion or kind is an error naming
 * the file and the document's number.
 */
export function splitDocuments(file: string, source: string, details: Record<string, string> = {}): ResourceDocument[] {
  const documents: ResourceDocument[] = [];
  let previousEnd = 0;
  parseAllDocuments(source).forEach((doc, i) => {
    const index = i + 1;
    const at = { ...details, file, document: `${index} (1-based, "---"-separated)` };
    const slice = source.slice(previousEnd, doc.range[2]);
    previousEnd = doc.range[2];
    const error = doc.errors[0];
    if (error) throw permanent('resources.yaml', `${file} document ${index} is not valid YAML`, { ...at, error: error.message.split('\n')[0] ?? error.message });
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (failure) {
      throw permanent('resources.yaml', `${file} document ${index} cannot be read: ${(failure as Error).message}`, at, failure);
    }
    // Nothing, only comments, or a bare `---`: what kubectl skips too.
    if (value === null || value === undefined) return;
    if (!isRecord(value)) throw permanent('resources.document', `${file} document ${index} is not a mapping (a Kubernetes object with apiVersion and kind)`, at);
    const missing = (['apiVersion', 'kind'] as const).filter((field) => typeof value[field] !== 'string' || value[field] === '');
    if (missing.length > 0) throw permanent('resources.document', `${file} document ${index} has no ${missing.join(' and no ')}`, at);
    const metadata = isRecord(value.metadata) ? value.metadata : {};
    documents.push({
      file,
      index,
      apiVersion: value.apiVersion as string,
      kind: value.kind as string,
      name: typeof metadata.name === 'string' ? metadata.name : '',
      text: documentText(slice),
    });
  });
  return documents;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** By kind, then metadata.name (UTF-16 code units, so no locale changes the order); ties keep their order. */
export function sortResources(documents: readonly ResourceDocument[]): ResourceDocument[] {
  return [...documents].sort((a, b) => compare(a.kind, b.kind) || compare(a.name, b.name));
}

/** The documents of every YAML file in the layer, files in name order. */
export function layerDocuments(files: readonly { name: string; content: Buffer }[], details: Record<string, string>): ResourceDocument[] {
  return files
    .filter((file) => isYamlFile(file.name))
    .sort((a, b) => compare(a.name, b.name))
    .flatMap((file) => splitDocuments(file.name, file.content.toString('utf8'), details));
}

/**
 * The application directory's env override (`env.yaml`, else `env.yml`; both is an error), its
 * documents in file order, each a mapping with apiVersion and kind. `undefined` when there is none.
 */
export async function readEnvOverride(dir: string, details: Record<string, string>): Promise<{ file: string; documents: ResourceDocument[] } | undefined> {
  const found: { name: string; text: string }[] = [];
  for (const name of ENV_FILES) {
    try {
      found.push({ name, text: await readFile(join(dir, name), 'utf8') });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw permanent('env.file', `cannot read ${join(dir, name)}: ${(error as Error).message}`, details, error);
    }
  }
  if (found.length === 0) return undefined;
  if (found.length > 1) throw permanent('env.file', `both ${ENV_FILES.join(' and ')} are in ${dir}: keep one`, details);
  const [env] = found as [{ name: string; text: string }];
  try {
    return { file: env.name, documents: splitDocuments(env.name, env.text, details) };
  } catch (error) {
    // The same checks as for the release's files, reported as the env file's.
    if (error instanceof CmpError) throw permanent('env.file', error.message, { ...error.details }, error);
    throw error;
  }
}

/** One multi-document stream: every document after a `---` line. */
export function renderStream(documents: readonly ResourceDocument[]): string {
  return documents.map((doc) => `---\n${doc.text}`).join('');
}

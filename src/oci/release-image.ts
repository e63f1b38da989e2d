/**
 * The Release OCI image (digest §4.3): `<release-registry>/<repository>/<project>:<commit-sha>` with
 * - the standard OCI image config (labels: repository, project, release number, commit),
 * - a metadata layer `application/vnd.forge.release.metadata.v1+json` (number, aliases, trigger,
 *   source, artifacts with tracking URIs and digests, a summary of the resources and the resources
 *   layer's digest),
 * - a resources layer `application/vnd.forge.release.resources.v1+tar`: a deterministic tar of the
 *   rendered YAML files (the CMP finds it by media type),
 * and the OCI annotations on the manifest. Nothing in it comes from the clock or from input order,
 * so the same release always has the same manifest digest. Resources that still hold an `@artifact`
 * placeholder are refused before anything is pushed.
 */
import { invalid } from '../domain/errors.ts';
import { sha256Digest } from './content.ts';
import { buildImage, canonicalJson, type BuiltImage, type ImageRegistry, LAYER_TYPE_ANNOTATION, locate, normalizeTime, pushImage } from './image.ts';
import { deterministicTar } from './tar.ts';

export const RELEASE_MEDIA_TYPES = {
  metadata: 'application/vnd.forge.release.metadata.v1+json',
  resources: 'application/vnd.forge.release.resources.v1+tar',
} as const;

/** Manifest and config annotations Forge sets besides the org.opencontainers.image.* ones. */
export const FORGE_ANNOTATIONS = {
  kind: 'org.catalyst-forge.image.kind',
  repository: 'org.catalyst-forge.repository',
  project: 'org.catalyst-forge.project',
  releaseNumber: 'org.catalyst-forge.release.number',
  commit: 'org.catalyst-forge.commit',
  artifact: 'org.catalyst-forge.artifact',
} as const;

export type AliasType = 'numeric' | 'tag' | 'branch' | 'custom';

export interface ReleaseSource {
  /** Full commit SHA. */
  commit: string;
  branch?: string;
  tag?: string;
  /** The repository's URL (`org.opencontainers.image.source`), e.g. `https://github.com/o/r`. */
  url?: string;
  author?: string;
  message?: string;
}

export interface ReleaseArtifactRef {
  name: string;
  type?: string;
  /** The artifact's content digest (`sha256:…`). */
  digest: string;
  /** The tracking image, e.g. `registry/o/r/p/api:sha-<commit>@sha256:…`. */
  trackingUri: string;
  /** The primary published URI, when there is one. */
  uri?: string;
}

export interface ReleaseImageInput {
  /** `owner/name`. */
  repository: string;
  project: string;
  number: number;
  aliases: readonly { type: AliasType; value: string }[];
  trigger: { type: string; [detail: string]: unknown };
  source: ReleaseSource;
  artifacts: readonly ReleaseArtifactRef[];
  /** The commit's (or release's) time, RFC 3339: the image's only timestamp. */
  created: string;
  /** Rendered YAML: files by name, or a list of YAML texts (named `001.yaml`, `002.yaml`, …). */
  resources: Readonly<Record<string, string>> | readonly string[];
  pipelineRunId?: string | null;
}

export interface ResourceSummary {
  file: string;
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

export interface BuiltReleaseImage extends BuiltImage {
  /** The repository inside the store and the tag. */
  repo: string;
  tag: string;
  /** `<registry>/<repo>:<commit>` and the same pinned by digest. */
  reference: string;
  pinned: string;
  metadata: Record<string, unknown>;
}

export interface UnresolvedReference {
  file: string;
  line: number;
  /** The text found: a placeholder such as `ARTIFACT_URI_api`, or an `@artifact(…)` attribute. */
  marker: string;
  artifact: string;
}

// The placeholders `@artifact` references resolve to without real outputs (src/config/attributes.ts
// artifactPlaceholder: ARTIFACT_URI_<name>, ARTIFACT_DIGEST_<name>, ARTIFACT_TAG_<name>,
// ARTIFACT_PATH_<name>, ARTIFACT_<name>_<field>; artifact names are [a-z][a-z0-9-]*), and an
// attribute left as text. test/oci/release-image.test.ts checks every form the renderer makes.
const MARKER = /\bARTIFACT_(?:(?:URI|DIGEST|TAG|PATH)_([a-z][a-z0-9-]*)|([a-z][a-z0-9-]*)_[A-Za-z0-9_]+)|@artifact\(\s*(?:name\s*=\s*)?"?([a-z][a-z0-9-]*)?[^)]*\)/g;

/** Every unresolved `@artifact` reference in the files, in file and line order. */
export function findUnresolvedReferences(files: readonly { name: string; text: string }[]): UnresolvedReference[] {
  const found: UnresolvedReference[] = [];
  for (const file of files) {
    const lines = file.text.split('\n');
    lines.forEach((line, index) => {
      for (const match of line.matchAll(MARKER)) {
        found.push({ file: file.name, line: index + 1, marker: match[0], artifact: match[1] ?? match[2] ?? match[3] ?? '(unnamed)' });
      }
    });
  }
  return found;
}

function resourceFiles(resources: ReleaseImageInput['resources']): { name: string; text: string }[] {
  if (Array.isArray(resources)) {
    const width = Math.max(3, String(resources.length).length);
    return (resources as readonly string[]).map((text, i) => ({ name: `${String(i + 1).padStart(width, '0')}.yaml`, text }));
  }
  return Object.entries(resources as Record<string, string>).map(([name, text]) => ({ name, text }));
}

/** A plain or quoted YAML scalar as text (best effort: the summary is informative only). */
function scalar(raw: string): string | undefined {
  const value = raw.replace(/\s+#.*$/, '').trim();
  if (value === '' || /^[|>{[&*!]/.test(value)) return undefined;
  if (value.startsWith('"')) {
    try {
      return JSON.parse(value) as string;
    } catch {
      return undefined;
    }
  }
  if (value.startsWith("'")) return value.endsWith("'") ? value.slice(1, -1).replace(/''/g, "'") : undefined;
  return value;
}

/**
 * apiVersion, kind and metadata name/namespace of each document, read from block-style top-level
 * lines as the renderer writes them, without parsing the YAML: parsing 200 KB took ~300 ms, most of
 * a release image's build. Validating the resources is the renderer's job (digest §4.2 step 3).
 */
export function summarizeResources(file: { name: string; text: string }): ResourceSummary[] {
  const summaries: ResourceSummary[] = [];
  for (const document of file.text.split(/^---[ \t]*(?:#.*)?$/m)) {
    const summary: ResourceSummary = { file: file.name };
    let inMetadata = false;
    let metadataIndent: number | undefined;
    let any = false;
    for (const line of document.split('\n')) {
      if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
      const indent = line.length - line.trimStart().length;
      const field = /^([A-Za-z]+):(.*)$/.exec(line.trimStart());
      if (indent === 0) {
        inMetadata = field?.[1] === 'metadata' && field[2]!.trim() === '';
        metadataIndent = undefined;
        if (field?.[1] === 'apiVersion' || field?.[1] === 'kind') {
          const value = scalar(field[2]!);
          if (value !== undefined) summary[field[1]] = value;
        }
        any = true;
      } else if (inMetadata && field && (metadataIndent ??= indent) === indent && (field[1] === 'name' || field[1] === 'namespace')) {
        const value = scalar(field[2]!);
        if (value !== undefined) summary[field[1]] = value;
      }
    }
    if (any) summaries.push(summary);
  }
  return summaries;
}

/** The commit names the image (its tag), so it must be the full SHA in lowercase. */
export function checkCommit(commit: string): string {
  if (!/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(commit)) throw invalid(`invalid commit ${JSON.stringify(commit.slice(0, 100))}: the full commit SHA in lowercase hexadecimal (40 or 64 characters)`, { commit });
  return commit;
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Builds the release image (nothing is pushed). Refuses unresolved `@artifact` references. */
export function buildReleaseImage(registry: ImageRegistry, input: ReleaseImageInput): BuiltReleaseImage {
  if (!Number.isSafeInteger(input.number) || input.number < 1) throw invalid(`invalid release number ${input.number}: a whole number from 1`, { number: input.number });
  checkCommit(input.source.commit);
  const created = normalizeTime(input.created, 'created');
  const files = resourceFiles(input.resources).sort(byName);
  const unresolved = findUnresolvedReferences(files);
  if (unresolved.length > 0) {
    const artifacts = [...new Set(unresolved.map((u) => u.artifact))];
    const where = unresolved.slice(0, 5).map((u) => `${u.marker} in ${u.file} line ${u.line}`).join('; ');
    throw invalid(`the rendered resources still reference artifact${artifacts.length > 1 ? 's' : ''} ${artifacts.join(', ')} without a value (${where}${unresolved.length > 5 ? '; …' : ''}): every @artifact reference must resolve to a real artifact output before the release image is built`,
      { artifacts, unresolved });
  }
  const tar = deterministicTar(files.map((file) => ({ name: file.name, content: Buffer.from(file.text, 'utf8') })));
  const resourcesDigest = sha256Digest(tar);

  const { repo, reference } = locate(registry, `${input.repository.toLowerCase()}/${input.project}`);
  const tag = input.source.commit;
  const metadata: Record<string, unknown> = {
    schemaVersion: 1,
    repository: input.repository,
    project: input.project,
    number: input.number,
    aliases: [...input.aliases].sort((a, b) => (a.type === b.type ? byName({ name: a.value }, { name: b.value }) : a.type < b.type ? -1 : 1)),
    trigger: input.trigger,
    source: input.source,
    created,
    pipelineRunId: input.pipelineRunId ?? null,
    artifacts: [...input.artifacts].sort(byName),
    resources: {
      mediaType: RELEASE_MEDIA_TYPES.resources,
      digest: resourcesDigest,
      size: tar.byteLength,
      files: files.map((file) => ({ name: file.name, size: Buffer.byteLength(file.text), digest: sha256Digest(Buffer.from(file.text, 'utf8')) })),
      summary: files.flatMap(summarizeResources),
    },
  };
  const labels = {
    [FORGE_ANNOTATIONS.kind]: 'release',
    [FORGE_ANNOTATIONS.repository]: input.repository,
    [FORGE_ANNOTATIONS.project]: input.project,
    [FORGE_ANNOTATIONS.releaseNumber]: String(input.number),
    [FORGE_ANNOTATIONS.commit]: input.source.commit,
  };
  const image = buildImage({
    created,
    labels,
    layers: [
      { mediaType: RELEASE_MEDIA_TYPES.metadata, content: canonicalJson(metadata), annotations: { [LAYER_TYPE_ANNOTATION]: 'metadata' } },
      { mediaType: RELEASE_MEDIA_TYPES.resources, content: tar, annotations: { [LAYER_TYPE_ANNOTATION]: 'resources', 'org.opencontainers.image.title': 'resources.tar' } },
    ],
    annotations: {
      ...labels,
      'org.opencontainers.image.created': created,
      'org.opencontainers.image.revision': input.source.commit,
      'org.opencontainers.image.title': `${input.repository}/${input.project}`,
      'org.opencontainers.image.version': String(input.number),
      ...(input.source.url ? { 'org.opencontainers.image.source': input.source.url } : {}),
    },
  });
  return { ...image, repo, tag, reference: `${reference}:${tag}`, pinned: `${reference}@${image.digest}`, metadata };
}

/** Builds and pushes the release image under its commit tag; `pushed` is false when it was already there. */
export async function pushReleaseImage(registry: ImageRegistry, input: ReleaseImageInput): Promise<BuiltReleaseImage & { pushed: boolean }> {
  const image = buildReleaseImage(registry, input);
  const { pushed } = await pushImage(registry.store, image.repo, image.tag, image);
  return { ...image, pushed };
}

/**
 * The ReleasePointer document (digest §4.4) and where it lives in the GitOps repository. Pure: no
 * I/O, so the git adapter and the Argo CD plugin agree on one shape and one path rule.
 */
import { stringify } from 'yaml';
import type { Release, ReleaseAlias } from '../domain/entities.ts';
import { invalid } from '../domain/errors.ts';
import { checkName, normaliseSha } from '../domain/names.ts';
import type { PointerWrite } from '../engine/ports.ts';

export const POINTER_API_VERSION = 'forge.projectcatalyst.io/v1';
export const POINTER_KIND = 'ReleasePointer';
export const POINTER_LABEL_PREFIX = 'forge.projectcatalyst.io/';

/** [D 01/06-ref]; other variants of the digest are one `layout` option away. */
export const DEFAULT_POINTER_LAYOUT = 'environments/{environment}/{repository}/{project}/release.yaml';

export interface PointerTarget {
  environment: string;
  /** GitHub `owner/name`; it becomes two path segments. */
  repository: string;
  project: string;
}

export interface ReleasePointer {
  apiVersion: typeof POINTER_API_VERSION;
  kind: typeof POINTER_KIND;
  metadata: {
    name: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  spec: {
    release: string;
    repository: string;
    project: string;
    releaseNumber: number;
    ociUri: string;
    aliases: { numeric: string; tag?: string; branch?: string };
    deployedBy: string;
    deployedAt: string;
    approvedBy?: string;
    approvedAt?: string;
  };
}

const PLACEHOLDER = /\{([^{}]*)\}/g;
const PLACEHOLDERS = ['environment', 'repository', 'project'] as const;

/**
 * Checks a layout template once, when the adapter is built: a relative path of plain segments
 * (no `.`, `..`, `.git`), only known placeholders, and all three of them so two targets never
 * share a file.
 */
export function checkPointerLayout(layout: string): string {
  const fail = (why: string) => invalid(`invalid gitops layout ${JSON.stringify(layout)}: ${why}`, { field: 'layout' });
  for (const [, name] of layout.matchAll(PLACEHOLDER)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(name ?? '')) throw fail(`unknown placeholder {${name}}`);
  }
  for (const name of PLACEHOLDERS) {
    if (!layout.includes(`{${name}}`)) throw fail(`it must contain {${name}}`);
  }
  checkSegments(layout.replace(PLACEHOLDER, 'x'), fail);
  return layout;
}

/** The pointer file's path relative to the repository root, with every name checked. */
export function pointerPath(layout: string, target: PointerTarget): string {
  checkTarget(target);
  const values: Record<(typeof PLACEHOLDERS)[number], string> = target;
  const path = layout.replace(PLACEHOLDER, (_, name: (typeof PLACEHOLDERS)[number]) => values[name]);
  return checkSegments(path, (why) => invalid(`invalid pointer path ${JSON.stringify(path)}: ${why}`));
}

export function checkTarget(target: PointerTarget): void {
  checkName('environment', 'environment', target.environment);
  checkName('repository', 'repository', target.repository);
  checkName('project', 'project', target.project);
}

function checkSegments(path: string, fail: (why: string) => Error): string {
  if (path.includes('\\') || path.includes('\0')) throw fail('backslash or NUL');
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') throw fail('empty, "." or ".." segment or absolute path');
    if (segment.toLowerCase() === '.git') throw fail('".git" segment');
  }
  return path;
}

/** `owner/name` as a Kubernetes label value: `owner.name`, at most 63 characters, alphanumeric ends. */
export function repositoryLabel(repository: string): string {
  return repository
    .replace('/', '.')
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

function aliasOf(aliases: Pick<ReleaseAlias, 'alias' | 'alias_type'>[], type: ReleaseAlias['alias_type']): string | undefined {
  return aliases.find((a) => a.alias_type === type)?.alias;
}

/** Builds the document from a pointer write; refuses a release that belongs to another target. */
export function buildReleasePointer(p: PointerWrite): ReleasePointer {
  checkTarget(p);
  const release: Release = p.release;
  if (release.repository !== p.repository || release.project !== p.project) {
    throw invalid(`release ${release.id} belongs to ${release.repository}/${release.project}, not ${p.repository}/${p.project}`);
  }
  const sha = normaliseSha(checkName('commitSha', 'release.commit_sha', release.commit_sha));
  const number = String(release.release_number);
  const tag = aliasOf(p.aliases, 'tag');
  const branch = aliasOf(p.aliases, 'branch');
  return {
    apiVersion: POINTER_API_VERSION,
    kind: POINTER_KIND,
    metadata: {
      name: p.project,
      labels: {
        [`${POINTER_LABEL_PREFIX}environment`]: p.environment,
        [`${POINTER_LABEL_PREFIX}repository`]: repositoryLabel(p.repository),
        [`${POINTER_LABEL_PREFIX}project`]: p.project,
      },
      annotations: { [`${POINTER_LABEL_PREFIX}release-number`]: number },
    },
    spec: {
      release: sha,
      repository: p.repository,
      project: p.project,
      releaseNumber: release.release_number,
      ociUri: release.oci_uri,
      aliases: {
        numeric: aliasOf(p.aliases, 'numeric') ?? number,
        ...(tag === undefined ? {} : { tag }),
        ...(branch === undefined ? {} : { branch }),
      },
      deployedBy: p.deployedBy,
      deployedAt: p.deployedAt.toISOString(),
      ...(p.approvedBy === null ? {} : { approvedBy: p.approvedBy }),
      ...(p.approvedAt === null ? {} : { approvedAt: p.approvedAt.toISOString() }),
    },
  };
}

export function renderReleasePointer(pointer: ReleasePointer): string {
  return stringify(pointer, { lineWidth: 0 });
}

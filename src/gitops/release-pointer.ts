/**
 * The ReleasePointer document (digest §4.4) and where it lives in the GitOps repository. Pure: no
 * I/O, so the git adapter and the Argo CD plugin agree on one shape and one path rule.
 */
import { stringify } from 'yaml';
import type { ReleaseAlias } from '../domain/entities.ts';
import { invalid } from '../domain/errors.ts';
import { checkName, normaliseSha } from '../domain/names.ts';
import { checkTarget } from '../domain/gitops-layout.ts';
import type { PointerWrite } from '../engine/ports.ts';

export const POINTER_API_VERSION = 'forge.projectcatalyst.io/v1';
export const POINTER_KIND = 'ReleasePointer';
export const POINTER_LABEL_PREFIX = 'forge.projectcatalyst.io/';

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

export { DEFAULT_POINTER_LAYOUT, checkPointerLayout, checkTarget, environmentDir, pointerPath, type PointerTarget } from '../domain/gitops-layout.ts';

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
  const release = p.release;
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

/**
 * Where a ReleasePointer lives in the GitOps repository (digest §4.4, §7.12): a path template with
 * {environment}, {repository} and {project}, checked once; every name checked when filled in. Pure,
 * so settings, the git adapter, the Argo CD plugin and `forge env resolve` share one rule.
 */
import { invalid } from './errors.ts';
import { checkName } from './names.ts';

/** [D 01/06-ref]; other variants of the digest are one `layout` option away. */
export const DEFAULT_POINTER_LAYOUT = 'environments/{environment}/{repository}/{project}/release.yaml';

export interface PointerTarget {
  environment: string;
  /** GitHub `owner/name`; it becomes two path segments. */
  repository: string;
  project: string;
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

/**
 * The directory holding an environment's cluster-wide files (its `env.yaml`): the layout up to and
 * including the {environment} segment, filled in. `environments/{environment}/…` → `environments/dev`.
 */
export function environmentDir(layout: string, environment: string): string {
  checkName('environment', 'environment', environment);
  const segments = layout.split('/');
  const at = segments.findIndex((segment) => segment.includes('{environment}'));
  return segments.slice(0, at + 1).join('/').replace('{environment}', environment);
}

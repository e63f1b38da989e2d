/**
 * Reading the ReleasePointer (`release.yaml`) in an Argo CD application directory and finding the
 * release it names (digest §4.4, §4.7, §7 items 11-12). Accepted: apiVersion
 * `forge.projectcatalyst.io/v1` (what Forge writes, src/gitops/release-pointer.ts) or `…/v1alpha1`
 * (D-HEAD), kind `ReleasePointer`, `spec.release` a full lowercase 40-hex commit SHA.
 *
 * The release's repository and project come, field by field, from the first source that has them:
 *   1. `spec.repository` / `spec.project` (Forge's pointers carry both);
 *   2. the directory's path matched against the GitOps layout (default
 *      `environments/{environment}/{repository}/{project}/release.yaml`, repository = owner/name);
 *   3. `metadata.namespace` = `<repo>-<project>` (D-HEAD), split where the project (from 1, 2 or
 *      `metadata.name`) ends it.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { checkPointerLayout, POINTER_API_VERSION, POINTER_KIND } from '../gitops/release-pointer.ts';
import { isValidName, NAME_RULES } from '../domain/names.ts';
import { isForgeError } from '../domain/errors.ts';
import { CmpError, permanent } from './cmp-error.ts';

export const POINTER_FILE = 'release.yaml';
export const POINTER_API_VERSIONS: readonly string[] = [POINTER_API_VERSION, 'forge.projectcatalyst.io/v1alpha1'];
/** digest §4.4 (D-HEAD): the release is the full commit SHA, lowercase. */
export const RELEASE_SHA = /^[a-f0-9]{40}$/;

/** What the plugin uses of a pointer; everything else in it is for people and other tools. */
export interface PointerDocument {
  /** The file read. */
  path: string;
  apiVersion: string;
  release: string;
  metadata: { name?: string; namespace?: string };
  spec: { repository?: string; project?: string; ociUri?: string };
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const stringOr = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
const show = (value: unknown) => (value === undefined ? 'missing' : JSON.stringify(value)?.slice(0, 120) ?? String(value));

/** Reads and checks `<dir>/release.yaml`; a CmpError (permanent) names the check that failed. */
export async function readPointer(dir: string): Promise<PointerDocument> {
  const path = join(resolve(dir), POINTER_FILE);
  const at = { pointer: path };
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw permanent('pointer.file', code === 'ENOENT' ? `no ${POINTER_FILE} in ${resolve(dir)}` : `cannot read ${path}: ${(error as Error).message}`, at, error);
  }
  const documents = parseAllDocuments(source);
  const problem = documents.flatMap((d) => d.errors)[0];
  if (problem) throw permanent('pointer.yaml', `${POINTER_FILE} is not valid YAML`, { ...at, error: problem.message.split('\n')[0] ?? problem.message });
  // A bare `---` or a comment is no document (as for the resources).
  let values: unknown[];
  try {
    values = documents.map((d) => d.toJS() as unknown);
  } catch (error) {
    throw permanent('pointer.yaml', `${POINTER_FILE} cannot be read: ${(error as Error).message}`, at, error);
  }
  const present = values.filter((value) => value !== null && value !== undefined);
  if (present.length !== 1) throw permanent('pointer.yaml', `${POINTER_FILE} must hold exactly one YAML document, it holds ${present.length}`, at);
  const doc = present[0];
  if (!isRecord(doc)) throw permanent('pointer.yaml', `${POINTER_FILE} is not a YAML mapping (an object with apiVersion, kind, metadata and spec)`, at);
  if (typeof doc.apiVersion !== 'string' || !POINTER_API_VERSIONS.includes(doc.apiVersion)) {
    throw permanent('pointer.apiVersion', `${POINTER_FILE} has apiVersion ${show(doc.apiVersion)}, expected ${POINTER_API_VERSIONS.join(' or ')}`, at);
  }
  if (doc.kind !== POINTER_KIND) throw permanent('pointer.kind', `${POINTER_FILE} has kind ${show(doc.kind)}, expected ${POINTER_KIND}`, at);
  const spec = isRecord(doc.spec) ? doc.spec : {};
  const metadata = isRecord(doc.metadata) ? doc.metadata : {};
  if (typeof spec.release !== 'string' || !RELEASE_SHA.test(spec.release)) {
    const numeric = typeof spec.release === 'number' ? ' (YAML read it as a number: quote it)' : '';
    throw permanent('pointer.release', `${POINTER_FILE} has spec.release ${show(spec.release)}${numeric}: the full commit SHA, 40 lowercase hexadecimal characters (${RELEASE_SHA.source})`, at);
  }
  const pick = <T extends Record<string, string | undefined>>(fields: T) =>
    Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: string };
  return {
    path,
    apiVersion: doc.apiVersion,
    release: spec.release,
    metadata: pick({ name: stringOr(metadata.name), namespace: stringOr(metadata.namespace) }),
    spec: pick({ repository: stringOr(spec.repository), project: stringOr(spec.project), ociUri: stringOr(spec.ociUri) }),
  };
}

export type DiscoverResult =
  | { matched: true; pointer: PointerDocument }
  /** `reason` is the error's message; the error has the check that failed and the details. */
  | { matched: false; reason: string; error: CmpError };

/** `discover`: does `dir` hold a valid ReleasePointer? Never throws for an invalid one. */
export async function discover(dir: string): Promise<DiscoverResult> {
  try {
    return { matched: true, pointer: await readPointer(dir) };
  } catch (error) {
    if (!(error instanceof CmpError)) throw error;
    return { matched: false, reason: error.message, error };
  }
}

export type TargetSource = 'spec' | 'path' | 'namespace';

export interface ReleaseTarget {
  /** `owner/name` (a single name when it came from a namespace). */
  repository: string;
  project: string;
  /** Where each came from (for messages). */
  from: { repository: TargetSource; project: TargetSource };
}

const escapeRegExp = (value: string) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const PLACEHOLDER_PATTERNS = { environment: '([^/]+)', repository: '([^/]+/[^/]+)', project: '([^/]+)' } as const;
type Placeholder = keyof typeof PLACEHOLDER_PATTERNS;

/**
 * The layout's directory part as a regular expression matching the end of a path, with the
 * placeholder of each group: `{repository}` is two segments (owner/name), the others one.
 */
function layoutPattern(layout: string): { pattern: RegExp; groups: Placeholder[] } {
  let checked: string;
  try {
    checked = checkPointerLayout(layout);
  } catch (error) {
    if (!isForgeError(error)) throw error;
    throw new CmpError('usage', 'settings', error.message, { layout });
  }
  const groups: Placeholder[] = [];
  const directory = checked.split('/').slice(0, -1).join('/');
  const source = directory.split(/(\{[a-z]+\})/).map((part) => {
    const name = /^\{([a-z]+)\}$/.exec(part)?.[1] as Placeholder | undefined;
    if (name === undefined) return escapeRegExp(part);
    groups.push(name);
    return PLACEHOLDER_PATTERNS[name];
  }).join('');
  return { pattern: new RegExp(`(?:^|/)${source}$`), groups };
}

/** repository and project from where the pointer lies, or undefined when the path does not fit the layout. */
export function targetFromPath(layout: string, directory: string): { repository: string; project: string } | undefined {
  const { pattern, groups } = layoutPattern(layout);
  const match = pattern.exec(directory.split(sep).join('/').replace(/\/+$/, ''));
  // A placeholder only in the file name (`…/{project}.yaml`) tells nothing about the directory.
  const value = (name: Placeholder) => (groups.includes(name) ? match?.[groups.indexOf(name) + 1] : undefined);
  const repository = value('repository');
  const project = value('project');
  return repository !== undefined && project !== undefined ? { repository, project } : undefined;
}

export interface TargetOptions {
  /** GitOps layout template (FORGE_GITOPS_LAYOUT). */
  layout: string;
  /** The application's directory as a path relative to the GitOps repository (ARGOCD_APP_SOURCE_PATH), else its absolute path. */
  directory: string;
}

/** The release's repository and project; a permanent CmpError when no source names them or a name is invalid. */
export function releaseTarget(pointer: PointerDocument, options: TargetOptions): ReleaseTarget {
  const fromPath = targetFromPath(options.layout, options.directory);
  const projectHint = pointer.spec.project ?? fromPath?.project ?? pointer.metadata.name;
  const namespace = pointer.metadata.namespace;
  const fromNamespace = namespace !== undefined && projectHint !== undefined && namespace.endsWith(`-${projectHint}`) && namespace.length > projectHint.length + 1
    ? { repository: namespace.slice(0, -projectHint.length - 1), project: projectHint }
    : undefined;
  const choose = (field: 'repository' | 'project') => {
    const candidates: [TargetSource, string | undefined][] = [['spec', pointer.spec[field]], ['path', fromPath?.[field]], ['namespace', fromNamespace?.[field]]];
    return candidates.find(([, value]) => value !== undefined) as [TargetSource, string] | undefined;
  };
  const repository = choose('repository');
  const project = choose('project');
  const at = { pointer: pointer.path, directory: options.directory, layout: options.layout };
  if (!repository || !project) {
    throw permanent('pointer.target', `cannot tell which release ${pointer.release} belongs to: no ${!repository ? 'repository' : 'project'} in spec, in the path or in metadata.namespace`, {
      ...at,
      tried: `spec.${!repository ? 'repository' : 'project'}; the directory against the layout; metadata.namespace "<repo>-<project>"${namespace === undefined ? ' (absent)' : ` (${namespace})`}`,
    });
  }
  if (!isValidName('project', project[1])) {
    throw permanent('pointer.target', `invalid project ${JSON.stringify(project[1])} (from ${project[0]}): ${NAME_RULES.project}`, at);
  }
  const single = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/i;
  if (!isValidName('repository', repository[1]) && !(repository[0] === 'namespace' && single.test(repository[1]))) {
    throw permanent('pointer.target', `invalid repository ${JSON.stringify(repository[1])} (from ${repository[0]}): ${NAME_RULES.repository}`, at);
  }
  return { repository: repository[1], project: project[1], from: { repository: repository[0], project: project[0] } };
}

/**
 * EnvironmentConfigs (digest §5.3): the two tiers an environment's GitOps directory holds beside
 * the ReleasePointers, and resolving a release's XRs against them.
 *
 *   cluster  `<prefix up to {environment}>/env.yaml`, required: metadata.name `Cluster`, label
 *            `forge.projectcatalyst.io/type: cluster`, `spec.environment {name, domain, region?}`,
 *            `spec.defaults.<XR kind>.<field…>`
 *   project  `env.yaml` beside the pointer, optional: metadata.name `<owner>-<name>-<project>` (or
 *            `<name>-<project>`), labels type `project` and `forge.projectcatalyst.io/project`,
 *            `spec.overrides.<xr name>.<field…>`
 *
 * EnvironmentConfigs are cluster-scoped and readable by every composition, so they must not hold
 * secrets: a key that names secret material (…password, …secret, …token, …apiKey, …privateKey,
 * …credentials) with a literal string or number, or any PEM private key, is refused. Booleans,
 * empty strings and reference strings (`secrets/…`) are not secret material.
 */
import { invalid } from './errors.ts';
import { environmentDir } from './gitops-layout.ts';
import {
  classifyResources, fieldPath, isMap, isXrKind, own, projectNamespaces, resolveReferences, resolveXr, XR_KINDS, xrLabel,
  type Problem, type ResolvedReference, type ResolvedXr, type ResourceRef, type SecretMapping, type Spec, type XrKind,
} from './xr.ts';

export const ENV_CONFIG_KIND = 'EnvironmentConfig';
/** Forge's own group (v1alpha1 as D-HEAD, v1 as the pointer), and Crossplane's, which D-HEAD's examples use. */
export const ENV_CONFIG_API_VERSIONS = [
  'forge.projectcatalyst.io/v1alpha1',
  'forge.projectcatalyst.io/v1',
  'apiextensions.crossplane.io/v1alpha1',
  'apiextensions.crossplane.io/v1beta1',
  'apiextensions.crossplane.io/v1',
] as const;
export const TYPE_LABEL = 'forge.projectcatalyst.io/type';
export const PROJECT_LABEL = 'forge.projectcatalyst.io/project';
export const CLUSTER_CONFIG_NAME = 'Cluster';
/** Looked up in this order; both present is a problem (which one counts would be a guess). */
export const ENV_CONFIG_FILE_NAMES = ['env.yaml', 'env.yml'] as const;

// ---------------------------------------------------------------------------------------------
// Where they live

/**
 * The directories of the cluster config (the layout up to and including its `{environment}`
 * segment) and the project config (the pointer's directory). The layout must put `{environment}`
 * in a segment before `{repository}` and `{project}`, and keep placeholders out of the file name,
 * so no two targets share a project config and the cluster config is nobody's project config.
 */
export function environmentConfigDirs(layout: string, environment: string, pointerFile: string): { cluster: string; project: string } {
  const fail = (why: string) => invalid(`the gitops layout ${JSON.stringify(layout)} has no place for EnvironmentConfigs: ${why}`, { field: 'layout' });
  const segments = layout.split('/');
  const at = segments.findIndex((segment) => segment.includes('{environment}'));
  if (at === -1) throw fail('no {environment} segment');
  if (segments.slice(0, at + 1).some((segment) => segment.includes('{repository}') || segment.includes('{project}'))) {
    throw fail('{environment} must come before {repository} and {project}, in a segment of its own');
  }
  if ((segments.at(-1) ?? '').includes('{')) throw fail('the pointer file name must not hold a placeholder (its directory holds the project config)');
  const slash = pointerFile.lastIndexOf('/');
  return { cluster: environmentDir(layout, environment), project: slash === -1 ? '' : pointerFile.slice(0, slash) };
}

// ---------------------------------------------------------------------------------------------
// Reading them

export interface EnvironmentInfo {
  name: string;
  domain: string;
  region?: string;
}

export interface ClusterConfig {
  file: string;
  environment: EnvironmentInfo;
  defaults: Partial<Record<XrKind, Spec>>;
}

export interface ProjectConfig {
  file: string;
  overrides: Record<string, Spec>;
}

/** A file as read: its parsed document, or the problems that kept it from being parsed. */
export interface ConfigFile {
  file: string;
  document?: unknown;
  problems?: Problem[];
}

interface Checked<T> {
  config: T | undefined;
  problems: Problem[];
  warnings: Problem[];
}

const SENSITIVE_WORDS = new Set([
  'password', 'passwd', 'passphrase', 'secret', 'token', 'credential', 'credentials',
  'apikey', 'privatekey', 'secretkey', 'accesskey', 'clientsecret',
]);
const REFERENCE_VALUE = /^(?:[a-z0-9-]+::)?(?:outputs|connections|secrets|configs)\//;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** `DB_PASSWORD`, `clientSecret`, `apiKey` name secret material; `secretName`, `tokenTtl` do not. */
function namesSecret(key: string): boolean {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  const last = words.at(-1) ?? '';
  return SENSITIVE_WORDS.has(last) || SENSITIVE_WORDS.has(words.slice(-2).join(''));
}

/** Literal secrets anywhere in a config's spec; an env-style `{NAME: {value}}` is judged by NAME. */
export function secretMaterialProblems(file: string, spec: unknown): Problem[] {
  const problems: Problem[] = [];
  const literal = (value: unknown) => (typeof value === 'string' && value !== '' && !REFERENCE_VALUE.test(value)) || typeof value === 'number';
  const walk = (value: unknown, path: (string | number)[], name: string | undefined) => {
    if (typeof value === 'string' && PEM_PRIVATE_KEY.test(value)) {
      problems.push({ file, field: fieldPath(path), message: 'holds a private key; EnvironmentConfigs are readable cluster-wide and must not contain secrets' });
      return;
    }
    if (name !== undefined && namesSecret(name) && literal(value)) {
      problems.push({
        file,
        field: fieldPath(path),
        message: `${name} looks like a secret with a literal value; EnvironmentConfigs are readable cluster-wide and must not contain secrets: keep it in the secret store and reference it (secrets/<xr>/<secret>/<key>)`,
      });
      return;
    }
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...path, i], undefined));
    else if (isMap(value)) {
      const entryName = typeof own(value, 'name') === 'string' ? (own(value, 'name') as string) : name;
      for (const [key, item] of Object.entries(value)) walk(item, [...path, key], key === 'value' ? entryName : key);
    }
  };
  walk(spec, ['spec'], undefined);
  return problems;
}

interface Header {
  type: 'cluster' | 'project';
  /** Accepted metadata.name values; the first is the one to write. */
  names: readonly string[];
  project?: string;
}

/** apiVersion, kind, name, labels and the spec map, common to both tiers. */
function checkHeader(file: string, document: unknown, header: Header): { spec: Spec | undefined; problems: Problem[]; warnings: Problem[] } {
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const add = (field: string, message: string) => problems.push({ file, field, message });
  if (!isMap(document)) {
    add('', `an EnvironmentConfig must be a map, not ${document === null || document === undefined ? 'empty' : Array.isArray(document) ? 'a list' : JSON.stringify(document)}`);
    return { spec: undefined, problems, warnings };
  }
  const apiVersion = own(document, 'apiVersion');
  if (!(ENV_CONFIG_API_VERSIONS as readonly unknown[]).includes(apiVersion)) {
    add('apiVersion', `${JSON.stringify(apiVersion)} is not one of ${ENV_CONFIG_API_VERSIONS.join(', ')}`);
  }
  if (own(document, 'kind') !== ENV_CONFIG_KIND) add('kind', `${JSON.stringify(own(document, 'kind'))}; expected ${ENV_CONFIG_KIND}`);
  const metadata = own(document, 'metadata');
  const meta = isMap(metadata) ? metadata : {};
  if (!isMap(metadata)) add('metadata', 'missing');
  const name = own(meta, 'name');
  if (!header.names.includes(name as string)) {
    const message = `${JSON.stringify(name)}; expected ${header.names.join(' or ')}`;
    // The cluster config's name is fixed; a project config is selected by its labels, so a
    // different name only warns.
    if (header.type === 'cluster') add('metadata.name', message);
    else warnings.push({ file, field: 'metadata.name', message });
  }
  const labels = isMap(own(meta, 'labels')) ? (own(meta, 'labels') as Spec) : {};
  if (own(labels, TYPE_LABEL) !== header.type) {
    add(`metadata.labels["${TYPE_LABEL}"]`, `${JSON.stringify(own(labels, TYPE_LABEL))}; expected ${header.type} (compositions select the config by this label)`);
  }
  if (header.project !== undefined && own(labels, PROJECT_LABEL) !== header.project) {
    add(`metadata.labels["${PROJECT_LABEL}"]`, `${JSON.stringify(own(labels, PROJECT_LABEL))}; expected ${header.project} (compositions select the config by this label)`);
  }
  const spec = own(document, 'spec');
  if (!isMap(spec)) {
    add('spec', spec === undefined ? 'missing' : 'must be a map');
    return { spec: undefined, problems, warnings };
  }
  problems.push(...secretMaterialProblems(file, spec));
  return { spec, problems, warnings };
}

export function checkClusterConfig(file: string, document: unknown, environment: string): Checked<ClusterConfig> {
  const { spec, problems, warnings } = checkHeader(file, document, { type: 'cluster', names: [CLUSTER_CONFIG_NAME] });
  if (spec === undefined) return { config: undefined, problems, warnings };
  const add = (field: string, message: string) => problems.push({ file, field, message });
  const env = own(spec, 'environment');
  const info: EnvironmentInfo = { name: '', domain: '' };
  if (!isMap(env)) add('spec.environment', 'required: {name, domain, region}');
  else {
    const [name, domain, region] = [own(env, 'name'), own(env, 'domain'), own(env, 'region')];
    if (typeof name !== 'string' || name === '') add('spec.environment.name', 'required');
    else if (name !== environment) add('spec.environment.name', `${JSON.stringify(name)} in the config of environment ${environment}`);
    else info.name = name;
    if (typeof domain !== 'string' || domain === '') add('spec.environment.domain', 'required');
    else info.domain = domain;
    if (region !== undefined && (typeof region !== 'string' || region === '')) add('spec.environment.region', 'must be a non-empty string');
    else if (typeof region === 'string') info.region = region;
  }
  if (own(spec, 'overrides') !== undefined) add('spec.overrides', 'overrides belong in a project\'s env.yaml; the cluster config holds spec.defaults per XR kind');
  const defaults: Partial<Record<XrKind, Spec>> = {};
  const rawDefaults = own(spec, 'defaults') ?? {};
  if (!isMap(rawDefaults)) add('spec.defaults', 'must be a map of XR kind to fields');
  else {
    for (const [kind, values] of Object.entries(rawDefaults)) {
      if (!isXrKind(kind)) {
        // A kind of a later catalog (the docs mention Database) is not an error here: nothing uses it.
        warnings.push({ file, field: fieldPath(['spec', 'defaults', kind]), message: `not a kind of the XR catalog (${XR_KINDS.join(', ')}); ignored` });
      } else if (!isMap(values)) add(fieldPath(['spec', 'defaults', kind]), 'must be a map of fields');
      else defaults[kind] = values;
    }
  }
  return { config: { file, environment: info, defaults }, problems, warnings };
}

/** Keys of an override that are not XR inputs. */
const NOT_INPUTS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

export function checkProjectConfig(file: string, document: unknown, target: { repository: string; project: string }): Checked<ProjectConfig> {
  const { spec, problems, warnings } = checkHeader(file, document, { type: 'project', names: projectNamespaces(target.repository, target.project), project: target.project });
  if (spec === undefined) return { config: undefined, problems, warnings };
  const add = (field: string, message: string) => problems.push({ file, field, message });
  if (own(spec, 'defaults') !== undefined) add('spec.defaults', 'defaults per kind belong in the cluster config; a project config holds spec.overrides.<xr name>');
  const overrides: Record<string, Spec> = {};
  const raw = own(spec, 'overrides') ?? {};
  if (!isMap(raw)) add('spec.overrides', 'must be a map of XR name to fields');
  else {
    for (const [name, values] of Object.entries(raw)) {
      const at = ['spec', 'overrides', name];
      if (!isMap(values)) {
        add(fieldPath(at), 'must be a map of the XR\'s spec fields');
        continue;
      }
      const bad = Object.keys(values).filter((key) => NOT_INPUTS.includes(key));
      for (const key of bad) {
        add(fieldPath([...at, key]), `overrides change XR inputs only: write the spec fields directly under ${name} (e.g. ${name}.replicas), never ${key}`);
      }
      if (bad.length === 0) Object.defineProperty(overrides, name, { value: values, enumerable: true });
    }
  }
  return { config: { file, overrides }, problems, warnings };
}

// ---------------------------------------------------------------------------------------------
// Resolving a release against them

export interface ResolveInput {
  environment: string;
  repository: string;
  project: string;
  /** Where the cluster config was looked for, for the "missing" problem. */
  clusterLocation: string;
  cluster: ConfigFile | undefined;
  projectConfig: ConfigFile | undefined;
  resources: { file: string; documents: readonly unknown[]; problems?: Problem[] };
}

export interface EnvironmentResolution {
  environment: string;
  repository: string;
  project: string;
  namespace: string;
  cluster: ({ file: string } & EnvironmentInfo) | null;
  projectConfig: { file: string; overrides: string[] } | null;
  xrs: ResolvedXr[];
  /** Plain Kubernetes objects and other custom resources: passed through untouched. */
  passthrough: Pick<ResourceRef, 'apiVersion' | 'kind' | 'name'>[];
  references: ResolvedReference[];
  secrets: SecretMapping[];
  problems: Problem[];
  warnings: Problem[];
}

function checkedConfig<T>(file: ConfigFile | undefined, check: (file: string, document: unknown) => Checked<T>): Checked<T> {
  if (file === undefined) return { config: undefined, problems: [], warnings: [] };
  if (file.problems && file.problems.length > 0) return { config: undefined, problems: file.problems, warnings: [] };
  return check(file.file, file.document);
}

/**
 * The release's XRs with their inputs resolved for one environment (behaviour 51), their
 * references checked and resolved (52), their secrets mapped to store paths (53), and every
 * problem found on the way. A missing or broken cluster config is a problem, but resolution still
 * runs (without cluster defaults) so the other problems show too.
 */
export function resolveEnvironment(input: ResolveInput): EnvironmentResolution {
  const { environment, repository, project } = input;
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const cluster = checkedConfig(input.cluster, (file, document) => checkClusterConfig(file, document, environment));
  if (input.cluster === undefined) {
    problems.push({ file: input.clusterLocation, message: `no cluster EnvironmentConfig for environment ${environment} (${ENV_CONFIG_FILE_NAMES.join(' or ')}); it is required` });
  }
  const projectConfig = checkedConfig(input.projectConfig, (file, document) => checkProjectConfig(file, document, { repository, project }));
  for (const checked of [cluster, projectConfig]) {
    problems.push(...checked.problems);
    warnings.push(...checked.warnings);
  }
  problems.push(...(input.resources.problems ?? []));

  const classified = classifyResources(input.resources.documents, input.resources.file);
  problems.push(...classified.problems);
  const overrides = projectConfig.config?.overrides ?? {};
  const names = classified.xrs.map((xr) => xr.name);
  for (const name of Object.keys(overrides)) {
    if (names.includes(name)) continue;
    const other = [...classified.plain, ...classified.composites].find((r) => r.name === name);
    problems.push({
      file: projectConfig.config?.file,
      field: fieldPath(['spec', 'overrides', name]),
      message: other
        ? `${name} is a ${other.apiVersion} ${other.kind}, not an XR of the catalog; overrides apply to XRs only (XRs: ${names.join(', ') || 'none'})`
        : `no XR named ${name} in the release (XRs: ${names.join(', ') || 'none'})`,
    });
  }

  const xrs: ResolvedXr[] = [];
  const secrets: SecretMapping[] = [];
  const scoped: { xr: (typeof classified.xrs)[number]; spec: Spec }[] = [];
  for (const xr of classified.xrs) {
    const result = resolveXr(xr, { cluster: cluster.config?.defaults[xr.kind], override: own(overrides, xr.name) as Spec | undefined, environment });
    xrs.push(result.resolved);
    secrets.push(...result.secrets);
    scoped.push({ xr, spec: result.resolved.spec });
    for (const p of result.problems) problems.push({ file: input.resources.file, xr: xrLabel(xr), ...p });
  }
  const namespaces = projectNamespaces(repository, project);
  const refs = resolveReferences({ namespaces, xrs: scoped, composites: classified.composites, plain: classified.plain });
  for (const p of refs.problems) problems.push({ file: input.resources.file, ...p });

  const env = cluster.config?.environment;
  return {
    environment,
    repository,
    project,
    namespace: namespaces[0],
    cluster: cluster.config && env ? { file: cluster.config.file, ...env } : null,
    projectConfig: projectConfig.config ? { file: projectConfig.config.file, overrides: Object.keys(projectConfig.config.overrides) } : null,
    xrs,
    passthrough: [...classified.plain, ...classified.composites].sort((a, b) => a.document - b.document)
      .map(({ apiVersion, kind, name }) => ({ apiVersion, kind, name })),
    references: refs.references,
    secrets,
    problems,
    warnings,
  };
}

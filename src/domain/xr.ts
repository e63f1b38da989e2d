/**
 * Forge's Crossplane XR catalog (digest §5.1) and the rules a release's XRs must meet before they
 * reach a cluster: how an XR's inputs resolve against the environment (§5.3, behaviour 51), the
 * reference syntax inside XR specs (§5.2, behaviour 52) and where a Secrets XR's entries live in
 * the secret store (behaviour 53). Pure: documents come in parsed, problems go out as a list (all
 * of them, not the first), so a person fixes everything in one round.
 *
 * An XR is recognised by its API group (`forge.projectcatalyst.io`, or the older docs' `forge.io`),
 * never by kind alone: `apps/v1 Deployment` is a plain Kubernetes object and passes through untouched.
 */

import { assertNever } from '../lib/assert-never.ts';

/** A JSON-like map: an XR spec, a layer of defaults, an override. */
export type Spec = Record<string, unknown>;

/** One thing wrong, located as precisely as known: file, then XR, then field. */
export interface Problem {
  file?: string;
  /** `Kind/name`. */
  xr?: string;
  /** `spec.containers[0].image`-style path. */
  field?: string;
  message: string;
}

export function describeProblem(problem: Problem): string {
  return [problem.file, problem.xr, problem.field, problem.message].filter((part) => part !== undefined && part !== '').join(': ');
}

export const XR_GROUPS = ['forge.projectcatalyst.io', 'forge.io'] as const;
export const XR_API_VERSIONS = ['forge.projectcatalyst.io/v1alpha1', 'forge.io/v1'] as const;

export const XR_KINDS = ['Deployment', 'Stateful', 'Job', 'CronJob', 'Network', 'Secrets', 'ConfigMaps', 'Storage'] as const;
export type XrKind = (typeof XR_KINDS)[number];
export const isXrKind = (kind: string): kind is XrKind => (XR_KINDS as readonly string[]).includes(kind);

/** Abstract storage classes (AWS: io2 / gp3 / sc1). */
export const STORAGE_CLASSES = ['fast', 'standard', 'bulk'] as const;
export const MAX_XRS_PER_PROJECT = 50;

/** Kinds that run containers: `image` (one container) or `containers[].image`. */
const WORKLOAD_KINDS: readonly XrKind[] = ['Deployment', 'Stateful', 'Job', 'CronJob'];

const SMALL_RESOURCES = { requests: { cpu: '50m', memory: '64Mi' } };

/**
 * What a composition fills in when neither the XR nor the environment says (the last layer of
 * behaviour 51). Small and safe: one replica, modest requests, TLS on, the middle storage class.
 */
export const COMPOSITION_DEFAULTS: Readonly<Record<XrKind, Readonly<Spec>>> = {
  Deployment: { replicas: 1, resources: SMALL_RESOURCES },
  Stateful: { replicas: 1, resources: SMALL_RESOURCES },
  Job: { backoffLimit: 3, ttlSecondsAfterFinished: 3600, resources: SMALL_RESOURCES },
  CronJob: { concurrencyPolicy: 'Forbid', successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 1, resources: SMALL_RESOURCES },
  Network: { tlsEnabled: true },
  Secrets: { refreshInterval: '1h' },
  ConfigMaps: {},
  Storage: { class: 'standard', accessMode: 'ReadWriteOnce' },
};

/**
 * Inputs no layer can default. Kept minimal: what the composition cannot invent. For workload
 * kinds `image` is also met by `containers` whose every entry has an image.
 */
export const REQUIRED_FIELDS: Readonly<Record<XrKind, readonly string[]>> = {
  Deployment: ['image'],
  Stateful: ['image'],
  Job: ['image'],
  CronJob: ['image', 'schedule'],
  Network: ['port'],
  Secrets: ['secrets'],
  ConfigMaps: ['configs'],
  Storage: ['size'],
};

// ---------------------------------------------------------------------------------------------
// Names

/** A Kubernetes object name (DNS-1123 subdomain): XR names, secret and config item names. */
const OBJECT_NAME = /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?$/;
/** A namespace (DNS-1123 label). */
const NAMESPACE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
/** A Secret / ConfigMap data key, or an output key. */
const DATA_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
/** The Kubernetes name rules above, for settings that name Kubernetes objects (Argo Workflows). */
export const KUBERNETES_NAMES = { object: OBJECT_NAME, namespace: NAMESPACE, dataKey: DATA_KEY } as const;

export const PLATFORM_NAMESPACE = 'platform';

const sanitiseLabel = (text: string) => text.toLowerCase().replace(/[^a-z0-9-]+/g, '-');

/**
 * The project's Kubernetes namespace, `<owner>-<name>-<project>`; `<name>-<project>` (the docs'
 * `<repository>-<project>` with a name-only repository) is accepted wherever a namespace is read.
 */
export function projectNamespaces(repository: string, project: string): [string, string] {
  const [owner = '', name = ''] = repository.split('/');
  return [sanitiseLabel(`${owner}-${name}-${project}`), sanitiseLabel(`${name}-${project}`)];
}

// ---------------------------------------------------------------------------------------------
// Small helpers on parsed values. Keys are read and written as own properties only, so a
// `__proto__` key in someone's YAML stays a plain key.

export function isMap(value: unknown): value is Spec {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function own(map: Spec, key: string): unknown {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function setOwn(map: Spec, key: string, value: unknown): void {
  Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
}

/** `spec.containers[0].env["A.B"]`. */
export function fieldPath(parts: readonly (string | number)[]): string {
  return parts.reduce<string>((path, part) => {
    if (typeof part === 'number') return `${path}[${part}]`;
    const plain = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(part);
    if (path === '') return plain ? part : `[${JSON.stringify(part)}]`;
    return plain ? `${path}.${part}` : `${path}[${JSON.stringify(part)}]`;
  }, '');
}

const show = (value: unknown) => JSON.stringify(value);

// ---------------------------------------------------------------------------------------------
// Resources of a release

export interface ResourceRef {
  /** Position in the stream, from 1. */
  document: number;
  apiVersion: string;
  kind: string;
  name: string;
}

export interface Xr extends ResourceRef {
  kind: XrKind;
  spec: Spec;
}

export interface ClassifiedResources {
  /** Catalog XRs, in stream order. */
  xrs: Xr[];
  /** Other composite or custom resources (a platform XRD such as an S3 Bucket): they may publish
   * outputs and connection details, but Forge does not merge their inputs. */
  composites: ResourceRef[];
  /** Built-in Kubernetes objects, passed through untouched. */
  plain: ResourceRef[];
  problems: Problem[];
}

export const xrLabel = (ref: Pick<ResourceRef, 'kind' | 'name'>) => `${ref.kind}/${ref.name}`;

const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.lastIndexOf('/')) : '');

/** The API groups Kubernetes itself serves (core has none). */
function isBuiltinGroup(group: string): boolean {
  return group === '' || ['apps', 'batch', 'autoscaling', 'policy', 'extensions'].includes(group) || group.endsWith('.k8s.io');
}

/**
 * Sorts a release's documents (in stream order, empty ones as null) into XRs, other custom
 * resources and plain Kubernetes objects.
 */
export function classifyResources(documents: readonly unknown[], file: string): ClassifiedResources {
  const result: ClassifiedResources = { xrs: [], composites: [], plain: [], problems: [] };
  const problem = (document: number, message: string, extra: Partial<Problem> = {}) =>
    result.problems.push({ file, field: `document ${document}`, ...extra, message });
  documents.forEach((value, i) => {
    const document = i + 1;
    // An empty document (`---` with nothing after it) is no resource.
    if (value === null || value === undefined) return undefined;
    if (!isMap(value)) return problem(document, `a resource must be a map, not ${Array.isArray(value) ? 'a list' : show(value)}`);
    const apiVersion = own(value, 'apiVersion');
    const kind = own(value, 'kind');
    const metadata = own(value, 'metadata');
    const name = isMap(metadata) ? own(metadata, 'name') : undefined;
    if (typeof apiVersion !== 'string' || apiVersion === '') return problem(document, 'apiVersion is missing');
    if (typeof kind !== 'string' || kind === '') return problem(document, 'kind is missing');
    if (typeof name !== 'string' || name === '') return problem(document, `${kind}: metadata.name is missing`);
    const ref: ResourceRef = { document, apiVersion, kind, name };
    const group = groupOf(apiVersion);
    if (!(XR_GROUPS as readonly string[]).includes(group)) {
      (isBuiltinGroup(group) ? result.plain : result.composites).push(ref);
      return undefined;
    }
    const at = { xr: xrLabel(ref) };
    if (!(XR_API_VERSIONS as readonly string[]).includes(apiVersion)) {
      return problem(document, `apiVersion ${apiVersion} is not served; use ${XR_API_VERSIONS.join(' or ')}`, at);
    }
    if (!isXrKind(kind)) return problem(document, `${group} has no kind ${kind}; the catalog has ${XR_KINDS.join(', ')}`, at);
    if (!OBJECT_NAME.test(name)) {
      return problem(document, `XR name ${show(name)} must be a Kubernetes object name (lowercase letters, digits, "-", "."; starting and ending alphanumeric)`, at);
    }
    const spec = own(value, 'spec') ?? {};
    if (!isMap(spec)) return problem(document, 'spec must be a map', at);
    result.xrs.push({ ...ref, kind, spec });
    return undefined;
  });
  // Overrides and references name an XR by metadata.name alone, so names are unique across kinds.
  const seen = new Map<string, Xr>();
  for (const xr of result.xrs) {
    const first = seen.get(xr.name);
    if (first) result.problems.push({ file, xr: xrLabel(xr), message: `XR name ${xr.name} is also used by ${xrLabel(first)} (document ${first.document}); overrides and references need unique names` });
    else seen.set(xr.name, xr);
  }
  if (result.xrs.length > MAX_XRS_PER_PROJECT) {
    result.problems.push({ file, message: `${result.xrs.length} XRs; a project may have at most ${MAX_XRS_PER_PROJECT}` });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Merge (behaviour 51)

/** Highest precedence first. */
export const LAYERS = ['override', 'spec', 'cluster', 'composition'] as const;
export type Layer = (typeof LAYERS)[number];

export interface MergedSpec {
  spec: Spec;
  /** Per top-level field: the layers that gave it its value, highest first. */
  sources: Record<string, Layer[]>;
}

export interface SpecLayers {
  composition: Readonly<Spec>;
  cluster?: Readonly<Spec> | undefined;
  spec: Readonly<Spec>;
  override?: Readonly<Spec> | undefined;
}

/** A deep copy without null map values (null means "not set" except in overrides). */
function copy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copy);
  if (!isMap(value)) return value;
  const out: Spec = {};
  for (const [key, item] of Object.entries(value)) if (item !== null && item !== undefined) setOwn(out, key, copy(item));
  return out;
}

/** Scalars and arrays replace; maps merge key by key; in an override, null removes the key. */
export function deepMerge(base: Readonly<Spec>, top: Readonly<Spec>, nullRemoves = false): Spec {
  const out = copy(base) as Spec;
  for (const [key, value] of Object.entries(top)) {
    if (value === undefined) continue;
    if (value === null) {
      if (nullRemoves) delete out[key];
      continue;
    }
    const current = own(out, key);
    setOwn(out, key, isMap(current) && isMap(value) ? deepMerge(current, value, nullRemoves) : copy(value));
  }
  return out;
}

/**
 * An XR's inputs after the four layers, applied bottom-up: composition default, cluster default
 * for the kind, the XR's own spec, the per-project override for this XR. An empty map contributes
 * nothing; null is "not set" in every layer but the override, where it removes the key.
 */
export function mergeSpec(layers: SpecLayers): MergedSpec {
  const spec: Spec = {};
  const sources: Record<string, Layer[]> = {};
  const ordered: [Layer, Readonly<Spec> | undefined][] = [
    ['composition', layers.composition], ['cluster', layers.cluster], ['spec', layers.spec], ['override', layers.override],
  ];
  for (const [layer, values] of ordered) {
    for (const [key, value] of Object.entries(values ?? {})) {
      if (value === undefined) continue;
      if (value === null) {
        if (layer === 'override') {
          delete spec[key];
          delete sources[key];
        }
        continue;
      }
      const current = own(spec, key);
      if (isMap(current) && isMap(value)) {
        if (Object.keys(value).length === 0) continue;
        setOwn(spec, key, deepMerge(current, value, layer === 'override'));
        setOwn(sources, key, [layer, ...((own(sources, key) as Layer[] | undefined) ?? [])]);
      } else {
        setOwn(spec, key, copy(value));
        setOwn(sources, key, [layer]);
      }
    }
  }
  return { spec, sources };
}

// ---------------------------------------------------------------------------------------------
// Per-kind checks of the merged spec

const isPresent = (value: unknown) => value !== undefined && value !== null && value !== '' && !(Array.isArray(value) && value.length === 0);

/** Where a merged top-level field came from, for messages: " (set by the per-project override)"; "" for the spec. */
export function origin(sources: Record<string, Layer[]>, key: string): string {
  const layer = own(sources, key) as Layer[] | undefined;
  const top = layer?.[0];
  if (top === undefined || top === 'spec') return '';
  return top === 'override' ? ' (set by the per-project override)' : top === 'cluster' ? ' (set by the cluster default)' : ' (composition default)';
}

/** Missing required inputs and values of the wrong shape, each naming the field. */
export function specProblems(kind: XrKind, merged: MergedSpec): { field: string; message: string }[] {
  const { spec, sources } = merged;
  const problems: { field: string; message: string }[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  const isWorkload = WORKLOAD_KINDS.includes(kind);
  for (const field of REQUIRED_FIELDS[kind]) {
    if (isWorkload && field === 'image' && own(spec, 'containers') !== undefined) continue;
    if (!isPresent(own(spec, field))) {
      const alternative = isWorkload && field === 'image' ? ' (or spec.containers[].image)' : '';
      add(`spec.${field}`, `required${alternative}; set it in the XR spec, a cluster default for ${kind} or a per-project override`);
    }
  }
  if (isWorkload) {
    const containers = own(spec, 'containers');
    if (containers !== undefined) {
      if (!Array.isArray(containers) || containers.length === 0) add('spec.containers', `must be a non-empty list${origin(sources, 'containers')}`);
      else containers.forEach((container, i) => {
        if (!isMap(container)) add(`spec.containers[${i}]`, 'must be a map');
        else if (typeof own(container, 'image') !== 'string' || own(container, 'image') === '') add(`spec.containers[${i}].image`, 'required');
      });
    }
    const image = own(spec, 'image');
    if (image !== undefined && (typeof image !== 'string' || image === '')) add('spec.image', `must be an image reference${origin(sources, 'image')}`);
    const replicas = own(spec, 'replicas');
    if (replicas !== undefined && !(Number.isInteger(replicas) && (replicas as number) >= 0)) {
      add('spec.replicas', `${show(replicas)} is not a whole number ≥ 0${origin(sources, 'replicas')}`);
    }
  }
  if (kind === 'Network') {
    const port = own(spec, 'port');
    if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535)) {
      add('spec.port', `${show(port)} is not a port (1-65535)${origin(sources, 'port')}`);
    }
  }
  if (kind === 'Storage') {
    const storageClass = own(spec, 'class');
    if (!(STORAGE_CLASSES as readonly unknown[]).includes(storageClass)) {
      add('spec.class', `${show(storageClass)} is not a storage class (${STORAGE_CLASSES.join(', ')})${origin(sources, 'class')}`);
    }
    const size = own(spec, 'size');
    if (size !== undefined && !(typeof size === 'string' && /^\d+(?:\.\d+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.test(size))) {
      add('spec.size', `${show(size)} is not a quantity such as 10Gi${origin(sources, 'size')}`);
    }
  }
  if (kind === 'Secrets' || kind === 'ConfigMaps') {
    const field = kind === 'Secrets' ? 'secrets' : 'configs';
    const entries = own(spec, field);
    if (entries !== undefined && !Array.isArray(entries)) add(`spec.${field}`, `must be a list of {name, …}${origin(sources, field)}`);
    const names = new Set<string>();
    (Array.isArray(entries) ? entries : []).forEach((entry, i) => {
      const at = `spec.${field}[${i}]`;
      const name = isMap(entry) ? own(entry, 'name') : undefined;
      if (typeof name !== 'string' || !OBJECT_NAME.test(name)) add(`${at}.name`, `${show(name)} is not a name (lowercase letters, digits, "-", ".")`);
      else if (names.has(name)) add(`${at}.name`, `${name} is listed twice`);
      else names.add(name);
    });
  }
  return problems;
}

/** The names a Secrets (`secrets`) or ConfigMaps (`configs`) XR declares. */
function itemNames(spec: Spec, field: 'secrets' | 'configs'): string[] {
  const entries = own(spec, field);
  if (!Array.isArray(entries)) return [];
  return entries.flatMap((entry) => (isMap(entry) && typeof own(entry, 'name') === 'string' ? [own(entry, 'name') as string] : []));
}

// ---------------------------------------------------------------------------------------------
// Secrets paths (behaviour 53)

/**
 * Where a Secrets XR entry lives in the secret store: `<env>/<path>`, or `global/<path>` with
 * `global: true`. The path is relative: no leading `/`, no empty, `.` or `..` segment.
 */
export function secretStorePath(environment: string, entry: { path: unknown; global?: unknown }): { path: string } | { error: string } {
  const { path, global = false } = entry;
  if (typeof global !== 'boolean') return { error: `global must be true or false, not ${show(global)}` };
  if (typeof path !== 'string' || path.trim() === '') return { error: 'path is empty' };
  if (path.startsWith('/')) return { error: `path ${show(path)} is absolute; write it relative (the environment or "global/" is put in front)` };
  if (/[\\\u0000-\u001f\u007f]/u.test(path) || path !== path.trim()) return { error: `path ${show(path)} has a backslash, a control character or surrounding spaces` };
  if (path.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return { error: `path ${show(path)} has an empty, "." or ".." segment` };
  }
  return { path: `${global ? 'global' : environment}/${path}` };
}

export interface SecretMapping {
  xr: string;
  name: string;
  path: string;
}

function secretMappings(environment: string, xr: Xr, spec: Spec): { secrets: SecretMapping[]; problems: { field: string; message: string }[] } {
  const secrets: SecretMapping[] = [];
  const problems: { field: string; message: string }[] = [];
  const entries = own(spec, 'secrets');
  (Array.isArray(entries) ? entries : []).forEach((entry, i) => {
    if (!isMap(entry)) return problems.push({ field: `spec.secrets[${i}]`, message: 'must be a map {name, path, global?}' });
    const mapped = secretStorePath(environment, { path: own(entry, 'path'), global: own(entry, 'global') });
    if ('error' in mapped) return problems.push({ field: `spec.secrets[${i}]`, message: mapped.error });
    const name = own(entry, 'name');
    if (typeof name === 'string') secrets.push({ xr: xr.name, name, path: mapped.path });
    return undefined;
  });
  return { secrets, problems };
}

// ---------------------------------------------------------------------------------------------
// References (behaviour 52)

export const REFERENCE_KINDS = ['outputs', 'connections', 'secrets', 'configs'] as const;
export type ReferenceKind = (typeof REFERENCE_KINDS)[number];

export interface Reference {
  kind: ReferenceKind;
  /** Set only for `<namespace>::outputs/…`. */
  namespace: string | undefined;
  xr: string;
  /** The secret or config inside a Secrets / ConfigMaps XR. */
  item: string | undefined;
  key: string | undefined;
}

export const REFERENCE_FORMS = [
  'outputs/<xr>/<key>  (also <namespace>::outputs/<xr>/<key> and platform::outputs/<xr>/<key>)',
  'connections/<xr>/<key>',
  'secrets/<xr>/<secret>[/<key>]',
  'configs/<xr>/<config>[/<key>]',
];

/** Parses the syntax alone; whether the XR exists is `resolveReferences`' question. */
export function parseReference(text: string): { reference: Reference } | { error: string } {
  if (text === '' || /\s/.test(text)) return { error: 'a reference has no spaces and is not empty' };
  const parts = text.split('::');
  if (parts.length > 2) return { error: 'at most one "::" (namespace::outputs/…)' };
  const [first = '', second] = parts;
  const namespace = second === undefined ? undefined : first;
  const path = second ?? first;
  const segments = path.split('/');
  const [prefix = '', ...rest] = segments;
  if (!(REFERENCE_KINDS as readonly string[]).includes(prefix)) {
    return { error: `unknown reference type ${show(`${prefix}/`)}; expected outputs/, connections/, secrets/ or configs/` };
  }
  const kind = prefix as ReferenceKind;
  if (namespace !== undefined) {
    if (kind !== 'outputs') {
      return { error: `${kind}/ references are same-namespace only; only outputs/ may name another namespace (drop "${namespace}::")` };
    }
    if (!NAMESPACE.test(namespace)) return { error: `${show(namespace)} is not a namespace (a DNS label, or "platform")` };
  }
  const twoPart = kind === 'outputs' || kind === 'connections';
  const shape = twoPart ? `${kind}/<xr>/<key>` : `${kind}/<xr>/<${kind === 'secrets' ? 'secret' : 'config'}>[/<key>]`;
  if (rest.some((segment) => segment === '') || rest.length < 2 || rest.length > (twoPart ? 2 : 3)) {
    return { error: `malformed ${kind}/ reference; expected ${shape}` };
  }
  const [xr = '', second2 = '', third] = rest;
  if (!OBJECT_NAME.test(xr)) return { error: `${show(xr)} is not an XR name` };
  if (twoPart) {
    if (!DATA_KEY.test(second2)) return { error: `${show(second2)} is not a key (letters, digits, "-", "_", ".")` };
    return { reference: { kind, namespace, xr, item: undefined, key: second2 } };
  }
  if (!OBJECT_NAME.test(second2)) return { error: `${show(second2)} is not a ${kind === 'secrets' ? 'secret' : 'config'} name` };
  if (third !== undefined && !DATA_KEY.test(third)) return { error: `${show(third)} is not a key (letters, digits, "-", "_", ".")` };
  return { reference: { kind, namespace, xr, item: second2, key: third } };
}

/** Where a reference's value comes from at run time. */
export type ReferenceTarget =
  /** The producer's `status.outputs.<key>`, inlined as a literal (public). */
  | { inline: { namespace: string; xr: string; key: string } }
  | { secretKeyRef: { name: string; key: string } }
  | { configMapKeyRef: { name: string; key: string } }
  /** A mount of a whole Secret / ConfigMap, or of one key of it. */
  | { secret: { secretName: string; items?: { key: string; path: string }[] } }
  | { configMap: { name: string; items?: { key: string; path: string }[] } };

/** An env entry without a key reads this key of the secret or config (D-HEAD's example). */
export const DEFAULT_ITEM_KEY = 'value';

export type ReferenceContext = 'env' | 'mount';

export interface ResolvedReference {
  /** `Kind/name` of the XR the reference is in. */
  xr: string;
  field: string;
  context: ReferenceContext;
  reference: string;
  resolved: ReferenceTarget;
}

interface FoundReference {
  field: string;
  context: ReferenceContext;
  source: unknown;
}

/**
 * The `source:` of every env entry (map `{NAME: {source}}` or list `[{name, source}]`) and every
 * mount (`mounts: [{mountPath, source}]`), at any depth of the spec (containers, init containers…).
 */
export function findReferenceSources(spec: Spec): { found: FoundReference[]; problems: { field: string; message: string }[] } {
  const found: FoundReference[] = [];
  const problems: { field: string; message: string }[] = [];
  const entry = (value: unknown, path: (string | number)[], context: ReferenceContext) => {
    if (!isMap(value) || !Object.hasOwn(value, 'source')) return;
    if (context === 'env' && Object.hasOwn(value, 'value')) problems.push({ field: fieldPath(path), message: 'has both source and value; keep one' });
    found.push({ field: fieldPath([...path, 'source']), context, source: own(value, 'source') });
  };
  const walk = (value: unknown, path: (string | number)[]) => {
    if (Array.isArray(value)) return value.forEach((item, i) => walk(item, [...path, i]));
    if (!isMap(value)) return undefined;
    for (const [key, item] of Object.entries(value)) {
      const at = [...path, key];
      if (key === 'env' && isMap(item)) for (const [name, env] of Object.entries(item)) entry(env, [...at, name], 'env');
      else if (key === 'env' && Array.isArray(item)) item.forEach((env, i) => entry(env, [...at, i], 'env'));
      else if (key === 'mounts' && Array.isArray(item)) item.forEach((mount, i) => entry(mount, [...at, i], 'mount'));
      else walk(item, at);
    }
    return undefined;
  };
  walk(spec, ['spec']);
  return { found, problems };
}

export interface ReferenceScope {
  /** The project's namespaces (`projectNamespaces`): `ns::` naming one of them is same-namespace. */
  namespaces: readonly string[];
  /** The project's catalog XRs with their merged specs. */
  xrs: readonly { xr: Xr; spec: Spec }[];
  /** Other custom resources of the release (may publish outputs and connection details). */
  composites: readonly ResourceRef[];
  plain: readonly ResourceRef[];
}

function target(reference: Reference, context: ReferenceContext, namespace: string): ReferenceTarget | { error: string } {
  const { kind, xr, item = '', key } = reference;
  const items = key === undefined ? {} : { items: [{ key, path: key }] };
  switch (kind) {
    case 'outputs':
      if (context === 'mount') return { error: 'outputs/ is a literal value and cannot be mounted; use it in env, or mount connections/, secrets/ or configs/' };
      return { inline: { namespace, xr, key: key ?? '' } };
    case 'connections':
      return context === 'env'
        ? { secretKeyRef: { name: `${xr}-conn`, key: key ?? '' } }
        : { secret: { secretName: `${xr}-conn`, ...items } };
    case 'secrets':
      return context === 'env'
        ? { secretKeyRef: { name: `${xr}-${item}`, key: key ?? DEFAULT_ITEM_KEY } }
        : { secret: { secretName: `${xr}-${item}`, ...items } };
    case 'configs':
      return context === 'env'
        ? { configMapKeyRef: { name: `${xr}-${item}`, key: key ?? DEFAULT_ITEM_KEY } }
        : { configMap: { name: `${xr}-${item}`, ...items } };
    default:
      return assertNever(kind, 'reference kind');
  }
}

/** Why a same-namespace reference's target does not fit, or undefined when it does. */
function targetProblem(reference: Reference, scope: ReferenceScope): string | undefined {
  const { kind, xr: name, item } = reference;
  const xr = scope.xrs.find((candidate) => candidate.xr.name === name);
  const known = () => scope.xrs.map((candidate) => candidate.xr.name).join(', ') || '(none)';
  if (kind === 'outputs' || kind === 'connections') {
    if (xr || scope.composites.some((r) => r.name === name)) return undefined;
    const plain = scope.plain.find((r) => r.name === name);
    if (plain) return `${name} is a plain ${plain.apiVersion} ${plain.kind}, which publishes no ${kind}; name an XR`;
    const hint = kind === 'outputs' ? '; for another namespace write <namespace>::outputs/… or platform::outputs/…' : '';
    return `no XR named ${name} in this project (XRs: ${known()})${hint}`;
  }
  const wanted: XrKind = kind === 'secrets' ? 'Secrets' : 'ConfigMaps';
  const ofKind = () => scope.xrs.filter((candidate) => candidate.xr.kind === wanted).map((candidate) => candidate.xr.name).join(', ') || '(none)';
  if (!xr) return `no ${wanted} XR named ${name} in this project (${wanted} XRs: ${ofKind()})`;
  if (xr.xr.kind !== wanted) return `${name} is a ${xr.xr.kind} XR; ${kind}/ needs a ${wanted} XR (${wanted} XRs: ${ofKind()})`;
  const declared = itemNames(xr.spec, kind);
  if (item !== undefined && !declared.includes(item)) {
    return `${wanted} XR ${name} declares no ${kind === 'secrets' ? 'secret' : 'config'} ${item} (it has: ${declared.join(', ') || 'none'})`;
  }
  return undefined;
}

/** Every reference of every XR checked and resolved; problems for the ones that are not valid. */
export function resolveReferences(scope: ReferenceScope): { references: ResolvedReference[]; problems: Problem[] } {
  const references: ResolvedReference[] = [];
  const problems: Problem[] = [];
  const [ownNamespace = ''] = scope.namespaces;
  for (const { xr, spec } of scope.xrs) {
    const label = xrLabel(xr);
    const { found, problems: shapeProblems } = findReferenceSources(spec);
    for (const p of shapeProblems) problems.push({ xr: label, ...p });
    for (const { field, context, source } of found) {
      const fail = (message: string) => problems.push({ xr: label, field, message });
      if (typeof source !== 'string') {
        fail(`source must be a reference string (${REFERENCE_FORMS.join(' | ')}), not ${show(source)}`);
        continue;
      }
      const parsed = parseReference(source);
      if ('error' in parsed) {
        fail(`${show(source)}: ${parsed.error}`);
        continue;
      }
      const { reference } = parsed;
      const sameNamespace = reference.namespace === undefined || scope.namespaces.includes(reference.namespace);
      const why = sameNamespace ? targetProblem(reference, scope) : undefined;
      if (why !== undefined) {
        fail(`${show(source)}: ${why}`);
        continue;
      }
      const resolved = target(reference, context, sameNamespace ? ownNamespace : reference.namespace ?? ownNamespace);
      if ('error' in resolved) fail(`${show(source)}: ${resolved.error}`);
      else references.push({ xr: label, field, context, reference: source, resolved });
    }
  }
  return { references, problems };
}

// ---------------------------------------------------------------------------------------------
// One XR resolved

export interface ResolvedXr {
  apiVersion: string;
  kind: XrKind;
  name: string;
  spec: Spec;
  sources: Record<string, Layer[]>;
}

/** Merges one XR's layers, checks the result and maps its secrets (Secrets XRs). */
export function resolveXr(
  xr: Xr,
  layers: { cluster: Readonly<Spec> | undefined; override: Readonly<Spec> | undefined; environment: string },
): { resolved: ResolvedXr; secrets: SecretMapping[]; problems: { field: string; message: string }[] } {
  const merged = mergeSpec({ composition: COMPOSITION_DEFAULTS[xr.kind], cluster: layers.cluster, spec: xr.spec, override: layers.override });
  const problems = specProblems(xr.kind, merged);
  const mapped = xr.kind === 'Secrets' ? secretMappings(layers.environment, xr, merged.spec) : { secrets: [], problems: [] };
  return {
    resolved: { apiVersion: xr.apiVersion, kind: xr.kind, name: xr.name, spec: merged.spec, sources: merged.sources },
    secrets: mapped.secrets,
    problems: [...problems, ...mapped.problems],
  };
}

// ---------------------------------------------------------------------------------------------
// Network targets

/** The workload a Network XR sends traffic to: `workloadRef: <name>` or `targetRef: {name}`. */
function networkTarget(spec: Spec): { field: string; name: unknown } | undefined {
  if (own(spec, 'workloadRef') !== undefined) return { field: 'spec.workloadRef', name: own(spec, 'workloadRef') };
  const ref = own(spec, 'targetRef');
  if (isMap(ref)) return { field: 'spec.targetRef.name', name: own(ref, 'name') };
  return undefined;
}

/** The container ports a workload XR declares (`ports` beside `image`, or in `containers`). */
function declaredPorts(spec: Spec): number[] {
  const portsOf = (holder: unknown) => {
    const ports = isMap(holder) ? own(holder, 'ports') : undefined;
    return (Array.isArray(ports) ? ports : []).flatMap((port) => (isMap(port) && typeof own(port, 'containerPort') === 'number' ? [own(port, 'containerPort') as number] : []));
  };
  const containers = own(spec, 'containers');
  return [...portsOf(spec), ...(Array.isArray(containers) ? containers.flatMap(portsOf) : [])];
}

/**
 * A Network XR routes to a workload XR of the same project (Deployment, Stateful, Job, CronJob):
 * the name must be one, and when that workload declares its ports, the Network's port is one of
 * them. Names that are not strings are the schema's to report.
 */
export function networkTargetProblems(xrs: readonly { xr: Xr; spec: Spec }[]): Problem[] {
  const problems: Problem[] = [];
  const workloads = xrs.filter((candidate) => WORKLOAD_KINDS.includes(candidate.xr.kind));
  const names = () => workloads.map((w) => w.xr.name).join(', ') || '(none)';
  for (const { xr, spec } of xrs) {
    if (xr.kind !== 'Network') continue;
    const target = networkTarget(spec);
    if (target === undefined || typeof target.name !== 'string') continue;
    const workload = workloads.find((candidate) => candidate.xr.name === target.name);
    const other = xrs.find((candidate) => candidate.xr.name === target.name);
    if (!workload) {
      const why = other ? `${target.name} is a ${other.xr.kind} XR, not a workload` : `no workload XR named ${target.name} in this project`;
      problems.push({ xr: xrLabel(xr), field: target.field, message: `${why} (Deployment, Stateful, Job or CronJob XRs: ${names()})` });
      continue;
    }
    const port = own(spec, 'port');
    const ports = declaredPorts(workload.spec);
    if (typeof port === 'number' && ports.length > 0 && !ports.includes(port)) {
      problems.push({ xr: xrLabel(xr), field: 'spec.port', message: `${port} is not a port ${xrLabel(workload.xr)} declares (${ports.join(', ')})` });
    }
  }
  return problems;
}

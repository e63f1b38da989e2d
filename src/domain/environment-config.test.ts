import { describe, expect, it } from 'vitest';
import {
  checkClusterConfig, checkProjectConfig, environmentConfigDirs, resolveEnvironment, secretMaterialProblems, type ResolveInput,
} from './environment-config.ts';
import { describeProblem } from './xr.ts';

const LAYOUT = 'environments/{environment}/{repository}/{project}/release.yaml';
const CLUSTER_FILE = 'environments/dev/env.yaml';
const PROJECT_FILE = 'environments/dev/acme/shop/web/env.yaml';

const clusterDoc = (spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) => ({
  apiVersion: 'forge.projectcatalyst.io/v1alpha1',
  kind: 'EnvironmentConfig',
  metadata: { name: 'Cluster', labels: { 'forge.projectcatalyst.io/type': 'cluster' }, ...metadata },
  spec: { environment: { name: 'dev', domain: 'dev.example.com', region: 'eu-west-1' }, ...spec },
});

const projectDoc = (overrides: unknown, metadata: Record<string, unknown> = {}) => ({
  apiVersion: 'forge.projectcatalyst.io/v1alpha1',
  kind: 'EnvironmentConfig',
  metadata: { name: 'acme-shop-web', labels: { 'forge.projectcatalyst.io/type': 'project', 'forge.projectcatalyst.io/project': 'web' }, ...metadata },
  spec: { overrides },
});

const xr = (kind: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'forge.projectcatalyst.io/v1alpha1', kind, metadata: { name }, spec });

function resolve(options: { cluster?: unknown; project?: unknown; resources: unknown[] }): ReturnType<typeof resolveEnvironment> {
  const input: ResolveInput = {
    environment: 'dev',
    repository: 'acme/shop',
    project: 'web',
    clusterLocation: CLUSTER_FILE,
    cluster: options.cluster === undefined ? undefined : { file: CLUSTER_FILE, document: options.cluster },
    projectConfig: options.project === undefined ? undefined : { file: PROJECT_FILE, document: options.project },
    resources: { file: 'resources.yaml', documents: options.resources },
  };
  return resolveEnvironment(input);
}

describe('where EnvironmentConfigs live', () => {
  it('cluster: the layout up to {environment}; project: the pointer\'s directory', () => {
    expect(environmentConfigDirs(LAYOUT, 'dev', 'environments/dev/acme/shop/web/release.yaml')).toEqual({ cluster: 'environments/dev', project: 'environments/dev/acme/shop/web' });
    expect(environmentConfigDirs('{environment}/apps/{repository}/{project}/release.yaml', 'prod', 'prod/apps/acme/shop/web/release.yaml'))
      .toEqual({ cluster: 'prod', project: 'prod/apps/acme/shop/web' });
    expect(environmentConfigDirs('gitops/env-{environment}/{repository}/{project}/pointer.yaml', 'qa', 'gitops/env-qa/acme/shop/web/pointer.yaml'))
      .toEqual({ cluster: 'gitops/env-qa', project: 'gitops/env-qa/acme/shop/web' });
  });

  it('refuses layouts that would mix the tiers up', () => {
    expect(() => environmentConfigDirs('{repository}/{project}/{environment}/release.yaml', 'dev', 'acme/shop/web/dev/release.yaml')).toThrow(/must come before \{repository\} and \{project\}/);
    expect(() => environmentConfigDirs('{environment}-{project}/{repository}/release.yaml', 'dev', 'dev-web/acme/shop/release.yaml')).toThrow(/must come before/);
    expect(() => environmentConfigDirs('envs/{environment}/{repository}/{project}.yaml', 'dev', 'envs/dev/acme/shop/web.yaml')).toThrow(/file name must not hold a placeholder/);
  });
});

describe('the cluster config', () => {
  it('reads environment and defaults per kind', () => {
    const checked = checkClusterConfig(CLUSTER_FILE, clusterDoc({ defaults: { Deployment: { replicas: 2 } } }), 'dev');
    expect(checked).toEqual({
      config: { file: CLUSTER_FILE, environment: { name: 'dev', domain: 'dev.example.com', region: 'eu-west-1' }, defaults: { Deployment: { replicas: 2 } } },
      problems: [],
      warnings: [],
    });
  });

  it('accepts v1 and Crossplane\'s group, refuses other shapes naming file and field', () => {
    expect(checkClusterConfig(CLUSTER_FILE, { ...clusterDoc(), apiVersion: 'forge.projectcatalyst.io/v1' }, 'dev').problems).toEqual([]);
    expect(checkClusterConfig(CLUSTER_FILE, { ...clusterDoc(), apiVersion: 'apiextensions.crossplane.io/v1alpha1' }, 'dev').problems).toEqual([]);
    const checked = checkClusterConfig(CLUSTER_FILE, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'dev', labels: { 'forge.projectcatalyst.io/type': 'project' } },
      spec: { environment: { name: 'staging', region: 3 }, defaults: { Deployment: 2, Database: { engine: 'pg' } }, overrides: {} },
    }, 'dev');
    expect(checked.problems.map(describeProblem)).toEqual([
      expect.stringMatching(/^environments\/dev\/env\.yaml: apiVersion: "v1" is not one of forge\.projectcatalyst\.io\/v1alpha1, /),
      'environments/dev/env.yaml: kind: "ConfigMap"; expected EnvironmentConfig',
      'environments/dev/env.yaml: metadata.name: "dev"; expected Cluster',
      'environments/dev/env.yaml: metadata.labels["forge.projectcatalyst.io/type"]: "project"; expected cluster (compositions select the config by this label)',
      'environments/dev/env.yaml: spec.environment.name: "staging" in the config of environment dev',
      'environments/dev/env.yaml: spec.environment.domain: required',
      'environments/dev/env.yaml: spec.environment.region: must be a non-empty string',
      'environments/dev/env.yaml: spec.overrides: overrides belong in a project\'s env.yaml; the cluster config holds spec.defaults per XR kind',
      'environments/dev/env.yaml: spec.defaults.Deployment: must be a map of fields',
    ]);
    expect(checked.warnings.map(describeProblem)).toEqual([
      'environments/dev/env.yaml: spec.defaults.Database: not a kind of the XR catalog (Deployment, Stateful, Job, CronJob, Network, Secrets, ConfigMaps, Storage); ignored',
    ]);
  });

  it('an empty file or one without spec is a problem, not a crash', () => {
    expect(checkClusterConfig(CLUSTER_FILE, null, 'dev').problems).toEqual([{ file: CLUSTER_FILE, field: '', message: 'an EnvironmentConfig must be a map, not empty' }]);
    const { spec: _spec, ...noSpec } = clusterDoc();
    expect(checkClusterConfig(CLUSTER_FILE, noSpec, 'dev').problems).toEqual([{ file: CLUSTER_FILE, field: 'spec', message: 'missing' }]);
  });
});

describe('the project config', () => {
  const target = { repository: 'acme/shop', project: 'web' };

  it('reads overrides per XR name; <name>-<project> is accepted as its name too', () => {
    expect(checkProjectConfig(PROJECT_FILE, projectDoc({ web: { replicas: 3 } }), target)).toEqual({ config: { file: PROJECT_FILE, overrides: { web: { replicas: 3 } } }, problems: [], warnings: [] });
    expect(checkProjectConfig(PROJECT_FILE, projectDoc({}, { name: 'shop-web' }), target).warnings).toEqual([]);
  });

  it('another name only warns; wrong labels are problems, because compositions select by them', () => {
    const checked = checkProjectConfig(PROJECT_FILE, projectDoc({}, { name: 'other', labels: { 'forge.projectcatalyst.io/type': 'project', 'forge.projectcatalyst.io/project': 'api' } }), target);
    expect(checked.warnings.map(describeProblem)).toEqual([`${PROJECT_FILE}: metadata.name: "other"; expected acme-shop-web or shop-web`]);
    expect(checked.problems.map(describeProblem)).toEqual([
      `${PROJECT_FILE}: metadata.labels["forge.projectcatalyst.io/project"]: "api"; expected web (compositions select the config by this label)`,
    ]);
  });

  it('overrides change XR inputs only', () => {
    const checked = checkProjectConfig(PROJECT_FILE, projectDoc({ web: { spec: { replicas: 2 }, metadata: { labels: {} } }, api: 3, db: { size: '1Gi' } }), target);
    expect(checked.problems.map((p) => p.field)).toEqual(['spec.overrides.web.spec', 'spec.overrides.web.metadata', 'spec.overrides.api']);
    expect(checked.config?.overrides).toEqual({ db: { size: '1Gi' } });
  });
});

describe('EnvironmentConfigs hold no secrets', () => {
  it.each([
    ['password', { db: { password: 'hunter2' } }],
    ['DB_PASSWORD as an env entry\'s literal value', { web: { env: { DB_PASSWORD: { value: 's3cret' } } } }],
    ['a list-form env entry', { web: { env: [{ name: 'API_TOKEN', value: 'abc' }] } }],
    ['clientSecret', { web: { oidc: { clientSecret: 'xyz' } } }],
    ['apiKey', { web: { apiKey: 'k-123' } }],
    ['a numeric PIN-like token', { web: { token: 123456 } }],
    ['a PEM private key anywhere', { web: { tls: { cert: '-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----' } } }],
  ])('refuses %s', (_, overrides) => {
    expect(secretMaterialProblems(PROJECT_FILE, { overrides })).toHaveLength(1);
  });

  it.each([
    ['names of secrets', { web: { tlsSecretName: 'web-tls', secretRef: 'x' } }],
    ['references', { web: { env: { DB_PASSWORD: { source: 'secrets/app/db/password' }, TOKEN: { value: 'connections/api/token' } } } }],
    ['switches and empty values', { web: { tokenAuth: true, password: '' } }],
    ['a Secrets XR\'s entries', { 'app-secrets': { secrets: [{ name: 'database', path: 'shop/db' }] } }],
  ])('accepts %s', (_, overrides) => {
    expect(secretMaterialProblems(PROJECT_FILE, { overrides })).toEqual([]);
  });

  it('names file and field', () => {
    expect(checkProjectConfig(PROJECT_FILE, projectDoc({ db: { password: 'hunter2' } }), { repository: 'acme/shop', project: 'web' }).problems).toEqual([{
      file: PROJECT_FILE,
      field: 'spec.overrides.db.password',
      message: expect.stringMatching(/^password looks like a secret with a literal value; EnvironmentConfigs are readable cluster-wide/),
    }]);
  });
});

describe('resolving a release against the environment', () => {
  const resources = [
    xr('Deployment', 'web', { image: 'web:1', resources: { limits: { cpu: '1' } }, args: ['--a'] }),
    xr('Network', 'web-net', { workloadRef: 'web' }),
    xr('Secrets', 'app', { secrets: [{ name: 'db', path: 'shop/db' }, { name: 'ca', path: 'ca', global: true }] }),
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'legacy' }, spec: { replicas: 7 } },
  ];
  const cluster = clusterDoc({ defaults: { Deployment: { replicas: 2, resources: { requests: { cpu: '100m' } } }, Network: { port: 8080 } } });

  it('resolves every XR with the layer of each field, maps secrets and passes plain objects through', () => {
    const result = resolve({ cluster, project: projectDoc({ web: { replicas: 4, args: ['--b', '--c'] } }), resources });
    expect(result.problems).toEqual([]);
    expect(result.cluster).toEqual({ file: CLUSTER_FILE, name: 'dev', domain: 'dev.example.com', region: 'eu-west-1' });
    expect(result.projectConfig).toEqual({ file: PROJECT_FILE, overrides: ['web'] });
    expect(result.namespace).toBe('acme-shop-web');
    const web = result.xrs.find((x) => x.name === 'web');
    expect(web?.spec).toEqual({ replicas: 4, image: 'web:1', args: ['--b', '--c'], resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1' } } });
    expect(web?.sources).toEqual({ replicas: ['override'], image: ['spec'], args: ['override'], resources: ['spec', 'cluster', 'composition'] });
    expect(result.xrs.find((x) => x.name === 'web-net')?.sources).toEqual({ tlsEnabled: ['composition'], port: ['cluster'], workloadRef: ['spec'] });
    expect(result.secrets).toEqual([{ xr: 'app', name: 'db', path: 'dev/shop/db' }, { xr: 'app', name: 'ca', path: 'global/ca' }]);
    // The plain apps/v1 Deployment is neither merged with Deployment defaults nor listed as an XR.
    expect(result.passthrough).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'legacy' }]);
    expect(result.xrs.map((x) => x.name)).toEqual(['web', 'web-net', 'app']);
  });

  it('a missing cluster config is a problem, and the rest is still checked', () => {
    const result = resolve({ resources });
    expect(result.cluster).toBeNull();
    expect(result.problems.map(describeProblem)).toEqual([
      `${CLUSTER_FILE}: no cluster EnvironmentConfig for environment dev (env.yaml or env.yml); it is required`,
      'resources.yaml: Network/web-net: spec.port: required; set it in the XR spec, a cluster default for Network or a per-project override',
    ]);
  });

  it('a cluster config that could not be read is reported as read, not as missing', () => {
    const result = resolveEnvironment({
      environment: 'dev', repository: 'acme/shop', project: 'web', clusterLocation: CLUSTER_FILE,
      cluster: { file: CLUSTER_FILE, problems: [{ file: CLUSTER_FILE, field: 'line 3, column 1', message: 'not valid YAML: x' }] },
      projectConfig: undefined,
      resources: { file: 'r.yaml', documents: [], problems: [{ file: 'r.yaml', field: 'document 2', message: 'not valid YAML: y' }] },
    });
    expect(result.problems.map(describeProblem)).toEqual([`${CLUSTER_FILE}: line 3, column 1: not valid YAML: x`, 'r.yaml: document 2: not valid YAML: y']);
  });

  it('an override for an XR the release does not have is a problem listing the XRs', () => {
    const result = resolve({ cluster, project: projectDoc({ wbe: { replicas: 2 }, legacy: { replicas: 1 } }), resources });
    expect(result.problems.map(describeProblem)).toEqual([
      `${PROJECT_FILE}: spec.overrides.wbe: no XR named wbe in the release (XRs: web, web-net, app)`,
      `${PROJECT_FILE}: spec.overrides.legacy: legacy is a apps/v1 Deployment, not an XR of the catalog; overrides apply to XRs only (XRs: web, web-net, app)`,
    ]);
    // The plain Deployment is untouched by the override aimed at it.
    expect(result.passthrough).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'legacy' }]);
  });

  it('references are checked against the merged specs: an override can add or break one', () => {
    const result = resolve({
      cluster,
      project: projectDoc({ web: { env: { DB: { source: 'secrets/app/db/password' }, CA: { source: 'secrets/app/nope' } } } }),
      resources,
    });
    expect(result.references).toEqual([{
      xr: 'Deployment/web', field: 'spec.env.DB.source', context: 'env', reference: 'secrets/app/db/password', resolved: { secretKeyRef: { name: 'app-db', key: 'password' } },
    }]);
    expect(result.problems.map(describeProblem)).toEqual([
      'resources.yaml: Deployment/web: spec.env.CA.source: "secrets/app/nope": Secrets XR app declares no secret nope (it has: db, ca)',
    ]);
  });

  it('collects problems from every source in one pass', () => {
    const result = resolve({
      cluster: clusterDoc({ defaults: { Storage: { class: 'gold' }, Network: { port: 80 } } }, { name: 'dev' }),
      project: projectDoc({ ghost: {}, web: { token: 'abc' } }),
      resources: [...resources, xr('Storage', 'data', { size: '1Gi' }), xr('Widget', 'w', {})],
    });
    expect(result.problems.map((p) => [p.file, p.xr, p.field])).toEqual([
      [CLUSTER_FILE, undefined, 'metadata.name'],
      [PROJECT_FILE, undefined, 'spec.overrides.web.token'],
      ['resources.yaml', 'Widget/w', 'document 6'],
      [PROJECT_FILE, undefined, 'spec.overrides.ghost'],
      ['resources.yaml', 'Storage/data', 'spec.class'],
    ]);
  });
});

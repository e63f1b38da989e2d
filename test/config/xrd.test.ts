/**
 * The platform XRDs (deploy/crossplane) and the check of a release's XRs against them
 * (src/config/xrd.ts): the files are well-formed Crossplane XRDs with structural schemas, they
 * agree with the catalog rules of src/domain/xr.ts, and a project's deploy.resources with an
 * unknown field, a missing required field, a wrong type or a bad reference is refused with the
 * field and the reason, every problem at once.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { discover } from '../../src/config/discovery.ts';
import { resolveEnvironment } from '../../src/domain/environment-config.ts';
import {
  checkRepositoryResources, checkResources, loadXrds, resolutionProblems, schemaProblems, toJsonSchema, xrdCatalog, xrdProblems, XRD_DIR, type Xrd,
} from '../../src/config/xrd.ts';
import { COMPOSITION_DEFAULTS, describeProblem, REQUIRED_FIELDS, STORAGE_CLASSES, XR_KINDS, type Spec, type XrKind } from '../../src/domain/xr.ts';

const FIXTURE = resolve('test/fixtures/xr-repo');
const xrds = loadXrds();
const byKind = (kind: XrKind) => xrds.find((xrd) => xrd.kind === kind)!;
const specSchema = (xrd: Xrd) => (xrd.schema.properties as Spec).spec as Spec;
const xr = (kind: string, name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ({ apiVersion: 'forge.projectcatalyst.io/v1alpha1', kind, metadata: { name }, spec, ...extra });
const check = (documents: unknown[]) => checkResources(documents, { file: 'p.cue' }).map(describeProblem);

describe('deploy/crossplane: the XRD files', () => {
  const files = readdirSync(XRD_DIR).filter((file) => file.endsWith('.yaml')).sort();

  it('holds one Crossplane v1 XRD per catalog kind, each a claim of forge.projectcatalyst.io/v1alpha1', () => {
    expect(files).toHaveLength(XR_KINDS.length);
    expect(xrds.map((xrd) => xrd.kind).sort()).toEqual([...XR_KINDS].sort());
    for (const file of files) {
      const document = parse(readFileSync(join(XRD_DIR, file), 'utf8')) as Spec;
      expect(xrdProblems(document), file).toEqual([]);
      const spec = document.spec as { names: { kind: string }; claimNames: { kind: string; plural: string }; versions: { name: string }[] };
      expect(document).toMatchObject({ apiVersion: 'apiextensions.crossplane.io/v1', kind: 'CompositeResourceDefinition', metadata: { name: `x${spec.claimNames.plural}.forge.projectcatalyst.io` } });
      expect(spec.names.kind).toBe(`X${spec.claimNames.kind}`);
      expect(spec.versions.map((v) => v.name)).toEqual(['v1alpha1']);
    }
  });

  it('the README lists every file with its kind', () => {
    const readme = readFileSync(join(XRD_DIR, 'README.md'), 'utf8');
    for (const xrd of xrds) expect(readme).toMatch(new RegExp(`\\| ${xrd.file} \\| ${xrd.kind} \\| X${xrd.kind} \\|`));
    expect(readme).toContain('kubectl apply -f deploy/crossplane/');
  });

  it('the structural check refuses what Kubernetes refuses (and what the compiler does not know)', () => {
    expect(schemaProblems({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false }, 's')).toEqual([
      's: additionalProperties cannot be false (Kubernetes prunes unknown fields instead)',
      's: properties and additionalProperties are mutually exclusive',
    ]);
    expect(schemaProblems({ type: 'object', properties: { a: { description: 'no type' } } }, 's')).toEqual(['s.properties.a: type must be one of object, array, string, integer, number, boolean']);
    expect(schemaProblems({ type: 'object' }, 's')).toEqual(['s: an object needs properties, additionalProperties or x-kubernetes-preserve-unknown-fields']);
    expect(schemaProblems({ type: 'array' }, 's')).toEqual(['s: an array needs items']);
    expect(schemaProblems({ type: 'object', properties: { a: { type: 'string' } }, required: ['b'] }, 's')).toEqual(['s: required b is not a property']);
    expect(schemaProblems({ type: 'string', format: 'date' }, 's')).toEqual(['s: keyword format is not supported']);
    expect(schemaProblems({ type: 'object', properties: { a: { type: 'string' } }, anyOf: [{ required: ['a'] }, { required: ['a'], type: 'object' }] }, 's'))
      .toEqual(['s.anyOf[1]: a branch may only list required fields']);
    expect(schemaProblems({ 'x-kubernetes-int-or-string': true, type: 'string' }, 's')).toEqual(['s: an x-kubernetes-int-or-string node has no type']);
    // And a whole XRD: the group, the names, the claim fields Crossplane owns.
    const document = parse(readFileSync(join(XRD_DIR, 'storage.yaml'), 'utf8')) as { spec: { group: string; versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Spec } } } } }[] } };
    document.spec.group = 'forge.io';
    document.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties.writeConnectionSecretToRef = { type: 'object', properties: { name: { type: 'string' } } };
    document.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties.compositionRef = { type: 'object', properties: { name: { type: 'string' } } };
    expect(xrdProblems(document)).toEqual(['spec.group must be forge.projectcatalyst.io', 'spec.compositionRef is Crossplane\'s; do not define it']);
  });

  it('a broken XRD directory is refused when loaded, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'forge-xrds-'));
    for (const xrd of xrds) writeFileSync(join(dir, xrd.file), readFileSync(join(XRD_DIR, xrd.file), 'utf8'));
    expect(loadXrds(dir)).toHaveLength(8);
    writeFileSync(join(dir, 'job.yaml'), readFileSync(join(XRD_DIR, 'job.yaml'), 'utf8').replace('minimum: 0', 'minimum: 0\n                  format: int32'));
    expect(() => loadXrds(dir)).toThrow(/job\.yaml is not a valid Forge XRD:\n.*keyword format is not supported/);
    writeFileSync(join(dir, 'job.yaml'), readFileSync(join(XRD_DIR, 'cronjob.yaml'), 'utf8'));
    expect(() => loadXrds(dir)).toThrow('must hold one XRD per catalog kind; missing: Job; more than one: CronJob');
  });

  it('the four workload XRDs describe a container the same way', () => {
    const workloads = (['Deployment', 'Stateful', 'Job', 'CronJob'] as const).map((kind) => specSchema(byKind(kind)).properties as Spec);
    const shared = ['image', 'command', 'args', 'env', 'mounts', 'ports', 'resources', 'readinessProbe', 'livenessProbe', 'startupProbe', 'containers', 'serviceAccountName'];
    for (const properties of workloads.slice(1)) for (const field of shared) expect(properties[field], field).toEqual(workloads[0]![field]);
    for (const kind of ['Deployment', 'Stateful', 'Job', 'CronJob'] as const) expect(specSchema(byKind(kind)).anyOf).toEqual([{ required: ['image'] }, { required: ['containers'] }]);
  });

  it('agrees with the catalog rules: required fields, storage classes, and the composition defaults are valid values', () => {
    for (const kind of XR_KINDS) {
      const schema = specSchema(byKind(kind));
      const required = [...((schema.required as string[] | undefined) ?? []), ...((schema.anyOf as { required: string[] }[] | undefined) ?? []).flatMap((b) => b.required)];
      for (const field of REQUIRED_FIELDS[kind]) expect(required, `${kind}.${field}`).toContain(field);
      // A composition default never sets what the XRD does not have.
      const validate = new Ajv({ strict: true, strictRequired: false, allowUnionTypes: true }).compile({ ...toJsonSchema(schema), required: [], anyOf: undefined });
      expect(validate(COMPOSITION_DEFAULTS[kind]), `${kind}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect((specSchema(byKind('Storage')).properties as Spec).class).toMatchObject({ enum: [...STORAGE_CLASSES] });
  });
});

describe('a release\'s XRs against the XRDs', () => {
  it('the fixture repository (every kind, every reference form) is clean, and so is the example monorepo (plain Kubernetes objects)', async () => {
    for (const root of [FIXTURE, resolve('examples/monorepo')]) {
      const discovery = await discover(root);
      expect(await checkRepositoryResources(root, discovery)).toEqual([]);
    }
    const discovery = await discover(FIXTURE);
    expect(discovery.projects.map((p) => p.name).sort()).toEqual(['reports', 'shop']);
  });

  it('an unknown field names the field, a near miss and the fields there are', () => {
    expect(check([xr('Storage', 'data', { size: '1Gi', sise: '2Gi' })])).toEqual([
      'p.cue: Storage/data: spec.sise: unknown field (did you mean size?); spec has size, class, accessMode, backup',
    ]);
    expect(check([xr('Deployment', 'web', { containers: [{ name: 'web', image: 'w:1', envs: {} }] })])).toEqual([
      expect.stringMatching(/^p\.cue: Deployment\/web: spec\.containers\[0\]\.envs: unknown field \(did you mean env\?\); spec\.containers\[0\] has name, image, command, args, env, /),
    ]);
    expect(check([xr('Secrets', 's', { secrets: [{ name: 'a', path: 'a' }] }, { status: { outputs: {} } })])).toEqual([
      'p.cue: Secrets/s: status: unknown field; (document) has apiVersion, kind, metadata, spec',
    ]);
    // Crossplane's claim fields are allowed.
    expect(check([xr('Storage', 'data', { size: '1Gi', compositionSelector: { matchLabels: { provider: 'aws' } } })])).toEqual([]);
  });

  it('a missing required field, and "one of" requirements', () => {
    expect(check([xr('Network', 'net', { subdomain: 'shop' })])).toEqual([
      'p.cue: Network/net: spec.workloadRef: required (or spec.targetRef)',
      'p.cue: Network/net: spec.port: required',
    ]);
    expect(check([xr('CronJob', 'nightly', { command: ['x'] })])).toEqual([
      'p.cue: CronJob/nightly: spec.image: required (or spec.containers)',
      'p.cue: CronJob/nightly: spec.schedule: required',
    ]);
    expect(check([xr('Secrets', 'sec', { secrets: [{ name: 'db' }] })])).toEqual(['p.cue: Secrets/sec: spec.secrets[0].path: required']);
  });

  it('wrong types and values, each once (the catalog rules do not repeat the schema)', () => {
    expect(check([xr('Deployment', 'web', { image: 'w:1', replicas: -1, env: { A: { source: 3 } }, resources: { requests: { cpu: 'lots' } } })])).toEqual([
      'p.cue: Deployment/web: spec.env.A.source: must be a string, not number 3',
      'p.cue: Deployment/web: spec.resources.requests.cpu: "lots" does not match ^[0-9]+(\\.[0-9]+)?m?$',
      'p.cue: Deployment/web: spec.replicas: -1 is below the minimum, 0',
    ]);
    expect(check([xr('Storage', 'vol', { size: 10, class: 'gold' })])).toEqual([
      'p.cue: Storage/vol: spec.size: must be a string, not number 10',
      'p.cue: Storage/vol: spec.class: "gold" is not one of fast, standard, bulk',
    ]);
    expect(check([xr('ConfigMaps', 'c', { configs: [] })])).toEqual(['p.cue: ConfigMaps/c: spec.configs: must have at least 1 entry']);
  });

  it('the reference rules of §5.2 and Network targets', () => {
    const secrets = xr('Secrets', 'app-secrets', { secrets: [{ name: 'database', path: 'shop/db' }] });
    const web = (env: Record<string, unknown>) => xr('Deployment', 'web', { image: 'w:1', ports: [{ containerPort: 8080 }], env });
    expect(check([secrets, web({ A: { source: 'secrets/app-secrets/database/password' }, B: { source: 'platform::outputs/x/url' } })])).toEqual([]);
    expect(check([secrets, web({
      A: { source: 'secrets/app-secrets/cache' },
      B: { source: 'other-ns::secrets/app-secrets/database' },
      C: { source: 'outputs/nothing/url' },
      D: { source: 'files/x/y' },
    })])).toEqual([
      'p.cue: Deployment/web: spec.env.A.source: "secrets/app-secrets/cache": Secrets XR app-secrets declares no secret cache (it has: database)',
      'p.cue: Deployment/web: spec.env.B.source: "other-ns::secrets/app-secrets/database": secrets/ references are same-namespace only; only outputs/ may name another namespace (drop "other-ns::")',
      'p.cue: Deployment/web: spec.env.C.source: "outputs/nothing/url": no XR named nothing in this project (XRs: app-secrets, web); for another namespace write <namespace>::outputs/… or platform::outputs/…',
      'p.cue: Deployment/web: spec.env.D.source: "files/x/y": unknown reference type "files/"; expected outputs/, connections/, secrets/ or configs/',
    ]);
    expect(check([web({}), xr('Network', 'n1', { workloadRef: 'api', port: 8080 }), xr('Network', 'n2', { targetRef: { name: 'web' }, port: 9090 }), xr('Network', 'n3', { workloadRef: 'app-secrets', port: 1 }), secrets])).toEqual([
      'p.cue: Network/n1: spec.workloadRef: no workload XR named api in this project (Deployment, Stateful, Job or CronJob XRs: web)',
      'p.cue: Network/n2: spec.port: 9090 is not a port Deployment/web declares (8080)',
      'p.cue: Network/n3: spec.workloadRef: app-secrets is a Secrets XR, not a workload (Deployment, Stateful, Job or CronJob XRs: web)',
    ]);
  });

  it('the catalog\'s own rules: served apiVersion, namespace, unknown kinds, duplicate names; plain objects pass untouched', () => {
    expect(check([
      { apiVersion: 'forge.io/v1', kind: 'Storage', metadata: { name: 'a' }, spec: { size: '1Gi' } },
      xr('Storage', 'b', { size: '1Gi' }, { metadata: { name: 'b', namespace: 'elsewhere' } }),
      xr('Database', 'c', {}),
      xr('Storage', 'b', { size: '2Gi' }),
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'legacy' }, spec: { anything: true } },
    ])).toEqual([
      'p.cue: Database/c: document 3: forge.projectcatalyst.io has no kind Database; the catalog has Deployment, Stateful, Job, CronJob, Network, Secrets, ConfigMaps, Storage',
      'p.cue: Storage/a: apiVersion: forge.io/v1 is the older docs\' name; the platform XRDs (deploy/crossplane) serve forge.projectcatalyst.io/v1alpha1',
      'p.cue: Storage/b: XR name b is also used by Storage/b (document 2); overrides and references need unique names',
      'p.cue: Storage/b: metadata.namespace: an XR lives in its project\'s namespace (<repository>-<project>), which the deployment sets; remove it',
    ]);
  });

  it('the env-resolve fixture release differs from the XRDs only in its older-docs apiVersion', () => {
    const documents = parseAllDocuments(readFileSync('test/fixtures/env-config/resources.yaml', 'utf8')).map((doc) => doc.toJS() as unknown);
    expect(check(documents)).toEqual(['p.cue: Storage/uploads: apiVersion: forge.io/v1 is the older docs\' name; the platform XRDs (deploy/crossplane) serve forge.projectcatalyst.io/v1alpha1']);
  });

  it('compiles each XRD once per process', () => {
    expect(xrdCatalog()).toBe(xrdCatalog());
    expect([...xrdCatalog().validators.keys()].sort()).toEqual([...XR_KINDS].sort());
  });
});

describe('an environment\'s resolution against the XRDs (forge env resolve)', () => {
  const label = { 'forge.projectcatalyst.io/type': 'cluster' };
  const resolve = (defaults: Record<string, unknown>, overrides: Record<string, unknown>, documents: unknown[]) => {
    const result = resolveEnvironment({
      environment: 'dev', repository: 'acme/shop', project: 'web', clusterLocation: 'dev/env.yaml',
      cluster: { file: 'dev/env.yaml', document: { apiVersion: 'forge.projectcatalyst.io/v1alpha1', kind: 'EnvironmentConfig', metadata: { name: 'Cluster', labels: label }, spec: { environment: { name: 'dev', domain: 'dev.example.com' }, defaults } } },
      projectConfig: { file: 'dev/acme-shop-web/env.yaml', document: { apiVersion: 'forge.projectcatalyst.io/v1alpha1', kind: 'EnvironmentConfig', metadata: { name: 'acme-shop-web', labels: { 'forge.projectcatalyst.io/type': 'project', 'forge.projectcatalyst.io/project': 'web' } }, spec: { overrides } } },
      resources: { file: 'release', documents },
    });
    return [...result.problems, ...resolutionProblems(result.xrs, 'release', result.problems)].map(describeProblem);
  };

  it('an override or a cluster default that sets an unknown field or a wrong value is named with its layer; the domain\'s own messages are not repeated', () => {
    const documents = [xr('Deployment', 'web', { image: 'w:1', resources: { requests: { cpu: '1' } } }), xr('Network', 'net', { workloadRef: 'web', port: 80 })];
    expect(resolve({}, {}, documents)).toEqual([]);
    expect(resolve(
      { Network: { tls: true }, Deployment: { resources: { requests: { gpu: 1 } } } },
      { web: { replica: 3, replicas: -2 } },
      documents,
    )).toEqual([
      'release: Deployment/web: spec.replicas: -2 is not a whole number ≥ 0 (set by the per-project override)',
      'release: Deployment/web: spec.replica: unknown field (did you mean replicas?); spec has image, command, args, env, mounts, ports, resources, readinessProbe, livenessProbe, startupProbe, containers, serviceAccountName, replicas, autoscaling, rollingUpdate (set by the per-project override)',
      'release: Deployment/web: spec.resources.requests.gpu: unknown field (did you mean cpu?); spec.resources.requests has cpu, memory (merged from the XR spec, the cluster default and the composition default)',
      'release: Network/net: spec.tls: unknown field; spec has workloadRef, targetRef, port, subdomain, hostname, paths, tlsEnabled, rateLimit (set by the cluster default)',
    ]);
  });
});

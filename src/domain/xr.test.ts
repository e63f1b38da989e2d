import { describe, expect, it } from 'vitest';
import {
  classifyResources, COMPOSITION_DEFAULTS, deepMerge, describeProblem, MAX_XRS_PER_PROJECT, mergeSpec, networkTargetProblems, parseReference, projectNamespaces,
  resolveReferences, resolveXr, secretStorePath, specProblems, type Xr,
} from './xr.ts';

const xrDoc = (kind: string, name: string, spec: Record<string, unknown> = {}, apiVersion = 'forge.projectcatalyst.io/v1alpha1') =>
  ({ apiVersion, kind, metadata: { name }, spec });

describe('merge: override > spec > cluster > composition (behaviour 51)', () => {
  it('follows the design doc\'s deep path example layer by layer', () => {
    const merged = mergeSpec({
      composition: { resources: { requests: { cpu: '50m', memory: '64Mi' } } },
      cluster: { resources: { requests: { cpu: '100m' } } },
      spec: { resources: { limits: { cpu: '500m' } } },
      override: { resources: { requests: { memory: '256Mi' } } },
    });
    expect(merged.spec).toEqual({ resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '500m' } } });
    expect(merged.sources).toEqual({ resources: ['override', 'spec', 'cluster', 'composition'] });
  });

  it('scalars: the highest layer that sets a value wins, and only it is named', () => {
    const layers = { composition: { replicas: 1 }, cluster: { replicas: 3 } };
    expect(mergeSpec({ ...layers, spec: { replicas: 5 } })).toEqual({ spec: { replicas: 5 }, sources: { replicas: ['spec'] } });
    expect(mergeSpec({ ...layers, spec: { replicas: 5 }, override: { replicas: 10 } }).spec.replicas).toBe(10);
    expect(mergeSpec({ ...layers, spec: {} })).toEqual({ spec: { replicas: 3 }, sources: { replicas: ['cluster'] } });
    expect(mergeSpec({ composition: { replicas: 1 }, spec: {} })).toEqual({ spec: { replicas: 1 }, sources: { replicas: ['composition'] } });
  });

  it('a cluster default never overrides what the XR spec says, scalar or nested', () => {
    const merged = mergeSpec({
      composition: {},
      cluster: { tlsEnabled: false, resources: { requests: { cpu: '1' } } },
      spec: { tlsEnabled: true, resources: { requests: { cpu: '250m' } } },
    });
    expect(merged.spec).toEqual({ tlsEnabled: true, resources: { requests: { cpu: '250m' } } });
    expect(merged.sources.tlsEnabled).toEqual(['spec']);
  });

  it('an override may set a key the spec does not have, at the top or nested', () => {
    const merged = mergeSpec({
      composition: { replicas: 1 },
      spec: { image: 'web:1', resources: { requests: { cpu: '100m' } } },
      override: { replicas: 4, resources: { limits: { memory: '1Gi' } }, paused: false },
    });
    expect(merged.spec).toEqual({ replicas: 4, image: 'web:1', resources: { requests: { cpu: '100m' }, limits: { memory: '1Gi' } }, paused: false });
    expect(merged.sources).toEqual({ replicas: ['override'], image: ['spec'], resources: ['override', 'spec'], paused: ['override'] });
  });

  it('arrays replace wholesale (never merged by position), at any depth', () => {
    const merged = mergeSpec({
      composition: {},
      cluster: { args: ['--a', '--b', '--c'] },
      spec: { args: ['--x'], probe: { exec: ['cat', '/ready'], period: 5 } },
      override: { probe: { exec: ['true'] } },
    });
    expect(merged.spec).toEqual({ args: ['--x'], probe: { exec: ['true'], period: 5 } });
    expect(merged.sources.args).toEqual(['spec']);
  });

  it('a map replaces a scalar and a scalar replaces a map; an empty map changes nothing', () => {
    expect(mergeSpec({ composition: { tls: true }, spec: { tls: { issuer: 'le' } } }).spec).toEqual({ tls: { issuer: 'le' } });
    expect(mergeSpec({ composition: { tls: { issuer: 'le' } }, spec: { tls: false } }).spec).toEqual({ tls: false });
    const merged = mergeSpec({ composition: { resources: { requests: { cpu: '50m' } } }, spec: { resources: {} } });
    expect(merged).toEqual({ spec: { resources: { requests: { cpu: '50m' } } }, sources: { resources: ['composition'] } });
  });

  it('null is "not set" in spec and cluster layers, and removes the key in an override', () => {
    expect(mergeSpec({ composition: { replicas: 1 }, cluster: { replicas: null }, spec: { replicas: null } }).spec).toEqual({ replicas: 1 });
    const removed = mergeSpec({ composition: { replicas: 1, resources: { requests: { cpu: '1', memory: '1Gi' } } }, spec: {}, override: { replicas: null, resources: { requests: { memory: null } } } });
    expect(removed.spec).toEqual({ resources: { requests: { cpu: '1' } } });
    expect(removed.sources).toEqual({ resources: ['override', 'composition'] });
  });

  it('never changes its inputs (the composition defaults are shared)', () => {
    const before = structuredClone(COMPOSITION_DEFAULTS.Deployment);
    const spec = { resources: { requests: { cpu: '2' } } };
    const merged = mergeSpec({ composition: COMPOSITION_DEFAULTS.Deployment, spec, override: { resources: { requests: { memory: '1Gi' } } } });
    (merged.spec.resources as { requests: Record<string, string> }).requests.cpu = 'changed';
    expect(COMPOSITION_DEFAULTS.Deployment).toEqual(before);
    expect(spec).toEqual({ resources: { requests: { cpu: '2' } } });
  });

  it('keeps a "__proto__" key a plain key', () => {
    const top = JSON.parse('{"__proto__": {"polluted": true}, "a": {"__proto__": {"x": 1}}}') as Record<string, unknown>;
    const merged = deepMerge({ a: { b: 1 } }, top);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(merged)).toEqual(['a', '__proto__']);
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
  });
});

describe('required and typed fields of each kind', () => {
  const xr = (kind: Xr['kind'], spec: Record<string, unknown>): Xr => ({ document: 1, apiVersion: 'forge.projectcatalyst.io/v1alpha1', kind, name: 'x', spec });
  const problemsOf = (kind: Xr['kind'], spec: Record<string, unknown>, cluster?: Record<string, unknown>, override?: Record<string, unknown>) =>
    resolveXr(xr(kind, spec), { cluster, override, environment: 'dev' }).problems;

  it('a required field missing from every layer is a problem naming the field', () => {
    expect(problemsOf('Network', { subdomain: 'shop' })).toEqual([{ field: 'spec.port', message: expect.stringMatching(/^required; set it in the XR spec, a cluster default for Network/) }]);
    expect(problemsOf('Deployment', {}).map((p) => p.field)).toEqual(['spec.image']);
    expect(problemsOf('CronJob', { image: 'x:1' }).map((p) => p.field)).toEqual(['spec.schedule']);
    expect(problemsOf('Secrets', { secrets: [] }).map((p) => p.field)).toEqual(['spec.secrets']);
  });

  it('any layer may supply a required field', () => {
    expect(problemsOf('Network', {}, { port: 8080 })).toEqual([]);
    expect(problemsOf('Network', {}, undefined, { port: 8443 })).toEqual([]);
  });

  it('an override that removes a required field is caught', () => {
    expect(problemsOf('Network', { port: 80 }, undefined, { port: null }).map((p) => p.field)).toEqual(['spec.port']);
  });

  it('workloads take image, or containers that each name an image', () => {
    expect(problemsOf('Deployment', { image: 'web:1' })).toEqual([]);
    expect(problemsOf('Deployment', { containers: [{ name: 'a', image: 'a:1' }] })).toEqual([]);
    expect(problemsOf('Job', { containers: [{ name: 'a', image: 'a:1' }, { name: 'b' }] }).map((p) => p.field)).toEqual(['spec.containers[1].image']);
    expect(problemsOf('Deployment', { containers: [] }).map((p) => p.field)).toEqual(['spec.containers']);
  });

  it('Storage classes are fast, standard or bulk, whichever layer sets them; the composition default is standard', () => {
    expect(resolveXr(xr('Storage', { size: '10Gi' }), { cluster: undefined, override: undefined, environment: 'dev' }).resolved.spec.class).toBe('standard');
    expect(problemsOf('Storage', { size: '10Gi', class: 'bulk' })).toEqual([]);
    expect(problemsOf('Storage', { size: '10Gi' }, { class: 'gold' })).toEqual([
      { field: 'spec.class', message: '"gold" is not a storage class (fast, standard, bulk) (set by the cluster default)' },
    ]);
    expect(problemsOf('Storage', { size: 'ten' }).map((p) => p.field)).toEqual(['spec.size']);
  });

  it('replicas and ports are checked after the merge, naming the layer that set them', () => {
    expect(problemsOf('Deployment', { image: 'a:1' }, undefined, { replicas: -1 })).toEqual([
      { field: 'spec.replicas', message: '-1 is not a whole number ≥ 0 (set by the per-project override)' },
    ]);
    expect(problemsOf('Network', { port: 70000 }).map((p) => p.field)).toEqual(['spec.port']);
  });

  it('secret and config names are names, listed once', () => {
    expect(specProblems('ConfigMaps', mergeSpec({ composition: {}, spec: { configs: [{ name: 'main' }, { name: 'main' }, { data: {} }] } }))).toEqual([
      { field: 'spec.configs[1].name', message: 'main is listed twice' },
      { field: 'spec.configs[2].name', message: 'undefined is not a name (lowercase letters, digits, "-", ".")' },
    ]);
  });
});

describe('secret store paths (behaviour 53)', () => {
  it('maps to <env>/<path>, or global/<path> with global: true', () => {
    expect(secretStorePath('production', { path: 'myapp/database' })).toEqual({ path: 'production/myapp/database' });
    expect(secretStorePath('production', { path: 'myapp/database', global: false })).toEqual({ path: 'production/myapp/database' });
    expect(secretStorePath('production', { path: 'certificates/wildcard', global: true })).toEqual({ path: 'global/certificates/wildcard' });
  });

  it.each([
    ['', /empty/],
    ['   ', /empty/],
    ['/etc/passwd', /absolute/],
    ['../other-env/db', /"\.\." segment/],
    ['myapp/../../prod/db', /"\.\." segment/],
    ['myapp//db', /empty/],
    ['myapp/./db', /"\."/],
    ['myapp/db/', /empty/],
    ['myapp\\db', /backslash/],
    [' myapp/db', /spaces/],
  ])('refuses %j', (path, why) => {
    const mapped = secretStorePath('dev', { path });
    expect(mapped).toEqual({ error: expect.stringMatching(why) });
  });

  it('refuses a non-boolean global and a missing path', () => {
    expect(secretStorePath('dev', { path: 'a', global: 'yes' })).toEqual({ error: 'global must be true or false, not "yes"' });
    expect(secretStorePath('dev', { path: undefined })).toEqual({ error: 'path is empty' });
  });

  it('a Secrets XR maps every entry and reports the bad ones by index', () => {
    const result = resolveXr(
      { document: 1, apiVersion: 'forge.io/v1', kind: 'Secrets', name: 'app', spec: { secrets: [{ name: 'db', path: 'app/db' }, { name: 'tls', path: 'certs/tls', global: true }, { name: 'bad', path: '../x' }] } },
      { cluster: undefined, override: undefined, environment: 'staging' },
    );
    expect(result.secrets).toEqual([{ xr: 'app', name: 'db', path: 'staging/app/db' }, { xr: 'app', name: 'tls', path: 'global/certs/tls' }]);
    expect(result.problems).toEqual([{ field: 'spec.secrets[2]', message: 'path "../x" has an empty, "." or ".." segment' }]);
  });
});

describe('reference syntax (behaviour 52)', () => {
  it('parses the four forms', () => {
    expect(parseReference('outputs/db/host')).toEqual({ reference: { kind: 'outputs', namespace: undefined, xr: 'db', item: undefined, key: 'host' } });
    expect(parseReference('connections/db/password')).toEqual({ reference: { kind: 'connections', namespace: undefined, xr: 'db', item: undefined, key: 'password' } });
    expect(parseReference('secrets/app-secrets/database')).toEqual({ reference: { kind: 'secrets', namespace: undefined, xr: 'app-secrets', item: 'database', key: undefined } });
    expect(parseReference('configs/app/settings/database.host')).toEqual({ reference: { kind: 'configs', namespace: undefined, xr: 'app', item: 'settings', key: 'database.host' } });
  });

  it('allows another namespace for outputs/ only, platform included', () => {
    expect(parseReference('platform::outputs/x/y')).toEqual({ reference: { kind: 'outputs', namespace: 'platform', xr: 'x', item: undefined, key: 'y' } });
    expect(parseReference('backend-repo-storage::outputs/bucket/arn')).toMatchObject({ reference: { namespace: 'backend-repo-storage' } });
  });

  it.each([
    ['repo-proj::connections/db/password', /connections\/ references are same-namespace only/],
    ['platform::secrets/app/db', /secrets\/ references are same-namespace only/],
    ['repo-proj::configs/app/main/key', /configs\/ references are same-namespace only/],
    ['a::b::outputs/x/y', /at most one "::"/],
    ['::outputs/x/y', /not a namespace/],
    ['Repo_Proj::outputs/x/y', /not a namespace/],
    ['output/db/host', /unknown reference type "output\/"/],
    ['vault/db/host', /unknown reference type/],
    ['db/host', /unknown reference type/],
    ['outputs/db', /malformed outputs\/ reference; expected outputs\/<xr>\/<key>/],
    ['outputs/db/host/extra', /malformed/],
    ['connections//password', /malformed/],
    ['secrets/app', /malformed secrets\/ reference; expected secrets\/<xr>\/<secret>\[\/<key>\]/],
    ['secrets/app/db/key/more', /malformed/],
    ['configs/app/main/', /malformed/],
    ['outputs/DB/host', /not an XR name/],
    ['outputs/db/ho st', /no spaces/],
    ['', /not empty/],
    ['secrets/app/DB_PASS', /not a secret name/],
  ])('rejects %j', (text, why) => {
    expect(parseReference(text)).toEqual({ error: expect.stringMatching(why) });
  });
});

describe('references resolved against the project', () => {
  const resources = [
    xrDoc('Secrets', 'app-secrets', { secrets: [{ name: 'database', path: 'shop/db' }] }),
    xrDoc('ConfigMaps', 'app-settings', { configs: [{ name: 'main' }] }),
    { apiVersion: 'storage.example.org/v1alpha1', kind: 'Bucket', metadata: { name: 'assets' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'plain' } },
  ];
  const check = (env: Record<string, unknown> | unknown[], mounts: unknown[] = []) => {
    const classified = classifyResources([...resources, xrDoc('Deployment', 'web', { image: 'web:1', env, mounts })], 'r.yaml');
    return resolveReferences({
      namespaces: projectNamespaces('acme/shop', 'web'),
      xrs: classified.xrs.map((xr) => ({ xr, spec: xr.spec })),
      composites: classified.composites,
      plain: classified.plain,
    });
  };

  it('resolves each form to what the composition will write', () => {
    const { references, problems } = check({
      A: { source: 'outputs/assets/arn' },
      B: { source: 'connections/assets/accessKeyId' },
      C: { source: 'secrets/app-secrets/database/password' },
      D: { source: 'secrets/app-secrets/database' },
      E: { source: 'configs/app-settings/main/LOG_LEVEL' },
      F: { source: 'platform::outputs/keycloak/issuerUrl' },
      G: { value: 'literal' },
    }, [{ mountPath: '/etc/app', source: 'configs/app-settings/main' }, { mountPath: '/tls', source: 'secrets/app-secrets/database/cert' }]);
    expect(problems).toEqual([]);
    expect(references.map((r) => [r.field, r.resolved])).toEqual([
      ['spec.env.A.source', { inline: { namespace: 'acme-shop-web', xr: 'assets', key: 'arn' } }],
      ['spec.env.B.source', { secretKeyRef: { name: 'assets-conn', key: 'accessKeyId' } }],
      ['spec.env.C.source', { secretKeyRef: { name: 'app-secrets-database', key: 'password' } }],
      ['spec.env.D.source', { secretKeyRef: { name: 'app-secrets-database', key: 'value' } }],
      ['spec.env.E.source', { configMapKeyRef: { name: 'app-settings-main', key: 'LOG_LEVEL' } }],
      ['spec.env.F.source', { inline: { namespace: 'platform', xr: 'keycloak', key: 'issuerUrl' } }],
      ['spec.mounts[0].source', { configMap: { name: 'app-settings-main' } }],
      ['spec.mounts[1].source', { secret: { secretName: 'app-secrets-database', items: [{ key: 'cert', path: 'cert' }] } }],
    ]);
    expect(references[0]).toMatchObject({ xr: 'Deployment/web', context: 'env', reference: 'outputs/assets/arn' });
  });

  it('reads list-form env entries and env of nested containers', () => {
    const classified = classifyResources([...resources, xrDoc('Deployment', 'web', {
      containers: [{ name: 'a', image: 'a:1', env: [{ name: 'X', source: 'outputs/assets/arn' }] }],
      initContainers: [{ name: 'init', image: 'i:1', env: { Y: { source: 'secrets/nope/x' } } }],
    })], 'r.yaml');
    const result = resolveReferences({ namespaces: ['acme-shop-web'], xrs: classified.xrs.map((xr) => ({ xr, spec: xr.spec })), composites: classified.composites, plain: classified.plain });
    expect(result.references.map((r) => r.field)).toEqual(['spec.containers[0].env[0].source']);
    expect(result.problems.map((p) => p.field)).toEqual(['spec.initContainers[0].env.Y.source']);
  });

  it('collects every problem, each naming XR, field and reference', () => {
    const { references, problems } = check({
      A: { source: 'secrets/app-settings/main' },
      B: { source: 'configs/app-secrets/database' },
      C: { source: 'secrets/app-secrets/api-key' },
      D: { source: 'configs/app-settings/other/x' },
      E: { source: 'outputs/missing/url' },
      F: { source: 'connections/plain/x' },
      G: { source: 'acme-shop::connections/db/password' },
      H: { source: 42 },
      I: { source: 'outputs/assets/arn', value: 'both' },
    }, [{ mountPath: '/x', source: 'outputs/assets/arn' }]);
    expect(references.map((r) => r.field)).toEqual(['spec.env.I.source']);
    expect(problems.map(describeProblem)).toEqual([
      'Deployment/web: spec.env.I: has both source and value; keep one',
      'Deployment/web: spec.env.A.source: "secrets/app-settings/main": app-settings is a ConfigMaps XR; secrets/ needs a Secrets XR (Secrets XRs: app-secrets)',
      'Deployment/web: spec.env.B.source: "configs/app-secrets/database": app-secrets is a Secrets XR; configs/ needs a ConfigMaps XR (ConfigMaps XRs: app-settings)',
      'Deployment/web: spec.env.C.source: "secrets/app-secrets/api-key": Secrets XR app-secrets declares no secret api-key (it has: database)',
      'Deployment/web: spec.env.D.source: "configs/app-settings/other/x": ConfigMaps XR app-settings declares no config other (it has: main)',
      'Deployment/web: spec.env.E.source: "outputs/missing/url": no XR named missing in this project (XRs: app-secrets, app-settings, web); for another namespace write <namespace>::outputs/… or platform::outputs/…',
      'Deployment/web: spec.env.F.source: "connections/plain/x": plain is a plain v1 ConfigMap, which publishes no connections; name an XR',
      'Deployment/web: spec.env.G.source: "acme-shop::connections/db/password": connections/ references are same-namespace only; only outputs/ may name another namespace (drop "acme-shop::")',
      expect.stringMatching(/^Deployment\/web: spec\.env\.H\.source: source must be a reference string \(outputs\/<xr>\/<key>.*\), not 42$/),
      'Deployment/web: spec.mounts[0].source: "outputs/assets/arn": outputs/ is a literal value and cannot be mounted; use it in env, or mount connections/, secrets/ or configs/',
    ]);
  });

  it('a namespace prefix naming the project itself is checked like a same-namespace reference', () => {
    expect(check({ A: { source: 'acme-shop-web::outputs/nothing/x' } }).problems).toHaveLength(1);
    expect(check({ A: { source: 'shop-web::outputs/assets/arn' } })).toMatchObject({ problems: [], references: [{ resolved: { inline: { namespace: 'acme-shop-web' } } }] });
    // Another project's XRs cannot be seen from here: accepted as written.
    expect(check({ A: { source: 'acme-auth::outputs/anything/x' } }).problems).toEqual([]);
  });
});

describe('classifying a release\'s resources', () => {
  it('recognises XRs by API group, not by kind', () => {
    const classified = classifyResources([
      xrDoc('Deployment', 'web', { image: 'a:1' }),
      xrDoc('Storage', 'data', { size: '1Gi' }, 'forge.io/v1'),
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'legacy' }, spec: { replicas: 1 } },
      { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'web' } },
      { apiVersion: 's3.aws.upbound.io/v1beta1', kind: 'Bucket', metadata: { name: 'assets' } },
      null,
    ], 'r.yaml');
    expect(classified.problems).toEqual([]);
    expect(classified.xrs.map((xr) => `${xr.apiVersion} ${xr.kind}/${xr.name}`)).toEqual(['forge.projectcatalyst.io/v1alpha1 Deployment/web', 'forge.io/v1 Storage/data']);
    expect(classified.plain.map((r) => `${r.kind}/${r.name}`)).toEqual(['Deployment/legacy', 'Ingress/web']);
    expect(classified.composites.map((r) => `${r.kind}/${r.name}`)).toEqual(['Bucket/assets']);
  });

  it('reports unknown forge kinds and versions, malformed documents and duplicate names', () => {
    const classified = classifyResources([
      xrDoc('Database', 'db'),
      xrDoc('Deployment', 'web', {}, 'forge.projectcatalyst.io/v2'),
      { kind: 'Secret', metadata: { name: 'x' } },
      { apiVersion: 'v1', kind: 'Secret' },
      'text',
      xrDoc('Network', 'web', { port: 1 }),
      xrDoc('Deployment', 'web', { image: 'a:1' }, 'forge.io/v1'),
      xrDoc('Job', 'Bad_Name'),
      { ...xrDoc('Job', 'job'), spec: [] },
    ], 'r.yaml');
    expect(classified.problems.map(describeProblem)).toEqual([
      'r.yaml: Database/db: document 1: forge.projectcatalyst.io has no kind Database; the catalog has Deployment, Stateful, Job, CronJob, Network, Secrets, ConfigMaps, Storage',
      'r.yaml: Deployment/web: document 2: apiVersion forge.projectcatalyst.io/v2 is not served; use forge.projectcatalyst.io/v1alpha1 or forge.io/v1',
      'r.yaml: document 3: apiVersion is missing',
      'r.yaml: document 4: Secret: metadata.name is missing',
      'r.yaml: document 5: a resource must be a map, not "text"',
      expect.stringMatching(/^r\.yaml: Job\/Bad_Name: document 8: XR name "Bad_Name" must be a Kubernetes object name/),
      'r.yaml: Job/job: document 9: spec must be a map',
      'r.yaml: Deployment/web: XR name web is also used by Network/web (document 6); overrides and references need unique names',
    ]);
  });

  it(`allows at most ${MAX_XRS_PER_PROJECT} XRs per project`, () => {
    const docs = (n: number) => Array.from({ length: n }, (_, i) => xrDoc('Job', `job-${i}`, { image: 'a:1' }));
    expect(classifyResources(docs(MAX_XRS_PER_PROJECT), 'r.yaml').problems).toEqual([]);
    expect(classifyResources(docs(MAX_XRS_PER_PROJECT + 1), 'r.yaml').problems).toEqual([{ file: 'r.yaml', message: '51 XRs; a project may have at most 50' }]);
  });
});

describe('Network targets', () => {
  const at = (document: number, kind: Xr['kind'], name: string, spec: Record<string, unknown>) =>
    ({ xr: { document, apiVersion: 'forge.projectcatalyst.io/v1alpha1', kind, name, spec }, spec });
  const api = at(1, 'Deployment', 'api', { containers: [{ name: 'a', image: 'a:1', ports: [{ containerPort: 8080 }] }, { name: 'b', image: 'b:1', ports: [{ containerPort: 9090 }] }] });
  const worker = at(2, 'Job', 'migrate', { image: 'm:1' });
  const store = at(3, 'Storage', 'data', { size: '1Gi' });

  it('a Network names a workload XR of the project (workloadRef or targetRef.name), on a port it declares', () => {
    expect(networkTargetProblems([api, worker, store,
      at(4, 'Network', 'ok', { workloadRef: 'api', port: 9090 }),
      at(5, 'Network', 'ok-no-ports', { targetRef: { name: 'migrate' }, port: 1234 }),
    ])).toEqual([]);
    expect(networkTargetProblems([api, worker, store,
      at(4, 'Network', 'a', { workloadRef: 'web', port: 80 }),
      at(5, 'Network', 'b', { targetRef: { name: 'data' }, port: 80 }),
      at(6, 'Network', 'c', { workloadRef: 'api', port: 80 }),
      at(7, 'Network', 'd', { port: 80 }), // no target: the schema's to report
    ]).map(describeProblem)).toEqual([
      'Network/a: spec.workloadRef: no workload XR named web in this project (Deployment, Stateful, Job or CronJob XRs: api, migrate)',
      'Network/b: spec.targetRef.name: data is a Storage XR, not a workload (Deployment, Stateful, Job or CronJob XRs: api, migrate)',
      'Network/c: spec.port: 80 is not a port Deployment/api declares (8080, 9090)',
    ]);
  });
});

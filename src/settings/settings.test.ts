import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../lib/duration.ts';
import { parseClientSettings, parseDispatchSettings, parseServerSettings, parseWorkerSettings } from './settings.ts';

describe('server settings', () => {
  it('has embedded defaults', () => {
    const s = parseServerSettings({}, {});
    expect(s).toMatchObject({ host: '127.0.0.1', port: 8080, databaseUrl: undefined, natsUrl: undefined, oidc: undefined, approvalTtlMs: 86_400_000, publicUrl: 'http://127.0.0.1:8080' });
    expect(s.dataDir.endsWith('.forge-data')).toBe(true);
    expect(s.environments.map((e) => e.name)).toEqual(['dev', 'staging', 'production']);
    expect(s.rateLimits).toEqual({ runCreate: { max: 100, windowMs: 60_000 }, releaseLookup: { max: 1000, windowMs: 60_000 }, deploymentCreate: { max: 10, windowMs: 60_000 } });
  });
  it('takes environment variables, and flags over them', () => {
    const s = parseServerSettings({ port: '9000' }, { FORGE_PORT: '7000', FORGE_HOST: '0.0.0.0', FORGE_RATE_LIMITS: 'off', FORGE_APPROVAL_TTL: '2h', FORGE_OIDC_ISSUER: 'https://kc.example/realms/forge' });
    expect(s).toMatchObject({ port: 9000, host: '0.0.0.0', rateLimits: 'off', approvalTtlMs: 7_200_000, oidc: { issuer: 'https://kc.example/realms/forge', audience: 'forge' } });
  });
  it.each([
    [{ FORGE_PORT: 'eighty' }, /FORGE_PORT \(--port\).*port number/],
    [{ FORGE_PORT: '70000' }, /FORGE_PORT/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL.*postgres:/],
    [{ FORGE_APPROVAL_TTL: 'soon' }, /FORGE_APPROVAL_TTL.*duration/],
    [{ FORGE_RATE_LIMITS: 'runs=lots' }, /FORGE_RATE_LIMITS.*NAME=COUNT\/WINDOW/],
    [{ FORGE_LOG_LEVEL: 'loud' }, /FORGE_LOG_LEVEL.*one of/],
    [{ FORGE_ENVIRONMENTS: '/nonexistent.yaml' }, /FORGE_ENVIRONMENTS.*cannot read/],
  ])('stops on a bad value, naming the setting: %j', (env, message) => {
    expect(() => parseServerSettings({}, env)).toThrow(message);
  });
  it('reads environment policies from a file and validates them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'forge-settings-'));
    const good = join(dir, 'envs.yaml');
    writeFileSync(good, 'environments:\n  - name: qa\n    allowed_branches: ["main"]\n  - name: prod\n    allowed_triggers: [tag]\n    requires_approval: true\n    approvals_required: 2\n    frozen: true\n    freeze_reason: year-end freeze\n');
    const s = parseServerSettings({}, { FORGE_ENVIRONMENTS: good });
    expect(s.environments).toEqual([
      { name: 'qa', allowed_triggers: ['branch_push', 'tag', 'manual'], allowed_branches: ['main'], auto_deploy: false, requires_approval: false, approvals_required: 0, frozen: false },
      { name: 'prod', allowed_triggers: ['tag'], allowed_branches: ['*'], auto_deploy: false, requires_approval: true, approvals_required: 2, frozen: true, freeze_reason: 'year-end freeze' },
    ]);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'environments:\n  - name: qa\n    allowed_triggers: [cron]\n');
    expect(() => parseServerSettings({}, { FORGE_ENVIRONMENTS: bad })).toThrow(/allowed_triggers must be a list of branch_push, tag, manual/);
    writeFileSync(bad, 'environments:\n  - name: qa\n    frozen: "yes"\n');
    expect(() => parseServerSettings({}, { FORGE_ENVIRONMENTS: bad })).toThrow(/frozen must be true or false/);
    writeFileSync(bad, 'environments:\n  - name: qa\n    approval_required: 2\n');
    expect(() => parseServerSettings({}, { FORGE_ENVIRONMENTS: bad })).toThrow(/unknown field approval_required; fields are name, allowed_triggers/);
  });
  it('GitOps settings: the embedded repo by default, a layout with all three placeholders, "Name <email>" authors', () => {
    expect(parseServerSettings({}, {}).execution.gitops).toEqual({
      url: undefined, layout: 'environments/{environment}/{repository}/{project}/release.yaml', authorName: 'Forge', authorEmail: 'forge@localhost',
    });
    expect(parseServerSettings({}, { FORGE_GITOPS_URL: 'https://git.example.com/gitops.git', FORGE_GITOPS_LAYOUT: '{environment}/apps/{repository}/{project}/release.yaml', FORGE_GITOPS_AUTHOR: 'Release Bot <bot@example.com>' }).execution.gitops)
      .toEqual({ url: 'https://git.example.com/gitops.git', layout: '{environment}/apps/{repository}/{project}/release.yaml', authorName: 'Release Bot', authorEmail: 'bot@example.com' });
    expect(() => parseServerSettings({}, { FORGE_GITOPS_LAYOUT: 'environments/{environment}/{project}/release.yaml' })).toThrow(/FORGE_GITOPS_LAYOUT.*must contain \{repository\}/);
    expect(() => parseServerSettings({}, { FORGE_GITOPS_LAYOUT: '../{environment}/{repository}/{project}.yaml' })).toThrow(/FORGE_GITOPS_LAYOUT/);
    expect(() => parseServerSettings({}, { FORGE_GITOPS_AUTHOR: 'nobody' })).toThrow(/FORGE_GITOPS_AUTHOR.*Name <email>/);
    expect(() => parseServerSettings({}, { FORGE_GITOPS_URL: 'https://u:secret@git.example.com/x.git' })).toThrow(/must not carry a password/);
    expect(() => parseServerSettings({}, { FORGE_GITOPS_URL: '--upload-pack=evil' })).toThrow(/FORGE_GITOPS_URL/);
  });
  it('dashboard settings (beyond the seed): web root, and the OIDC login it is told about', () => {
    const defaults = parseServerSettings({}, {});
    expect(defaults.webRoot).toBeUndefined();
    expect(defaults.ui).toEqual({ clientId: undefined, scopes: 'openid profile', resource: undefined });
    const set = parseServerSettings({ uiScopes: 'openid  email\tprofile', webRoot: 'build/web' }, {
      FORGE_WEB_ROOT: '/srv/ignored', FORGE_UI_CLIENT_ID: 'forge-dashboard', FORGE_UI_SCOPES: 'openid', FORGE_UI_RESOURCE: 'https://forge.example.com/v1',
    });
    expect(set.webRoot).toBe(join(process.cwd(), 'build/web'));
    expect(set.ui).toEqual({ clientId: 'forge-dashboard', scopes: 'openid email profile', resource: 'https://forge.example.com/v1' });
    expect(parseServerSettings({}, { FORGE_UI_RESOURCE: 'urn:forge:api' }).ui.resource).toBe('urn:forge:api');
    expect(() => parseServerSettings({}, { FORGE_UI_CLIENT_ID: 'has space' })).toThrow(/FORGE_UI_CLIENT_ID \(--ui-client-id\).*printable ASCII/);
    expect(() => parseServerSettings({}, { FORGE_UI_SCOPES: 'openid "profile"' })).toThrow(/FORGE_UI_SCOPES \(--ui-scopes\).*scopes/);
    expect(() => parseServerSettings({}, { FORGE_UI_RESOURCE: 'forge.example.com' })).toThrow(/FORGE_UI_RESOURCE \(--ui-resource\).*absolute URI/);
    expect(() => parseServerSettings({}, { FORGE_UI_RESOURCE: 'https://forge.example.com/#api' })).toThrow(/without a fragment/);
  });
  it('the test-only fault hook: unset in production; crash-after:<point> with a known point', () => {
    expect(parseServerSettings({}, {}).crashAfter).toBeUndefined();
    expect(parseServerSettings({}, { FORGE_FAULT_HOOK: 'crash-after:run-committed' }).crashAfter).toBe('run-committed');
    expect(parseServerSettings({ faultHook: 'crash-after:job-published' }, {}).crashAfter).toBe('job-published');
    expect(() => parseServerSettings({}, { FORGE_FAULT_HOOK: 'crash-after:lunch' })).toThrow(/FORGE_FAULT_HOOK.*crash-after:<point> with a point among run-committed, job-published/);
  });

  it('retention and limits: the seed\'s 90 / 30 days and 1000 runs, "off", and a run never longer than 24 h', () => {
    const defaults = parseServerSettings({}, {});
    expect(defaults).toMatchObject({
      runTimeoutMs: 86_400_000, maxActiveRunsPerRepository: 1000,
      retention: { runsOlderThanMs: 90 * 86_400_000, logsOlderThanMs: 30 * 86_400_000, intervalMs: 3_600_000 },
    });
    const set = parseServerSettings({ logRetention: '7d' }, {
      FORGE_RUN_RETENTION: 'off', FORGE_LOG_RETENTION: '14d', FORGE_RETENTION_INTERVAL: '0', FORGE_RUN_TIMEOUT: '6h', FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY: '50',
    });
    expect(set).toMatchObject({
      runTimeoutMs: 6 * 3_600_000, maxActiveRunsPerRepository: 50,
      retention: { runsOlderThanMs: undefined, logsOlderThanMs: 7 * 86_400_000, intervalMs: undefined },
    });
  });
  it.each([
    [{ FORGE_RUN_TIMEOUT: '25h' }, /FORGE_RUN_TIMEOUT \(--run-timeout\) = "25h": must be at most 24h/],
    [{ FORGE_RUN_TIMEOUT: '2d' }, /FORGE_RUN_TIMEOUT.*at most 24h/],
    [{ FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY: '1001' }, /FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY.*1-1000/],
    [{ FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY: '0' }, /FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY.*1-1000/],
    [{ FORGE_RUN_RETENTION: 'forever' }, /FORGE_RUN_RETENTION \(--run-retention\).*duration.*"off"/],
    [{ FORGE_LOG_RETENTION: '-1d' }, /FORGE_LOG_RETENTION.*duration/],
    [{ FORGE_RETENTION_INTERVAL: 'hourly' }, /FORGE_RETENTION_INTERVAL.*duration/],
  ])('refuses a retention or limit setting out of bounds: %j', (env, message) => {
    expect(() => parseServerSettings({}, env)).toThrow(message);
  });
  it('parses client settings', () => {
    expect(parseClientSettings({}, { FORGE_URL: 'http://h:1/', FORGE_TOKEN: 't' })).toEqual({ url: 'http://h:1', token: 't' });
    expect(() => parseClientSettings({ url: 'ftp://x' }, {})).toThrow(/FORGE_URL/);
  });
});

describe('durations', () => {
  it.each([['90s', 90_000], ['10m', 600_000], ['1h30m', 5_400_000], ['7d', 604_800_000], ['250', 250], ['1x', undefined], ['', undefined], ['m', undefined]])('%s → %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe('execution, GitHub and worker settings', () => {
  it('registries: unset = the embedded OCI store; addresses, plain HTTP, credentials in pairs, the signing key file', () => {
    const embedded = parseServerSettings({}, {});
    expect(embedded.execution.registries).toEqual({ release: undefined, tracking: undefined, insecure: false, credentials: undefined, signingKey: undefined });
    expect(embedded.releaseRegistry).toBe('forge.local/releases');
    const real = parseServerSettings({}, {
      FORGE_RELEASE_REGISTRY: '127.0.0.1:5000/releases/', FORGE_TRACKING_REGISTRY: 'registry.example.com/tracking', FORGE_REGISTRY_INSECURE: '1',
      FORGE_REGISTRY_USERNAME: 'forge', FORGE_REGISTRY_PASSWORD: 's3cret', FORGE_SIGNING_KEY: '/etc/forge/cosign.key',
    });
    expect(real.execution.registries).toEqual({
      release: '127.0.0.1:5000/releases', tracking: 'registry.example.com/tracking', insecure: true,
      credentials: { username: 'forge', password: 's3cret' }, signingKey: '/etc/forge/cosign.key',
    });
    expect(real.releaseRegistry).toBe('127.0.0.1:5000/releases');
    expect(() => parseServerSettings({}, { FORGE_RELEASE_REGISTRY: 'http://127.0.0.1:5000' })).toThrow(/FORGE_RELEASE_REGISTRY .*no scheme; FORGE_REGISTRY_INSECURE=1 for plain HTTP/);
    expect(() => parseServerSettings({}, { FORGE_REGISTRY_USERNAME: 'forge' })).toThrow(/FORGE_REGISTRY_USERNAME and FORGE_REGISTRY_PASSWORD go together/);
    expect(() => parseServerSettings({}, { FORGE_REGISTRY_PASSWORD: 's3cret' })).toThrow(/"\*\*\*"/);
    expect(() => parseServerSettings({}, { FORGE_REGISTRY_INSECURE: 'maybe' })).toThrow(/FORGE_REGISTRY_INSECURE.*true or false/);
  });

  it('has embedded execution defaults: in-process discovery and CI workers, GitHub repositories, files for objects', () => {
    const s = parseServerSettings({}, {});
    expect(s.inProcessWorkers).toEqual(['discovery', 'ci', 'artifact', 'release']);
    expect(s.execution).toMatchObject({ natsNamespace: '', ackWaitMs: 30_000, s3: undefined, gitUrlTemplate: 'https://github.com/{repository}.git', gitCredentials: undefined, workerConcurrency: 4 });
    expect(s.github).toMatchObject({ webhookSecret: undefined, token: undefined, repositories: [], tokenTtlSeconds: 3600 });
    expect(s.example).toBe(false);
    expect(s.runTimeoutMs).toBe(86_400_000);
  });
  it('serves repositories from the data dir for --example unless a template is set', () => {
    const s = parseServerSettings({ example: true }, { FORGE_DATA_DIR: '/srv/forge' });
    expect(s.execution.gitUrlTemplate).toBe('file:///srv/forge/git/{repository}.git');
    const explicit = parseServerSettings({ example: true }, { FORGE_GIT_URL_TEMPLATE: 'https://git.example/{repository}.git' });
    expect(explicit.execution.gitUrlTemplate).toBe('https://git.example/{repository}.git');
  });
  it('reads S3, git credentials, workers and GitHub settings', () => {
    const s = parseServerSettings({}, {
      FORGE_WORKERS: 'none', FORGE_S3_ENDPOINT: 'http://127.0.0.1:7480', FORGE_S3_ACCESS_KEY_ID: 'k', FORGE_S3_SECRET_ACCESS_KEY: 's',
      FORGE_GIT_TOKEN: 't0ken', FORGE_ACK_WAIT: '10s', FORGE_NATS_NAMESPACE: 'staging.', FORGE_GITHUB_REPOSITORIES: 'acme/shop, acme/web',
    });
    expect(s.inProcessWorkers).toEqual([]);
    expect(s.execution).toMatchObject({
      s3: { endpoint: 'http://127.0.0.1:7480', bucket: 'forge', region: 'us-east-1', accessKeyId: 'k', secretAccessKey: 's' },
      gitCredentials: { username: 'x-access-token', token: 't0ken' }, ackWaitMs: 10_000, natsNamespace: 'staging.',
    });
    expect(s.github.repositories).toEqual(['acme/shop', 'acme/web']);
  });
  it.each([
    [{ FORGE_WORKERS: 'ci,builder' }, /FORGE_WORKERS.*unknown worker type builder; types are discovery, ci, artifact, release/],
    [{ FORGE_GIT_URL_TEMPLATE: 'https://github.com/acme.git' }, /FORGE_GIT_URL_TEMPLATE.*\{repository\}/],
    [{ FORGE_GIT_URL_TEMPLATE: 'https://bot:secret@github.com/{repository}.git' }, /must not carry a password/],
    [{ FORGE_S3_ENDPOINT: 'http://127.0.0.1:7480' }, /FORGE_S3_ENDPOINT.*FORGE_S3_ACCESS_KEY_ID/],
    [{ FORGE_ACK_WAIT: 'forever' }, /FORGE_ACK_WAIT.*duration/],
    [{ FORGE_WORKER_CONCURRENCY: '0' }, /FORGE_WORKER_CONCURRENCY.*1-256/],
    [{ FORGE_NATS_NAMESPACE: 'a b' }, /FORGE_NATS_NAMESPACE/],
    [{ FORGE_GITHUB_REPOSITORIES: 'not a repo' }, /FORGE_GITHUB_REPOSITORIES/],
    [{ FORGE_EXAMPLE: 'maybe' }, /FORGE_EXAMPLE.*true or false/],
    [{ FORGE_OIDC_TOKEN_URL: 'https://kc.example/token' }, /FORGE_WORKER_CLIENT_ID/],
  ])('stops on a bad execution value, naming the setting: %j', (env, message) => {
    expect(() => parseServerSettings({}, env)).toThrow(message);
  });
  it('a worker needs NATS and at least one type; flags may repeat --type', () => {
    expect(() => parseWorkerSettings({}, { FORGE_WORKER_TYPES: 'ci' })).toThrow(/NATS_URL .* is required/);
    expect(() => parseWorkerSettings({}, { NATS_URL: 'nats://127.0.0.1:4222' })).toThrow(/FORGE_WORKER_TYPES.*at least one worker type/);
    const w = parseWorkerSettings({ type: ['discovery', 'ci', 'ci'] }, { NATS_URL: 'nats://127.0.0.1:4222', FORGE_DATA_DIR: '/srv/forge' });
    expect(w).toMatchObject({ types: ['discovery', 'ci'], url: 'http://127.0.0.1:8080', dataDir: '/srv/forge', cacheDir: '/srv/forge/worker-cache' });
    expect(w.execution.natsUrl).toBe('nats://127.0.0.1:4222');
  });
});

describe('secret provider settings', () => {
  const worker = (env: Record<string, string>, flags: Record<string, unknown> = {}) => parseWorkerSettings({ type: ['ci'], ...flags }, { NATS_URL: 'nats://127.0.0.1:4222', ...env }).execution.secrets;

  it('defaults: file provider under /var/run/secrets/forge, aws region from AWS_REGION, no vault', () => {
    expect(worker({})).toEqual({ dir: '/var/run/secrets/forge', aws: { region: undefined, endpoint: undefined }, vault: undefined });
    expect(worker({ AWS_REGION: 'eu-west-1' }).aws.region).toBe('eu-west-1');
  });

  it('reads every setting, flags over variables', () => {
    expect(worker({
      FORGE_SECRETS_DIR: '/mnt/secrets', FORGE_AWS_SECRETS_REGION: 'eu-central-1', FORGE_AWS_SECRETS_ENDPOINT: 'http://127.0.0.1:4566',
      FORGE_VAULT_ADDR: 'https://vault.example.com:8200', FORGE_VAULT_TOKEN: 'hvs.x', FORGE_VAULT_MOUNT: 'kv/ci',
    }, { vaultMount: 'kv2' })).toEqual({
      dir: '/mnt/secrets', aws: { region: 'eu-central-1', endpoint: 'http://127.0.0.1:4566' },
      vault: { addr: 'https://vault.example.com:8200', token: 'hvs.x', mount: 'kv2' },
    });
  });

  it.each([
    [{ FORGE_AWS_SECRETS_REGION: 'Frankfurt' }, /FORGE_AWS_SECRETS_REGION .*must be an AWS region/],
    [{ FORGE_AWS_SECRETS_ENDPOINT: 'ftp://x' }, /FORGE_AWS_SECRETS_ENDPOINT .*must use http: or https:/],
    [{ FORGE_VAULT_ADDR: 'https://vault.example.com' }, /FORGE_VAULT_ADDR .*needs FORGE_VAULT_TOKEN too/],
    [{ FORGE_VAULT_TOKEN: 'hvs.secret-token' }, /FORGE_VAULT_TOKEN .* = "\*\*\*": is set without FORGE_VAULT_ADDR/],
    [{ FORGE_VAULT_ADDR: 'https://v.example.com', FORGE_VAULT_TOKEN: 't', FORGE_VAULT_MOUNT: '/secret/' }, /FORGE_VAULT_MOUNT .*must be a mount path/],
  ])('refuses %j naming the setting', (env, message) => {
    expect(() => worker(env)).toThrow(message);
    try {
      worker(env);
    } catch (error) {
      expect((error as Error).message).not.toContain('hvs.secret-token');
    }
  });
});

describe('orchestrator settings (FORGE_ORCHESTRATOR, FORGE_ARGO_*)', () => {
  const argo = { FORGE_ORCHESTRATOR: 'argo', NATS_URL: 'nats://nats:4222', FORGE_ARGO_SERVER_URL: 'https://argo.example/', FORGE_ARGO_IMAGE: 'ghcr.io/acme/forge:1.2.3' };
  it('defaults to the built-in dispatcher', () => {
    expect(parseServerSettings({}, {}).orchestrator).toEqual({ kind: 'builtin' });
  });
  it('argo: the spec\'s namespace, service account and parallelism by default; pods reach the public URL', () => {
    expect(parseServerSettings({}, { ...argo, FORGE_PUBLIC_URL: 'https://forge.example' }).orchestrator).toEqual({
      kind: 'argo', serverUrl: 'https://argo.example', token: undefined, namespace: 'catalyst-forge-pipelines', serviceAccount: 'pipeline-workflow-runner',
      image: 'ghcr.io/acme/forge:1.2.3', parallelism: 100, apiUrl: 'https://forge.example', tokenSecret: { name: 'forge-dispatcher', key: 'token' },
    });
    expect(parseServerSettings({ argoParallelism: '20' }, { ...argo, FORGE_ARGO_TOKEN: 't', FORGE_ARGO_NAMESPACE: 'ci', FORGE_ARGO_API_URL: 'http://forge-api.forge:8080', FORGE_ARGO_TOKEN_SECRET: 'pods/jwt' }).orchestrator)
      .toMatchObject({ token: 't', namespace: 'ci', parallelism: 20, apiUrl: 'http://forge-api.forge:8080', tokenSecret: { name: 'pods', key: 'jwt' } });
  });
  it.each([
    [{ FORGE_ORCHESTRATOR: 'airflow' }, /FORGE_ORCHESTRATOR \(--orchestrator\) = "airflow": must be "builtin" or "argo"/],
    [{ ...argo, NATS_URL: undefined }, /FORGE_ORCHESTRATOR.*needs NATS_URL/],
    [{ ...argo, FORGE_ARGO_SERVER_URL: undefined }, /needs FORGE_ARGO_SERVER_URL/],
    [{ ...argo, FORGE_ARGO_SERVER_URL: 'ftp://argo' }, /FORGE_ARGO_SERVER_URL.*must use https: or http:/],
    [{ ...argo, FORGE_ARGO_IMAGE: undefined }, /needs FORGE_ARGO_IMAGE/],
    [{ ...argo, FORGE_ARGO_IMAGE: 'my image' }, /FORGE_ARGO_IMAGE.*without spaces/],
    [{ ...argo, FORGE_ARGO_NAMESPACE: 'Pipelines' }, /FORGE_ARGO_NAMESPACE.*Kubernetes namespace/],
    [{ ...argo, FORGE_ARGO_SERVICE_ACCOUNT: 'runner!' }, /FORGE_ARGO_SERVICE_ACCOUNT.*service account name/],
    [{ ...argo, FORGE_ARGO_PARALLELISM: '0' }, /FORGE_ARGO_PARALLELISM.*whole number 1-10000/],
    [{ ...argo, FORGE_ARGO_TOKEN_SECRET: 'forge-dispatcher' }, /FORGE_ARGO_TOKEN_SECRET.*"<secret name>\/<key>"/],
  ])('stops on a bad value, naming the setting: %j', (env, message) => {
    expect(() => parseServerSettings({}, env)).toThrow(message);
  });
});

describe('forge dispatch settings', () => {
  const run = '0b7c6a55-1f0e-4f53-9d7e-2f3a4b5c6d7e';
  it('takes the job type, run and (ci) group; flags over environment (JOB_TYPE as in spec 07)', () => {
    expect(parseDispatchSettings({ run }, { NATS_URL: 'nats://n:4222', JOB_TYPE: 'ci', FORGE_PHASE_GROUP: '2', FORGE_URL: 'http://api:8080/' }))
      .toMatchObject({ stage: 'ci', runId: run, group: 2, url: 'http://api:8080', execution: { natsUrl: 'nats://n:4222' } });
    expect(parseDispatchSettings({ jobType: 'release', run }, { NATS_URL: 'nats://n:4222', JOB_TYPE: 'ci' })).toMatchObject({ stage: 'release', group: undefined });
    expect(parseDispatchSettings({ run }, { NATS_URL: 'nats://n:4222', JOB_TYPE: 'deployment' })).toMatchObject({ stage: 'deployment', group: undefined });
  });
  it.each([
    [{ run }, {}, /NATS_URL \(--nats-url\) is required/],
    [{ run }, { NATS_URL: 'nats://n' }, /JOB_TYPE \(--job-type\) is required/],
    [{ run, jobType: 'deploy' }, { NATS_URL: 'nats://n' }, /JOB_TYPE \(--job-type\) = "deploy": must be one of discovery, ci, artifact, release, deployment$/],
    [{ jobType: 'ci' }, { NATS_URL: 'nats://n' }, /FORGE_RUN_ID \(--run\) is required/],
    [{ jobType: 'ci', run: 'latest' }, { NATS_URL: 'nats://n' }, /FORGE_RUN_ID \(--run\) = "latest": must be a run id/],
    [{ jobType: 'discovery', run, group: '1' }, { NATS_URL: 'nats://n' }, /FORGE_PHASE_GROUP \(--group\) = "1": applies to --job-type ci only/],
    [{ jobType: 'ci', run, group: 'first' }, { NATS_URL: 'nats://n' }, /FORGE_PHASE_GROUP.*phase group number/],
  ])('refuses %j %j', (flags, env, message) => {
    expect(() => parseDispatchSettings(flags, env)).toThrow(message);
  });
});

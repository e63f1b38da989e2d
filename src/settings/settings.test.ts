import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../lib/duration.ts';
import { parseClientSettings, parseServerSettings, parseWorkerSettings } from './settings.ts';

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

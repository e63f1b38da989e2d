/**
 * Publishers' `credentials` (digest §6.4, spec 07 "Secrets Manager": the worker retrieves publisher
 * credentials): the artifact job resolves the reference when it publishes and signs in with it,
 * through the real publisher factory (src/bin/execution.ts) and real destinations — a GitHub
 * releases peer (token from Vault KV v2), a docker-registry with htpasswd (username and password
 * as JSON in a file secret). A missing secret fails the job naming the reference; a refused one
 * fails without the value in the error.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRegistries } from '../../src/bin/registries.ts';
import { publisherFactory } from '../../src/bin/execution.ts';
import { ForgeError } from '../../src/domain/errors.ts';
import type { JobMessage } from '../../src/domain/jobs.ts';
import type { ArtifactJobPayload, ArtifactJobResult } from '../../src/engine/release-builds.ts';
import { publisherCredentials } from '../../src/engine/publishing.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { createGitWorkspaces, seedRepository } from '../../src/worker/git-workspace.ts';
import { artifactHandler } from '../../src/worker/release-handlers.ts';
import { createSecretProviders } from '../../src/worker/secret-providers.ts';
import { startGitHubReleasesPeer, type GitHubReleasesPeer } from '../helpers/github-releases-peer.ts';
import { registryUnavailable, startBasicAuthRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startVaultPeer, type SecretPeer } from '../helpers/secret-peers.ts';

const canary = (what: string) => `canary-${what}-${randomUUID()}`;

describe('publisher credentials resolved by the artifact job', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-publisher-credentials-'));
  const secretsDir = join(dir, 'secrets');
  const workspaces = createGitWorkspaces({ cacheDir: join(dir, 'cache'), urlTemplate: `file://${join(dir, 'git')}/{repository}.git` });
  const githubToken = canary('github-token');
  const vaultToken = canary('vault-token');
  const registryPassword = canary('registry-password');
  let commitSha = '';
  let github: GitHubReleasesPeer;
  let vault: SecretPeer;
  let registry: { registry: TestRegistry; stop(): Promise<void> } | { unavailable: string } | undefined;

  beforeAll(async () => {
    const source = join(dir, 'source');
    mkdirSync(join(source, 'lib'), { recursive: true });
    writeFileSync(join(source, 'lib', 'index.js'), 'export const x = 1;\n');
    ({ commitSha } = await seedRepository({ bareDir: join(dir, 'git', 'acme', 'lib.git'), sourceDir: source, message: 'lib' }));
    github = await startGitHubReleasesPeer();
    vault = await startVaultPeer(vaultToken, { 'secret/publishers/github/release-token': { token: githubToken } });
    mkdirSync(join(secretsDir, 'registry'), { recursive: true });
    writeFileSync(join(secretsDir, 'registry', 'credentials.json'), JSON.stringify({ username: 'publisher', password: registryPassword }));
    writeFileSync(join(secretsDir, 'registry', 'wrong.json'), JSON.stringify({ username: 'publisher', password: `${registryPassword}-wrong` }));
    if (!registryUnavailable) registry = await startBasicAuthRegistry('publisher', registryPassword);
  }, 60_000);

  afterAll(async () => {
    await workspaces.close();
    await github?.close();
    await vault?.close();
    if (registry && 'stop' in registry) await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const execution = parseServerSettings({}, { FORGE_REGISTRY_INSECURE: '1', FORGE_DATA_DIR: join(dir, 'data') }).execution;
  const registries = openRegistries(execution.registries, join(dir, 'data'));
  afterAll(() => registries.close());

  const handler = () => {
    const factory = publisherFactory({ registries, execution, dataDir: join(dir, 'data'), github: { token: undefined, apiUrl: github.url } });
    const secrets = createSecretProviders({ dir: secretsDir, aws: { region: undefined, endpoint: undefined }, vault: { addr: vault.url, token: vaultToken, mount: 'secret' } }, {});
    return artifactHandler({
      workspaces, stagingRoot: join(dir, 'staging'), publisherFor: factory.publisherFor, secrets: secrets.providers,
      registries: { release: registries.release, tracking: registries.tracking, signingKey: () => registries.signingKey() },
    });
  };

  const job = (publishers: Record<string, Record<string, unknown>>, type: 'archive' | 'binary' = 'archive'): JobMessage => {
    const payload: ArtifactJobPayload = {
      build_id: randomUUID(), repository: 'acme/lib', project: 'lib', project_path: 'lib', commit_sha: commitSha,
      branch: 'main', trigger: { type: 'tag', tag: 'v1.0.0' }, pipeline_run_id: null, artifact: 'bundle',
      config: type === 'archive'
        ? { type, producer: { type: 'script', run: 'tar -czf "$STAGING/bundle.tgz" index.js', artifact: 'bundle.tgz' }, publishers: Object.keys(publishers) }
        : { type, name: 'lib', producer: { type: 'script', run: 'cp index.js "$STAGING/lib"', artifact: 'lib' }, publishers: Object.keys(publishers) },
      publishers, timeout_ms: 60_000,
    };
    return { id: `${payload.build_id}_bundle`, type: 'artifact', run_id: payload.build_id, run_attempt: 1, reply_to: 'x', deadline: new Date(Date.now() + 60_000).toISOString(), payload };
  };
  const run = (message: JobMessage) => handler()({ job: message, deliveryCount: 1, signal: new AbortController().signal });
  const failure = async (promise: Promise<unknown>) => {
    const error = await promise.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ForgeError);
    return error as ForgeError;
  };

  it('github: the token comes from Vault when the asset is published, and only then', async () => {
    const result = await run(job({ releases: { type: 'github', repository: 'acme/lib', credentials: { provider: 'vault', path: 'publishers/github/release-token', key: 'token' } } })) as ArtifactJobResult;
    expect(result.published_locations).toEqual([expect.objectContaining({ publisher: 'releases', skipped: false })]);
    expect(vault.asked).toEqual(['secret/publishers/github/release-token']);
    expect(github.requests.length).toBeGreaterThan(0);
    expect(github.requests.every((r) => r.authorization === `token ${githubToken}`)).toBe(true);
    expect(JSON.stringify(result)).not.toContain(githubToken);
  });

  it('a missing credentials secret fails the job naming the publisher and the reference, before anything is sent', async () => {
    github.reset();
    const error = await failure(run(job({ releases: { type: 'github', repository: 'acme/lib', credentials: { provider: 'vault', path: 'publishers/github/nope', key: 'token' } } })));
    expect(error.code).toBe('not_found');
    expect(error.message).toMatch(/^publisher releases: secret vault:publishers\/github\/nope#token does not exist in Vault/);
    expect(github.requests).toEqual([]);
  });

  it('credentials of the wrong shape, or on a publisher that takes none, are refused without the value', async () => {
    const shape = await failure(run(job({ hub: { type: 'docker', registry: '127.0.0.1:1', credentials: { provider: 'vault', path: 'publishers/github/release-token' } } }, 'binary')));
    expect(shape.message).toBe('publisher hub (docker): its credentials vault:publishers/github/release-token must be a JSON object {username, password} of strings');
    expect(() => publisherCredentials({ name: 'files', type: 'directory', config: {} }, 'x', 'env:X')).toThrow('publisher files (directory) takes no credentials; remove credentials from it in repo.cue');
  });

  it('docker: a registry with htpasswd takes the username and password from a mounted secret; a wrong password is refused without echoing it', async ({ skip }) => {
    if (!registry || 'unavailable' in registry) return skip(registryUnavailable ?? (registry && 'unavailable' in registry ? registry.unavailable : 'no registry'));
    const host = registry.registry.host;
    const result = await run(job({ hub: { type: 'docker', registry: host, credentials: { provider: 'file', path: 'registry/credentials.json' } } }, 'binary')) as ArtifactJobResult;
    expect(result.published_locations).toEqual([expect.objectContaining({ publisher: 'hub', uri: expect.stringContaining(`${host}/acme/lib/lib/bundle:v1.0.0@sha256:`) })]);
    const refused = await failure(run(job({ hub: { type: 'docker', registry: host, tag: 'other', credentials: { provider: 'file', path: 'registry/wrong.json' } } }, 'binary')));
    expect(refused.code).toBe('authentication_required');
    expect(JSON.stringify({ message: refused.message, details: refused.details })).not.toContain(registryPassword);
  }, 60_000);
});

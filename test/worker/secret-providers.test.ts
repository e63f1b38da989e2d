/**
 * The secret provider adapters: env and file on this machine, aws through the real AWS SDK client
 * against a local peer speaking Secrets Manager's JSON 1.1 protocol, vault against a KV v2 peer.
 * Every failure names the reference and never carries a value; a step's secrets become variables
 * and files (0600 in a 0700 dir that is removed afterwards).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForgeError, RetryableError } from '../../src/domain/errors.ts';
import type { SecretRef } from '../../src/domain/secrets.ts';
import type { SecretProvider } from '../../src/engine/ports.ts';
import { awsSecretProvider, createSecretProviders, envSecretProvider, fileSecretProvider, vaultSecretProvider } from '../../src/worker/secret-providers.ts';
import { SECRET_FILES_ENV, maskedError, resolveStepSecrets } from '../../src/worker/step-secrets.ts';
import { Masker } from '../../src/lib/masker.ts';
import { startAwsSecretsPeer, startVaultPeer, type SecretPeer } from '../helpers/secret-peers.ts';

const canary = (what: string) => `canary-${what}-${randomUUID()}`;

/** The ForgeError (or RetryableError) `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(() => undefined, (error: unknown) => error as Error);
  if (!outcome) throw new Error('expected a failure');
  return outcome;
}

async function forgeFailure(promise: Promise<unknown>): Promise<ForgeError> {
  const error = await failure(promise);
  expect(error).toBeInstanceOf(ForgeError);
  return error as ForgeError;
}

describe('env secret provider', () => {
  const value = canary('env');
  const provider = envSecretProvider({ NPM_TOKEN: value, JSON_SECRET: JSON.stringify({ user: 'bot', token: value }), FORGE_WORKER_TOKEN: 'worker-token' });

  it('reads a variable of the worker, or one key of a JSON variable', async () => {
    expect(await provider.resolve({ provider: 'env', path: 'NPM_TOKEN' })).toBe(value);
    expect(await provider.resolve({ provider: 'env', path: 'JSON_SECRET', key: 'token' })).toBe(value);
  });

  it('fails with not_found naming the variable when it is not set, and the keys (not values) when the key is missing', async () => {
    const unset = await forgeFailure(provider.resolve({ provider: 'env', path: 'NOPE' }));
    expect(unset.code).toBe('not_found');
    expect(unset.message).toBe('secret env:NOPE is not set: the worker has no environment variable NOPE');
    const key = await forgeFailure(provider.resolve({ provider: 'env', path: 'JSON_SECRET', key: 'password' }));
    expect(key.code).toBe('not_found');
    expect(key.message).toBe('secret env:JSON_SECRET#password has no key password; its keys: token, user');
    expect(key.message).not.toContain(value);
    const notJson = await forgeFailure(provider.resolve({ provider: 'env', path: 'NPM_TOKEN', key: 'token' }));
    expect(notJson.message).toMatch(/^secret env:NPM_TOKEN#token: key token was asked for but the secret is not a JSON object$/);
    expect(notJson.message).not.toContain(value);
  });

  it('never hands out the worker\'s own settings and credentials', async () => {
    const refused = await forgeFailure(provider.resolve({ provider: 'env', path: 'FORGE_WORKER_TOKEN' }));
    expect(refused.code).toBe('permission_denied');
    expect(refused.message).not.toContain('worker-token');
  });
});

describe('file secret provider', () => {
  let root: string;
  let outside: string;
  let provider: SecretProvider;
  const value = canary('file');
  const elsewhere = canary('outside');

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'forge-secrets-dir-'));
    outside = mkdtempSync(join(tmpdir(), 'forge-secrets-outside-'));
    writeFileSync(join(outside, 'token'), elsewhere);
    // A Kubernetes Secret volume: keys are symlinks to ..data/<key>, ..data to a timestamped dir.
    mkdirSync(join(root, 'npm', '..2026_01_01_00_00_00.000000001'), { recursive: true });
    writeFileSync(join(root, 'npm', '..2026_01_01_00_00_00.000000001', 'token'), value);
    writeFileSync(join(root, 'npm', '..2026_01_01_00_00_00.000000001', 'config.json'), JSON.stringify({ registry: 'https://npm.example.com', token: value }));
    symlinkSync('..2026_01_01_00_00_00.000000001', join(root, 'npm', '..data'));
    symlinkSync('..data/token', join(root, 'npm', 'token'));
    symlinkSync('..data/config.json', join(root, 'npm', 'config.json'));
    writeFileSync(join(root, 'multi-line'), `line one\n${value}\n`);
    // Links out of the dir: refused even though the path itself is plain.
    symlinkSync(join(outside, 'token'), join(root, 'escape'));
    symlinkSync(outside, join(root, 'escape-dir'));
    provider = fileSecretProvider(root);
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('reads a mounted Secret\'s key byte for byte, through Kubernetes\' ..data links, and JSON keys', async () => {
    expect(await provider.resolve({ provider: 'file', path: 'npm/token' })).toBe(value);
    expect(await provider.resolve({ provider: 'file', path: 'npm/config.json', key: 'token' })).toBe(value);
    expect(await provider.resolve({ provider: 'file', path: 'multi-line' })).toBe(`line one\n${value}\n`);
  });

  it('refuses paths that leave the secrets dir: .., absolute, and symlinks out', async () => {
    for (const path of ['../etc/passwd', '/etc/passwd', 'npm/../../x', '', 'npm//token']) {
      const error = await forgeFailure(provider.resolve({ provider: 'file', path }));
      expect(error.code, path).toBe('validation_error');
    }
    for (const path of ['escape', 'escape-dir/token']) {
      const error = await forgeFailure(provider.resolve({ provider: 'file', path }));
      expect(error.code, path).toBe('permission_denied');
      expect(error.message).toContain('leads out of the secrets dir');
      expect(error.message).not.toContain(elsewhere);
    }
  });

  it('a missing file or a directory is not_found naming the path', async () => {
    const missing = await forgeFailure(provider.resolve({ provider: 'file', path: 'npm/password' }));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toBe(`secret file:npm/password does not exist: no file npm/password in the worker's secrets dir ${root}`);
    const dir = await forgeFailure(provider.resolve({ provider: 'file', path: 'npm' }));
    expect(dir.code).toBe('not_found');
    expect(dir.message).toMatch(/^secret file:npm is a directory/);
  });
});

describe('aws secret provider: the AWS SDK against a Secrets Manager JSON 1.1 peer', () => {
  let peer: SecretPeer;
  let provider: ReturnType<typeof awsSecretProvider>;
  const current = canary('aws-current');
  const previous = canary('aws-previous');
  const json = JSON.stringify({ username: 'publisher', password: canary('aws-json') });
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, key: process.env.AWS_SECRET_ACCESS_KEY };

  beforeAll(async () => {
    // The SDK's default credential chain reads these (IRSA in a cluster).
    process.env.AWS_ACCESS_KEY_ID = 'AKIATESTPEER';
    process.env.AWS_SECRET_ACCESS_KEY = 'test-peer-secret';
    peer = await startAwsSecretsPeer({
      'ci/earthly-token': { v1: previous, v2: current },
      'publishers/docker/ecr-credentials': json,
      'ci/locked': 'x',
    }, { denied: ['ci/locked'] });
    provider = awsSecretProvider({ region: 'eu-central-1', endpoint: peer.url, maxAttempts: 1 });
  });

  afterAll(async () => {
    provider?.close();
    await peer?.close();
    process.env.AWS_ACCESS_KEY_ID = saved.id;
    process.env.AWS_SECRET_ACCESS_KEY = saved.key;
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    if (saved.key === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  });

  it('gets SecretString, a version stage or id, and a JSON key', async () => {
    expect(await provider.resolve({ provider: 'aws', path: 'ci/earthly-token' })).toBe(current);
    expect(await provider.resolve({ provider: 'aws', path: 'ci/earthly-token', version: 'AWSPREVIOUS' })).toBe(previous);
    expect(await provider.resolve({ provider: 'aws', path: 'ci/earthly-token', version: 'v1' })).toBe(previous);
    expect(await provider.resolve({ provider: 'aws', path: 'publishers/docker/ecr-credentials', key: 'username' })).toBe('publisher');
    expect(peer.asked).toContain('publishers/docker/ecr-credentials');
  });

  it('ResourceNotFoundException is not_found naming the secret id; AccessDeniedException is permission_denied', async () => {
    const missing = await forgeFailure(provider.resolve({ provider: 'aws', path: 'ci/nope', key: 'token' }));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toBe('secret aws:ci/nope#token does not exist in AWS Secrets Manager: Secrets Manager can\'t find the specified secret.');
    const locked = await forgeFailure(provider.resolve({ provider: 'aws', path: 'ci/locked' }));
    expect(locked.code).toBe('permission_denied');
    expect(locked.message).toMatch(/^secret aws:ci\/locked: AWS Secrets Manager refused this worker \(AccessDeniedException: User is not authorized/);
    const key = await forgeFailure(provider.resolve({ provider: 'aws', path: 'publishers/docker/ecr-credentials', key: 'token' }));
    expect(key.message).toBe('secret aws:publishers/docker/ecr-credentials#token has no key token; its keys: password, username');
    expect(key.message).not.toContain(json);
  });

  it('a reference without a region (none configured either) is refused before anything is sent; one with a region uses it', async () => {
    const noRegion = awsSecretProvider({ endpoint: peer.url, maxAttempts: 1 });
    try {
      const error = await forgeFailure(noRegion.resolve({ provider: 'aws', path: 'ci/earthly-token' }));
      expect(error.message).toMatch(/no AWS region; give the reference region: or set FORGE_AWS_SECRETS_REGION/);
      expect(await noRegion.resolve({ provider: 'aws', path: 'ci/earthly-token', region: 'us-west-2' })).toBe(current);
    } finally {
      noRegion.close();
    }
  });

  it('an unreachable endpoint is retryable, naming the reference', async () => {
    const down = awsSecretProvider({ region: 'us-east-1', endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    try {
      const error = await failure(down.resolve({ provider: 'aws', path: 'ci/earthly-token' }));
      expect(error).toBeInstanceOf(RetryableError);
      expect(error.message).toMatch(/^secret aws:ci\/earthly-token: AWS Secrets Manager did not answer/);
    } finally {
      down.close();
    }
  });
});

describe('vault secret provider: KV v2 over HTTP', () => {
  let peer: SecretPeer;
  let provider: SecretProvider;
  const token = canary('vault-token');
  const sshKey = canary('vault-ssh');
  const old = canary('vault-old');

  beforeAll(async () => {
    peer = await startVaultPeer(token, {
      'secret/ci/github': { ssh_key: sshKey, known_hosts: 'github.com ssh-ed25519 AAAA' },
      'secret/ci/single': { value: sshKey },
      'secret/ci/versioned': { 1: { value: old }, 2: { value: sshKey }, 3: null },
      'kv/team/token': { token: sshKey },
    });
    provider = vaultSecretProvider({ addr: `${peer.url}/`, token, mount: 'secret' });
  });

  afterAll(async () => {
    await peer?.close();
  });

  it('reads a field, the only field without key, a version, and another mount', async () => {
    expect(await provider.resolve({ provider: 'vault', path: 'ci/github', key: 'ssh_key' })).toBe(sshKey);
    expect(await provider.resolve({ provider: 'vault', path: 'ci/single' })).toBe(sshKey);
    expect(await provider.resolve({ provider: 'vault', path: 'ci/versioned', key: 'value', version: '1' })).toBe(old);
    expect(await provider.resolve({ provider: 'vault', path: 'team/token', key: 'token', mount: 'kv' })).toBe(sshKey);
    expect(peer.asked).toEqual(['secret/ci/github', 'secret/ci/single', 'secret/ci/versioned', 'kv/team/token']);
  });

  it('names the reference when the entry, the field or the version is missing, or several fields and no key', async () => {
    const cases: [SecretRef, string][] = [
      [{ provider: 'vault', path: 'ci/nope' }, `secret vault:ci/nope does not exist in Vault (${peer.url}, KV v2 mount secret)`],
      [{ provider: 'vault', path: 'ci/github', key: 'password' }, 'secret vault:ci/github#password has no key password; its keys: known_hosts, ssh_key'],
      [{ provider: 'vault', path: 'ci/github' }, 'secret vault:ci/github holds 2 fields (known_hosts, ssh_key); choose one with key'],
      [{ provider: 'vault', path: 'ci/versioned', key: 'value' }, 'secret vault:ci/versioned#value has no data in Vault (deleted or destroyed version?)'],
      [{ provider: 'vault', path: 'ci/versioned', key: 'value', version: '9' }, `secret vault:ci/versioned#value (version 9) does not exist in Vault (${peer.url}, KV v2 mount secret)`],
    ];
    for (const [ref, message] of cases) {
      const error = await forgeFailure(provider.resolve(ref));
      expect(error.code).toBe('not_found');
      expect(error.message).toBe(message);
      expect(error.message).not.toContain(sshKey);
    }
  });

  it('another token is permission_denied without echoing either token; an unreachable Vault is retryable', async () => {
    const wrong = vaultSecretProvider({ addr: peer.url, token: 'wrong-token', mount: 'secret' });
    const refused = await forgeFailure(wrong.resolve({ provider: 'vault', path: 'ci/single' }));
    expect(refused.code).toBe('permission_denied');
    expect(refused.message).toBe('secret vault:ci/single: Vault refused FORGE_VAULT_TOKEN (403: permission denied)');
    const down = vaultSecretProvider({ addr: 'http://127.0.0.1:1', token, mount: 'secret' });
    const error = await failure(down.resolve({ provider: 'vault', path: 'ci/single' }));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).not.toContain(token);
  });
});

describe('a step\'s secrets', () => {
  let root: string;
  let scratch: string;
  const npm = canary('npm');
  const key = `-----BEGIN KEY-----\n${canary('key')}\n-----END KEY-----\n`;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'forge-step-secrets-'));
    scratch = mkdtempSync(join(tmpdir(), 'forge-step-scratch-'));
    mkdirSync(join(root, 'ssh'));
    writeFileSync(join(root, 'ssh', 'id'), key);
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  const providers = () => createSecretProviders({ dir: root, aws: { region: undefined, endpoint: undefined }, vault: undefined }, { NPM_TOKEN: npm }).providers;

  it('become variables and files (0600 in a 0700 dir of their own, removed after)', async () => {
    const secrets = await resolveStepSecrets(providers(), [
      { provider: 'env', name: 'NPM_TOKEN', env: 'NODE_AUTH_TOKEN' },
      { provider: 'file', path: 'ssh/id', file: 'keys/id_ed25519' },
      { provider: 'env', name: 'NOT_SET', env: 'EXTRA', optional: true },
    ], { where: 'step s1: secrets', tmpRoot: scratch });
    expect(secrets.names).toEqual(['NODE_AUTH_TOKEN']);
    expect(secrets.env.NODE_AUTH_TOKEN).toBe(npm);
    expect(secrets.env.EXTRA).toBeUndefined();
    const dir = secrets.env[SECRET_FILES_ENV]!;
    expect(dir.startsWith(scratch)).toBe(true);
    expect(readFileSync(join(dir, 'keys', 'id_ed25519'), 'utf8')).toBe(key);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'keys', 'id_ed25519')).mode & 0o777).toBe(0o600);
    expect(secrets.values.sort()).toEqual([npm, key].sort());
    await secrets.remove();
    expect(existsSync(dir)).toBe(false);
  });

  it('fail naming the reference: missing, unconfigured provider, invalid configuration', async () => {
    const missing = await forgeFailure(resolveStepSecrets(providers(), [{ provider: 'file', path: 'ssh/id', file: 'id' }, { provider: 'file', path: 'ssh/nope', file: 'id2' }], { where: 'w', tmpRoot: scratch }));
    expect(missing.message).toMatch(/^secret file:ssh\/nope does not exist/);
    const vault = await forgeFailure(resolveStepSecrets(providers(), [{ provider: 'vault', path: 'ci/x', env: 'X' }], { where: 'w' }));
    expect(vault.message).toBe('secret vault:ci/x: this worker has no vault secret provider; set FORGE_VAULT_ADDR and FORGE_VAULT_TOKEN on the worker');
    const bad = await forgeFailure(resolveStepSecrets(providers(), [{ provider: 'env', name: 'NPM_TOKEN' }], { where: 'step s1: secrets' }));
    expect(bad.message).toBe('step s1: secrets[0]: say where env:NPM_TOKEN goes with env: "<VARIABLE>" or file: "<name>" (one of them)');
    // Nothing is written for a step that does not start.
    expect(readdirSync(scratch)).toEqual([]);
  });
});

describe('errors that quote a secret', () => {
  it('are masked, message and details, whatever their type', () => {
    const secret = canary('quoted');
    const masker = new Masker([secret]);
    const forge = maskedError(new ForgeError('authentication_required', `registry said: bad password ${secret}`, { body: `{"password":"${secret}"}` }), masker) as ForgeError;
    expect(forge).toBeInstanceOf(ForgeError);
    expect(forge.code).toBe('authentication_required');
    expect(forge.message).toBe('registry said: bad password ***');
    expect(forge.details).toEqual({ body: '{"password":"***"}' });
    const retry = maskedError(new RetryableError(`timeout for ${secret}`, 500), masker) as RetryableError;
    expect([retry instanceof RetryableError, retry.message, retry.retryAfterMs]).toEqual([true, 'timeout for ***', 500]);
    expect((maskedError(new Error(`x ${Buffer.from(secret).toString('base64')}`), masker) as Error).message).toBe('x ***');
    const clean = new ForgeError('not_found', 'nothing secret');
    expect(maskedError(clean, masker)).toBe(clean);
  });
});

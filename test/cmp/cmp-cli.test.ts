/**
 * `forge cmp discover|generate` as Argo CD runs it: the real CLI in a child process (and once
 * through deploy/argocd/catalyst-forge-cmp, the wrapper the ConfigManagementPlugin names), reading
 * release images from the embedded store (<data dir>/oci) and from a real docker-registry, with
 * the registry settings from the sidecar's environment or an Application's ARGOCD_ENV_*, Basic-auth
 * credentials, and the exit codes: 0 ok, 1 permanent (stderr `forge cmp: …` with check, ref and
 * retry lines), 2 usage, 75 transient.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openRegistries, type Registries } from '../../src/bin/registries.ts';
import { generate } from '../../src/cmp/generate.ts';
import { forge, type CliResult } from '../cli/cli-helpers.ts';
import { freePort, registryUnavailable, startBasicAuthRegistry, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { EXPECTED_ORDER, pushRelease, sha, writeAppFile, writePointer } from './cmp-fixtures.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Nothing from the parent's environment steers the plugin but `env`. */
const CLEAN = {
  FORGE_DATA_DIR: '', FORGE_RELEASE_REGISTRY: '', FORGE_REGISTRY_INSECURE: '', FORGE_REGISTRY_USERNAME: '', FORGE_REGISTRY_PASSWORD: '', FORGE_GITOPS_LAYOUT: '',
  ARGOCD_APP_SOURCE_PATH: '', ARGOCD_ENV_FORGE_RELEASE_REGISTRY: '', ARGOCD_ENV_FORGE_REGISTRY_INSECURE: '', ARGOCD_ENV_FORGE_REGISTRY_USERNAME: '', ARGOCD_ENV_FORGE_REGISTRY_PASSWORD: '', ARGOCD_ENV_FORGE_GITOPS_LAYOUT: '',
};
const cmp = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => forge(['cmp', ...args], { ...CLEAN, ...env });

const unusedSettings = { tracking: undefined, signingKey: undefined } as const;

let root: string;
let counter = 0;
const gitopsRoot = () => join(root, `gitops-${++counter}`);
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'forge-cmp-cli-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('forge cmp discover', () => {
  it('prints the pointer and exits 0 for a valid pointer; prints nothing on stdout and the reason on stderr, exit 1, otherwise', async () => {
    const dir = await writePointer(gitopsRoot(), { commit: sha(0x30) });
    expect(await cmp(['discover', '--dir', dir])).toEqual({ code: 0, stdout: `${join(dir, 'release.yaml')}\n`, stderr: '' });
    const bad = join(gitopsRoot(), 'bad');
    await writeAppFile(bad, 'release.yaml', 'apiVersion: forge.projectcatalyst.io/v1\nkind: ReleasePointer\nspec:\n  release: ABC\n');
    const refused = await cmp(['discover', '--dir', bad]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.split('\n')).toEqual([
      `forge cmp: release.yaml has spec.release "ABC": the full commit SHA, 40 lowercase hexadecimal characters (^[a-f0-9]{40}$)`,
      '  check: pointer.release',
      `  pointer: ${join(bad, 'release.yaml')}`,
      '  retry: no (permanent, exit 1): fix the release pointer or the release image',
      '',
    ]);
    expect(await cmp(['discover', '--dir', join(gitopsRoot(), 'none')])).toMatchObject({ code: 1, stdout: '', stderr: expect.stringMatching(/^forge cmp: no release\.yaml in /) });
  });

  it('runs through the catalyst-forge-cmp wrapper the plugin config names', async () => {
    const bin = join(root, 'bin');
    await run('mkdir', ['-p', bin]);
    await writeFile(join(bin, 'forge'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin', 'forge.mjs')}" "$@"\n`);
    await chmod(join(bin, 'forge'), 0o755);
    const dir = await writePointer(gitopsRoot(), { commit: sha(0x31) });
    const { stdout } = await run(join(ROOT, 'deploy', 'argocd', 'catalyst-forge-cmp'), ['discover'], { cwd: dir, env: { ...process.env, ...CLEAN, PATH: `${bin}:${process.env.PATH}` } });
    expect(stdout).toBe(`${join(dir, 'release.yaml')}\n`);
  });
});

describe('forge cmp generate on the embedded store', () => {
  let dataDir: string;
  let registries: Registries;
  beforeAll(async () => {
    dataDir = join(root, 'data');
    registries = openRegistries({ release: undefined, insecure: false, credentials: undefined, ...unusedSettings }, dataDir);
  });
  afterAll(async () => registries.close());

  it('prints what generate() gives, nothing on stderr, exit 0', async () => {
    const commit = sha(0x32);
    await pushRelease(registries.release, commit);
    const dir = await writePointer(gitopsRoot(), { commit });
    const result = await cmp(['generate', '--dir', dir], { FORGE_DATA_DIR: dataDir });
    expect(result).toEqual({ code: 0, stdout: (await generate(dir, registries.release)).output, stderr: '' });
    expect(result.stdout.match(/^---$/gm)).toHaveLength(EXPECTED_ORDER.length);
    // --data-dir and the path read by the layout (from ARGOCD_APP_SOURCE_PATH) work too.
    const bare = join(gitopsRoot(), 'checkout');
    await writeAppFile(bare, 'release.yaml', `apiVersion: forge.projectcatalyst.io/v1\nkind: ReleasePointer\nspec:\n  release: ${commit}\n`);
    expect(await cmp(['generate', '--dir', bare, '--data-dir', dataDir], { ARGOCD_APP_SOURCE_PATH: 'environments/dev/acme/monorepo/shop' })).toEqual({ code: 0, stdout: result.stdout, stderr: '' });
  });

  it('exits 1 with the image and the check on stderr when the image is missing; 2 for a bad setting', async () => {
    const commit = sha(0x33);
    const dir = await writePointer(gitopsRoot(), { commit });
    const missing = await cmp(['generate', '--dir', dir], { FORGE_DATA_DIR: dataDir });
    const ref = `forge.local/releases/acme/monorepo/shop:${commit}`;
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    const lines = missing.stderr.split('\n');
    expect(lines[0]).toBe(`forge cmp: release image ${ref} not found`);
    expect(lines).toContain('  check: image.pull');
    expect(lines).toContain(`  ref: ${ref}`);
    expect(lines).toContain('  retry: no (permanent, exit 1): fix the release pointer or the release image');

    const bad = await cmp(['generate', '--dir', dir], { FORGE_GITOPS_LAYOUT: '{environment}/release.yaml' });
    expect(bad).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/^forge cmp: setting FORGE_GITOPS_LAYOUT \(--layout\) = "\{environment\}\/release\.yaml": .*\n  check: settings\n/) });
    expect(await cmp(['generate', '--no-such-flag'])).toMatchObject({ code: 2 });
  });
});

describe('forge cmp generate on docker-registry', () => {
  let registry: TestRegistry;
  let auth: Awaited<ReturnType<typeof startBasicAuthRegistry>> | undefined;
  beforeAll(async () => {
    if (registryUnavailable) return;
    registry = await startRegistry();
    auth = await startBasicAuthRegistry('forge', 's3cret', 'forge-cmp-cli-htpasswd-');
  });
  afterAll(async () => {
    await registry?.stop();
    if (auth && 'stop' in auth) await auth.stop();
  });
  beforeEach((context) => {
    if (registryUnavailable) context.skip(registryUnavailable);
  });

  it('reads the registry from the sidecar\'s environment or the Application\'s ARGOCD_ENV_*', async () => {
    const address = `${registry.host}/releases`;
    const registries = openRegistries({ release: address, insecure: true, credentials: undefined, ...unusedSettings }, join(root, 'unused'));
    try {
      const commit = sha(0x34);
      await pushRelease(registries.release, commit);
      const dir = await writePointer(gitopsRoot(), { commit });
      await writeAppFile(dir, 'env.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: zz-env\n');
      const expected = (await generate(dir, registries.release)).output;
      expect(expected.endsWith('---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: zz-env\n')).toBe(true);
      expect(await cmp(['generate', '--dir', dir], { FORGE_RELEASE_REGISTRY: address, FORGE_REGISTRY_INSECURE: '1' })).toEqual({ code: 0, stdout: expected, stderr: '' });
      expect(await cmp(['generate', '--dir', dir], { ARGOCD_ENV_FORGE_RELEASE_REGISTRY: address, ARGOCD_ENV_FORGE_REGISTRY_INSECURE: 'true' })).toEqual({ code: 0, stdout: expected, stderr: '' });
      expect(await cmp(['generate', '--dir', dir, '--release-registry', address, '--registry-insecure', '1'])).toEqual({ code: 0, stdout: expected, stderr: '' });
    } finally {
      await registries.close();
    }
  });

  it('sends FORGE_REGISTRY_USERNAME/PASSWORD to a Basic-auth registry; without them exit 1', async (context) => {
    if (!auth || 'unavailable' in auth) return context.skip(auth?.unavailable ?? 'no registry');
    const address = `${auth.registry.host}/releases`;
    const registries = openRegistries({ release: address, insecure: true, credentials: { username: 'forge', password: 's3cret' }, ...unusedSettings }, join(root, 'unused'));
    try {
      const commit = sha(0x35);
      await pushRelease(registries.release, commit);
      const dir = await writePointer(gitopsRoot(), { commit });
      const env = { FORGE_RELEASE_REGISTRY: address, FORGE_REGISTRY_INSECURE: '1' };
      expect(await cmp(['generate', '--dir', dir], { ...env, FORGE_REGISTRY_USERNAME: 'forge', FORGE_REGISTRY_PASSWORD: 's3cret' }))
        .toEqual({ code: 0, stdout: (await generate(dir, registries.release)).output, stderr: '' });
      const refused = await cmp(['generate', '--dir', dir], env);
      expect(refused).toMatchObject({ code: 1, stdout: '' });
      expect(refused.stderr).toMatch(/^forge cmp: cannot read release image .*\n {2}check: image\.pull\n/);
      expect(refused.stderr).toMatch(/reason: .*401 Unauthorized.*\(authentication_required\)\n/);
    } finally {
      await registries.close();
    }
  });

  it('exits 75 (transient) when the registry does not answer, after the client\'s retries', async () => {
    const dir = await writePointer(gitopsRoot(), { commit: sha(0x36) });
    const port = await freePort();
    const result = await cmp(['generate', '--dir', dir], { FORGE_RELEASE_REGISTRY: `127.0.0.1:${port}/releases`, FORGE_REGISTRY_INSECURE: '1' });
    expect(result).toMatchObject({ code: 75, stdout: '' });
    expect(result.stderr).toMatch(/^forge cmp: cannot read release image 127\.0\.0\.1:\d+\/releases\/acme\/monorepo\/shop:/);
    expect(result.stderr).toContain('  retry: yes (transient, exit 75): Argo CD tries again on its next refresh\n');
  }, 90_000);
});

/**
 * `forge verify` as the real CLI (a child process) against images pushed and signed with the same
 * wiring Forge uses (openRegistries, signImage), in the embedded store (forge.local = <data dir>/oci)
 * and on a real docker-registry: a signed image verifies by tag, digest and tag@digest with the data
 * dir's key or a named one (exit 0); another key's signature, an unsigned image, a tag moved after
 * signing, a copied signature and a missing image fail with the reason (exit 1), as does a
 * registry that refuses to answer without credentials (and with them the image verifies);
 * malformed references and unusable keys are usage errors (exit 2).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KEYS_DIR, openRegistries, type Registries } from '../../src/bin/registries.ts';
import { EMBEDDED_REGISTRY } from '../../src/domain/registries.ts';
import type { OciStore } from '../../src/engine/ports.ts';
import { buildImage, pushImage } from '../../src/oci/image.ts';
import { loadSigningKey, signatureTag, signImage, SIGNING_KEY_FILE, SIGNING_PUBLIC_KEY_FILE, type SigningKey } from '../../src/oci/signing.ts';
import { forge, type CliResult } from '../cli/cli-helpers.ts';
import { registryUnavailable, startBasicAuthRegistry, startRegistry, type TestRegistry } from '../helpers/registry.ts';

interface Target {
  label: string;
  unavailable: string | undefined;
  /** The host references name, the CLI's extra environment, and how to stop what was started. */
  open(): Promise<{ host: string; env: Record<string, string>; stop(): Promise<void> }>;
}

const targets: Target[] = [
  { label: 'the embedded store', unavailable: undefined, open: async () => ({ host: EMBEDDED_REGISTRY, env: {}, stop: async () => undefined }) },
  {
    label: 'docker-registry',
    unavailable: registryUnavailable,
    open: async () => {
      const registry = await startRegistry();
      return { host: registry.host, env: { FORGE_REGISTRY_INSECURE: '1' }, stop: () => registry.stop() };
    },
  },
];

const newKeyPem = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** `forge verify …` with nothing from the parent's environment steering it but `env`. */
const verifyWith = (env: Record<string, string>) => (args: string[], extra: Record<string, string> = {}): Promise<CliResult> =>
  forge(['verify', ...args], { FORGE_VERIFY_KEY: '', FORGE_SIGNING_KEY: '', FORGE_REGISTRY_INSECURE: '', FORGE_REGISTRY_USERNAME: '', FORGE_REGISTRY_PASSWORD: '', ...env, ...extra });

/** A small image of one text layer, pushed as `repo:tag`; its digest. */
async function push(store: OciStore, repo: string, tag: string, text: string): Promise<string> {
  const image = buildImage({ created: '2024-01-01T00:00:00.000Z', layers: [{ mediaType: 'text/plain', content: Buffer.from(text) }] });
  return (await pushImage(store, repo, tag, image)).digest;
}

for (const target of targets) {
  describe(`forge verify on ${target.label}`, () => {
    let dir: string;
    let dataDir: string;
    let host: string;
    let env: Record<string, string>;
    let stop: () => Promise<void> = async () => undefined;
    let registries: Registries;
    let store: OciStore;
    let key: SigningKey;
    let other: SigningKey;
    /** Files of the other key: its private PEM and its public PEM. */
    let otherKeyFile: string;
    let otherPubFile: string;

    beforeAll(async () => {
      if (target.unavailable) return;
      dir = await mkdtemp(join(tmpdir(), 'forge-verify-'));
      dataDir = join(dir, 'data');
      const opened = await target.open();
      ({ host, env, stop } = opened);
      registries = openRegistries({ release: undefined, tracking: undefined, insecure: true, credentials: undefined, signingKey: undefined }, dataDir);
      store = registries.storeFor(host);
      // Made in <data dir>/keys, where `forge verify` finds it by default.
      key = await registries.signingKey();
      other = loadSigningKey(newKeyPem());
      otherKeyFile = join(dir, 'other.key');
      otherPubFile = join(dir, 'other.pub');
      await writeFile(otherKeyFile, other.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await writeFile(otherPubFile, other.publicKeyPem);
    });
    afterAll(async () => {
      if (target.unavailable) return;
      await registries.close();
      await stop();
      await rm(dir, { recursive: true, force: true });
    });
    beforeEach((context) => {
      if (target.unavailable) context.skip(target.unavailable);
    });

    const verify = (args: string[], extra: Record<string, string> = {}) => verifyWith({ FORGE_DATA_DIR: dataDir, ...env })(args, extra);

    const sign = (repo: string, digest: string, by: SigningKey = key) => signImage(store, repo, digest, by, { dockerReference: `${host}/${repo}` });

    it('verifies a signed image by tag, digest and tag@digest, with the data dir\'s key or a named one', async () => {
      const digest = await push(store, 'verify/app', 'v1', 'app v1');
      await sign('verify/app', digest);
      const keys = join(dataDir, KEYS_DIR);
      const [byTag, byDigest, both, privateHalf, signingKeySetting] = await Promise.all([
        verify([`${host}/verify/app:v1`]),
        verify(['--json', `${host}/verify/app@${digest}`]),
        verify([`${host}/verify/app:v1@${digest}`]),
        verify(['--key', join(keys, SIGNING_KEY_FILE), `${host}/verify/app:v1`]),
        verify([`${host}/verify/app:v1`], { FORGE_SIGNING_KEY: join(keys, SIGNING_KEY_FILE) }),
      ]);
      expect(byTag).toEqual({ code: 0, stdout: `verified ${host}/verify/app:v1@${digest} (key ${join(keys, SIGNING_PUBLIC_KEY_FILE)})\n`, stderr: '' });
      expect(byDigest.code).toBe(0);
      expect(JSON.parse(byDigest.stdout)).toEqual({
        reference: `${host}/verify/app@${digest}`,
        name: `${host}/verify/app`,
        digest,
        key: join(keys, SIGNING_PUBLIC_KEY_FILE),
        verified: true,
        signedAs: `${host}/verify/app`,
      });
      expect(both).toMatchObject({ code: 0, stdout: `verified ${host}/verify/app:v1@${digest} (key ${join(keys, SIGNING_PUBLIC_KEY_FILE)})\n` });
      expect(privateHalf).toMatchObject({ code: 0, stdout: `verified ${host}/verify/app:v1@${digest} (key ${join(keys, SIGNING_KEY_FILE)})\n` });
      expect(signingKeySetting).toMatchObject({ code: 0, stdout: `verified ${host}/verify/app:v1@${digest} (key ${join(keys, SIGNING_KEY_FILE)})\n` });
    });

    it('fails an image signed by another key (signature does not match) and verifies it with that key', async () => {
      const digest = await push(store, 'verify/other', 'v1', 'other v1');
      await sign('verify/other', digest, other);
      const [mine, json, theirs, theirPrivate] = await Promise.all([
        verify([`${host}/verify/other:v1`]),
        verify(['--json', `${host}/verify/other:v1`]),
        verify(['--key', otherPubFile, `${host}/verify/other:v1`]),
        verify([`${host}/verify/other:v1`], { FORGE_VERIFY_KEY: otherKeyFile }),
      ]);
      expect(mine.code).toBe(1);
      expect(mine.stdout).toBe('');
      expect(mine.stderr).toMatch(new RegExp(`^forge verify: ${host}/verify/other:v1: signature does not match: .*does not verify with the given public key`));
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ verified: false, digest, failure: 'signature_mismatch', reason: expect.stringContaining('does not verify') });
      expect(theirs).toMatchObject({ code: 0, stdout: `verified ${host}/verify/other:v1@${digest} (key ${otherPubFile})\n` });
      expect(theirPrivate).toMatchObject({ code: 0, stdout: `verified ${host}/verify/other:v1@${digest} (key ${otherKeyFile})\n` });
    });

    it('fails an unsigned image (not signed) and a missing one (not found)', async () => {
      const digest = await push(store, 'verify/unsigned', 'v1', 'unsigned v1');
      const [unsigned, json, missingTag, missingRepo] = await Promise.all([
        verify([`${host}/verify/unsigned:v1`]),
        verify(['--json', `${host}/verify/unsigned@${digest}`]),
        verify([`${host}/verify/unsigned:v2`]),
        verify([`${host}/verify/nothing-here@sha256:${'0'.repeat(64)}`]),
      ]);
      expect(unsigned.code).toBe(1);
      expect(unsigned.stderr).toContain(`forge verify: ${host}/verify/unsigned:v1: not signed: verify/unsigned@${digest} is not signed`);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ verified: false, digest, failure: 'not_signed' });
      expect(json.stderr).toContain('not signed');
      expect(missingTag.code).toBe(1);
      expect(missingTag.stderr).toMatch(new RegExp(`^forge verify: ${host}/verify/unsigned:v2: not found: no image ${host}/verify/unsigned:v2 in `));
      expect(missingRepo.code).toBe(1);
      expect(missingRepo.stderr).toContain(': not found: no image');
    });

    it('fails a tag moved to another manifest after signing, and an old signature copied to the new digest', async () => {
      const signed = await push(store, 'verify/moved', 'v1', 'moved v1');
      await sign('verify/moved', signed);
      const tampered = await push(store, 'verify/moved', 'v1', 'moved v1, changed');
      expect(tampered).not.toBe(signed);
      const [byTag, pinned, original] = await Promise.all([
        verify([`${host}/verify/moved:v1`]),
        verify(['--json', `${host}/verify/moved:v1@${signed}`]),
        verify([`${host}/verify/moved@${signed}`]),
      ]);
      expect(byTag.code).toBe(1);
      expect(byTag.stderr).toContain(`: not signed: verify/moved@${tampered} is not signed`);
      expect(pinned.code).toBe(1);
      expect(JSON.parse(pinned.stdout)).toMatchObject({ verified: false, digest: tampered, failure: 'digest_mismatch', reason: `${host}/verify/moved:v1 names ${tampered}, not ${signed}` });
      expect(pinned.stderr).toContain(`: digest mismatch: ${host}/verify/moved:v1 names ${tampered}, not ${signed}`);
      expect(original).toMatchObject({ code: 0, stdout: expect.stringContaining(`verified ${host}/verify/moved@${signed}`) });

      // The old signature manifest put where the new digest's signature would be: it signs the old digest.
      const oldSignature = await store.getManifest('verify/moved', signatureTag(signed));
      await store.pushManifest('verify/moved', signatureTag(tampered), oldSignature.bytes, oldSignature.mediaType);
      const copied = await verify([`${host}/verify/moved:v1`]);
      expect(copied.code).toBe(1);
      expect(copied.stderr).toContain(`: signature does not match: verify/moved@${tampered}: no valid signature: payload sha256:`);
      expect(copied.stderr).toContain(`signs ${signed}, not this image (${tampered})`);
    });
  });
}

describe('forge verify: usage errors', () => {
  let dir: string;
  let dataDir: string;
  const host = EMBEDDED_REGISTRY;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forge-verify-usage-'));
    // No key in it: every refusal below comes before a key (or an image) would be read.
    dataDir = join(dir, 'data');
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));
  const verify = (args: string[], extra: Record<string, string> = {}) => verifyWith({ FORGE_DATA_DIR: dataDir })(args, extra);

  it('refuses malformed references and unusable keys with exit 2', async () => {
    const rsaFile = join(dir, 'rsa.pem');
    await writeFile(rsaFile, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const garbageFile = join(dir, 'garbage.pem');
    await writeFile(garbageFile, 'not a key\n');
    const results = await Promise.all([
      verify([`docker://${host}/verify/app:v1`]),
      verify([`oci:${dataDir}/oci/verify/app:v1`]),
      verify(['verify/app:v1']),
      verify([`${host}/verify/app`]),
      verify([`${host}/Verify/App:v1`]),
      verify([`${host}/verify/app@sha256:abc`]),
      verify([]),
      verify([`${host}/verify/app:v1`], { FORGE_VERIFY_KEY: join(dir, 'no-such.pub') }),
      verify(['--key', rsaFile, `${host}/verify/app:v1`]),
      verify(['--key', garbageFile, `${host}/verify/app:v1`]),
      verify([`${host}/verify/app:v1`]),
      verify([`${host}/verify/app:v1`], { FORGE_REGISTRY_INSECURE: 'maybe' }),
    ]);
    expect(results.map((r) => r.code)).toEqual(results.map(() => 2));
    expect(results.every((r) => r.stdout === '')).toBe(true);
    const [scheme, ociScheme, noHost, noTag, upper, shortDigest, noRef, missingKey, rsa, garbage, noKey, badSetting] = results.map((r) => r.stderr);
    expect(scheme).toContain(`forge verify: invalid image reference "docker://${host}/verify/app:v1": "docker:" is a scheme, and a reference has none`);
    expect(scheme).toContain('accepted forms:\n    <host>[:port]/<repository>:<tag>\n    <host>[:port]/<repository>@sha256:<64 hex digits>');
    expect(ociScheme).toContain('"oci:" is a scheme');
    expect(noHost).toContain('it must start with a registry host');
    expect(noTag).toContain('it names no tag or digest');
    expect(upper).toContain('invalid OCI repository name "Verify/App"');
    expect(shortDigest).toContain('invalid digest "sha256:abc"');
    expect(noRef).toContain("missing required argument 'ref'");
    expect(missingKey).toContain(`the key ${join(dir, 'no-such.pub')} (FORGE_VERIFY_KEY, --key): no such file`);
    expect(rsa).toContain('is a rsa key; Forge signs with ECDSA P-256 keys only');
    expect(garbage).toContain('is not an unencrypted PEM public or private key');
    expect(noKey).toContain(`no key to verify with: ${join(dataDir, KEYS_DIR)} has neither signing.pub nor signing.key`);
    expect(badSetting).toContain('forge verify: setting FORGE_REGISTRY_INSECURE (--registry-insecure) = "maybe": must be true or false');
  });
});

describe.skipIf(registryUnavailable)('forge verify on a docker-registry with Basic auth', () => {
  let dir: string | undefined;
  let registry: TestRegistry | undefined;
  let unavailable: string | undefined;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const started = await startBasicAuthRegistry('forge', 's3cret', 'forge-verify-auth-');
    if ('unavailable' in started) {
      unavailable = started.unavailable;
      return;
    }
    ({ registry, stop } = started);
    dir = await mkdtemp(join(tmpdir(), 'forge-verify-data-'));
  });
  afterAll(async () => {
    await stop?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  beforeEach((context) => {
    if (unavailable) context.skip(unavailable);
  });

  it('fails without credentials (cannot verify, exit 1) and verifies with FORGE_REGISTRY_USERNAME/PASSWORD', async () => {
    const dataDir = join(dir!, 'data');
    const credentials = { username: 'forge', password: 's3cret' };
    const registries = openRegistries({ release: undefined, tracking: undefined, insecure: true, credentials, signingKey: undefined }, dataDir);
    try {
      const store = registries.storeFor(registry!.host);
      const digest = await push(store, 'verify/private', 'v1', 'private v1');
      await signImage(store, 'verify/private', digest, await registries.signingKey(), { dockerReference: `${registry!.host}/verify/private` });
    } finally {
      await registries.close();
    }
    const verify = verifyWith({ FORGE_DATA_DIR: dataDir, FORGE_REGISTRY_INSECURE: 'true' });
    const ref = `${registry!.host}/verify/private:v1`;
    const [anonymous, signedIn] = await Promise.all([
      verify([ref]),
      verify(['--registry-username', 'forge', ref], { FORGE_REGISTRY_PASSWORD: 's3cret' }),
    ]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain(`forge verify: cannot verify ${ref}: `);
    expect(anonymous.stderr).toContain('none are configured');
    expect(signedIn).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^verified ${ref}@sha256:[0-9a-f]{64} \\(key `)) });
  });
});

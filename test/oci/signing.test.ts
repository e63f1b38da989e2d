/**
 * Cosign-compatible signing and verification on both OciStore adapters: a signed release image
 * verifies; a changed image, an edited payload, a copied signature and another key's signature do
 * not, each with its reason; a signing failure is an error; keys are made 0600 and read back.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/oci/content.ts';
import { buildImage, canonicalJson } from '../../src/oci/image.ts';
import { MEDIA_TYPES } from '../../src/oci/manifest.ts';
import { pushReleaseImage } from '../../src/oci/release-image.ts';
import {
  COSIGN_SIGNATURE_TYPE, ensureSigningKey, loadSigningKey, SIGNATURE_ANNOTATION, signatureTag, signImage,
  SIMPLE_SIGNING_MEDIA_TYPE, type SigningKey, verifyImage,
} from '../../src/oci/signing.ts';
import { describeOnEachStore, type OpenedStore } from './image-stores.ts';
import { releaseInput } from './release-fixtures.ts';

const newKey = (curve = 'prime256v1') => generateKeyPairSync('ec', { namedCurve: curve }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

interface SigManifest {
  config: { mediaType: string };
  layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[];
}

describe('signing keys', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forge-keys-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('makes a P-256 key with mode 0600 once, and the same key after', async () => {
    const keys = join(dir, 'data', 'keys');
    const made = await Promise.all([1, 2, 3].map(() => ensureSigningKey(keys)));
    expect(made.filter((k) => k.created)).toHaveLength(1);
    expect(new Set(made.map((k) => k.publicKeyPem)).size).toBe(1);
    expect((await stat(join(keys, 'signing.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(keys, 'signing.pub'), 'utf8')).toBe(made[0]!.publicKeyPem);
    const again = await ensureSigningKey(keys);
    expect(again.created).toBe(false);
    expect(again.publicKeyPem).toBe(made[0]!.publicKeyPem);
  });

  it('refuses other curves, RSA, cosign-encrypted and garbage keys with the reason', () => {
    expect(() => loadSigningKey(newKey('secp384r1'), 'FORGE_SIGNING_KEY')).toThrow(/FORGE_SIGNING_KEY is a EC secp384r1 key: image signing needs an ECDSA P-256 key/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => loadSigningKey(rsa)).toThrow(/is a rsa key/);
    expect(() => loadSigningKey('-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n')).toThrow(/cosign-encrypted key/);
    expect(() => loadSigningKey('not a key')).toThrow(/not a readable unencrypted private key PEM/);
    // SEC1 "EC PRIVATE KEY" (openssl ecparam -genkey) is read as well
    const sec1 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString();
    expect(loadSigningKey(sec1).publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('names cosign signature tags sha256-<hex>.sig', () => {
    expect(signatureTag(`sha256:${'a'.repeat(64)}`)).toBe(`sha256-${'a'.repeat(64)}.sig`);
  });
});

describeOnEachStore('signing', (current) => {
  let key: SigningKey;
  let other: SigningKey;
  let n = 0;
  beforeAll(async () => {
    key = loadSigningKey(newKey());
    other = loadSigningKey(newKey());
  });
  let opened: OpenedStore;
  beforeEach(() => {
    opened = current();
  });

  /** A release image of its own project, signed by `key`. */
  async function signedRelease() {
    const registry = { store: opened.store, address: opened.address };
    const image = await pushReleaseImage(registry, releaseInput({ project: `p${++n}` }));
    const signed = await signImage(opened.store, image.repo, image.digest, key, { dockerReference: image.reference.replace(`:${image.tag}`, '') });
    return { image, signed };
  }

  it('signs as cosign does, and the image verifies by tag and by digest', async () => {
    const { image, signed } = await signedRelease();
    expect(signed.pushed).toBe(true);
    expect(signed.tag).toBe(signatureTag(image.digest));
    const sig = JSON.parse((await opened.store.getManifest(image.repo, signed.tag)).bytes.toString()) as SigManifest;
    expect(sig.config.mediaType).toBe(MEDIA_TYPES.ociConfig);
    expect(sig.layers).toHaveLength(1);
    expect(sig.layers[0]!.mediaType).toBe(SIMPLE_SIGNING_MEDIA_TYPE);
    expect(sig.layers[0]!.annotations[SIGNATURE_ANNOTATION]).toBe(signed.signature);
    const payload = JSON.parse((await opened.store.getBlob(image.repo, sig.layers[0]!.digest)).toString()) as Record<string, unknown>;
    expect(payload).toEqual({
      critical: { identity: { 'docker-reference': image.reference.replace(`:${image.tag}`, '') }, image: { 'docker-manifest-digest': image.digest }, type: COSIGN_SIGNATURE_TYPE },
      optional: null,
    });

    for (const reference of [image.tag, image.digest]) {
      const result = await verifyImage(opened.store, image.repo, reference, key.publicKeyPem);
      expect(result).toMatchObject({ verified: true, digest: image.digest });
    }
  });

  it('keeps its signature when signing again, adds one of another key', async () => {
    const { image, signed } = await signedRelease();
    const again = await signImage(opened.store, image.repo, image.digest, key, { dockerReference: 'x' + image.repo });
    expect(again.pushed).toBe(true); // another docker-reference is another payload
    const same = await signImage(opened.store, image.repo, image.digest, key, { dockerReference: 'x' + image.repo });
    expect(same.pushed).toBe(false);
    expect(same.signatureManifestDigest).toBe(again.signatureManifestDigest);
    await signImage(opened.store, image.repo, image.digest, other, { dockerReference: 'y' });
    const sig = JSON.parse((await opened.store.getManifest(image.repo, signed.tag)).bytes.toString()) as SigManifest;
    expect(sig.layers).toHaveLength(3);
    expect(await verifyImage(opened.store, image.repo, image.tag, other.publicKeyPem)).toMatchObject({ verified: true, dockerReference: 'y' });
  });

  it('fails an unsigned image and one signed by another key', async () => {
    const registry = { store: opened.store, address: opened.address };
    const unsigned = await pushReleaseImage(registry, releaseInput({ project: `p${++n}` }));
    const none = await verifyImage(opened.store, unsigned.repo, unsigned.tag, key.publicKeyPem);
    expect(none).toEqual({ verified: false, failure: 'not_signed', digest: unsigned.digest, reason: expect.stringContaining(`is not signed: no ${SIMPLE_SIGNING_MEDIA_TYPE} layer under ${unsigned.repo}:${signatureTag(unsigned.digest)}`) });

    const { image } = await signedRelease();
    const wrongKey = await verifyImage(opened.store, image.repo, image.tag, other.publicKeyPem);
    const signatureDigest = await opened.store.resolve(image.repo, signatureTag(image.digest));
    expect(wrongKey).toMatchObject({ verified: false, failure: 'signature_mismatch', signatureDigest, reason: expect.stringContaining('does not verify with the given public key') });
    expect(await verifyImage(opened.store, image.repo, image.tag, key.publicKeyPem)).toMatchObject({ verified: true, signatureDigest });
    expect(await verifyImage(opened.store, image.repo, 'missing', key.publicKeyPem)).toEqual({ verified: false, failure: 'not_found', reason: `no image ${image.repo}:missing` });
  });

  it('fails a changed image: the tag moved to other bytes, even with the old signature copied beside it', async () => {
    const { image, signed } = await signedRelease();
    const changed = await pushReleaseImage({ store: opened.store, address: opened.address }, {
      ...releaseInput({ project: image.repo.split('/').at(-1)! }),
      resources: { 'api.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: evil}\n' },
    });
    expect(changed.tag).toBe(image.tag);
    expect(changed.digest).not.toBe(image.digest);
    const moved = await verifyImage(opened.store, image.repo, image.tag, key.publicKeyPem);
    expect(moved).toMatchObject({ verified: false, failure: 'not_signed', digest: changed.digest, reason: expect.stringContaining('is not signed') });
    // Pinned to the signed digest, the moved tag is a digest mismatch.
    expect(await verifyImage(opened.store, image.repo, image.tag, key.publicKeyPem, { digest: image.digest })).toMatchObject({
      verified: false, failure: 'digest_mismatch', digest: changed.digest, reason: `${image.repo}:${image.tag} is ${changed.digest}, not ${image.digest}`,
    });

    // copy the old image's signature manifest to the new digest's signature tag
    const oldSig = await opened.store.getManifest(image.repo, signed.tag);
    await opened.store.pushManifest(image.repo, signatureTag(changed.digest), oldSig.bytes, oldSig.mediaType);
    const copied = await verifyImage(opened.store, image.repo, image.tag, key.publicKeyPem);
    expect(copied).toMatchObject({ verified: false, reason: expect.stringContaining(`signs ${image.digest}, not this image (${changed.digest})`) });
    // the original is still verifiable by digest
    expect(await verifyImage(opened.store, image.repo, image.digest, key.publicKeyPem)).toMatchObject({ verified: true });
  });

  it('fails an edited payload that keeps the old signature', async () => {
    const { image, signed } = await signedRelease();
    const edited = canonicalJson({
      critical: { identity: { 'docker-reference': 'evil.example/app' }, image: { 'docker-manifest-digest': image.digest }, type: COSIGN_SIGNATURE_TYPE },
      optional: null,
    });
    const forged = buildImage({ created: '0001-01-01T00:00:00Z', layers: [{ mediaType: SIMPLE_SIGNING_MEDIA_TYPE, content: edited, annotations: { [SIGNATURE_ANNOTATION]: signed.signature } }] });
    for (const blob of forged.blobs) await opened.store.pushBlob(image.repo, blob.content);
    await opened.store.pushManifest(image.repo, signed.tag, forged.manifest, MEDIA_TYPES.ociManifest);
    const result = await verifyImage(opened.store, image.repo, image.tag, key.publicKeyPem);
    expect(result).toMatchObject({ verified: false, reason: expect.stringContaining(`the signature on payload ${sha256Digest(edited)} does not verify`) });
  });

  it('fails signing an image that is not there, with the image named', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    await expect(signImage(opened.store, 'releases/none', missing, key, { dockerReference: 'x' }))
      .rejects.toMatchObject({ code: 'not_found', message: expect.stringMatching(new RegExp(`^signing releases/none@${missing} failed: `)) });
    await expect(signImage(opened.store, 'releases/none', 'sha256:zz', key, { dockerReference: 'x' }))
      .rejects.toMatchObject({ code: 'validation_error' });
  });
});

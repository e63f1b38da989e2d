/**
 * Cosign-compatible image signatures ("simple signing", as `cosign sign --key` stores them without a
 * transparency log): for an image `<repo>@sha256:<hex>` the payload
 *   {"critical":{"identity":{"docker-reference":"<registry>/<repo>"},
 *                "image":{"docker-manifest-digest":"sha256:<hex>"},
 *                "type":"cosign container image signature"},"optional":{…}}
 * is a layer of type `application/vnd.dev.cosign.simplesigning.v1+json` annotated
 * `dev.cosignproject.cosign/signature` = base64 of an ECDSA P-256 SHA-256 signature (ASN.1 DER) of
 * the payload's bytes, in an OCI image manifest tagged `sha256-<hex>.sig` in the same repository.
 * `cosign verify --key <public PEM> --insecure-ignore-tlog` accepts these.
 *
 * Keys are PEM (PKCS#8 or SEC1 "EC PRIVATE KEY"); cosign's own encrypted key files are not read.
 * Signing an image again with the same key keeps the signature it already has; a signature by
 * another key is added as another layer (cosign does the same). Two signers of one image at the same
 * moment can lose one of the layers (the .sig tag is read, extended and rewritten).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ForgeError, invalid, isForgeError } from '../domain/errors.ts';
import type { OciStore } from '../engine/ports.ts';
import { sha256Digest } from './content.ts';
import { buildImage, canonicalJson, type ImageLayer, pushImage } from './image.ts';
import { MEDIA_TYPES } from './manifest.ts';
import { checkDigest, parseReference } from './reference.ts';

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';
/** cosign writes this time into signature images; so do we, so they are alike. */
const SIGNATURE_IMAGE_CREATED = '0001-01-01T00:00:00Z';

export interface SigningKey {
  privateKey: KeyObject;
  /** SPKI PEM: what `cosign verify --key` and `verifyImage` take. */
  publicKeyPem: string;
}

/** Undefined for an ECDSA P-256 key; else what the key is instead (`rsa`, `EC secp384r1`). */
function notP256(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return undefined;
  return key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown curve'}` : key.asymmetricKeyType ?? 'unknown';
}

/** Reads a private key PEM; anything but an unencrypted ECDSA P-256 key is a validation_error naming `source`. */
export function loadSigningKey(pem: string | Buffer, source = 'the signing key'): SigningKey {
  const text = pem.toString();
  if (text.includes('ENCRYPTED SIGSTORE PRIVATE KEY') || text.includes('ENCRYPTED COSIGN PRIVATE KEY')) {
    throw invalid(`${source} is a cosign-encrypted key, which Forge does not read: give an unencrypted PKCS#8 PEM ECDSA P-256 key`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(text);
  } catch (error) {
    throw invalid(`${source} is not a readable unencrypted private key PEM: ${(error as Error).message}`);
  }
  const actual = notP256(privateKey);
  if (actual) {
    throw invalid(`${source} is a ${actual} key: image signing needs an ECDSA P-256 key (openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt)`, { keyType: actual });
  }
  return { privateKey, publicKeyPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString() };
}

export const SIGNING_KEY_FILE = 'signing.key';
export const SIGNING_PUBLIC_KEY_FILE = 'signing.pub';

/** The public key of a PEM public or private key; anything but ECDSA P-256 is a validation_error naming `source`. */
function loadPublicKey(pem: string | Buffer, source: string): KeyObject {
  let key: KeyObject;
  try {
    // A private key PEM gives its public half.
    key = createPublicKey(pem);
  } catch (error) {
    throw invalid(`${source} is not an unencrypted PEM public or private key: ${(error as Error).message}`);
  }
  const actual = notP256(key);
  if (actual) throw invalid(`${source} is a ${actual} key; Forge signs with ECDSA P-256 keys only`, { keyType: actual });
  return key;
}

export interface VerifyKey {
  /** The file the key was read from. */
  path: string;
  publicKey: KeyObject;
}

/**
 * The key signatures must verify with: the public half of `named.file` when a file is named, else of
 * `<dir>/signing.pub`, else of `<dir>/signing.key`; undefined when the directory has neither. Never
 * generates one (a key made now would verify nothing), and needs no private key when signing.pub is
 * there. A named file that is missing, and any file that cannot be read or is not a P-256 key, is a
 * validation_error (`named.source` says which setting named it).
 */
export async function findVerifyKey(named: { file: string; source: string } | undefined, dir: string): Promise<VerifyKey | undefined> {
  const read = (path: string) => readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw invalid(`cannot read the key ${path}: ${error.message}`);
  });
  if (named) {
    const pem = await read(named.file);
    if (pem === undefined) throw invalid(`${named.source}: no such file`);
    return { path: named.file, publicKey: loadPublicKey(pem, named.source) };
  }
  for (const name of [SIGNING_PUBLIC_KEY_FILE, SIGNING_KEY_FILE]) {
    const path = join(dir, name);
    const pem = await read(path);
    if (pem !== undefined) return { path, publicKey: loadPublicKey(pem, `the key ${path}`) };
  }
  return undefined;
}

const unlessItExists = (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EEXIST') throw error;
};

/**
 * The key at `<dir>/signing.key`, made first when there is none (PKCS#8 PEM, mode 0600; the public
 * key beside it as `signing.pub`). Several processes starting at once end up with the same key.
 */
export async function ensureSigningKey(dir: string): Promise<SigningKey & { path: string; created: boolean }> {
  const path = join(dir, SIGNING_KEY_FILE);
  const read = async () => readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  let pem = await read();
  let created = false;
  if (pem === undefined) {
    await mkdir(dir, { recursive: true });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const candidate = `${path}.${process.pid}.${randomUUID()}.tmp`;
    try {
      const file = await open(candidate, 'wx', 0o600);
      try {
        await file.writeFile(privateKey.export({ type: 'pkcs8', format: 'pem' }));
        await file.sync();
      } finally {
        await file.close();
      }
      // Linked into place complete: no process reads a half-written key, and the first one wins.
      created = await link(candidate, path).then(() => true, (error: NodeJS.ErrnoException) => {
        unlessItExists(error);
        return false;
      });
    } finally {
      await unlink(candidate).catch(() => undefined);
    }
    pem = await read();
    if (pem === undefined) throw new Error(`signing key ${path} vanished while it was being created`);
  }
  const key = loadSigningKey(pem, `signing key ${path}`);
  if (created) {
    const pub = await open(join(dir, SIGNING_PUBLIC_KEY_FILE), 'w', 0o644);
    try {
      await pub.writeFile(key.publicKeyPem);
    } finally {
      await pub.close();
    }
  }
  return { ...key, path, created };
}

/** The tag cosign stores the signatures of `digest` under. */
export function signatureTag(digest: string): string {
  return `${checkDigest(digest).replace(':', '-')}.sig`;
}

export interface SimpleSigningPayload {
  critical: {
    identity: { 'docker-reference': string };
    image: { 'docker-manifest-digest': string };
    type: string;
  };
  optional: Record<string, unknown> | null;
}

export function signingPayload(dockerReference: string, digest: string, optional?: Record<string, string>): Buffer {
  const payload: SimpleSigningPayload = {
    critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': checkDigest(digest) }, type: COSIGN_SIGNATURE_TYPE },
    optional: optional && Object.keys(optional).length > 0 ? optional : null,
  };
  return canonicalJson(payload);
}

export interface Signed {
  /** The signed image's digest. */
  digest: string;
  /** `sha256-<hex>.sig` and the digest of that manifest. */
  tag: string;
  signatureManifestDigest: string;
  payloadDigest: string;
  /** Base64 DER ECDSA signature. */
  signature: string;
  /** False when the image already carried a valid signature of this key and nothing was written. */
  pushed: boolean;
}

interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function layersOf(bytes: Buffer): LayerDescriptor[] {
  const parsed = JSON.parse(bytes.toString('utf8')) as { layers?: unknown };
  return Array.isArray(parsed.layers) ? (parsed.layers as LayerDescriptor[]) : [];
}

/** The signature manifest under `tag` (its digest and layers), or undefined when there is none. */
async function signatureManifest(store: OciStore, repo: string, tag: string): Promise<{ digest: string; layers: LayerDescriptor[] } | undefined> {
  try {
    const manifest = await store.getManifest(repo, tag, [MEDIA_TYPES.ociManifest]);
    return { digest: manifest.digest, layers: layersOf(manifest.bytes) };
  } catch (error) {
    if (isForgeError(error) && error.code === 'not_found') return undefined;
    throw error;
  }
}

const verifies = (payload: Uint8Array, signature: string, publicKey: KeyObject) => {
  try {
    return verify('sha256', payload, publicKey, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
};

/**
 * Signs the image `repo@digest` (which must be stored) as `dockerReference` (`<registry>/<repo>`).
 * Any failure is thrown as a ForgeError saying which image could not be signed, with the store's
 * error code kept (a release whose signature fails fails).
 */
export async function signImage(store: OciStore, repo: string, digest: string, key: SigningKey, options: { dockerReference: string; optional?: Record<string, string> }): Promise<Signed> {
  try {
    checkDigest(digest);
    // The image itself must exist: a signature of nothing would verify for whatever is pushed later.
    await store.getManifest(repo, digest);
    const tag = signatureTag(digest);
    const payload = signingPayload(options.dockerReference, digest, options.optional);
    const payloadDigest = sha256Digest(payload);
    const publicKey = createPublicKey(key.publicKeyPem);
    const current = await signatureManifest(store, repo, tag);
    const existing = current?.layers ?? [];
    const mine = existing.find((layer) => layer.mediaType === SIMPLE_SIGNING_MEDIA_TYPE && layer.digest === payloadDigest
      && verifies(payload, layer.annotations?.[SIGNATURE_ANNOTATION] ?? '', publicKey));
    if (mine && current) {
      return { digest, tag, signatureManifestDigest: current.digest, payloadDigest, signature: mine.annotations![SIGNATURE_ANNOTATION]!, pushed: false };
    }
    const signature = sign('sha256', payload, key.privateKey).toString('base64');
    const layers: ImageLayer[] = await Promise.all(existing.map(async (layer) => ({
      mediaType: layer.mediaType,
      content: await store.getBlob(repo, layer.digest),
      ...(layer.annotations ? { annotations: layer.annotations } : {}),
    })));
    layers.push({ mediaType: SIMPLE_SIGNING_MEDIA_TYPE, content: payload, annotations: { [SIGNATURE_ANNOTATION]: signature } });
    const image = buildImage({ created: SIGNATURE_IMAGE_CREATED, layers });
    const pushed = await pushImage(store, repo, tag, image);
    return { digest, tag, signatureManifestDigest: pushed.digest, payloadDigest, signature, pushed: true };
  } catch (error) {
    const reason = (error as Error).message;
    throw new ForgeError(isForgeError(error) ? error.code : 'internal_error', `signing ${repo}@${digest} failed: ${reason}`, { repository: repo, digest }, { cause: error });
  }
}

/**
 * Why an image does not verify: there is no such image (`not_found`), it is not the digest the caller
 * pinned (`digest_mismatch`), it has no signature layer at all (`not_signed`), or none of its
 * signatures is a valid one of this key for this digest (`signature_mismatch`: another key, a payload
 * for another digest, a changed payload).
 */
export const VERIFY_FAILURES = ['not_found', 'not_signed', 'signature_mismatch', 'digest_mismatch'] as const;
export type VerifyFailure = (typeof VERIFY_FAILURES)[number];

export type VerifyResult =
  /** `signatureDigest`: of the signature manifest (the `sha256-<hex>.sig` tag) that holds the valid signature. */
  | { verified: true; digest: string; dockerReference: string; payload: SimpleSigningPayload; signatureDigest: string }
  | { verified: false; failure: 'not_found'; digest?: undefined; reason: string }
  /** `digest`: of the manifest found. */
  | { verified: false; failure: 'digest_mismatch' | 'not_signed'; digest: string; reason: string }
  /** `signatureDigest`: of the signature manifest whose signatures do not verify. */
  | { verified: false; failure: 'signature_mismatch'; digest: string; reason: string; signatureDigest: string };

/**
 * Checks that the image `reference` (a tag or digest) in `repo` carries a signature by `publicKey`
 * whose payload names exactly this image's digest; with `options.digest`, the image must also be that
 * digest (a tag that moved on is a `digest_mismatch`). Unverifiable images are a result with the
 * failure and its reason; store failures (network, auth, corrupt content) are thrown.
 */
export async function verifyImage(store: OciStore, repo: string, reference: string, publicKey: string | Buffer | KeyObject, options: { digest?: string } = {}): Promise<VerifyResult> {
  const key = typeof publicKey === 'string' || Buffer.isBuffer(publicKey) ? createPublicKey(publicKey) : publicKey;
  parseReference(reference);
  let manifest;
  try {
    manifest = await store.getManifest(repo, reference);
  } catch (error) {
    if (isForgeError(error) && error.code === 'not_found') return { verified: false, failure: 'not_found', reason: `no image ${repo}:${reference}` };
    throw error;
  }
  // The digest of the bytes we got, not what the registry says they are.
  const digest = sha256Digest(manifest.bytes);
  if (options.digest !== undefined && digest !== options.digest) {
    return { verified: false, failure: 'digest_mismatch', digest, reason: `${repo}${reference.includes(':') ? '@' : ':'}${reference} is ${digest}, not ${options.digest}` };
  }
  const tag = signatureTag(digest);
  const signatures = await signatureManifest(store, repo, tag);
  const layers = (signatures?.layers ?? []).filter((layer) => layer.mediaType === SIMPLE_SIGNING_MEDIA_TYPE);
  if (!signatures || layers.length === 0) {
    return { verified: false, failure: 'not_signed', digest, reason: `${repo}@${digest} is not signed: no ${SIMPLE_SIGNING_MEDIA_TYPE} layer under ${repo}:${tag}` };
  }
  const reasons: string[] = [];
  for (const layer of layers) {
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (!signature) {
      reasons.push(`layer ${layer.digest} has no ${SIGNATURE_ANNOTATION} annotation`);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await store.getBlob(repo, layer.digest);
    } catch (error) {
      if (isForgeError(error) && (error.code === 'not_found' || error.code === 'validation_error')) {
        reasons.push(`payload ${layer.digest} cannot be read: ${error.message}`);
        continue;
      }
      throw error;
    }
    let payload: SimpleSigningPayload;
    try {
      payload = JSON.parse(bytes.toString('utf8')) as SimpleSigningPayload;
    } catch {
      reasons.push(`payload ${layer.digest} is not JSON`);
      continue;
    }
    const signed = payload.critical?.image?.['docker-manifest-digest'];
    if (payload.critical?.type !== COSIGN_SIGNATURE_TYPE) {
      reasons.push(`payload ${layer.digest} is not a cosign container image signature (type ${JSON.stringify(payload.critical?.type)})`);
    } else if (signed !== digest) {
      reasons.push(`payload ${layer.digest} signs ${String(signed)}, not this image (${digest})`);
    } else if (!verifies(bytes, signature, key)) {
      reasons.push(`the signature on payload ${layer.digest} does not verify with the given public key (signed by another key, or the payload was changed)`);
    } else {
      return { verified: true, digest, dockerReference: payload.critical.identity?.['docker-reference'] ?? '', payload, signatureDigest: signatures.digest };
    }
  }
  return { verified: false, failure: 'signature_mismatch', digest, signatureDigest: signatures.digest, reason: `${repo}@${digest}: no valid signature: ${reasons.join('; ')}` };
}

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

function checkP256(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const actual = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown curve'}` : key.asymmetricKeyType ?? 'unknown';
    throw invalid(`${what} is a ${actual} key: image signing needs an ECDSA P-256 key (openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt)`, { keyType: actual });
  }
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
  checkP256(privateKey, source);
  return { privateKey, publicKeyPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString() };
}

export const SIGNING_KEY_FILE = 'signing.key';
export const SIGNING_PUBLIC_KEY_FILE = 'signing.pub';

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

async function existingSignatures(store: OciStore, repo: string, tag: string): Promise<LayerDescriptor[]> {
  try {
    return layersOf((await store.getManifest(repo, tag, [MEDIA_TYPES.ociManifest])).bytes);
  } catch (error) {
    if (isForgeError(error) && error.code === 'not_found') return [];
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
    const existing = await existingSignatures(store, repo, tag);
    const mine = existing.find((layer) => layer.mediaType === SIMPLE_SIGNING_MEDIA_TYPE && layer.digest === payloadDigest
      && verifies(payload, layer.annotations?.[SIGNATURE_ANNOTATION] ?? '', publicKey));
    if (mine) {
      const manifest = await store.getManifest(repo, tag, [MEDIA_TYPES.ociManifest]);
      return { digest, tag, signatureManifestDigest: manifest.digest, payloadDigest, signature: mine.annotations![SIGNATURE_ANNOTATION]!, pushed: false };
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

export type VerifyResult =
  | { verified: true; digest: string; dockerReference: string; payload: SimpleSigningPayload }
  | { verified: false; digest?: string; reason: string };

/**
 * Checks that the image `reference` (a tag or digest) in `repo` carries a signature by `publicKey`
 * whose payload names exactly this image's digest. Unverifiable images are a result with the reason
 * (no signature, a payload for another digest, a signature that does not verify); store failures
 * (network, auth) are thrown.
 */
export async function verifyImage(store: OciStore, repo: string, reference: string, publicKey: string | Buffer | KeyObject): Promise<VerifyResult> {
  const key = typeof publicKey === 'string' || Buffer.isBuffer(publicKey) ? createPublicKey(publicKey) : publicKey;
  parseReference(reference);
  let manifest;
  try {
    manifest = await store.getManifest(repo, reference);
  } catch (error) {
    if (isForgeError(error) && error.code === 'not_found') return { verified: false, reason: `no image ${repo}:${reference}` };
    throw error;
  }
  // The digest of the bytes we got, not what the registry says they are.
  const digest = sha256Digest(manifest.bytes);
  const tag = signatureTag(digest);
  const layers = (await existingSignatures(store, repo, tag)).filter((layer) => layer.mediaType === SIMPLE_SIGNING_MEDIA_TYPE);
  if (layers.length === 0) return { verified: false, digest, reason: `${repo}@${digest} is not signed: no ${SIMPLE_SIGNING_MEDIA_TYPE} layer under ${repo}:${tag}` };
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
      return { verified: true, digest, dockerReference: payload.critical.identity?.['docker-reference'] ?? '', payload };
    }
  }
  return { verified: false, digest, reason: `${repo}@${digest}: no valid signature: ${reasons.join('; ')}` };
}

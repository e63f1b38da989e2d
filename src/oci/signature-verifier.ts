/**
 * The SignatureVerifier port (src/engine/ports.ts) over OCI stores: an artifact's tracking image is
 * read from its registry and checked with verifyImage, the check `forge verify` makes.
 *
 * One image, in order:
 *   the URI is not an image reference, names a host not given in `hosts`     → unavailable
 *   the URI's digest is not the digest the release recorded                   → invalid
 *   no public key yet, the key or the registry cannot be read, no such image  → unavailable
 *   the image found is not the recorded digest                                → invalid
 *   no signature layer                                                        → unsigned
 *   signatures, none valid for this key and digest                            → invalid
 *   a valid signature                                                         → verified
 * Only hosts in `hosts` are read: a release's URIs are whatever its creator sent, and the server must
 * not be made to call (with its registry credentials) any host a URI names.
 *
 * Kept in memory: verified results by host/repo@digest (bounded, least recently used dropped first),
 * because a digest's status only moves from unsigned to verified; and, for a few seconds, a host that
 * did not answer (network error, timeout, 5xx after the client's retries), so one dead registry costs
 * one wait per request, not one per artifact.
 */
import { isForgeError } from '../domain/errors.ts';
import type { BackoffPolicy } from '../domain/jobs.ts';
import type { OciStore, SignatureCheck, SignatureVerifier } from '../engine/ports.ts';
import { assertNever } from '../lib/assert-never.ts';
import { Lru } from '../lib/lru.ts';
import { parseImageReference, type ImageReference } from './reference.ts';
import { verifyImage, type VerifyKey } from './signing.ts';

export interface SignatureVerifierOptions {
  /** The store of a registry host (`forge.local` = the embedded layout store). */
  storeFor(host: string): OciStore;
  /** The registry hosts that may be read: the tracking registry's. */
  hosts: readonly string[];
  /** The platform's signing public key; undefined while there is none. */
  verifyKey(): Promise<VerifyKey | undefined>;
}

/** Verified images kept. */
const VERIFIED_KEPT = 10_000;
/** How long a host that did not answer is answered for without asking it again. */
const DOWN_MS = 5_000;

/**
 * Registry client timing for a process that reads signatures to answer a request: a registry that
 * does not answer costs seconds, not the release workers' 30 s × 5 attempts.
 */
export const SIGNATURE_READ_TIMING: { timeoutMs: number; backoff: BackoffPolicy } = {
  timeoutMs: 5_000,
  backoff: { baseMs: 200, maxMs: 1_000, jitterMs: 100, maxAttempts: 2 },
};

const unavailable = (reason: string): SignatureCheck => ({ status: 'unavailable', signature_digest: null, reason });

export function createSignatureVerifier(options: SignatureVerifierOptions): SignatureVerifier {
  const verified = new Lru<string, SignatureCheck>(VERIFIED_KEPT);
  const hosts = new Set(options.hosts);
  const down = new Map<string, { until: number; message: string }>();

  async function check(ref: ImageReference, pinned: string | undefined, uri: string): Promise<SignatureCheck> {
    const image = pinned === undefined ? ref.name : `${ref.host}/${ref.repo}@${pinned}`;
    const key = await options.verifyKey();
    if (!key) return unavailable('the server has no signing public key to verify with yet (FORGE_SIGNING_KEY, or signing.pub / signing.key in <data dir>/keys)');
    const result = await verifyImage(options.storeFor(ref.host), ref.repo, pinned ?? ref.reference, key.publicKey, pinned === undefined ? {} : { digest: pinned });
    if (result.verified) return { status: 'verified', signature_digest: result.signatureDigest, reason: null };
    const failure = result.failure;
    switch (failure) {
      case 'not_found':
        return unavailable(`no image ${image} in ${ref.host}`);
      case 'not_signed':
        return { status: 'unsigned', signature_digest: null, reason: result.reason };
      case 'digest_mismatch':
        return { status: 'invalid', signature_digest: null, reason: `${uri}: ${result.reason}` };
      case 'signature_mismatch':
        return { status: 'invalid', signature_digest: result.signatureDigest, reason: result.reason };
      default:
        return assertNever(failure, 'verify failure');
    }
  }

  return {
    async verify(trackingUri, digest) {
      let ref: ImageReference;
      try {
        ref = parseImageReference(trackingUri);
      } catch (error) {
        if (!isForgeError(error)) throw error;
        return unavailable(`tracking_oci_uri ${JSON.stringify(trackingUri)} is not an image reference: ${error.message}`);
      }
      if (!hosts.has(ref.host)) {
        return unavailable(`${ref.host} is not this server's tracking registry (${[...hosts].join(', ')}), so ${trackingUri} is not read`);
      }
      if (digest !== null && ref.digest !== undefined && ref.digest !== digest) {
        return { status: 'invalid', signature_digest: null, reason: `the release records tracking digest ${digest}, but its tracking_oci_uri names ${ref.digest}` };
      }
      const pinned = digest ?? ref.digest;
      // A tag can move, so only a digest's result is kept.
      const kept = pinned === undefined ? undefined : `${ref.host}/${ref.repo}@${pinned}`;
      const known = kept === undefined ? undefined : verified.get(kept);
      if (known) return known;
      const outage = down.get(ref.host);
      if (outage && outage.until > Date.now()) return unavailable(`not asked: ${ref.host} did not answer a moment ago (${outage.message})`);
      try {
        const result = await check(ref, pinned, trackingUri);
        if (result.status === 'verified' && kept !== undefined) verified.set(kept, result);
        return result;
      } catch (error) {
        const message = (error as Error).message;
        if (isForgeError(error) && error.code === 'service_unavailable') down.set(ref.host, { until: Date.now() + DOWN_MS, message });
        return unavailable(`cannot read ${trackingUri}: ${message}`);
      }
    },
  };
}

/**
 * The signature status of a release's artifacts (beyond the seed): each artifact's tracking image is
 * checked with the context's SignatureVerifier when asked. Nothing is written: a status is read from
 * the registry, never stored (the verifier may keep verified digests in memory).
 */
import { ForgeError } from '../domain/errors.ts';
import { Semaphore } from '../lib/semaphore.ts';
import type { EngineContext } from './context.ts';
import type { SignatureCheck } from './ports.ts';
import { resolveRelease } from './releases.ts';

/** Tracking images checked at once for one request (a release holds at most 50 artifacts). */
const CHECKS_AT_ONCE = 8;

export interface ArtifactSignature extends SignatureCheck {
  artifact_id: string;
  artifact_name: string;
  tracking_oci_uri: string;
  tracking_oci_digest: string | null;
}

export interface ReleaseSignatures {
  release_id: string;
  release_number: number;
  /** One per artifact, by artifact name. */
  signatures: ArtifactSignature[];
}

/** The release `ref` resolves to (as GET /v1/releases/{repo}/{project}/{ref} does) with its artifacts' signature status. */
export async function getReleaseSignatures(ctx: EngineContext, repository: string, project: string, ref: string): Promise<ReleaseSignatures> {
  const verifier = ctx.signatures;
  if (!verifier) {
    throw new ForgeError('service_unavailable', 'signature verification is not configured on this server (no signature verifier with the tracking registry and the signing public key)');
  }
  const release = await resolveRelease(ctx, repository, project, ref);
  const turns = new Semaphore(CHECKS_AT_ONCE);
  const signatures = await Promise.all(release.artifacts.map((artifact) => turns.run(async (): Promise<ArtifactSignature> => ({
    artifact_id: artifact.id,
    artifact_name: artifact.artifact_name,
    tracking_oci_uri: artifact.tracking_oci_uri,
    tracking_oci_digest: artifact.tracking_oci_digest,
    ...(await verifier.verify(artifact.tracking_oci_uri, artifact.tracking_oci_digest)),
  }))));
  return { release_id: release.id, release_number: release.release_number, signatures };
}

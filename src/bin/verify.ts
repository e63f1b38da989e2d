/**
 * `forge verify <ref>`: does the image a reference names carry a cosign signature (as Forge writes
 * them, src/oci/signing.ts) by the given public key? The reference names its registry host, so one
 * command serves the embedded store (`forge.local/…` = <data dir>/oci) and any registry (plain HTTP
 * with FORGE_REGISTRY_INSECURE, credentials from FORGE_REGISTRY_USERNAME/PASSWORD).
 *
 * Outcomes: a report (verified, or why not: not found, not signed, signature does not match, digest
 * mismatch); a CliError with exit code EXIT.usage for a bad reference or key, EXIT.api when the
 * store cannot be read (unreachable, refused, corrupt content).
 */
import { join } from 'node:path';
import { CliError, EXIT, usageError } from '../cli/client.ts';
import { isForgeError } from '../domain/errors.ts';
import { EMBEDDED_REGISTRY } from '../domain/registries.ts';
import { parseImageReference as parseReference, type ImageReference } from '../oci/reference.ts';
import { findVerifyKey, SIGNING_KEY_FILE, SIGNING_PUBLIC_KEY_FILE, verifyImage, type VerifyFailure, type VerifyKey } from '../oci/signing.ts';
import { VERIFY_SETTINGS, type VerifySettings } from '../settings/settings.ts';
import { KEYS_DIR, OCI_LAYOUT_DIR, openRegistries } from './registries.ts';

export const ACCEPTED_REFERENCES = [
  '<host>[:port]/<repository>:<tag>',
  '<host>[:port]/<repository>@sha256:<64 hex digits>',
  '<host>[:port]/<repository>:<tag>@sha256:<64 hex digits>  (the tag must still name that digest)',
  `no scheme (not docker://, oci:…); host ${EMBEDDED_REGISTRY} is the embedded store in the data dir`,
];

/** Forge's rules for a reference (src/oci/reference.ts); a refusal is a usage error listing the accepted forms. */
export function parseImageReference(text: string): ImageReference {
  try {
    return parseReference(text);
  } catch (error) {
    if (isForgeError(error)) {
      throw usageError(`invalid image reference ${JSON.stringify(text)}: ${error.message}`, ['accepted forms:', ...ACCEPTED_REFERENCES.map((form) => `  ${form}`)]);
    }
    throw error;
  }
}

/**
 * The key named by FORGE_VERIFY_KEY or FORGE_SIGNING_KEY, else the data dir's (signing.pub, else
 * signing.key beside it). Never generates one: a key made now would verify nothing.
 */
export async function loadVerifyKey(settings: VerifySettings): Promise<VerifyKey> {
  const dir = join(settings.dataDir, KEYS_DIR);
  let found: VerifyKey | undefined;
  try {
    const named = settings.key && { file: settings.key.file, source: `the key ${settings.key.file} (${settings.key.setting.env}, ${settings.key.setting.flag})` };
    found = await findVerifyKey(named, dir);
  } catch (error) {
    if (isForgeError(error)) throw usageError(error.message);
    throw error;
  }
  if (found) return found;
  const { key, signingKey, dataDir } = VERIFY_SETTINGS;
  throw usageError(`no key to verify with: ${dir} has neither ${SIGNING_PUBLIC_KEY_FILE} nor ${SIGNING_KEY_FILE}`, [
    `pass ${key.flag} <file> (${key.env}), set ${signingKey.env}, or point ${dataDir.env} (${dataDir.flag}) at the data dir of the Forge that signed`,
  ]);
}

/** How each failure reads on the command line. */
export const FAILURE_LABELS: Record<VerifyFailure, string> = {
  not_found: 'not found',
  not_signed: 'not signed',
  signature_mismatch: 'signature does not match',
  digest_mismatch: 'digest mismatch',
};

interface ReportBase {
  /** As given. */
  reference: string;
  /** host/repo[:tag]. */
  name: string;
  /** The key file the signature was checked with. */
  key: string;
}

export type VerifyReport = ReportBase & (
  /** `signedAs`: the docker-reference in the signature's payload (where the image was signed). */
  | { verified: true; digest: string; signedAs: string }
  /** `digest`: of the manifest the reference names (absent when there is none). */
  | { verified: false; digest: string | undefined; failure: VerifyFailure; reason: string }
);

export async function verifyReference(text: string, settings: VerifySettings): Promise<VerifyReport> {
  const ref = parseImageReference(text);
  const key = await loadVerifyKey(settings);
  const registries = openRegistries(settings.registries, settings.dataDir);
  try {
    // Asked by tag when there is one, so a tag that moved on from `digest` is a digest mismatch.
    const result = await verifyImage(registries.storeFor(ref.host), ref.repo, ref.reference, key.publicKey, ref.digest === undefined ? {} : { digest: ref.digest });
    const report = { reference: text, name: ref.name, key: key.path };
    if (result.verified) return { ...report, verified: true, digest: result.digest, signedAs: result.dockerReference };
    switch (result.failure) {
      case 'not_found':
        return { ...report, verified: false, digest: undefined, failure: 'not_found', reason: `no image ${text} in ${ref.host === EMBEDDED_REGISTRY ? `the embedded store ${join(settings.dataDir, OCI_LAYOUT_DIR)}` : ref.host}` };
      case 'digest_mismatch':
        return { ...report, verified: false, digest: result.digest, failure: 'digest_mismatch', reason: `${ref.name} names ${result.digest}, not ${ref.digest}` };
      default:
        return { ...report, verified: false, digest: result.digest, failure: result.failure, reason: result.reason };
    }
  } catch (error) {
    throw new CliError(EXIT.api, `cannot verify ${text}: ${(error as Error).message}`, [], { cause: error });
  } finally {
    await registries.close();
  }
}

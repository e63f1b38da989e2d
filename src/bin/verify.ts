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
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError, EXIT, usageError } from '../cli/client.ts';
import { isForgeError } from '../domain/errors.ts';
import { EMBEDDED_REGISTRY, REGISTRY_ADDRESS } from '../domain/registries.ts';
import { checkDigest, checkRepository, checkTag } from '../oci/reference.ts';
import { SIGNING_KEY_FILE, SIGNING_PUBLIC_KEY_FILE, verifyImage } from '../oci/signing.ts';
import { VERIFY_SETTINGS, type VerifySettings } from '../settings/settings.ts';
import { KEYS_DIR, OCI_LAYOUT_DIR, openRegistries } from './registries.ts';

export const ACCEPTED_REFERENCES = [
  '<host>[:port]/<repository>:<tag>',
  '<host>[:port]/<repository>@sha256:<64 hex digits>',
  '<host>[:port]/<repository>:<tag>@sha256:<64 hex digits>  (the tag must still name that digest)',
  `no scheme (not docker://, oci:…); host ${EMBEDDED_REGISTRY} is the embedded store in the data dir`,
];

export interface ImageReference {
  host: string;
  repo: string;
  tag: string | undefined;
  digest: string | undefined;
  /** What the store is asked for: the tag, else the digest. */
  reference: string;
  /** host/repo[:tag]: the image's name without the digest. */
  name: string;
}

/** `docker://…`, `oci:/dir`, `https://…`; not `localhost:5000/…` (a port is digits, then `/`). */
const SCHEME = /^[a-z][a-z0-9+.-]*:(?!\d+\/)/i;

const badReference = (text: string, why: string) => usageError(`invalid image reference ${JSON.stringify(text)}: ${why}`, ['accepted forms:', ...ACCEPTED_REFERENCES.map((form) => `  ${form}`)]);

export function parseImageReference(text: string): ImageReference {
  if (SCHEME.test(text)) throw badReference(text, `"${text.slice(0, text.indexOf(':') + 1)}" is a scheme, and a reference has none`);
  const slash = text.indexOf('/');
  const host = slash === -1 ? text : text.slice(0, slash);
  // Docker's rule: the first component is a registry host when it has a "." or ":" or is localhost.
  if (slash === -1 || !REGISTRY_ADDRESS.test(host) || !(host.includes('.') || host.includes(':') || host === 'localhost')) {
    throw badReference(text, `it must start with a registry host (e.g. ${EMBEDDED_REGISTRY}/ or 127.0.0.1:5000/)`);
  }
  const at = text.indexOf('@', slash);
  const named = at === -1 ? text.slice(slash + 1) : text.slice(slash + 1, at);
  const colon = named.lastIndexOf(':');
  const repo = colon === -1 ? named : named.slice(0, colon);
  const tag = colon === -1 ? undefined : named.slice(colon + 1);
  const digest = at === -1 ? undefined : text.slice(at + 1);
  const reference = tag ?? digest;
  if (reference === undefined) throw badReference(text, 'it names no tag or digest (Forge does not assume "latest")');
  try {
    checkRepository(repo);
    if (tag !== undefined) checkTag(tag);
    if (digest !== undefined) checkDigest(digest);
  } catch (error) {
    if (isForgeError(error)) throw badReference(text, error.message);
    throw error;
  }
  return { host, repo, tag, digest, reference, name: `${host}/${repo}${tag === undefined ? '' : `:${tag}`}` };
}

export interface VerifyKey {
  /** The file the key was read from. */
  path: string;
  publicKey: KeyObject;
}

function publicKeyOf(pem: Buffer, source: string): KeyObject {
  let key: KeyObject;
  try {
    // A private key PEM gives its public half.
    key = createPublicKey(pem);
  } catch (error) {
    throw usageError(`${source} is not an unencrypted PEM public or private key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const actual = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown curve'}` : key.asymmetricKeyType ?? 'unknown';
    throw usageError(`${source} is a ${actual} key; Forge signs with ECDSA P-256 keys only`);
  }
  return key;
}

const readIfExists = (path: string) => readFile(path).catch((error: NodeJS.ErrnoException) => {
  if (error.code === 'ENOENT') return undefined;
  throw usageError(`cannot read the key ${path}: ${error.message}`);
});

/**
 * The key named by FORGE_VERIFY_KEY or FORGE_SIGNING_KEY, else the data dir's (signing.pub, else
 * signing.key beside it). Never generates one: a key made now would verify nothing.
 */
export async function loadVerifyKey(settings: VerifySettings): Promise<VerifyKey> {
  if (settings.key) {
    const { file, setting } = settings.key;
    const source = `the key ${file} (${setting.env}, ${setting.flag})`;
    const pem = await readIfExists(file);
    if (pem === undefined) throw usageError(`${source}: no such file`);
    return { path: file, publicKey: publicKeyOf(pem, source) };
  }
  const dir = join(settings.dataDir, KEYS_DIR);
  for (const name of [SIGNING_PUBLIC_KEY_FILE, SIGNING_KEY_FILE]) {
    const path = join(dir, name);
    const pem = await readIfExists(path);
    if (pem !== undefined) return { path, publicKey: publicKeyOf(pem, `the key ${path}`) };
  }
  const { key, signingKey, dataDir } = VERIFY_SETTINGS;
  throw usageError(`no key to verify with: ${dir} has neither ${SIGNING_PUBLIC_KEY_FILE} nor ${SIGNING_KEY_FILE}`, [
    `pass ${key.flag} <file> (${key.env}), set ${signingKey.env}, or point ${dataDir.env} (${dataDir.flag}) at the data dir of the Forge that signed`,
  ]);
}

export const VERIFY_FAILURES = ['not_found', 'not_signed', 'signature_mismatch', 'digest_mismatch'] as const;
export type VerifyFailure = (typeof VERIFY_FAILURES)[number];

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
    const result = await verifyImage(registries.storeFor(ref.host), ref.repo, ref.reference, key.publicKey);
    const report = { reference: text, name: ref.name, key: key.path };
    if (result.digest === undefined) {
      return { ...report, verified: false, digest: undefined, failure: 'not_found', reason: `no image ${text} in ${ref.host === EMBEDDED_REGISTRY ? `the embedded store ${join(settings.dataDir, OCI_LAYOUT_DIR)}` : ref.host}` };
    }
    // The tag of `repo:tag@digest` moved on (verifyImage hashes what it got, so this also holds a
    // store to the digest asked for).
    if (ref.digest !== undefined && result.digest !== ref.digest) {
      return { ...report, verified: false, digest: result.digest, failure: 'digest_mismatch', reason: `${ref.name} names ${result.digest}, not ${ref.digest}` };
    }
    if (result.verified) return { ...report, verified: true, digest: result.digest, signedAs: result.dockerReference };
    // verifyImage says "is not signed" when there is no signature layer at all; any other reason
    // is a signature that is there and does not fit (another key, another digest, changed payload).
    return { ...report, verified: false, digest: result.digest, failure: / is not signed: /.test(result.reason) ? 'not_signed' : 'signature_mismatch', reason: result.reason };
  } catch (error) {
    throw new CliError(EXIT.api, `cannot verify ${text}: ${(error as Error).message}`, [], { cause: error });
  } finally {
    await registries.close();
  }
}

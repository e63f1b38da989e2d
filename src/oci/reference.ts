/**
 * Names in the OCI distribution spec, checked the same way by every OciStore adapter so that a name
 * that works embedded also works on a registry: repository names, tags, digests, manifest media
 * types. Every refusal is a validation_error whose message states the rule.
 */
import { invalid } from '../domain/errors.ts';
import { EMBEDDED_REGISTRY, REGISTRY_ADDRESS } from '../domain/registries.ts';

/** One path component: lowercase alphanumerics joined by one ".", one or two "_", or any number of "-". */
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
/** Clients commonly cap registry host + "/" + name at 255; the name alone may not be longer. */
const MAX_REPOSITORY_LENGTH = 255;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;

export const REPOSITORY_RULE =
  'an OCI repository name is "/"-separated components of lowercase letters and digits, each starting and ending with one, joined inside by a single ".", a single or double "_", or any number of "-" (e.g. "forge/monorepo/api"); at most 255 characters';
export const TAG_RULE = 'a tag is 1-128 letters, digits, "_", "." and "-", not starting with "." or "-"';
export const DIGEST_RULE = 'a digest is "sha256:" followed by 64 lowercase hexadecimal characters (the only algorithm Forge stores)';

const quote = (value: string) => JSON.stringify(value.length > 300 ? `${value.slice(0, 300)}…` : value);

export function checkRepository(repo: string): string {
  if (repo.length > MAX_REPOSITORY_LENGTH || !REPOSITORY.test(repo)) {
    throw invalid(`invalid OCI repository name ${quote(repo)}: ${REPOSITORY_RULE}`, { repository: repo, rule: REPOSITORY_RULE });
  }
  return repo;
}

export function checkTag(tag: string): string {
  if (!TAG.test(tag)) throw invalid(`invalid OCI tag ${quote(tag)}: ${TAG_RULE}`, { tag, rule: TAG_RULE });
  return tag;
}

export function checkDigest(digest: string): string {
  if (!SHA256.test(digest)) throw invalid(`invalid digest ${quote(digest)}: ${DIGEST_RULE}`, { digest, rule: DIGEST_RULE });
  return digest;
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/** A manifest reference: a digest when it holds a ":" (tags cannot), else a tag. */
export function parseReference(reference: string): Reference {
  if (reference.includes(':')) {
    if (!SHA256.test(reference)) {
      throw invalid(`invalid OCI reference ${quote(reference)}: a reference with ":" is a digest, and ${DIGEST_RULE}`, { reference, rule: DIGEST_RULE });
    }
    return { kind: 'digest', digest: reference };
  }
  if (!TAG.test(reference)) {
    throw invalid(`invalid OCI reference ${quote(reference)}: a reference is a tag or a digest, and ${TAG_RULE}`, { reference, rule: TAG_RULE });
  }
  return { kind: 'tag', tag: reference };
}

/** A full image reference, as `docker pull` and `cosign verify` take one: host/repository[:tag][@digest]. */
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

/**
 * Parses `<host>[:port]/<repository>[:<tag>][@sha256:<hex>]`. A reference without a registry host
 * (Docker's rule: the first component has a "." or ":" or is localhost), with a scheme, or naming no
 * tag and no digest is a validation_error saying why (`details.reference`: the text).
 */
export function parseImageReference(text: string): ImageReference {
  const refuse = (why: string) => invalid(why, { reference: text });
  if (SCHEME.test(text)) throw refuse(`"${text.slice(0, text.indexOf(':') + 1)}" is a scheme, and a reference has none`);
  const slash = text.indexOf('/');
  const host = slash === -1 ? text : text.slice(0, slash);
  if (slash === -1 || !REGISTRY_ADDRESS.test(host) || !(host.includes('.') || host.includes(':') || host === 'localhost')) {
    throw refuse(`it must start with a registry host (e.g. ${EMBEDDED_REGISTRY}/ or 127.0.0.1:5000/)`);
  }
  const at = text.indexOf('@', slash);
  const named = at === -1 ? text.slice(slash + 1) : text.slice(slash + 1, at);
  const colon = named.lastIndexOf(':');
  const repo = colon === -1 ? named : named.slice(0, colon);
  const tag = colon === -1 ? undefined : named.slice(colon + 1);
  const digest = at === -1 ? undefined : text.slice(at + 1);
  const reference = tag ?? digest;
  if (reference === undefined) throw refuse('it names no tag or digest (Forge does not assume "latest")');
  checkRepository(repo);
  if (tag !== undefined) checkTag(tag);
  if (digest !== undefined) checkDigest(digest);
  return { host, repo, tag, digest, reference, name: `${host}/${repo}${tag === undefined ? '' : `:${tag}`}` };
}

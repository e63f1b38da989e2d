/**
 * Names in the OCI distribution spec, checked the same way by every OciStore adapter so that a name
 * that works embedded also works on a registry: repository names, tags, digests, manifest media
 * types. Every refusal is a validation_error whose message states the rule.
 */
import { invalid } from '../domain/errors.ts';

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

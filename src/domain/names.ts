/**
 * Names that reach paths, OCI references, git refs or URLs. One documented character set each
 * (README "Names"); the same patterns feed the API's JSON schemas and the engine's checks, so a bad
 * name is a 422 before anything is written. None admits `..`, NUL, a leading `/` or control characters.
 */
import { invalid } from './errors.ts';

/** A git ref-like name: branch, tag, alias. Letters, digits, `.`, `_`, `/`, `+`, `-`; no `..`, `//`,
 * no component starting with `.` or `-`, no trailing `/` or `.lock`. */
const REF_LIKE = String.raw`(?!/)(?!.*\.\.)(?!.*//)(?!.*/$)(?!.*\.lock$)(?!(?:.*/)?[.-])[A-Za-z0-9._/+-]`;

export const NAME_PATTERNS = {
  /** GitHub `owner/name`: owner 1–39 of [A-Za-z0-9-] starting alphanumeric; name 1–100 of [A-Za-z0-9._-]. */
  repository: String.raw`^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.)[A-Za-z0-9._-]{1,100}$`,
  /** A DNS label (projects become Kubernetes namespaces and OCI path components). */
  project: String.raw`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`,
  environment: String.raw`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`,
  branch: String.raw`^${REF_LIKE}{1,255}$`,
  tag: String.raw`^${REF_LIKE}{1,255}$`,
  alias: String.raw`^${REF_LIKE}{1,128}$`,
  /** A full commit SHA (SHA-1, or SHA-256 object format). */
  commitSha: String.raw`^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`,
  /** A SHA prefix for release lookups. */
  shaPrefix: String.raw`^[0-9a-fA-F]{4,64}$`,
  /** An actor / free identifier: printable, no control characters. */
  actor: String.raw`^[^\u0000-\u001f\u007f]{1,255}$`,
  uuid: String.raw`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`,
} as const;

export type NameKind = keyof typeof NAME_PATTERNS;

const compiled = Object.fromEntries(
  Object.entries(NAME_PATTERNS).map(([kind, pattern]) => [kind, new RegExp(pattern, 'u')]),
) as Record<NameKind, RegExp>;

export const NAME_RULES: Record<NameKind, string> = {
  repository: 'owner/name: owner of letters, digits and "-" (1-39, starting alphanumeric); name of letters, digits, ".", "_", "-" (1-100); no ".."',
  project: 'a DNS label: lowercase letters, digits and "-", 1-63, starting and ending alphanumeric',
  environment: 'a DNS label: lowercase letters, digits and "-", 1-63, starting and ending alphanumeric',
  branch: 'letters, digits, ".", "_", "/", "+", "-" (1-255); no "..", "//", trailing "/" or ".lock", no part starting with "." or "-"',
  tag: 'letters, digits, ".", "_", "/", "+", "-" (1-255); no "..", "//", trailing "/" or ".lock", no part starting with "." or "-"',
  alias: 'letters, digits, ".", "_", "/", "+", "-" (1-128); no "..", "//", trailing "/", no part starting with "." or "-"',
  commitSha: 'a full commit SHA: 40 (or 64) hexadecimal characters',
  shaPrefix: '4 to 64 hexadecimal characters',
  actor: '1-255 printable characters',
  uuid: 'a UUID',
};

export function isValidName(kind: NameKind, value: string): boolean {
  return compiled[kind].test(value);
}

/** Throws a validation_error naming the field, the value and what is allowed. */
export function checkName(kind: NameKind, field: string, value: string): string {
  if (!isValidName(kind, value)) {
    throw invalid(`invalid ${field}: ${JSON.stringify(value.slice(0, 300))}`, { field, allowed: NAME_RULES[kind] });
  }
  return value;
}

export function normaliseSha(sha: string): string {
  return sha.toLowerCase();
}

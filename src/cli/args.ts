/**
 * Local checks of argument shapes, as commander argument parsers: a repository that is not
 * owner/name, a short commit SHA or a bad number is a usage error before any request is sent.
 * The rules are the API's own (domain/names.ts), so what passes here passes there.
 */
import { InvalidArgumentError } from 'commander';
import { NAME_RULES, isValidName, type NameKind } from '../domain/names.ts';
import { ARTIFACT_TYPES, type ArtifactType } from '../domain/statuses.ts';

export function name(kind: NameKind, example: string): (value: string) => string {
  return (value) => {
    if (!isValidName(kind, value)) throw new InvalidArgumentError(`expected ${NAME_RULES[kind]} (e.g. ${example})`);
    return value;
  };
}

export const repository = name('repository', 'acme/shop');
export const project = name('project', 'api');
export const environment = name('environment', 'production');
export const branch = name('branch', 'main');
export const tag = name('tag', 'api/v1.2.0');
export const alias = name('alias', 'canary');
export const commitSha = name('commitSha', '0123456789abcdef0123456789abcdef01234567');
export const uuid = name('uuid', '4f9c2a3e-8d1b-4c6f-9a7e-2b5d8c1f0e3a');
/** A release reference: alias, release number or commit SHA prefix (the API tries them in that order). */
export const releaseRef = (value: string) => {
  if (!isValidName('alias', value)) throw new InvalidArgumentError('expected an alias, a release number or a commit SHA prefix (e.g. 42, v1.2.0, 3f2a9c1)');
  return value;
};

export function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** Seconds, fractions allowed (`0.5`), as milliseconds. */
export function seconds(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+(?:\.\d+)?$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected seconds from ${min} to ${max} (e.g. 1 or 0.5)`);
    return Math.round(n * 1000);
  };
}

export const limit = integer(1, 500);
export const offset = integer(0, 1_000_000_000);

/** For options that may be given several times: `--alias a --alias b`. */
export function repeatable<T>(parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)];
}

export interface ArtifactSpec {
  name: string;
  type: ArtifactType;
  tracking_oci_uri: string;
  primary_published_uri: string;
}

/** Where a URI starts: `scheme://`, or `host/` / `host:port/` (a host is not all digits, so a port is not one). */
const URI_START = /^(?:[a-z][a-z0-9+.-]*:\/\/|(?!\d+[/:])[^\s:/@]+(?::\d+)?\/)/i;

/**
 * `name:type:trackingUri:publishedUri`. URIs hold colons of their own (schemes, ports, tags,
 * digests), so the published URI starts at the first colon that is followed by the start of a
 * URI (`scheme://`, `host/`, `host:port/`); with no such colon, the remainder must hold exactly one.
 */
export function artifact(value: string): ArtifactSpec {
  const [artifactName = '', type = '', ...rest] = value.split(':');
  const uris = rest.join(':');
  const usage = 'expected name:type:trackingUri:publishedUri (e.g. api-server:container:registry.local/tracking/api-server:sha-3f2a9c1:ghcr.io/acme/api:1.2.0)';
  if (!isValidName('project', artifactName)) throw new InvalidArgumentError(`${usage}; the name must be ${NAME_RULES.project}`);
  if (!(ARTIFACT_TYPES as readonly string[]).includes(type)) throw new InvalidArgumentError(`${usage}; the type must be one of ${ARTIFACT_TYPES.join(', ')}`);
  let split = -1;
  for (let i = uris.indexOf(':'); i > 0; i = uris.indexOf(':', i + 1)) {
    const after = uris.slice(i + 1);
    if (!after.startsWith('//') && URI_START.test(after)) {
      split = i;
      break;
    }
  }
  if (split < 0 && uris.split(':').length === 2) split = uris.indexOf(':');
  const tracking = split > 0 ? uris.slice(0, split) : '';
  const published = split > 0 ? uris.slice(split + 1) : '';
  if (!tracking || !published || /\s/.test(uris)) {
    throw new InvalidArgumentError(`${usage}; cannot tell the tracking URI from the published URI in ${JSON.stringify(uris)}`);
  }
  return { name: artifactName, type: type as ArtifactType, tracking_oci_uri: tracking, primary_published_uri: published };
}

/**
 * Configuration schema versioning (digest §1.2): a repository names the schema version it is
 * written for; Forge accepts it when compatible with its own (caret rules).
 */
export const SCHEMA_VERSION = '0.1.0';

export interface Semver {
  major: number;
  minor: number;
  patch: number;
}

/** Semantic version with an optional leading `v` (docs write "v1.0.0", the libraries "0.1.0"). */
export function parseSemver(text: string): Semver | undefined {
  const match = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(text);
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]) };
}

/**
 * Why `forgeVersion` is not usable with this Forge, or undefined when it is. Caret compatibility:
 * the same major (for 0.x, the same minor), any patch.
 */
export function versionProblem(forgeVersion: string, supported = SCHEMA_VERSION): string | undefined {
  const wanted = parseSemver(forgeVersion);
  const own = parseSemver(supported);
  if (!own) throw new Error(`bad built-in schema version ${supported}`);
  if (!wanted) return `forgeVersion ${JSON.stringify(forgeVersion)} is not a semantic version like "${supported}"`;
  const compatible = own.major === 0 ? wanted.major === 0 && wanted.minor === own.minor : wanted.major === own.major;
  if (!compatible) {
    const range = own.major === 0 ? `0.${own.minor}.x` : `${own.major}.x`;
    return `forgeVersion ${forgeVersion} is incompatible with this Forge, which supports configuration schema ${supported} (${range})`;
  }
  return undefined;
}

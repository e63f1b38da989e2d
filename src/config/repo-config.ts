/**
 * Loading a repository's `.forge/repo.cue` (or repo.json / repo.yaml): evaluated by CUE against
 * `#RepoConfig`, then checked for what CUE v0.4 leaves open (unknown fields, names) and for
 * schema-version compatibility. Every problem is positioned and says what is allowed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CueProblem } from './cue.ts';
import { ConfigError, escapeRegExp, evaluateConfig, positionOf, unknownFields } from './config-file.ts';
import { versionProblem } from './version.ts';

export { ConfigError };

export interface PhaseDefinition {
  group: number;
  description?: string;
  timeout?: string;
  required?: boolean;
}

export interface RepoConfig {
  forgeVersion: string;
  tagging: { strategy: 'monorepo' | 'tag-all' };
  phases: Record<string, PhaseDefinition>;
  publishers?: Record<string, { type: string; [key: string]: unknown }>;
}

export const REPO_CONFIG_FILES = ['repo.cue', 'repo.json', 'repo.yaml', 'repo.yml'] as const;

/** Phase, publisher, project, step and artifact names (the schema's #Name). */
export const CONFIG_NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const CONFIG_NAME_RULE = 'lowercase letters, digits and "-", starting with a letter (at most 63)';

const FIELDS = {
  top: ['forgeVersion', 'tagging', 'phases', 'publishers'],
  tagging: ['strategy'],
  phase: ['group', 'description', 'timeout', 'required'],
} as const;

/**
 * What CUE v0.4 does not enforce when the schema is unified into the user's package: the top level
 * stays open. Unknown fields and badly named phases or publishers are refused here, from the same
 * lists as schema/forge.cue.
 */
function shapeProblems(file: string, config: RepoConfig): CueProblem[] {
  const problems = [...unknownFields(file, '', config, FIELDS.top), ...unknownFields(file, 'tagging.', config.tagging ?? {}, FIELDS.tagging)];
  for (const [kind, entries] of [['phases', config.phases ?? {}], ['publishers', config.publishers ?? {}]] as const) {
    for (const [name, value] of Object.entries(entries)) {
      if (!CONFIG_NAME.test(name)) {
        problems.push({ message: `${kind}.${JSON.stringify(name)}: invalid name; names are ${CONFIG_NAME_RULE}`, positions: [positionOf(file, new RegExp(escapeRegExp(name)))] });
      }
      if (kind === 'phases') problems.push(...unknownFields(file, `phases.${name}.`, value as object, FIELDS.phase));
    }
  }
  return problems;
}

export function findRepoConfig(root: string): string | undefined {
  return REPO_CONFIG_FILES.map((name) => join(root, '.forge', name)).find((file) => existsSync(file));
}

export async function loadRepoConfig(root: string): Promise<{ file: string; config: RepoConfig }> {
  const file = findRepoConfig(root);
  if (!file) {
    throw new ConfigError([{ message: `not a Forge repository: no .forge/repo.cue (or repo.json, repo.yaml) in ${root}`, positions: [] }]);
  }
  const config = (await evaluateConfig(file, '#RepoConfig')) as RepoConfig;
  const shape = shapeProblems(file, config);
  if (shape.length > 0) throw new ConfigError(shape);
  const problem = versionProblem(config.forgeVersion);
  if (problem) throw new ConfigError([{ message: problem, positions: [positionOf(file, /forgeVersion/)] }]);
  return { file, config };
}

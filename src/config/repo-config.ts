/**
 * Loading a repository's `.forge/repo.cue` (or repo.json / repo.yaml): evaluated by CUE against
 * `#RepoConfig` (closed: unknown fields and badly named phases are refused with what is allowed),
 * then checked for schema-version compatibility and publishers' `credentials` references. Every
 * problem is positioned.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, evaluateConfig, positionOf, type ConfigCache } from './config-file.ts';
import { versionProblem } from './version.ts';
import { parseSecretRef } from '../domain/secrets.ts';

export { ConfigError, CONFIG_NAME_RULE } from './config-file.ts';

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

export function findRepoConfig(root: string): string | undefined {
  return REPO_CONFIG_FILES.map((name) => join(root, '.forge', name)).find((file) => existsSync(file));
}

export async function loadRepoConfig(root: string, cache?: ConfigCache): Promise<{ file: string; config: RepoConfig }> {
  const file = findRepoConfig(root);
  if (!file) {
    throw new ConfigError([{ message: `not a Forge repository: no .forge/repo.cue (or repo.json, repo.yaml) in ${root}`, positions: [] }]);
  }
  const { value } = await evaluateConfig({ file, definition: '#RepoConfig' }, cache);
  const config = value as RepoConfig;
  const problem = versionProblem(config.forgeVersion);
  if (problem) throw new ConfigError([{ message: problem, positions: [positionOf(file, /forgeVersion/)] }]);
  // Publishers' credentials are references the artifact workers resolve; each provider owns its fields.
  const credentials = Object.entries(config.publishers ?? {}).flatMap(([name, publisher]) => {
    if (publisher.credentials === undefined) return [];
    const parsed = parseSecretRef(publisher.credentials, `publishers.${name}.credentials`);
    return 'problems' in parsed ? parsed.problems.map((message) => ({ message, positions: [positionOf(file, new RegExp(name))] })) : [];
  });
  if (credentials.length > 0) throw new ConfigError(credentials);
  return { file, config };
}

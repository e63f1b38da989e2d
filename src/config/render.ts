/**
 * Rendering a project's `deploy.resources` to Kubernetes YAML (one document a resource). With no
 * artifact outputs the `@artifact` references show their placeholders (`forge render`, a preview);
 * at release time the real outputs are given and a reference to a missing artifact or field fails
 * with a message naming both.
 */
import { stringify } from 'yaml';
import type { ArtifactOutputs } from './attributes.ts';
import { ConfigError, evaluateConfig, type ConfigCache } from './config-file.ts';
import { findProjectConfig, type ProjectConfig } from './project-config.ts';
import type { RepoConfig } from './repo-config.ts';

export interface RenderedResources {
  project: string;
  resources: Record<string, unknown>[];
  /** The resources as a multi-document YAML stream. */
  yaml: string;
}

export function resourcesYaml(resources: Record<string, unknown>[]): string {
  return resources.map((r) => stringify(r, { lineWidth: 0 })).join('---\n');
}

/** Renders the project in `dir`; `artifacts` are the release's outputs (omit for placeholders). */
export async function renderResources(dir: string, repo: RepoConfig, artifacts?: ArtifactOutputs, cache?: ConfigCache): Promise<RenderedResources> {
  const file = findProjectConfig(dir);
  if (!file) throw new ConfigError([{ message: `no .forge/project.cue (or project.json, project.yaml) in ${dir}`, positions: [] }]);
  const { value } = await evaluateConfig({ file, definition: '#ProjectConfig', context: artifacts ? { repo, artifacts } : { repo } }, cache);
  const project = value as ProjectConfig;
  const resources = project.deploy?.resources ?? [];
  return { project: project.name, resources, yaml: resourcesYaml(resources) };
}

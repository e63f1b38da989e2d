/**
 * Loading a project's `.forge/project.cue` (or .json / .yaml): evaluated by CUE against
 * `#ProjectConfig`, then checked against its repository's config. Every problem found is reported,
 * not just the first: unknown phases and publishers (listing the defined ones), required phases the
 * project skips, step actions without what they run, duplicate step names, unknown fields.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CueProblem } from './cue.ts';
import { ConfigError, escapeRegExp, evaluateConfig, positionOf, unknownFields } from './config-file.ts';
import { CONFIG_NAME, CONFIG_NAME_RULE, type RepoConfig } from './repo-config.ts';
import type { ReleaseConfig } from './triggers.ts';

export interface Step {
  name: string;
  action: 'earthly' | 'script';
  target?: string;
  run?: string;
  timeout?: string;
}

export interface Artifact {
  type: 'container' | 'binary' | 'archive';
  producer: { type: 'earthly' | 'script'; target?: string; run?: string; artifact?: string };
  publishers: string[];
  [key: string]: unknown;
}

export interface ProjectConfig {
  name: string;
  phases?: Record<string, { steps: Step[] }>;
  artifacts?: Record<string, Artifact>;
  release?: ReleaseConfig;
  deploy?: { resources: Record<string, unknown>[] };
}

export const PROJECT_CONFIG_FILES = ['project.cue', 'project.json', 'project.yaml', 'project.yml'] as const;
const TOP_FIELDS = ['name', 'phases', 'artifacts', 'release', 'deploy'] as const;

export function findProjectConfig(dir: string): string | undefined {
  return PROJECT_CONFIG_FILES.map((name) => join(dir, '.forge', name)).find((file) => existsSync(file));
}

const list = (names: string[]) => (names.length > 0 ? names.join(', ') : '(none)');

/** The checks of a project against its repository, all at once. */
export function projectProblems(file: string, project: ProjectConfig, repo: RepoConfig): CueProblem[] {
  const at = (pattern: string) => [positionOf(file, new RegExp(escapeRegExp(pattern)))];
  const problems = unknownFields(file, '', project, TOP_FIELDS);
  const definedPhases = Object.keys(repo.phases).sort();
  const definedPublishers = Object.keys(repo.publishers ?? {}).sort();
  for (const [phase, { steps }] of Object.entries(project.phases ?? {})) {
    if (!repo.phases[phase]) {
      problems.push({ message: `phases.${phase}: phase "${phase}" is not defined in repo.cue; defined phases: ${list(definedPhases)}`, positions: at(phase) });
    }
    const seen = new Set<string>();
    for (const step of steps) {
      if (seen.has(step.name)) problems.push({ message: `phases.${phase}: step "${step.name}" appears twice; step names are unique within a phase`, positions: at(step.name) });
      seen.add(step.name);
      if (step.action === 'earthly' && !step.target) problems.push({ message: `phases.${phase}.${step.name}: an earthly step needs a target, e.g. target: "+test"`, positions: at(step.name) });
      if (step.action === 'script' && !step.run) problems.push({ message: `phases.${phase}.${step.name}: a script step needs run: "<shell command>"`, positions: at(step.name) });
    }
  }
  for (const [name, phase] of Object.entries(repo.phases)) {
    if (phase.required && !project.phases?.[name]) {
      problems.push({ message: `phase "${name}" is required by repo.cue and project ${project.name} does not take part in it; add phases: ${name}: steps: [...]`, positions: at('name') });
    }
  }
  for (const [artifact, spec] of Object.entries(project.artifacts ?? {})) {
    if (!CONFIG_NAME.test(artifact)) problems.push({ message: `artifacts.${JSON.stringify(artifact)}: invalid name; names are ${CONFIG_NAME_RULE}`, positions: at(artifact) });
    for (const publisher of spec.publishers) {
      if (!repo.publishers?.[publisher]) {
        problems.push({ message: `artifacts.${artifact}: publisher "${publisher}" is not defined in repo.cue; defined publishers: ${list(definedPublishers)}`, positions: at(publisher) });
      }
    }
  }
  return problems;
}

export async function loadProjectConfig(dir: string, repo: RepoConfig): Promise<{ file: string; config: ProjectConfig }> {
  const file = findProjectConfig(dir);
  if (!file) throw new ConfigError([{ message: `no .forge/project.cue (or project.json, project.yaml) in ${dir}`, positions: [] }]);
  const config = (await evaluateConfig(file, '#ProjectConfig')) as ProjectConfig;
  const problems = projectProblems(file, config, repo);
  if (problems.length > 0) throw new ConfigError(problems);
  return { file, config };
}

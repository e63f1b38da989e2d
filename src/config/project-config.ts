/**
 * Loading projects' `.forge/project.cue` (or .json / .yaml): evaluated by CUE against
 * `#ProjectConfig` (many files in few CUE calls), then checked against their repository's config.
 * Every problem found is reported, not just the first: unknown phases and publishers (listing the
 * defined ones), required phases a project skips, steps and producers without what they run,
 * duplicate step names, release branch patterns that are not regular expressions.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ArtifactReference } from './attributes.ts';
import type { CueProblem } from './cue.ts';
import { ConfigError, escapeRegExp, evaluateConfigs, positionOf, type ConfigCache } from './config-file.ts';
import type { RepoConfig } from './repo-config.ts';
import { branchPattern, type ReleaseConfig } from './triggers.ts';
import { parseStepSecrets } from '../domain/secrets.ts';

export interface Step {
  name: string;
  action: 'earthly' | 'script';
  target?: string;
  run?: string;
  timeout?: string;
  env?: Record<string, string>;
  /** Secret references and where their values go (domain/secrets.ts); resolved by the worker when the step starts. */
  secrets?: Record<string, unknown>[];
}

export interface Producer {
  type: 'earthly' | 'script';
  target?: string;
  args?: string[];
  run?: string;
  artifact?: string;
}

export interface Artifact {
  type: 'container' | 'binary' | 'archive';
  producer: Producer;
  publishers: string[];
  ref?: string;
  name?: string;
  compression?: 'gzip' | 'zip';
}

export interface ProjectConfig {
  name: string;
  phases?: Record<string, { steps: Step[] }>;
  artifacts?: Record<string, Artifact>;
  release?: ReleaseConfig;
  deploy?: { resources: Record<string, unknown>[] };
}

export const PROJECT_CONFIG_FILES = ['project.cue', 'project.json', 'project.yaml', 'project.yml'] as const;

export function findProjectConfig(dir: string): string | undefined {
  return PROJECT_CONFIG_FILES.map((name) => join(dir, '.forge', name)).find((file) => existsSync(file));
}

const list = (names: string[]) => (names.length > 0 ? names.join(', ') : '(none)');

/** The checks of a project against its repository, all at once. */
export function projectProblems(file: string, project: ProjectConfig, repo: RepoConfig): CueProblem[] {
  const at = (pattern: string) => [positionOf(file, new RegExp(escapeRegExp(pattern)))];
  const problems: CueProblem[] = [];
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
      for (const message of parseStepSecrets(step.secrets, `phases.${phase}.${step.name}.secrets`, step.env).problems) problems.push({ message, positions: at(step.name) });
    }
  }
  for (const [name, phase] of Object.entries(repo.phases)) {
    if (phase.required && !project.phases?.[name]) {
      problems.push({ message: `phase "${name}" is required by repo.cue and project ${project.name} does not take part in it; add phases: ${name}: steps: [...]`, positions: at('name') });
    }
  }
  for (const [artifact, spec] of Object.entries(project.artifacts ?? {})) {
    const producer = spec.producer;
    if (producer.type === 'earthly' && !producer.target) problems.push({ message: `artifacts.${artifact}.producer: an earthly producer needs a target, e.g. target: "+image"`, positions: at(artifact) });
    if (producer.type === 'script' && !producer.run) problems.push({ message: `artifacts.${artifact}.producer: a script producer needs run: "<shell command>"`, positions: at(artifact) });
    if (producer.type === 'script' && spec.type !== 'container' && !producer.artifact) {
      problems.push({ message: `artifacts.${artifact}.producer: a script producer needs artifact: "<path of the file it leaves>"`, positions: at(artifact) });
    }
    for (const publisher of spec.publishers) {
      if (!repo.publishers?.[publisher]) {
        problems.push({ message: `artifacts.${artifact}: publisher "${publisher}" is not defined in repo.cue; defined publishers: ${list(definedPublishers)}`, positions: at(publisher) });
      }
    }
  }
  for (const condition of project.release?.on ?? []) {
    if (condition.branch === undefined) continue;
    try {
      branchPattern(condition.branch);
    } catch (error) {
      problems.push({ message: (error as Error).message, positions: at(condition.branch) });
    }
  }
  return problems;
}

export interface LoadedProject {
  dir: string;
  file: string;
  config: ProjectConfig;
  references: ArtifactReference[];
}

export type ProjectResult = { ok: true; project: LoadedProject } | { ok: false; dir: string; file: string; problems: CueProblem[] };

/** Loads the projects in `dirs` against `repo`; each result is the project or all of its problems. */
export async function loadProjects(dirs: string[], repo: RepoConfig, cache?: ConfigCache): Promise<ProjectResult[]> {
  const found = dirs.map((dir) => ({ dir, file: findProjectConfig(dir) }));
  const evaluated = await evaluateConfigs(found.filter((f) => f.file).map((f) => ({ file: f.file!, definition: '#ProjectConfig', context: { repo } })), cache);
  let next = 0;
  return found.map(({ dir, file }): ProjectResult => {
    if (!file) return { ok: false, dir, file: join(dir, '.forge', 'project.cue'), problems: [{ message: `no .forge/project.cue (or project.json, project.yaml) in ${dir}`, positions: [] }] };
    const result = evaluated[next++];
    if (!result) throw new Error('evaluation lost a project');
    if (!result.ok) return { ok: false, dir, file, problems: result.problems };
    const config = result.value as ProjectConfig;
    const problems = projectProblems(file, config, repo);
    return problems.length > 0 ? { ok: false, dir, file, problems } : { ok: true, project: { dir, file, config, references: result.references } };
  });
}

export async function loadProjectConfig(dir: string, repo: RepoConfig, cache?: ConfigCache): Promise<LoadedProject> {
  const [result] = await loadProjects([dir], repo, cache);
  if (!result?.ok) throw new ConfigError(result?.problems ?? []);
  return result.project;
}

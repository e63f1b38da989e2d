/**
 * Discovery (digest §1.6–1.9): walk a checkout, load and validate repo.cue and every project, and
 * build the discovery output a pipeline run keeps (`PipelineRun.discovery_output`).
 * - A project is a directory holding `.forge/project.cue` (or .json / .yaml), at any depth.
 * - `.gitignore` files are honoured (at every level, as git reads them); `.git` is skipped.
 * - Symbolic links are never followed, so nothing outside the tree is read.
 * - `.forge` directories are not walked into (their subdirectories are reserved); a project inside
 *   another project's directory tree is an error. The root `.forge` may also hold a project (".").
 * - Invalid configuration fails discovery with every problem found, across all projects.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { warmCue, type CueProblem } from './cue.ts';
import { ConfigError, type ConfigCache } from './config-file.ts';
import { phaseGroups, type PhaseGroup } from './phase-groups.ts';
import { findProjectConfig, loadProjects, type Artifact, type Step } from './project-config.ts';
import { loadRepoConfig, type RepoConfig } from './repo-config.ts';
import { evaluateTrigger, type GitContext, type TriggerResult } from './triggers.ts';

export interface DiscoveredProject {
  name: string;
  /** Relative to the repository root, with "/" separators; "." for a project at the root. */
  path: string;
  /** The phases the project takes part in, with their steps. */
  phases: Record<string, Step[]>;
  artifacts: Record<string, Artifact>;
  releaseTriggered: boolean;
  trigger?: Extract<TriggerResult, { triggered: true }>['trigger'];
}

export interface DiscoveryOutput {
  repository: RepoConfig;
  projects: DiscoveredProject[];
  phaseGroups: PhaseGroup[];
  /** Names of the projects whose release trigger fired. */
  releaseProjects: string[];
}

/** Discovery output is stored on the run; larger than this is refused (digest §1.6). */
export const MAX_DISCOVERY_BYTES = 1024 * 1024;

interface IgnoreRules {
  base: string;
  rules: Ignore;
}

/** Whether `path` (a directory when `dir`) is ignored by the .gitignore files that apply to it. */
function ignored(path: string, dir: boolean, scopes: IgnoreRules[]): boolean {
  // The deepest .gitignore that has a say wins, as in git.
  for (let i = scopes.length - 1; i >= 0; i--) {
    const scope = scopes[i]!;
    const rel = relative(scope.base, path).split(sep).join('/');
    const verdict = scope.rules.test(dir ? `${rel}/` : rel);
    if (verdict.ignored) return true;
    if (verdict.unignored) return false;
  }
  return false;
}

/**
 * Directories under `root` that hold a project config, in walk order. Symlinks, `.git`, ignored
 * paths and the inside of `.forge` directories are skipped.
 */
export function findProjectDirs(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, scopes: IgnoreRules[]) => {
    const entries = readdirSync(dir, { withFileTypes: true });
    let inScope = scopes;
    if (entries.some((e) => e.name === '.gitignore' && e.isFile())) {
      inScope = [...scopes, { base: dir, rules: ignore().add(readFileSync(join(dir, '.gitignore'), 'utf8')) }];
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue; // files, and symlinks of any kind
      const path = join(dir, entry.name);
      if (entry.name === '.git') continue;
      if (entry.name === '.forge') {
        if (findProjectConfig(dir)) found.push(dir);
        continue;
      }
      if (ignored(path, true, inScope)) continue;
      walk(path, inScope);
    }
  };
  walk(root, []);
  return found;
}

const toPosix = (path: string) => path.split(sep).join('/') || '.';

export interface DiscoverOptions {
  git?: GitContext;
  cache?: ConfigCache;
}

/** Discovers the repository at `root`; throws ConfigError with every problem when config is invalid. */
export async function discover(root: string, options: DiscoverOptions = {}): Promise<DiscoveryOutput> {
  warmCue(); // compiling CUE overlaps the walk
  const dirs = findProjectDirs(root).sort();
  const { config: repository } = await loadRepoConfig(root, options.cache);
  const problems: CueProblem[] = [];
  const paths = dirs.map((d) => toPosix(relative(root, d)));

  // A project's tree must not hold another project (the root project excepted: it holds them all).
  for (const [i, path] of paths.entries()) {
    const outer = paths.find((other) => other !== '.' && other !== path && path.startsWith(`${other}/`));
    if (outer) {
      problems.push({
        message: `project at ${path} is nested inside the project at ${outer}; a project's directory must not contain another project's .forge`,
        positions: [{ file: findProjectConfig(dirs[i]!) ?? join(dirs[i]!, '.forge'), line: 1, column: 1 }],
      });
    }
  }

  const results = await loadProjects(dirs, repository, options.cache);
  const projects: DiscoveredProject[] = [];
  const byName = new Map<string, string[]>();
  for (const [i, result] of results.entries()) {
    if (!result.ok) {
      problems.push(...result.problems);
      continue;
    }
    const { config } = result.project;
    const path = paths[i]!;
    byName.set(config.name, [...(byName.get(config.name) ?? []), path]);
    const trigger = evaluateTrigger(config.name, config.release, repository.tagging.strategy, options.git ?? {});
    projects.push({
      name: config.name,
      path,
      phases: Object.fromEntries(Object.entries(config.phases ?? {}).map(([phase, { steps }]) => [phase, steps])),
      artifacts: config.artifacts ?? {},
      releaseTriggered: trigger.triggered,
      ...(trigger.triggered ? { trigger: trigger.trigger } : {}),
    });
  }
  for (const [name, where] of byName) {
    if (where.length > 1) {
      problems.push({
        message: `project name "${name}" is used by ${where.length} projects (${where.join(', ')}); names must be unique in a repository`,
        positions: where.map((p) => ({ file: findProjectConfig(join(root, p)) ?? join(root, p), line: 1, column: 1 })),
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const output: DiscoveryOutput = {
    repository,
    projects,
    phaseGroups: phaseGroups(repository.phases),
    releaseProjects: projects.filter((p) => p.releaseTriggered).map((p) => p.name),
  };
  const size = Buffer.byteLength(JSON.stringify(output));
  if (size > MAX_DISCOVERY_BYTES) {
    throw new ConfigError([{ message: `discovery output is ${size} bytes (${projects.length} projects), over the 1 MiB limit; split the repository or trim its configuration (at most about 100 projects are recommended)`, positions: [] }]);
  }
  return output;
}

/**
 * `forge init | validate | discover | render`: the repository's configuration, read locally (no
 * server, no token). Invalid configuration exits 1 with every problem as `file:line:col: message`;
 * usage errors exit 2. `--json` prints machine-readable results (problems included) on stdout.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CueProblem } from '../config/cue.ts';
import { ConfigError, describeProblem, type ConfigCache } from '../config/config-file.ts';
import { discover, type DiscoveredProject, type DiscoveryOutput } from '../config/discovery.ts';
import { fileCache } from '../config/file-cache.ts';
import { findRepoRoot, initConfig } from '../config/init.ts';
import { renderResources } from '../config/render.ts';
import { checkRepositoryResources } from '../config/xrd.ts';
import { describeProblem as describeXrProblem, type Problem as XrProblem } from '../domain/xr.ts';
import { CONFIG_SETTINGS, parseConfigSettings } from '../settings/settings.ts';
import { EXIT } from './client.ts';
import { fields, table, styleFor, type Cell, type Style } from './output.ts';

interface ConfigFlags {
  json?: boolean;
  cacheDir?: string;
}

interface Io {
  json: boolean;
  style: Style;
  cache: ConfigCache | undefined;
  out(lines: string | string[]): void;
  /** Progress for a person at a terminal; silent otherwise and with --json. */
  progress(line: string): void;
}

function openIo(flags: ConfigFlags): Io {
  const { cacheDir } = parseConfigSettings({ cacheDir: flags.cacheDir });
  const json = flags.json === true;
  return {
    json,
    style: styleFor(process.stdout, process.env),
    cache: cacheDir ? fileCache(cacheDir) : undefined,
    out: (lines) => process.stdout.write(`${(Array.isArray(lines) ? lines : [lines]).join('\n')}\n`),
    progress: (line) => {
      if (!json && process.stderr.isTTY) process.stderr.write(`${line}\n`);
    },
  };
}

const problemJson = (p: CueProblem) => ({ message: p.message, ...(p.positions[0] ? { file: p.positions[0].file, line: p.positions[0].line, column: p.positions[0].column } : {}) });

/** Runs `work`; a ConfigError prints every problem and exits 1. */
async function configCommand(io: Io, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    if (io.json) io.out(JSON.stringify({ valid: false, problems: error.problems.map(problemJson) }, null, 2));
    else {
      process.stderr.write(`forge: invalid configuration (${error.problems.length} problem${error.problems.length === 1 ? '' : 's'})\n`);
      for (const p of error.problems) process.stderr.write(`  ${describeProblem(p)}\n`);
    }
    process.exitCode = EXIT.api;
  }
}

/** Problems of the rendered deploy.resources: all of them, `file: Kind/name: field: message`; exit 1. */
function xrProblems(io: Io, problems: XrProblem[]): void {
  if (io.json) io.out(JSON.stringify({ valid: false, problems }, null, 2));
  else {
    process.stderr.write(`forge: invalid deploy.resources (${problems.length} problem${problems.length === 1 ? '' : 's'})\n`);
    for (const p of problems) process.stderr.write(`  ${describeXrProblem(p)}\n`);
  }
  process.exitCode = EXIT.api;
}

/** The repository root for `dir`: itself or the nearest parent with .forge/repo.cue. */
function rootOf(dir: string | undefined): string {
  const start = resolve(dir ?? '.');
  return findRepoRoot(start) ?? start;
}

function releaseCell(project: DiscoveredProject): Cell {
  const trigger = project.trigger;
  if (!trigger) return { text: 'no', tone: 'quiet' };
  return { text: trigger.type === 'tag' ? `yes (tag ${trigger.tag})` : `yes (branch ${trigger.branch})`, tone: 'good' };
}

function summary(output: DiscoveryOutput, style: Style): string[] {
  const rows = output.projects.map((p) => [
    p.name, p.path, Object.keys(p.phases).sort().join(', ') || '-',
    releaseCell(p),
  ]);
  return [
    ...fields([
      ['forgeVersion', output.repository.forgeVersion],
      ['tagging', output.repository.tagging.strategy],
      ['phase groups', output.phaseGroups.map((g) => `${g.group}: ${g.phases.join(', ')}`).join('  |  ') || '-'],
      ['projects', String(output.projects.length)],
    ], style),
    '',
    ...(rows.length > 0 ? table(['PROJECT', 'PATH', 'PHASES', 'RELEASE'], rows, style) : ['no projects']),
  ];
}

export function registerConfigCommands(program: Command): void {
  const withFlags = (command: Command) => command
    .option('--json', 'machine-readable output on stdout')
    .option(`${CONFIG_SETTINGS.cacheDir.flag} <dir>`, CONFIG_SETTINGS.cacheDir.description);

  withFlags(program.command('init').description('write a starter .forge/repo.cue (outside a Forge repository) or .forge/project.cue (inside one)')
    .argument('[dir]', 'directory', '.')
    .option('--name <project>', 'project name (default: the directory name)'))
    .action(async (dir: string, flags: ConfigFlags & { name?: string }) => {
      const io = openIo(flags);
      await configCommand(io, async () => {
        const result = await initConfig(dir, flags.name);
        if (io.json) return io.out(JSON.stringify(result, null, 2));
        io.out([`wrote a starter ${result.kind} configuration:`, ...result.written.map((f) => `  ${f}`)]);
        io.out(result.kind === 'repository'
          ? 'next: edit .forge/repo.cue, then `forge init <project-dir>` for each project and `forge validate`'
          : 'next: replace the starter steps with your commands, then `forge validate`');
      });
    });

  withFlags(program.command('validate').description('check repo.cue and every project.cue (every problem with file:line:column), then each project\'s deploy.resources against the platform XRDs (deploy/crossplane) and the reference rules (file: Kind/name: field: message); exit 1 on problems')
    .argument('[dir]', 'repository (or any directory inside it)'))
    .action(async (dir: string | undefined, flags: ConfigFlags) => {
      const io = openIo(flags);
      await configCommand(io, async () => {
        const root = rootOf(dir);
        io.progress(`validating ${root} …`);
        const started = performance.now();
        const output = await discover(root, io.cache ? { cache: io.cache } : {});
        const problems = await checkRepositoryResources(root, output, io.cache);
        if (problems.length > 0) return xrProblems(io, problems);
        const projects = output.projects.map((p) => ({ name: p.name, path: p.path }));
        if (io.json) return io.out(JSON.stringify({ valid: true, root, projects }, null, 2));
        io.out(`valid: ${root}: repo.cue and ${projects.length} project${projects.length === 1 ? '' : 's'}, their deploy.resources checked against the platform XRDs (${((performance.now() - started) / 1000).toFixed(2)} s)`);
      });
    });

  withFlags(program.command('discover').description('find the projects, phase groups and release triggers, as a pipeline run would')
    .argument('[dir]', 'repository (or any directory inside it)')
    .option('--branch <branch>', 'branch being built (for branch release triggers)')
    .option('--tag <tag>', 'a tag at the commit, for tag release triggers (repeatable)', (tag: string, tags: string[]) => [...tags, tag], [] as string[]))
    .action(async (dir: string | undefined, flags: ConfigFlags & { branch?: string; tag?: string[] }) => {
      const io = openIo(flags);
      await configCommand(io, async () => {
        const root = rootOf(dir);
        io.progress(`discovering ${root} …`);
        const git = { ...(flags.branch !== undefined ? { branch: flags.branch } : {}), tags: flags.tag ?? [] };
        const output = await discover(root, { git, ...(io.cache ? { cache: io.cache } : {}) });
        io.out(io.json ? JSON.stringify(output, null, 2) : summary(output, io.style));
      });
    });

  withFlags(program.command('render').description('render a project\'s deploy.resources to Kubernetes YAML (artifact references as placeholders)')
    .argument('<project>', 'project name')
    .argument('[dir]', 'repository (or any directory inside it)'))
    .action(async (project: string, dir: string | undefined, flags: ConfigFlags) => {
      const io = openIo(flags);
      await configCommand(io, async () => {
        const root = rootOf(dir);
        const output = await discover(root, io.cache ? { cache: io.cache } : {});
        const found = output.projects.find((p) => p.name === project);
        if (!found) {
          throw new ConfigError([{ message: `no project named "${project}" in ${root}; projects: ${output.projects.map((p) => p.name).sort().join(', ') || '(none)'}`, positions: [] }]);
        }
        const rendered = await renderResources(resolve(root, found.path), output.repository, undefined, io.cache);
        if (io.json) return io.out(JSON.stringify(rendered.resources, null, 2));
        if (rendered.resources.length === 0) io.progress(`project ${project} has no deploy.resources`);
        else process.stdout.write(rendered.yaml);
      });
    });
}

/**
 * `forge env resolve <environment> <repo> <project>`: a release's XRs resolved against the
 * environment's EnvironmentConfigs in the GitOps repository, as the compositions will see them
 * (src/domain/environment-config.ts): every XR's inputs with the layer each came from, the
 * references of the XR specs and what they resolve to, the secret store paths, and every problem
 * (the resolved inputs are also checked against the platform XRDs, src/config/xrd.ts).
 *
 * Where things are read from:
 *   GitOps  --gitops: a checkout (its files on disk, or `--ref` of its history), a bare repository
 *           (`--ref`, default main) or a URL (a shallow bare clone of `--ref` in a temp dir, removed
 *           after). Default: the checkout the current directory is in. git runs without a shell,
 *           without the user's global or system config, without prompts.
 *   XRs     --resources: the release's rendered resources as a YAML stream (e.g. `forge render`);
 *           without it, the release the environment's ReleasePointer names, pulled from the release
 *           registry the way the Argo CD plugin does (src/cmp/generate.ts).
 *
 * Exit: 0 valid, 1 problems (all of them on stderr) or the GitOps repository / registry could not
 * be read, 2 usage.
 */
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { Option, type Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import * as args from '../cli/args.ts';
import { CliError, EXIT, usageError } from '../cli/client.ts';
import { fields, styleFor, table, type Style } from '../cli/output.ts';
import { CmpError, formatCmpError } from '../cmp/cmp-error.ts';
import { CMP_SETTINGS, parseCmpSettings } from '../cmp/cmp.settings.ts';
import { generate } from '../cmp/generate.ts';
import { gitEnv } from '../gitops/git.gitops.ts';
import {
  ENV_CONFIG_FILE_NAMES, environmentConfigDirs, resolveEnvironment, type ConfigFile, type EnvironmentResolution,
} from '../domain/environment-config.ts';
import { resolutionProblems } from '../config/xrd.ts';
import { isForgeError } from '../domain/errors.ts';
import { checkPointerLayout, pointerPath } from '../domain/gitops-layout.ts';
import { describeProblem, LAYERS, REFERENCE_FORMS, type Problem, type ReferenceTarget } from '../domain/xr.ts';
import { describeSettings, SettingsError } from '../settings/settings.ts';
import { openRegistries } from './registries.ts';

/** EnvironmentConfigs are etcd objects (1 MB at most); a pointer is smaller still. */
const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_RESOURCES_BYTES = 64 * 1024 * 1024;
const DEFAULT_REF = 'main';
/** The plugin's registry settings, for reading the deployed release (its layout is --layout). */
const { layout: _layout, ...registrySettings } = CMP_SETTINGS;

interface ResolveFlags {
  gitops?: string;
  ref?: string;
  layout?: string;
  resources?: string;
  json?: boolean;
  [setting: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// git (the GitOps writer's environment: src/gitops/git.gitops.ts)

class GitFailed extends Error {
  override readonly name = 'GitFailed';
  constructor(readonly args: readonly string[], readonly stderr: string, options: { cause: unknown }) {
    super(`git ${args.join(' ')}: ${stderr.trim().split('\n').slice(-3).join(' ') || 'failed'}`, options);
  }
}

function git(cwd: string, gitArgs: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('git', ['-c', 'core.hooksPath=/dev/null', '-c', 'protocol.ext.allow=never', ...gitArgs],
      { cwd, env: gitEnv, encoding: 'utf8', maxBuffer: MAX_RESOURCES_BYTES },
      (error, stdout, stderr) => {
        if (error) reject(new GitFailed(gitArgs, stderr, { cause: error }));
        else resolvePromise(stdout);
      });
  });
}

// ---------------------------------------------------------------------------------------------
// Where the GitOps files come from

/** undefined: no such file. */
type Read = { text: string } | { error: string } | undefined;

interface GitopsSource {
  /** How it is shown: `/srv/gitops (files on disk)`, `/srv/gitops.git at main (3f2a9c1d0e4b)`. */
  label: string;
  read(path: string): Promise<Read>;
  close(): Promise<void>;
}

const tooLarge = (path: string, bytes: number) => ({ error: `${path} is ${bytes} bytes; an EnvironmentConfig or pointer is at most ${MAX_CONFIG_BYTES}` });

/** Files on disk under `root`, never through a symlink that leaves it. */
async function directorySource(root: string): Promise<GitopsSource> {
  const base = await realpath(root);
  return {
    label: `${base} (files on disk)`,
    async read(path) {
      const file = join(base, path);
      const real = await realpath(file).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
        throw error;
      });
      if (real === undefined) return undefined;
      if (!real.startsWith(base + sep)) return { error: `${path} leads outside ${base} (a symlink); refusing to read it` };
      const stat = await lstat(real);
      if (!stat.isFile()) return { error: `${path} is not a file` };
      if (stat.size > MAX_CONFIG_BYTES) return tooLarge(path, stat.size);
      return { text: await readFile(real, 'utf8') };
    },
    close: async () => undefined,
  };
}

/**
 * Files of one commit of a repository. `location` is [`--git-dir`, bare repo] or [`-C`, checkout];
 * `prefix` is the checkout directory's path inside its repository (paths are read below it).
 */
async function treeSource(location: string[], where: string, ref: string, prefix = ''): Promise<GitopsSource> {
  const cwd = process.cwd();
  let commit: string;
  try {
    commit = (await git(cwd, [...location, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`])).trim();
  } catch (error) {
    throw new CliError(EXIT.api, `no commit ${ref} in ${where}`, ['pass --ref <branch|tag|commit>'], { cause: error });
  }
  return {
    label: `${where} at ${ref} (${commit.slice(0, 12)})`,
    async read(path) {
      const listed = await git(cwd, [...location, 'ls-tree', '-z', '--full-tree', commit, '--', `${prefix}${path}`]);
      const entry = listed.split('\0').find((line) => line.endsWith(`\t${prefix}${path}`));
      if (entry === undefined) return undefined;
      const [mode = '', type = '', object = ''] = entry.slice(0, entry.indexOf('\t')).split(' ');
      if (type !== 'blob' || mode === '120000') return { error: `${path} is not a file in ${ref} (${mode === '120000' ? 'a symlink' : type})` };
      const size = Number((await git(cwd, [...location, 'cat-file', '-s', object])).trim());
      if (size > MAX_CONFIG_BYTES) return tooLarge(path, size);
      return { text: await git(cwd, [...location, 'cat-file', 'blob', object]) };
    },
    close: async () => undefined,
  };
}

/** A shallow bare clone of `ref` in a temp dir, removed on close. */
async function cloneSource(url: string, ref: string): Promise<GitopsSource> {
  const dir = await mkdtemp(join(tmpdir(), 'forge-env-'));
  const repo = join(dir, 'gitops.git');
  try {
    await git(dir, ['clone', '--quiet', '--bare', '--depth', '1', '--no-tags', '--single-branch', '--branch', ref, '--', url, repo]);
    const source = await treeSource(['--git-dir', repo], url, 'HEAD');
    return { ...source, label: source.label.replace(' at HEAD ', ` at ${ref} `), close: () => rm(dir, { recursive: true, force: true }) };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    if (error instanceof GitFailed) throw new CliError(EXIT.api, `cannot clone ${url} at ${ref}: ${error.message}`, [], { cause: error });
    throw error;
  }
}

/** `scheme://…` or scp-like `user@host:path`. */
const GIT_URL = /^(?:[a-z][a-z0-9+.-]*:\/\/|[^\s/@]+@[^\s/:]+:)/i;

async function openSource(gitops: string | undefined, ref: string | undefined): Promise<GitopsSource> {
  if (ref !== undefined && (ref === '' || ref.startsWith('-') || /[\s\0]/.test(ref))) throw usageError(`--ref ${JSON.stringify(ref)} is not a branch, tag or commit`);
  if (gitops === undefined) {
    const top = await git(process.cwd(), ['rev-parse', '--show-toplevel']).then((out) => out.trim(), () => undefined);
    if (top === undefined || top === '') throw usageError('the current directory is not in a git checkout of the GitOps repository', ['pass --gitops <checkout dir | bare repository | URL>']);
    return ref === undefined ? directorySource(top) : treeSource(['-C', top], top, ref);
  }
  if (gitops.trim() === '' || gitops.startsWith('-')) throw usageError(`--gitops ${JSON.stringify(gitops)} is not a directory or git URL`);
  const stat = await lstat(gitops).catch(() => undefined);
  if (stat?.isDirectory()) {
    const dir = resolve(gitops);
    const bare = await git(dir, ['rev-parse', '--is-bare-repository']).then((out) => out.trim(), () => undefined);
    if (bare === 'true') return treeSource(['--git-dir', dir], dir, ref ?? DEFAULT_REF);
    if (bare === 'false' && ref !== undefined) {
      const prefix = (await git(dir, ['rev-parse', '--show-prefix'])).trim();
      return treeSource(['-C', dir], dir, ref, prefix);
    }
    // A checkout without --ref, or a plain directory: what is on disk (edits not yet committed included).
    return directorySource(dir);
  }
  if (stat) throw usageError(`--gitops ${gitops} is not a directory`);
  if (GIT_URL.test(gitops)) return cloneSource(gitops, ref ?? DEFAULT_REF);
  throw usageError(`--gitops ${gitops}: no such directory, and not a git URL`);
}

// ---------------------------------------------------------------------------------------------
// Reading and parsing

/** Line and column of a YAML error, when the parser gives them. */
function yamlProblem(file: string, error: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] }, document?: number): Problem {
  const at = error.linePos?.[0];
  const where = [document === undefined ? undefined : `document ${document}`, at ? `line ${at.line}, column ${at.col}` : undefined].filter(Boolean).join(', ');
  return { file, ...(where ? { field: where } : {}), message: `not valid YAML: ${error.message.split('\n')[0] ?? error.message}` };
}

/** Every document of a YAML stream (empty ones as null), or the problems that kept one from parsing. */
function parseStream(file: string, text: string): { documents: unknown[]; problems: Problem[] } {
  const documents: unknown[] = [];
  const problems: Problem[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const [error] = doc.errors;
    if (error) return problems.push(yamlProblem(file, error, i + 1));
    try {
      // An alias bomb stops here, as a problem of its document.
      return documents.push(doc.contents === null ? null : doc.toJS({ maxAliasCount: 100 }));
    } catch (failure) {
      return problems.push({ file, field: `document ${i + 1}`, message: `cannot be read: ${(failure as Error).message}` });
    }
  });
  return { documents, problems };
}

/** `<dir>/env.yaml` or `<dir>/env.yml`; undefined when neither exists. */
async function readConfig(source: GitopsSource, dir: string): Promise<ConfigFile | undefined> {
  const found: { file: string; read: { text: string } | { error: string } }[] = [];
  for (const name of ENV_CONFIG_FILE_NAMES) {
    const file = `${dir}/${name}`;
    const read = await source.read(file);
    if (read !== undefined) found.push({ file, read });
  }
  const [first, second] = found;
  if (first === undefined) return undefined;
  if (second !== undefined) return { file: first.file, problems: [{ file: dir, message: `both ${ENV_CONFIG_FILE_NAMES.join(' and ')} exist; keep one` }] };
  if ('error' in first.read) return { file: first.file, problems: [{ file: first.file, message: first.read.error }] };
  const { documents, problems } = parseStream(first.file, first.read.text);
  if (problems.length > 0) return { file: first.file, problems };
  const present = documents.filter((doc) => doc !== null);
  if (present.length !== 1) {
    return { file: first.file, problems: [{ file: first.file, message: `holds ${present.length} YAML documents; an EnvironmentConfig file holds exactly one` }] };
  }
  return { file: first.file, document: present[0] };
}

interface Resources {
  /** Shown in messages: the file, or the release image. */
  file: string;
  documents: unknown[];
  problems: Problem[];
}

async function readResourcesFile(path: string): Promise<Resources> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat?.isFile()) throw usageError(`--resources ${path}: no such file`);
  if (stat.size > MAX_RESOURCES_BYTES) throw usageError(`--resources ${path} is ${stat.size} bytes; at most ${MAX_RESOURCES_BYTES}`);
  return { file: path, ...parseStream(path, await readFile(path, 'utf8')) };
}

/**
 * The resources of the release the environment's pointer names, read by the Argo CD plugin's own
 * code: the pointer alone is copied into a temp dir (so no env.yaml is appended to the stream).
 */
async function readDeployedResources(source: GitopsSource, pointerFile: string, flags: ResolveFlags, layout: string): Promise<Resources> {
  const pointer = await source.read(pointerFile);
  if (pointer === undefined) {
    throw new CliError(EXIT.api, `no ReleasePointer at ${pointerFile} in ${source.label}: nothing is deployed there`, [
      'pass --resources <file.yaml> to check a release before it is deployed (forge render prints one)',
    ]);
  }
  if ('error' in pointer) throw new CliError(EXIT.api, pointer.error);
  let settings;
  try {
    settings = parseCmpSettings({ ...flags, layout }, process.env);
  } catch (error) {
    if (error instanceof SettingsError) throw usageError(error.message);
    throw error;
  }
  const dir = await mkdtemp(join(tmpdir(), 'forge-env-pointer-'));
  const registries = openRegistries(settings.registries, settings.dataDir);
  try {
    const appDir = join(dir, 'app');
    await mkdir(appDir);
    await writeFile(join(appDir, 'release.yaml'), pointer.text);
    const slash = pointerFile.lastIndexOf('/');
    const result = await generate(appDir, registries.release, { layout, sourcePath: slash === -1 ? '' : pointerFile.slice(0, slash) });
    return { file: `${result.reference} (${result.digest})`, ...parseStream(result.reference, result.output) };
  } catch (error) {
    if (error instanceof CmpError) {
      throw new CliError(error.exitCode === 2 ? EXIT.usage : EXIT.api, `cannot read the deployed release of ${pointerFile}`, formatCmpError(error).trimEnd().split('\n'), { cause: error });
    }
    throw error;
  } finally {
    await registries.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Output

const VALUE_WIDTH = 72;

function shortValue(value: unknown): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.length > VALUE_WIDTH ? `${text.slice(0, VALUE_WIDTH - 1)}…` : text;
}

function describeTarget(target: ReferenceTarget): string {
  const items = (list: { key: string }[] | undefined) => (list ? `, key ${list.map((item) => item.key).join(', ')}` : '');
  if ('inline' in target) return `literal status.outputs.${target.inline.key} of ${target.inline.namespace}/${target.inline.xr}`;
  if ('secretKeyRef' in target) return `secretKeyRef ${target.secretKeyRef.name} key ${target.secretKeyRef.key}`;
  if ('configMapKeyRef' in target) return `configMapKeyRef ${target.configMapKeyRef.name} key ${target.configMapKeyRef.key}`;
  if ('secret' in target) return `secret volume ${target.secret.secretName}${items(target.secret.items)}`;
  return `configMap volume ${target.configMap.name}${items(target.configMap.items)}`;
}

function summary(result: EnvironmentResolution, where: { gitops: string; resources: string }, style: Style): string[] {
  const { cluster, projectConfig } = result;
  const lines = [
    `${result.environment}: ${result.repository} ${result.project} (namespace ${result.namespace})`,
    ...fields([
      ['gitops', where.gitops],
      ['cluster config', cluster ? `${cluster.file} (${[cluster.name, cluster.domain, cluster.region].filter(Boolean).join(', ')})` : '-'],
      ['project config', projectConfig ? `${projectConfig.file} (overrides: ${projectConfig.overrides.join(', ') || 'none'})` : 'none'],
      ['resources', `${where.resources} (${result.xrs.length} XR${result.xrs.length === 1 ? '' : 's'}, ${result.passthrough.length} passed through)`],
    ], style),
  ];
  for (const xr of result.xrs) {
    const rows = Object.entries(xr.spec).map(([field, value]) => [field, shortValue(value), (xr.sources[field] ?? []).join(' > ')]);
    lines.push('', `${xr.kind}/${xr.name}  ${xr.apiVersion}`, ...table(['FIELD', 'VALUE', 'FROM'], rows, style).map((line) => `  ${line}`));
  }
  if (result.references.length > 0) {
    lines.push('', 'References', ...table(['XR', 'FIELD', 'REFERENCE', 'RESOLVES TO'],
      result.references.map((r) => [r.xr, r.field, r.reference, describeTarget(r.resolved)]), style).map((line) => `  ${line}`));
  }
  if (result.secrets.length > 0) {
    lines.push('', 'Secrets (secret store paths)', ...table(['XR', 'SECRET', 'PATH'],
      result.secrets.map((s) => [s.xr, s.name, s.path]), style).map((line) => `  ${line}`));
  }
  if (result.passthrough.length > 0) {
    lines.push('', `Passed through untouched: ${result.passthrough.map((r) => `${r.apiVersion} ${r.kind}/${r.name}`).join(', ')}`);
  }
  const count = result.problems.length;
  lines.push('', count === 0
    ? style.paint({ text: 'valid', tone: 'good' })
    : style.paint({ text: `${count} problem${count === 1 ? '' : 's'} (listed on stderr)`, tone: 'bad' }));
  return lines;
}

// ---------------------------------------------------------------------------------------------
// The command

async function resolveCommand(environment: string, repository: string, project: string, flags: ResolveFlags): Promise<void> {
  const layoutTemplate = flags.layout ?? process.env[CMP_SETTINGS.layout.env] ?? CMP_SETTINGS.layout.default;
  let layout: string;
  let pointerFile: string;
  let dirs: { cluster: string; project: string };
  try {
    layout = checkPointerLayout(layoutTemplate);
    pointerFile = pointerPath(layout, { environment, repository, project });
    dirs = environmentConfigDirs(layout, environment, pointerFile);
  } catch (error) {
    if (isForgeError(error)) throw usageError(error.message);
    throw error;
  }
  const source = await openSource(flags.gitops, flags.ref);
  let result: EnvironmentResolution;
  let resourcesLabel: string;
  try {
    const [cluster, projectConfig] = [await readConfig(source, dirs.cluster), await readConfig(source, dirs.project)];
    const resources = flags.resources !== undefined
      ? await readResourcesFile(flags.resources)
      : await readDeployedResources(source, pointerFile, flags, layout);
    resourcesLabel = resources.file;
    result = resolveEnvironment({
      environment,
      repository,
      project,
      clusterLocation: `${dirs.cluster}/${ENV_CONFIG_FILE_NAMES[0]}`,
      cluster,
      projectConfig,
      resources,
    });
    // The XRD schemas too, as `forge validate` and the release worker check them.
    result.problems.push(...resolutionProblems(result.xrs, resources.file, result.problems));
  } catch (error) {
    if (error instanceof GitFailed) throw new CliError(EXIT.api, `cannot read ${source.label}: ${error.message}`, [], { cause: error });
    throw error;
  } finally {
    await source.close();
  }
  if (flags.json === true) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${summary(result, { gitops: source.label, resources: resourcesLabel }, styleFor(process.stdout, process.env)).join('\n')}\n`);
  for (const warning of result.warnings) process.stderr.write(`forge env resolve: warning: ${describeProblem(warning)}\n`);
  if (result.problems.length > 0) {
    const count = result.problems.length;
    process.stderr.write(`forge env resolve: ${count} problem${count === 1 ? '' : 's'}\n${result.problems.map((p) => `  ${describeProblem(p)}\n`).join('')}`);
    process.exitCode = EXIT.api;
  }
}

export function registerEnvCommand(program: Command): void {
  const env = program.command('env').description('the EnvironmentConfigs of the GitOps repository');
  const resolveCmd = env.command('resolve')
    .description('resolve a release\'s XRs against the environment\'s EnvironmentConfigs: inputs with the layer each came from (override > spec > cluster > composition), references, secret paths; exit 0 valid, 1 problems (on stderr), 2 usage')
    .argument('<environment>', 'environment (e.g. dev)', args.environment)
    .argument('<repo>', 'repository, owner/name', args.repository)
    .argument('<project>', 'project', args.project)
    .option('--gitops <dir|bare repo|url>', 'the GitOps repository: a checkout (files on disk; with --ref, that commit), a bare repository or a git URL (default: the checkout the current directory is in)')
    .option('--ref <ref>', `branch, tag or commit to read from a bare repository (a URL: branch or tag; default: ${DEFAULT_REF}), or from a checkout instead of its files on disk`)
    .option('--resources <file.yaml>', 'the release\'s rendered resources as a YAML stream (default: the release the environment\'s ReleasePointer names, from the release registry)')
    .option('--json', 'print {environment, repository, project, cluster, xrs, references, secrets, problems, …} as JSON on stdout (problems also go to stderr)')
    .addOption(new Option(`${CMP_SETTINGS.layout.flag} <template>`, `path of a ReleasePointer in the GitOps repository; the project's env.yaml sits beside it, the cluster's in the {environment} directory (${CMP_SETTINGS.layout.env}; default ${CMP_SETTINGS.layout.default})`))
    .addHelpText('after', [
      `\nReference forms in env and mount sources:\n${REFERENCE_FORMS.map((form) => `  ${form}`).join('\n')}`,
      `\nPrecedence, highest first: ${LAYERS.join(' > ')}; maps merge key by key, scalars and lists replace.`,
      `\nWithout --resources, the release registry (as for \`forge cmp generate\`):\n${describeSettings(registrySettings)}`,
    ].join('\n'))
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT.usage));
  for (const spec of Object.values(registrySettings)) resolveCmd.addOption(new Option(`${spec.flag} <value>`, spec.description));
  resolveCmd.action(async (environment: string, repository: string, project: string, flags: ResolveFlags) => {
    try {
      await resolveCommand(environment, repository, project, flags);
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      process.stderr.write(`${[`forge env resolve: ${error.message}`, ...error.lines.map((line) => `  ${line}`)].join('\n')}\n`);
      process.exitCode = error.exitCode;
    }
  });
}

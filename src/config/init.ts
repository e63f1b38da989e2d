/**
 * `forge init`: starter configuration. In a directory outside any Forge repository it writes the
 * repository's `.forge/repo.cue`; inside one (or with a project name) it writes a project's
 * `.forge/project.cue` that takes part in the repository's required phases. Each `.forge` also gets
 * a `cue.mod` with the Forge schema vendored as the package "forge.dev/schema", so `cue vet` and
 * editors resolve `import "forge.dev/schema"` offline.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { ConfigError, SCHEMA_MODULE, SCHEMA_TEXT } from './config-file.ts';
import { findProjectConfig } from './project-config.ts';
import { CONFIG_NAME, CONFIG_NAME_RULE, findRepoConfig, loadRepoConfig, type RepoConfig } from './repo-config.ts';
import { SCHEMA_VERSION } from './version.ts';

export const STARTER_REPO = `package repo

// Forge repository configuration. Schema: ${SCHEMA_MODULE} (see .forge/cue.mod/pkg/${SCHEMA_MODULE}).
forgeVersion: "${SCHEMA_VERSION}"

// monorepo: a project is released by tags like <project>/v1.2.3; tag-all: a v1.2.3 tag releases every project.
tagging: strategy: "monorepo"

// Phases with the same group run in parallel; a group starts when every task of the one before succeeded.
phases: {
	check: {group: 1, description: "static checks"}
	test: {group: 2, description: "tests", required: true, timeout: "30m"}
	build: {group: 3, description: "build artifacts", timeout: "30m"}
}

publishers: {
	registry: {type: "docker", registry: "registry.example.com", namespace: "acme"}
}
`;

export function starterProject(name: string, repo: RepoConfig): string {
  const required = Object.entries(repo.phases).filter(([, p]) => p.required).map(([phase]) => phase).sort();
  const phases = (required.length > 0 ? required : Object.keys(repo.phases).slice(0, 1))
    .map((phase) => `\t${phase}: steps: [{name: "${phase}", action: "script", run: "echo 'replace with your ${phase} command'"}]`);
  return `package project

// Forge project configuration. Schema: ${SCHEMA_MODULE} (#ProjectConfig).
name: "${name}"

// Steps run with sh -c in this directory (action: "script"), or as an Earthly target (action: "earthly", target: "+test").
phases: {
${phases.join('\n')}
}

// Uncomment to release from main and from ${name}/v* tags, and to deploy a resource:
// release: on: [{branch: "main"}, {tag: true}]
// deploy: resources: [{
// 	apiVersion: "apps/v1"
// 	kind:       "Deployment"
// 	metadata: name: "${name}"
// 	spec: template: spec: containers: [{name: "${name}", image: string @artifact("image.uri")}]
// }]
`;
}

function writeCueModule(forgeDir: string, module: string): string[] {
  const files = [
    [join(forgeDir, 'cue.mod', 'module.cue'), `module: "${module}"\n`],
    [join(forgeDir, 'cue.mod', 'pkg', SCHEMA_MODULE, 'schema.cue'), `package schema\n\n${SCHEMA_TEXT}`],
  ] as const;
  for (const [file, text] of files) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return files.map(([file]) => file);
}

/** The repository root at or above `dir`, if any. */
export function findRepoRoot(dir: string): string | undefined {
  for (let at = resolve(dir); ; at = dirname(at)) {
    if (findRepoConfig(at)) return at;
    if (dirname(at) === at) return undefined;
  }
}

export interface InitResult {
  written: string[];
  kind: 'repository' | 'project';
}

/** Writes starter configuration into `dir`; refuses to overwrite. */
export async function initConfig(dir: string, projectName?: string): Promise<InitResult> {
  const target = resolve(dir);
  const refuse = (message: string) => new ConfigError([{ message, positions: [] }]);
  const root = findRepoRoot(target);
  if (!root) {
    if (existsSync(join(target, '.forge'))) throw refuse(`${join(target, '.forge')} exists but holds no repo.cue; remove it or add repo.cue by hand`);
    const file = join(target, '.forge', 'repo.cue');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, STARTER_REPO);
    const written = [file, ...writeCueModule(join(target, '.forge'), 'forge.dev/repo')];
    if (projectName) written.push(...(await initProject(target, target, projectName)));
    return { written, kind: 'repository' };
  }
  return { written: await initProject(root, target, projectName ?? basename(target)), kind: 'project' };
}

async function initProject(root: string, target: string, rawName: string): Promise<string[]> {
  const refuse = (message: string) => new ConfigError([{ message, positions: [] }]);
  const name = rawName.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  if (!CONFIG_NAME.test(name)) throw refuse(`"${rawName}" cannot be a project name (${CONFIG_NAME_RULE}); pass --name`);
  const existing = findProjectConfig(target);
  if (existing) throw refuse(`${existing} already exists`);
  for (let at = dirname(target); at.length >= root.length && at !== root; at = dirname(at)) {
    const outer = findProjectConfig(at);
    if (outer) throw refuse(`${relative(root, target)} is inside the project at ${relative(root, at)}; projects cannot be nested`);
  }
  const { config } = await loadRepoConfig(root);
  const file = join(target, '.forge', 'project.cue');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, starterProject(name, config));
  return [file, ...writeCueModule(join(target, '.forge'), `forge.dev/${name}`)];
}

/**
 * What test/deploy reads: the Helm chart's files, Forge's settings grouped the way the chart uses
 * them, and helm itself (when installed: FORGE_HELM, `helm` on PATH, or ~/.forge-helm/helm where
 * test/deploy/install-helm.sh puts it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import {
  CLIENT_SETTINGS, CONFIG_SETTINGS, EXECUTION_SETTINGS, GITHUB_SETTINGS, SERVER_SETTINGS, TELEMETRY_SETTINGS, WORKER_METRICS_SETTINGS, WORKER_SETTINGS, type SettingSpec,
} from '../../src/settings/settings.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = join(ROOT, 'deploy/helm/forge');
export const TEMPLATES = join(CHART, 'templates');
export const EXAMPLE_VALUES = join(CHART, 'values-production.example.yaml');
/** Inline secrets, gitops over https with a token, no KEDA, no ingress: the other branches of the templates. */
export const INLINE_VALUES = fileURLToPath(new URL('./values-inline.yaml', import.meta.url));

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML and JSON are walked field by field and each field checked */
export type Manifest = Record<string, any>;

export const readYaml = (file: string): any => parse(readFileSync(file, 'utf8'));
export const chartValues = (): any => readYaml(join(CHART, 'values.yaml'));
export const valuesSchema = (): any => JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));

export function templateFiles(): { name: string; text: string }[] {
  return readdirSync(TEMPLATES).sort().map((name) => ({ name, text: readFileSync(join(TEMPLATES, name), 'utf8') }));
}

const envs = (specs: Record<string, SettingSpec>) => Object.values(specs).map((spec) => spec.env);

/** Variables `forge server` reads (README "Settings"). */
export const SERVER_ENV = new Set([...envs(SERVER_SETTINGS), ...envs(EXECUTION_SETTINGS), ...envs(GITHUB_SETTINGS), ...envs(TELEMETRY_SETTINGS)]);
/** Variables `forge worker` reads. */
export const WORKER_ENV = new Set([...envs(WORKER_SETTINGS), ...envs(EXECUTION_SETTINGS), ...envs(WORKER_METRICS_SETTINGS), ...envs(TELEMETRY_SETTINGS)]);
/** Every Forge setting of any command. */
export const FORGE_ENV = new Set([...SERVER_ENV, ...WORKER_ENV, ...envs(CLIENT_SETTINGS), ...envs(CONFIG_SETTINGS)]);
/**
 * The only variables the chart sets that are not Forge settings: git's own, which Forge keeps for the
 * git it runs (src/gitops/git.gitops.ts KEPT_GIT_ENV; README: SSH keys through GIT_SSH_COMMAND).
 */
export const GIT_ENV = new Set(['GIT_ASKPASS', 'GIT_SSH_COMMAND']);

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findHelm(): string | undefined {
  const candidates = [
    process.env.FORGE_HELM,
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'helm')),
    join(homedir(), '.forge-helm', 'helm'),
  ].filter((c): c is string => Boolean(c));
  return candidates.find((c) => executable(c) && spawnSync(c, ['version', '--short'], { encoding: 'utf8' }).status === 0);
}

export const HELM = findHelm();
export const helmUnavailable = HELM ? undefined
  : 'helm is not installed (FORGE_HELM, PATH, ~/.forge-helm/helm): run `bash test/deploy/install-helm.sh` to install it';

export function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(HELM!, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `helm template` with values files and --set pairs; every manifest parsed. */
export function render(valuesFiles: string[], set: Record<string, string> = {}, namespace = 'forge'): Manifest[] {
  const args = ['template', 'forge', CHART, '--namespace', namespace, ...valuesFiles.flatMap((f) => ['-f', f]),
    ...Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`])];
  const stdout = execFileSync(HELM!, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const docs = parseAllDocuments(stdout);
  const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
  if (errors.length > 0) throw new Error(`helm template printed invalid YAML: ${errors.join('; ')}`);
  return docs.map((d) => d.toJS() as Manifest).filter((m) => m !== null);
}

export function find(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} among ${manifests.map((m) => `${m.kind}/${m.metadata?.name}`).join(', ')}`);
  return found;
}

/** The pod spec of a workload (Deployment, StatefulSet, Job). */
export const podSpec = (workload: Manifest): Manifest => workload.spec.template.spec;

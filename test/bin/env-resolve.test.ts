/**
 * `forge env resolve` as a child process against a real GitOps repository: a bare repository made
 * with `git init --bare`, its files committed and pushed through a clone. Read as a bare repository
 * (--ref), as a file:// URL (shallow clone, temp dir removed), as a checkout (files on disk, or a
 * commit with --ref) and from the current directory; XRs from --resources or, without it, from the
 * release image the environment's ReleasePointer names (pushed to an embedded store). Exit 0 valid,
 * 1 problems (every one on stderr), 2 usage.
 *
 * src/bin/forge.ts does not register the command yet, so a small harness does what it will do:
 * `registerEnvCommand(new Command('forge'))`, then parse the arguments.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRegistries } from '../../src/bin/registries.ts';
import type { EnvironmentResolution } from '../../src/domain/environment-config.ts';
import { buildReleasePointer, renderReleasePointer } from '../../src/gitops/release-pointer.ts';
import { pushReleaseImage } from '../../src/oci/release-image.ts';
import type { CliResult } from '../cli/cli-helpers.ts';
import { aPointer, git } from '../gitops/git-helpers.ts';
import { COMMIT, releaseInput } from '../oci/release-fixtures.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/env-config');
const RESOURCES = join(FIXTURES, 'resources.yaml');

/** What src/bin/forge.ts will do once it registers the command; the working directory is set after the imports resolve. */
const HARNESS = `
import { register } from 'tsx/esm/api';
register();
const { Command } = await import('commander');
const { registerEnvCommand } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/bin/env-resolve.ts')).href)});
if (process.env.ENV_RESOLVE_TEST_CWD) process.chdir(process.env.ENV_RESOLVE_TEST_CWD);
const program = new Command('forge');
registerEnvCommand(program);
await program.parseAsync(process.argv.slice(1), { from: 'user' });
`;

let dir: string;
let bare: string;
let work: string;
/** TMPDIR of the child processes, to see that clones are cleaned up. */
let childTmp: string;

/** Nothing from the parent's environment that steers git or Forge. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const kept = Object.entries(process.env).filter(([key]) => !key.startsWith('FORGE_') && !key.startsWith('GIT_') && key !== 'NO_COLOR');
  return { ...Object.fromEntries(kept), TMPDIR: childTmp, ...extra };
}

async function envResolve(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const env = childEnv({ ...(options.cwd ? { ENV_RESOLVE_TEST_CWD: options.cwd } : {}), ...options.env });
  try {
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', HARNESS, 'env', 'resolve', ...args], { cwd: ROOT, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** Temp dirs of ours left in the children's TMPDIR (tsx keeps its cache there too). */
const leftovers = async () => (await readdir(childTmp)).filter((name) => name.startsWith('forge-env-'));

const json = (result: CliResult) => JSON.parse(result.stdout) as EnvironmentResolution;

/** Writes files into the clone, commits them and pushes `branch`. */
async function commitFiles(files: Record<string, string>, message: string, branch = 'main'): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(work, path)), { recursive: true });
    await writeFile(join(work, path), text);
  }
  git(work, 'add', '-A');
  git(work, '-c', 'user.name=Test', '-c', 'user.email=test@example.com', 'commit', '--quiet', '-m', message);
  git(work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
}

const fixture = (name: string) => readFile(join(FIXTURES, name), 'utf8');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forge-env-resolve-'));
  childTmp = join(dir, 'tmp');
  await mkdir(childTmp);
  bare = join(dir, 'gitops.git');
  work = join(dir, 'work');
  git(dir, 'init', '--quiet', '--bare', '-b', 'main', bare);
  git(dir, 'clone', '--quiet', bare, work);
  git(work, 'checkout', '--quiet', '-b', 'main');
  await commitFiles({
    'environments/dev/env.yaml': await fixture('cluster.env.yaml'),
    'environments/dev/acme/shop/web/env.yaml': await fixture('project.env.yaml'),
    // Another layout's files, for --layout.
    'dev/env.yml': await fixture('cluster.env.yaml'),
    'dev/apps/acme/shop/web/env.yml': (await fixture('project.env.yaml')).replace('replicas: 5', 'replicas: 6'),
    // An environment whose project config carries a secret.
    'environments/staging/env.yaml': (await fixture('cluster.env.yaml')).replace('name: dev', 'name: staging'),
    'environments/staging/acme/shop/web/env.yaml': (await fixture('project.env.yaml')).replace('replicas: 5', 'replicas: 5\n      dbPassword: hunter2'),
  }, 'dev and staging EnvironmentConfigs');
  // A branch where the operator scaled web further.
  git(work, 'checkout', '--quiet', '-b', 'next');
  await commitFiles({ 'environments/dev/acme/shop/web/env.yaml': (await fixture('project.env.yaml')).replace('replicas: 5', 'replicas: 9') }, 'scale web', 'next');
  git(work, 'checkout', '--quiet', 'main');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('forge env resolve against a bare GitOps repository', () => {
  it('prints each XR with where each value came from, references, secret paths; exit 0', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--resources', RESOURCES]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const out = result.stdout;
    expect(out).toMatch(/^dev: acme\/shop web \(namespace acme-shop-web\)/);
    expect(out).toMatch(new RegExp(`gitops +${bare.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at main \\([0-9a-f]{12}\\)`));
    expect(out).toMatch(/cluster config +environments\/dev\/env\.yaml \(dev, dev\.example\.com, eu-west-1\)/);
    expect(out).toMatch(/project config +environments\/dev\/acme\/shop\/web\/env\.yaml \(overrides: web\)/);
    expect(out).toMatch(/Deployment\/web {2}forge\.projectcatalyst\.io\/v1alpha1\n/);
    expect(out).toMatch(/ {2}replicas +5 +override\n/);
    expect(out).toMatch(/ {2}resources +\{"requests":\{"cpu":"100m","memory":"512Mi"\},"limits":\{"memory":"256Mi"\}\} +override > cluster > composition\n/);
    expect(out).toMatch(/ {2}args +\["--verbose"\] +override\n/);
    expect(out).toMatch(/ {2}tlsEnabled +false +cluster\n/);
    expect(out).toMatch(/ {2}class +"fast" +cluster\n/);
    expect(out).toMatch(/secrets\/app-secrets\/database\/password +secretKeyRef app-secrets-database key password/);
    expect(out).toMatch(/platform::outputs\/shared-config\/api-endpoint +literal status\.outputs\.api-endpoint of platform\/shared-config/);
    expect(out).toMatch(/app-secrets +database +dev\/shop\/database\n/);
    expect(out).toMatch(/app-secrets +tls-cert +global\/certificates\/wildcard\n/);
    expect(out).toMatch(/Passed through untouched: storage\.example\.org\/v1alpha1 Bucket\/assets, apps\/v1 Deployment\/legacy/);
    expect(out).toMatch(/\nvalid\n$/);
  });

  it('--json prints the whole resolution', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--resources', RESOURCES, '--json']);
    expect(result.code).toBe(0);
    const body = json(result);
    expect(Object.keys(body)).toEqual(expect.arrayContaining(['environment', 'repository', 'project', 'cluster', 'xrs', 'references', 'secrets', 'problems']));
    expect(body).toMatchObject({ environment: 'dev', repository: 'acme/shop', project: 'web', problems: [], cluster: { file: 'environments/dev/env.yaml', domain: 'dev.example.com' } });
    expect(body.xrs.map((xr) => `${xr.kind}/${xr.name}`)).toEqual(['Secrets/app-secrets', 'ConfigMaps/app-settings', 'Deployment/web', 'Network/web-network', 'Storage/uploads']);
    const web = body.xrs.find((xr) => xr.name === 'web');
    expect(web?.spec).toMatchObject({ replicas: 5, args: ['--verbose'], resources: { requests: { cpu: '100m', memory: '512Mi' }, limits: { memory: '256Mi' } } });
    expect(web?.sources).toMatchObject({ replicas: ['override'], containers: ['spec'], resources: ['override', 'cluster', 'composition'] });
    expect(body.references).toContainEqual({
      xr: 'Deployment/web', field: 'spec.containers[0].env.S3_KEY.source', context: 'env', reference: 'connections/assets/accessKeyId',
      resolved: { secretKeyRef: { name: 'assets-conn', key: 'accessKeyId' } },
    });
    expect(body.secrets).toEqual([
      { xr: 'app-secrets', name: 'database', path: 'dev/shop/database' },
      { xr: 'app-secrets', name: 'tls-cert', path: 'global/certificates/wildcard' },
    ]);
  });

  it('--ref reads another branch', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--ref', 'next', '--resources', RESOURCES, '--json']);
    expect(result.code).toBe(0);
    expect(json(result).xrs.find((xr) => xr.name === 'web')?.spec.replicas).toBe(9);
  });

  it('a ref that does not exist is exit 1', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--ref', 'nope', '--resources', RESOURCES]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`forge env resolve: no commit nope in ${bare}\n  pass --ref <branch|tag|commit>\n`);
  });

  it('every problem goes to stderr, exit 1; the summary still goes to stdout', async () => {
    const resources = join(dir, 'broken.yaml');
    await writeFile(resources, [
      (await fixture('resources.yaml')).replace('source: connections/assets/accessKeyId', 'source: repo-proj::connections/db/password'),
      'apiVersion: forge.projectcatalyst.io/v1alpha1\nkind: Network\nmetadata:\n  name: admin\nspec:\n  workloadRef: web\n',
    ].join('---\n'));
    // The project config overrides an XR named "web"; rename the release's web so the override has no target.
    await writeFile(join(dir, 'renamed.yaml'), (await readFile(resources, 'utf8')).replace('  name: web\nspec:\n  args', '  name: webapp\nspec:\n  args'));
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--resources', join(dir, 'renamed.yaml')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/Deployment\/webapp/);
    expect(result.stdout).toMatch(/\n5 problems \(listed on stderr\)\n$/);
    expect(result.stderr).toBe([
      'forge env resolve: 5 problems',
      '  environments/dev/acme/shop/web/env.yaml: spec.overrides.web: no XR named web in the release (XRs: app-secrets, app-settings, webapp, web-network, uploads, admin)',
      `  ${join(dir, 'renamed.yaml')}: Network/admin: spec.port: required; set it in the XR spec, a cluster default for Network or a per-project override`,
      `  ${join(dir, 'renamed.yaml')}: Deployment/webapp: spec.containers[0].env.S3_KEY.source: "repo-proj::connections/db/password": connections/ references are same-namespace only; only outputs/ may name another namespace (drop "repo-proj::")`,
      // The Network target checks of the platform XRDs (src/config/xrd.ts), as forge validate makes them.
      `  ${join(dir, 'renamed.yaml')}: Network/web-network: spec.workloadRef: no workload XR named web in this project (Deployment, Stateful, Job or CronJob XRs: webapp)`,
      `  ${join(dir, 'renamed.yaml')}: Network/admin: spec.workloadRef: no workload XR named web in this project (Deployment, Stateful, Job or CronJob XRs: webapp)`,
      '',
    ].join('\n'));
  });

  it('an environment without a cluster config is exit 1', async () => {
    const result = await envResolve(['qa', 'acme/shop', 'web', '--gitops', bare, '--resources', RESOURCES, '--json']);
    expect(result.code).toBe(1);
    expect(json(result).problems).toEqual([{ file: 'environments/qa/env.yaml', message: 'no cluster EnvironmentConfig for environment qa (env.yaml or env.yml); it is required' }]);
    expect(result.stderr).toMatch(/^forge env resolve: 1 problem\n {2}environments\/qa\/env\.yaml: no cluster EnvironmentConfig for environment qa/);
  });

  it('a secret in an EnvironmentConfig is exit 1, naming file and field', async () => {
    const result = await envResolve(['staging', 'acme/shop', 'web', '--gitops', bare, '--resources', RESOURCES]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/environments\/staging\/acme\/shop\/web\/env\.yaml: spec\.overrides\.web\.dbPassword: dbPassword looks like a secret with a literal value/);
  });

  it('--layout places the EnvironmentConfigs (env.yml accepted)', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--layout', '{environment}/apps/{repository}/{project}/release.yaml', '--resources', RESOURCES, '--json']);
    expect(result.code).toBe(0);
    const body = json(result);
    expect(body.cluster?.file).toBe('dev/env.yml');
    expect(body.projectConfig?.file).toBe('dev/apps/acme/shop/web/env.yml');
    expect(body.xrs.find((xr) => xr.name === 'web')?.spec.replicas).toBe(6);
  });
});

describe('forge env resolve from a URL and from checkouts', () => {
  it('a file:// URL is cloned shallow into a temp dir that is removed afterwards', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', pathToFileURL(bare).href, '--ref', 'next', '--resources', RESOURCES]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`gitops +${pathToFileURL(bare).href} at next \\([0-9a-f]{12}\\)`));
    expect(result.stdout).toMatch(/ {2}replicas +9 +override\n/);
    expect(await leftovers()).toEqual([]);
  });

  it('a URL that cannot be cloned is exit 1', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', pathToFileURL(join(dir, 'missing.git')).href, '--resources', RESOURCES]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^forge env resolve: cannot clone file:\/\/.*missing\.git at main: /);
    expect(await leftovers()).toEqual([]);
  });

  it('a checkout is read from disk (uncommitted edits included), or at --ref', async () => {
    const checkout = join(dir, 'checkout');
    await cp(work, checkout, { recursive: true });
    const project = join(checkout, 'environments/dev/acme/shop/web/env.yaml');
    await writeFile(project, (await readFile(project, 'utf8')).replace('replicas: 5', 'replicas: 7'));
    const onDisk = await envResolve(['dev', 'acme/shop', 'web', '--gitops', checkout, '--resources', RESOURCES, '--json']);
    expect(onDisk.code).toBe(0);
    expect(json(onDisk).xrs.find((xr) => xr.name === 'web')?.spec.replicas).toBe(7);
    const committed = await envResolve(['dev', 'acme/shop', 'web', '--gitops', checkout, '--ref', 'main', '--resources', RESOURCES, '--json']);
    expect(json(committed).xrs.find((xr) => xr.name === 'web')?.spec.replicas).toBe(5);
    // Without --gitops: the checkout the current directory is in, from a subdirectory too.
    const here = await envResolve(['dev', 'acme/shop', 'web', '--resources', RESOURCES, '--json'], { cwd: join(checkout, 'environments/dev') });
    expect(here.code).toBe(0);
    expect(json(here).xrs.find((xr) => xr.name === 'web')?.spec.replicas).toBe(7);
  });

  it('outside a checkout, without --gitops, is a usage error', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--resources', RESOURCES], { cwd: childTmp });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/the current directory is not in a git checkout of the GitOps repository\n {2}pass --gitops/);
  });
});

describe('forge env resolve: the deployed release', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = join(dir, 'data');
    const registries = openRegistries({ release: undefined, tracking: undefined, insecure: false, credentials: undefined, signingKey: undefined }, dataDir);
    try {
      await pushReleaseImage(registries.release, releaseInput({ repository: 'acme/shop', project: 'web', resources: { 'resources.yaml': await fixture('resources.yaml') } }));
    } finally {
      await registries.close();
    }
    const pointer = renderReleasePointer(buildReleasePointer(aPointer({ repository: 'acme/shop', project: 'web', commitSha: COMMIT })));
    await commitFiles({ 'environments/dev/acme/shop/web/release.yaml': pointer }, 'deploy web #1 to dev');
  });

  it('without --resources, reads the release the pointer names from the release registry', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare, '--json'], { env: { FORGE_DATA_DIR: dataDir } });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const body = json(result);
    expect(body.problems).toEqual([]);
    // The plugin sorts by (kind, name); the project's env.yaml is not mistaken for a resource.
    expect(body.xrs.map((xr) => `${xr.kind}/${xr.name}`)).toEqual(['ConfigMaps/app-settings', 'Deployment/web', 'Network/web-network', 'Secrets/app-secrets', 'Storage/uploads']);
    expect(body.xrs.find((xr) => xr.name === 'web')?.spec.replicas).toBe(5);
    expect(body.passthrough).toEqual([{ apiVersion: 'storage.example.org/v1alpha1', kind: 'Bucket', name: 'assets' }, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'legacy' }]);
  });

  it('the human summary names the release image', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare], { env: { FORGE_DATA_DIR: dataDir } });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`resources +forge\\.local/releases/acme/shop/web:${COMMIT} \\(sha256:[0-9a-f]{64}\\) \\(5 XRs, 2 passed through\\)`));
  });

  it('no pointer: exit 1, suggesting --resources', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'api', '--gitops', bare], { env: { FORGE_DATA_DIR: dataDir } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^forge env resolve: no ReleasePointer at environments\/dev\/acme\/shop\/api\/release\.yaml in .*: nothing is deployed there\n {2}pass --resources/);
  });

  it('a release image that is not in the registry: exit 1 with the plugin\'s reason', async () => {
    const result = await envResolve(['dev', 'acme/shop', 'web', '--gitops', bare], { env: { FORGE_DATA_DIR: join(dir, 'empty-data') } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^forge env resolve: cannot read the deployed release of environments\/dev\/acme\/shop\/web\/release\.yaml\n/);
    // The pointer's temp dir is gone.
    expect(await leftovers()).toEqual([]);
  });
});

describe('forge env resolve: usage errors are exit 2', () => {
  it.each([
    [['dev', 'acme', 'web', '--resources', 'x.yaml'], /repo.*owner\/name/],
    [['Dev', 'acme/shop', 'web'], /environment/],
    [['dev', 'acme/shop'], /missing required argument 'project'/],
    [['dev', 'acme/shop', 'web', '--bogus'], /unknown option '--bogus'/],
  ])('%j', async (args, why) => {
    const result = await envResolve(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(why);
  });

  it('a missing --resources file, a --gitops that is neither directory nor URL, a bad layout, a bad ref', async () => {
    const cases: [string[], RegExp][] = [
      [['--gitops', bare, '--resources', join(dir, 'nothing.yaml')], /--resources .*nothing\.yaml: no such file/],
      [['--gitops', join(dir, 'nowhere'), '--resources', RESOURCES], /--gitops .*nowhere: no such directory, and not a git URL/],
      [['--gitops', bare, '--layout', '{environment}/{project}.yaml', '--resources', RESOURCES], /invalid gitops layout .*must contain \{repository\}/],
      [['--gitops', bare, '--layout', '{repository}/{project}/{environment}/release.yaml', '--resources', RESOURCES], /\{environment\} must come before/],
      [['--gitops', bare, '--ref', '--upload-pack=x', '--resources', RESOURCES], /--ref "--upload-pack=x" is not a branch, tag or commit/],
    ];
    for (const [args, why] of cases) {
      const result = await envResolve(['dev', 'acme/shop', 'web', ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(why);
    }
  });
});

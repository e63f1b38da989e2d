/** `forge init | validate | discover | render` as a user runs them: the real binary, real CUE. */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { forge } from './cli-helpers.ts';

const EXAMPLE = resolve('examples/monorepo');
const XR_REPO = resolve('test/fixtures/xr-repo');
const noCache = { FORGE_CACHE_DIR: 'off' };

describe('forge validate / discover / render', () => {
  it('validates the example monorepo, in words and as JSON', async () => {
    const text = await forge(['validate', EXAMPLE], noCache);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^valid: .*examples\/monorepo: repo\.cue and 4 projects, their deploy\.resources checked against the platform XRDs/);
    const json = await forge(['validate', EXAMPLE, '--json'], noCache);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, projects: expect.arrayContaining([{ name: 'api', path: 'services/api' }]) });
  });

  it('exits 1 with every problem as file:line:column: message (and as JSON)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'forge-cli-config-'));
    mkdirSync(join(root, '.forge'));
    writeFileSync(join(root, '.forge', 'repo.cue'), 'forgeVersion: "0.1.0"\ntagging: strategy: "weekly"\nphases: test: group: 1\n');
    const text = await forge(['validate', root], noCache);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain('forge: invalid configuration (1 problem)');
    expect(text.stderr).toContain(`${join(root, '.forge', 'repo.cue')}:2:20: tagging.strategy must be one of "monorepo", "tag-all"; got "weekly"`);
    const json = await forge(['validate', root, '--json'], noCache);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ valid: false, problems: [{ message: 'tagging.strategy must be one of "monorepo", "tag-all"; got "weekly"', file: join(root, '.forge', 'repo.cue'), line: 2, column: 20 }] });
  });

  it('checks deploy.resources against the platform XRDs: the XR fixture repository is clean', async () => {
    const clean = await forge(['validate', XR_REPO, '--json'], noCache);
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ valid: true, projects: [{ name: 'reports' }, { name: 'shop' }] });
  });

  it('an invalid XR: every problem as file: Kind/name: field: message, exit 1; --json', async () => {
    const root = mkdtempSync(join(tmpdir(), 'forge-cli-xr-'));
    cpSync(XR_REPO, root, { recursive: true });
    const shop = join(root, 'services', 'shop', '.forge', 'project.cue');
    writeFileSync(shop, readFileSync(shop, 'utf8')
      .replace('replicas: 3', 'replica: 3')
      .replace('"configs/shop-settings/features"', '"configs/shop-settings/flags"'));
    const reports = join(root, 'services', 'reports', '.forge', 'project.cue');
    writeFileSync(reports, readFileSync(reports, 'utf8').replace('schedule:          "0 3 * * *"', ''));
    const text = await forge(['validate', root], noCache);
    expect(text.code).toBe(1);
    expect(text.stdout).toBe('');
    expect(text.stderr).toBe([
      'forge: invalid deploy.resources (3 problems)',
      '  services/reports/.forge/project.cue: CronJob/nightly: spec.schedule: required',
      '  services/shop/.forge/project.cue: Deployment/web: spec.mounts[0].source: "configs/shop-settings/flags": ConfigMaps XR shop-settings declares no config flags (it has: main, features)',
      '  services/shop/.forge/project.cue: Stateful/cache: spec.replica: unknown field (did you mean replicas?); spec has image, command, args, env, mounts, ports, resources, readinessProbe, livenessProbe, startupProbe, containers, serviceAccountName, replicas, podManagementPolicy, volumes',
      '',
    ].join('\n'));
    const json = await forge(['validate', root, '--json'], noCache);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ valid: false, problems: [
      { file: 'services/reports/.forge/project.cue', xr: 'CronJob/nightly', field: 'spec.schedule', message: 'required' },
      { file: 'services/shop/.forge/project.cue', xr: 'Deployment/web', field: 'spec.mounts[0].source', message: expect.stringContaining('declares no config flags') },
      { file: 'services/shop/.forge/project.cue', xr: 'Stateful/cache', field: 'spec.replica', message: expect.stringMatching(/^unknown field \(did you mean replicas\?\)/) },
    ] });
  });

  it('discovers with a git context: --branch and repeatable --tag', async () => {
    const main = await forge(['discover', EXAMPLE, '--branch', 'main', '--json'], noCache);
    expect(main.code).toBe(0);
    const output = JSON.parse(main.stdout) as { releaseProjects: string[]; phaseGroups: unknown[] };
    expect(output.releaseProjects).toEqual(['api']);
    expect(output.phaseGroups).toEqual([{ group: 1, phases: ['check'] }, { group: 2, phases: ['test'] }, { group: 3, phases: ['build'] }]);
    const tagged = await forge(['discover', EXAMPLE, '--tag', 'worker/v1.0.0', '--tag', 'greeting/v2.0.0'], noCache);
    expect(tagged.stdout).toMatch(/worker\s+services\/worker\s+check, test\s+yes \(tag worker\/v1\.0\.0\)/);
    expect(tagged.stdout).toMatch(/greeting\s+libs\/greeting\s+check, test\s+no/); // manual only
  });

  it('renders a project\'s resources with placeholders; names the projects when one is unknown', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'forge-cli-cache-'));
    const rendered = await forge(['render', 'api', EXAMPLE], { FORGE_CACHE_DIR: cacheDir });
    expect(rendered.code).toBe(0);
    expect(rendered.stdout).toContain('kind: Deployment');
    expect(rendered.stdout).toContain('image: ARTIFACT_URI_server');
    expect(rendered.stdout).toContain('---\napiVersion: v1\nkind: Service');
    expect(readdirSync(join(cacheDir, 'cue-v1')).length).toBeGreaterThan(4); // evaluated configs kept on disk
    const again = await forge(['render', 'api', EXAMPLE], { FORGE_CACHE_DIR: cacheDir });
    expect(again.stdout).toBe(rendered.stdout);
    const unknown = await forge(['render', 'billing', EXAMPLE], noCache);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no project named "billing" in');
    expect(unknown.stderr).toContain('projects: api, greeting, site, worker');
  });
});

describe('forge init', () => {
  it('writes a repository, then a project that validates; refuses to overwrite or nest', async () => {
    const root = mkdtempSync(join(tmpdir(), 'forge-cli-init-'));
    const repo = await forge(['init', root], noCache);
    expect(repo.code).toBe(0);
    expect(repo.stdout).toContain(join(root, '.forge', 'repo.cue'));
    const service = join(root, 'services', 'Billing_API');
    mkdirSync(service, { recursive: true });
    const created = await forge(['init', service], noCache);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain(join(service, '.forge', 'project.cue'));
    expect(created.stdout).toContain(join(service, '.forge', 'cue.mod', 'pkg', 'forge.dev', 'schema', 'schema.cue'));
    const valid = await forge(['validate', root, '--json'], noCache);
    expect(JSON.parse(valid.stdout)).toEqual({ valid: true, root, projects: [{ name: 'billing-api', path: 'services/Billing_API' }] });
    const twice = await forge(['init', service], noCache);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('already exists');
    mkdirSync(join(service, 'plugins', 'x'), { recursive: true });
    const nested = await forge(['init', join(service, 'plugins', 'x')], noCache);
    expect(nested.code).toBe(1);
    expect(nested.stderr).toContain('projects cannot be nested');
  });
});

/** Loading .forge/project.cue against its repository, with real CUE: digest §8 behaviours 4–6. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configProblems } from '../helpers/config.ts';
import type { RepoConfig } from '../../src/config/repo-config.ts';
import { loadProjectConfig } from '../../src/config/project-config.ts';

const repo: RepoConfig = {
  forgeVersion: '0.1.0',
  tagging: { strategy: 'monorepo' },
  phases: { check: { group: 1, required: true }, test: { group: 2 }, build: { group: 2 } },
  publishers: { registry: { type: 'docker' }, releases: { type: 'github' } },
};

function projectWith(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'forge-project-'));
  mkdirSync(join(dir, '.forge'));
  writeFileSync(join(dir, '.forge', 'project.cue'), text);
  return dir;
}

const VALID = `package project

name: "api"
phases: {
	check: steps: [{name: "lint", action: "script", run: "npm run lint"}]
	test: steps: [{name: "unit", action: "earthly", target: "+test", timeout: "10m"}]
}
artifacts: server: {
	type: "container"
	producer: {type: "earthly", target: "+image"}
	publishers: ["registry"]
}
release: on: [{branch: "main"}, {tag: true}]
deploy: resources: [{apiVersion: "apps/v1", kind: "Deployment", metadata: name: "api", spec: replicas: 2}]
`;

async function problemsOf(dir: string): Promise<string[]> {
  return (await configProblems(loadProjectConfig(dir, repo))).map((p) => p.message);
}

describe('project.cue', () => {
  it('loads a valid project through CUE', async () => {
    const { config } = await loadProjectConfig(projectWith(VALID), repo);
    expect(config.name).toBe('api');
    expect(config.phases?.test?.steps).toEqual([{ name: 'unit', action: 'earthly', target: '+test', timeout: '10m' }]);
    expect(config.release).toEqual({ on: [{ branch: 'main' }, { tag: true }] });
    expect(config.deploy?.resources[0]).toMatchObject({ kind: 'Deployment', spec: { replicas: 2 } });
  });

  it('takes Earthly arguments for an earthly producer, as a list of strings only', async () => {
    const { config } = await loadProjectConfig(projectWith(VALID.replace('target: "+image"}', 'target: "+image", args: ["--VERSION=1.2.3"]}')), repo);
    expect(config.artifacts?.server?.producer).toEqual({ type: 'earthly', target: '+image', args: ['--VERSION=1.2.3'] });
    const problems = await problemsOf(projectWith(VALID.replace('target: "+image"}', 'target: "+image", args: "--VERSION=1"}')));
    expect(problems.join('\n')).toMatch(/args/);
  });

  it('takes secret references on steps (never values) and refuses bad ones with the step and entry', async () => {
    const secrets = '[{provider: "aws", name: "ci/npm", key: "token", env: "NPM_TOKEN"}, {provider: "vault", path: "ci/github", key: "ssh_key", file: "ssh/id", optional: true}]';
    const { config } = await loadProjectConfig(projectWith(VALID.replace('run: "npm run lint"}', `run: "npm run lint", secrets: ${secrets}}`)), repo);
    expect(config.phases?.check?.steps[0]?.secrets).toEqual([
      { provider: 'aws', name: 'ci/npm', key: 'token', env: 'NPM_TOKEN' },
      { provider: 'vault', path: 'ci/github', key: 'ssh_key', file: 'ssh/id', optional: true },
    ]);
    const bad = '[{provider: "gcp", name: "x", env: "X"}, {provider: "file", path: "../../etc/shadow", env: "Y"}, {provider: "env", name: "FORGE_GIT_TOKEN", env: "Z"}]';
    const problems = await problemsOf(projectWith(VALID.replace('run: "npm run lint"}', `run: "npm run lint", secrets: ${bad}}`)));
    expect(problems.join('\n')).toMatch(/provider/);
    const badPaths = '[{provider: "file", path: "../../etc/shadow", env: "Y"}, {provider: "env", name: "FORGE_GIT_TOKEN", env: "Z"}, {provider: "aws", name: "ci/x"}]';
    expect(await problemsOf(projectWith(VALID.replace('run: "npm run lint"}', `run: "npm run lint", secrets: ${badPaths}}`)))).toEqual([
      'phases.check.lint.secrets[0].path: "../../etc/shadow" must be relative to the secrets dir, without empty, "." or ".." segments',
      'phases.check.lint.secrets[1].name: FORGE_GIT_TOKEN is the worker\'s own setting or credential, not a secret for steps; give the secret a name of its own (e.g. NPM_TOKEN)',
      'phases.check.lint.secrets[2]: say where aws:ci/x goes with env: "<VARIABLE>" or file: "<name>" (one of them)',
    ]);
  });

  it('4. refuses a phase repo.cue does not define, listing the defined phases', async () => {
    const problems = await problemsOf(projectWith(VALID.replace('test: steps', 'integration: steps')));
    expect(problems).toEqual(['phases.integration: phase "integration" is not defined in repo.cue; defined phases: build, check, test']);
  });

  it('5. refuses a publisher repo.cue does not define, listing the defined publishers', async () => {
    const problems = await problemsOf(projectWith(VALID.replace('["registry"]', '["registry", "ecr"]')));
    expect(problems).toEqual(['artifacts.server: publisher "ecr" is not defined in repo.cue; defined publishers: registry, releases']);
  });

  it('6. refuses a project that skips a required phase', async () => {
    const problems = await problemsOf(projectWith(VALID.replace('\tcheck: steps: [{name: "lint", action: "script", run: "npm run lint"}]\n', '')));
    expect(problems).toEqual(['phase "check" is required by repo.cue and project api does not take part in it; add phases: check: steps: [...]']);
  });

  it('reports every problem at once, with what each step action needs', async () => {
    const broken = VALID
      .replace('run: "npm run lint"', 'target: "+lint"')
      .replace('target: "+test", ', '')
      .replace('test: steps', 'nope: steps')
      .replace('["registry"]', '["ecr"]');
    const problems = await problemsOf(projectWith(broken));
    expect(problems).toEqual([
      'phases.check.lint: a script step needs run: "<shell command>"',
      'phases.nope: phase "nope" is not defined in repo.cue; defined phases: build, check, test',
      'phases.nope.unit: an earthly step needs a target, e.g. target: "+test"',
      'artifacts.server: publisher "ecr" is not defined in repo.cue; defined publishers: registry, releases',
    ]);
  });

  it('refuses an unknown step action through the CUE schema, naming the allowed ones', async () => {
    const problems = await problemsOf(projectWith(VALID.replace('action: "earthly"', 'action: "bazel"')));
    expect(problems).toEqual(['phases.test.steps.0.action must be one of "earthly", "script"; got "bazel"']);
  });
});

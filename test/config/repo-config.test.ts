/** Loading .forge/repo.cue with real CUE: digest §8 behaviours 1–3, plus JSON/YAML and positions. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configProblems } from '../helpers/config.ts';
import { loadRepoConfig, type ConfigError } from '../../src/config/repo-config.ts';
import { parseCueErrors } from '../../src/config/cue.ts';
import { parseSemver, versionProblem } from '../../src/config/version.ts';

function repoWith(file: string, text: string): string {
  const root = mkdtempSync(join(tmpdir(), 'forge-repo-'));
  mkdirSync(join(root, '.forge'));
  writeFileSync(join(root, '.forge', file), text);
  return root;
}

const VALID = `package repo

forgeVersion: "0.1.0"
tagging: strategy: "monorepo"
phases: {
	check: {group: 1, required: true}
	test: {group: 2, timeout: "10m"}
}
publishers: registry: {type: "docker", registry: "127.0.0.1:5000", namespace: "acme"}
`;

async function problemsOf(root: string): Promise<string[]> {
  return (await configProblems(loadRepoConfig(root))).map((p) => p.message);
}

describe('repo.cue', () => {
  it('loads a valid repo.cue through CUE', async () => {
    const { config } = await loadRepoConfig(repoWith('repo.cue', VALID));
    expect(config).toEqual({
      forgeVersion: '0.1.0',
      tagging: { strategy: 'monorepo' },
      phases: { check: { group: 1, required: true }, test: { group: 2, timeout: '10m' } },
      publishers: { registry: { type: 'docker', registry: '127.0.0.1:5000', namespace: 'acme' } },
    });
  });

  it('accepts a file without a package clause, and repo.json / repo.yaml', async () => {
    const plain = VALID.replace('package repo\n', '');
    expect((await loadRepoConfig(repoWith('repo.cue', plain))).config.tagging.strategy).toBe('monorepo');
    const json = JSON.stringify({ forgeVersion: '0.1.0', tagging: { strategy: 'tag-all' }, phases: { test: { group: 1 } } });
    expect((await loadRepoConfig(repoWith('repo.json', json))).config.tagging.strategy).toBe('tag-all');
    const yaml = 'forgeVersion: "0.1.0"\ntagging:\n  strategy: monorepo\nphases:\n  build:\n    group: 1\n';
    expect((await loadRepoConfig(repoWith('repo.yaml', yaml))).config.phases).toEqual({ build: { group: 1 } });
  });

  it('1. fails without forgeVersion, saying it is required', async () => {
    expect(await problemsOf(repoWith('repo.cue', VALID.replace('forgeVersion: "0.1.0"\n', '')))).toEqual(['forgeVersion is required (string)']);
  });

  it('2. refuses another major or 0.x minor, a non-semver value; takes a newer patch and a leading v', async () => {
    for (const [version, ok] of [['0.1.7', true], ['v0.1.0', true], ['0.2.0', false], ['1.0.0', false], ['latest', false], ['0.1', false]] as const) {
      const root = repoWith('repo.cue', VALID.replace('"0.1.0"', JSON.stringify(version)));
      if (ok) {
        expect((await loadRepoConfig(root)).config.forgeVersion).toBe(version);
      } else {
        const [problem] = await problemsOf(root);
        expect(problem, version).toMatch(version === 'latest' || version === '0.1' ? /is not a semantic version/ : /incompatible with this Forge.*0\.1\.x/);
      }
    }
  });

  it('3. takes only monorepo or tag-all as tagging.strategy, naming both', async () => {
    const problems = await problemsOf(repoWith('repo.cue', VALID.replace('"monorepo"', '"per-project"')));
    expect(problems).toEqual(['tagging.strategy must be one of "monorepo", "tag-all"; got "per-project"']);
  });

  it('reports CUE problems with file, line and column', async () => {
    const root = repoWith('repo.cue', VALID.replace('group: 2', 'group: 0'));
    try {
      await loadRepoConfig(root);
      throw new Error('expected a ConfigError');
    } catch (error) {
      const problem = (error as ConfigError).problems[0]!;
      expect(problem.message).toContain('phases.test.group');
      expect(problem.positions).toContainEqual({ file: join(root, '.forge', 'repo.cue'), line: 7, column: 16 });
      expect((error as Error).message).toContain(`${join(root, '.forge', 'repo.cue')}:7:16`);
    }
  });

  it('refuses unknown fields and badly named phases (the schema is closed)', async () => {
    expect(await problemsOf(repoWith('repo.cue', `${VALID}colour: "red"\n`))).toEqual(['colour: field not allowed; allowed here: forgeVersion, tagging, phases, publishers']);
    expect(await problemsOf(repoWith('repo.cue', VALID.replace('check:', '"Check!":')))).toEqual(['phases."Check!": invalid name; names are lowercase letters, digits and "-", starting with a letter (at most 63)']);
    expect(await problemsOf(repoWith('repo.cue', VALID.replace('timeout: "10m"', 'timeout: "10m", retries: 3')))).toEqual(['phases.test.retries: field not allowed; allowed here: group, description, timeout, required']);
  });

  it('takes publishers\' credentials as secret references and refuses bad ones, naming the publisher', async () => {
    const { config } = await loadRepoConfig(repoWith('repo.cue', VALID.replace('namespace: "acme"}', 'namespace: "acme", credentials: {provider: "aws", name: "publishers/docker/ecr-credentials"}}')));
    expect(config.publishers?.registry?.credentials).toEqual({ provider: 'aws', name: 'publishers/docker/ecr-credentials' });
    expect(await problemsOf(repoWith('repo.cue', VALID.replace('namespace: "acme"}', 'namespace: "acme", credentials: {provider: "vault", path: "/abs", password: "hunter2"}}')))).toEqual([
      'publishers.registry.credentials: password is not a field of a vault secret; its fields are path, key, mount, version',
      'publishers.registry.credentials.path: "/abs" must be a KV path without a leading "/" and without empty, "." or ".." segments',
    ]);
  });

  it('says when a directory is not a Forge repository', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'forge-repo-'));
    expect(await problemsOf(empty)).toEqual([`not a Forge repository: no .forge/repo.cue (or repo.json, repo.yaml) in ${empty}`]);
  });
});

describe('CUE error parsing and versions', () => {
  it('parses messages with their positions', () => {
    expect(parseCueErrors('a.b: invalid value 0 (out of bound >=1):\n    ./schema.cue:2:24\n    /x/repo.cue:7:15\nc: incomplete value string\n', '/w')).toEqual([
      { message: 'a.b: invalid value 0 (out of bound >=1)', positions: [{ file: '/w/schema.cue', line: 2, column: 24 }, { file: '/x/repo.cue', line: 7, column: 15 }] },
      { message: 'c: incomplete value string', positions: [] },
    ]);
  });
  it('parses semantic versions', () => {
    expect(parseSemver('v1.2.3-rc.1')).toEqual({ major: 1, minor: 2, patch: 3 });
    expect(parseSemver('01.2.3')).toBeUndefined();
    expect(versionProblem('1.4.0', '1.2.0')).toBeUndefined();
    expect(versionProblem('2.0.0', '1.2.0')).toMatch(/1\.x/);
  });
});

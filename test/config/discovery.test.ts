/**
 * Discovery and attributes with real CUE files on disk: digest §8 behaviours 7–9, 14, 15, plus
 * the discovery output shape, batching (positions mapped back per file), caching and limits.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configProblems } from '../helpers/config.ts';
import { ConfigError, type ConfigCache } from '../../src/config/config-file.ts';
import { discover, MAX_DISCOVERY_BYTES } from '../../src/config/discovery.ts';
import { renderResources } from '../../src/config/render.ts';
import { artifactPlaceholder } from '../../src/config/attributes.ts';
import type { CueProblem } from '../../src/config/cue.ts';

const REPO = `package repo

forgeVersion: "0.1.0"
tagging: strategy: "monorepo"
phases: {
	check: {group: 1}
	build: {group: 1}
	test: {group: 2, required: true, timeout: "15m"}
}
publishers: registry: {type: "docker", registry: "127.0.0.1:5000", namespace: "acme"}
`;

const project = (name: string, extra = '') => `package project

name: "${name}"
phases: test: steps: [{name: "unit", action: "script", run: "true"}]
${extra}`;

/** A repository in a temp dir: `files` maps relative paths to contents. */
function repoWith(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'forge-discover-'));
  for (const [path, text] of Object.entries({ '.forge/repo.cue': REPO, ...files })) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const problemsOf = (root: string): Promise<CueProblem[]> => configProblems(discover(root));

describe('discovery', () => {
  it('7. finds projects at any depth, skips gitignored paths and symlinks, reports paths relative to the root', async () => {
    const outside = repoWith({ 'elsewhere/.forge/project.cue': project('outside') });
    const root = repoWith({
      '.gitignore': 'build/\n*.tmp\n',
      'api/.forge/project.cue': project('api'),
      'services/deep/nested/worker/.forge/project.cue': project('worker'),
      'build/gen/.forge/project.cue': project('generated'),
      'libs/.gitignore': 'vendor/\n!keep/\n',
      'libs/vendor/copy/.forge/project.cue': project('vendored'),
      'libs/util/.forge/project.cue': project('util'),
    });
    symlinkSync(join(outside, 'elsewhere'), join(root, 'linked-outside'));
    symlinkSync(join(root, 'api'), join(root, 'linked-inside'));
    const out = await discover(root);
    expect(out.projects.map((p) => [p.name, p.path])).toEqual([
      ['api', 'api'],
      ['util', 'libs/util'],
      ['worker', 'services/deep/nested/worker'],
    ]);
  });

  it('produces the discovery output: repository, projects with phases and release triggers, sorted phase groups', async () => {
    const root = repoWith({
      'api/.forge/project.cue': project('api', 'phases: check: steps: [{name: "lint", action: "earthly", target: "+lint"}]\nrelease: on: [{branch: "release/.*"}, {tag: true}]\n'),
      'web/.forge/project.json': JSON.stringify({ name: 'web', phases: { test: { steps: [{ name: 'unit', action: 'script', run: 'npm test' }] } }, release: { on: [{ tag: true }] } }),
      'docs/.forge/project.yaml': 'name: docs\nphases:\n  test:\n    steps:\n      - {name: unit, action: script, run: "true"}\nrelease:\n  on: [{manual: true}]\n',
    });
    const out = await discover(root, { git: { branch: 'release/2.0', tags: ['web/v1.4.0'] } });
    expect(out.repository.tagging.strategy).toBe('monorepo');
    expect(out.phaseGroups).toEqual([{ group: 1, phases: ['build', 'check'] }, { group: 2, phases: ['test'] }]);
    expect(out.projects).toEqual([
      {
        name: 'api', path: 'api', artifacts: {}, releaseTriggered: true, trigger: { type: 'branch_push', branch: 'release/2.0' },
        phases: { test: [{ name: 'unit', action: 'script', run: 'true' }], check: [{ name: 'lint', action: 'earthly', target: '+lint' }] },
      },
      { name: 'docs', path: 'docs', artifacts: {}, releaseTriggered: false, phases: { test: [{ name: 'unit', action: 'script', run: 'true' }] } },
      { name: 'web', path: 'web', artifacts: {}, releaseTriggered: true, trigger: { type: 'tag', tag: 'web/v1.4.0' }, phases: { test: [{ name: 'unit', action: 'script', run: 'npm test' }] } },
    ]);
    expect(out.releaseProjects).toEqual(['api', 'web']);
    // Off the release branch and without tags nothing fires; manual never does.
    expect((await discover(root, { git: { branch: 'main', tags: ['docs/v1.0.0'] } })).releaseProjects).toEqual([]);
  });

  it('8. refuses a project inside another project\'s tree, naming both', async () => {
    const root = repoWith({ 'api/.forge/project.cue': project('api'), 'api/plugins/auth/.forge/project.cue': project('auth') });
    const problems = await problemsOf(root);
    expect(problems.map((p) => p.message)).toEqual([
      'project at api/plugins/auth is nested inside the project at api; a project\'s directory must not contain another project\'s .forge',
    ]);
    expect(problems[0]?.positions[0]?.file).toBe(join(root, 'api/plugins/auth/.forge/project.cue'));
  });

  it('a project at the root may hold the others (single-project repositories)', async () => {
    const root = repoWith({ '.forge/project.cue': project('root'), 'lib/.forge/project.cue': project('lib') });
    expect((await discover(root)).projects.map((p) => [p.name, p.path])).toEqual([['root', '.'], ['lib', 'lib']]);
  });

  it('9. refuses two projects with the same name, listing where', async () => {
    const root = repoWith({ 'a/.forge/project.cue': project('api'), 'b/.forge/project.cue': project('api') });
    expect((await problemsOf(root)).map((p) => p.message)).toEqual(['project name "api" is used by 2 projects (a, b); names must be unique in a repository']);
  });

  it('reports every problem of every project at once, each at its own file, line and column', async () => {
    const root = repoWith({
      'a/.forge/project.cue': project('alpha', 'phases: deploy: steps: []\n'),
      'b/.forge/project.cue': project('beta', '\ncolour: "red"\n'),
      'c/.forge/project.cue': project('gamma').replace('"script"', '"bazel"'),
      'd/.forge/project.cue': 'package project\nname: "delta" phases: {\n',
      'e/.forge/project.cue': project('epsilon'),
    });
    const problems = await problemsOf(root);
    const at = (p: CueProblem) => `${p.positions[0]?.file.slice(root.length + 1)}:${p.positions[0]?.line}:${p.positions[0]?.column}`;
    expect(problems.map((p) => `${at(p)} ${p.message}`).sort()).toEqual([
      'a/.forge/project.cue:5:9 phases.deploy: phase "deploy" is not defined in repo.cue; defined phases: build, check, test',
      'b/.forge/project.cue:6:1 colour: field not allowed; allowed here: name, phases, artifacts, release, deploy',
      `c/.forge/project.cue:4:${project('gamma').replace('"script"', '"bazel"').split('\n')[3]!.indexOf('"bazel"') + 1} phases.test.steps.0.action must be one of "earthly", "script"; got "bazel"`,
      'd/.forge/project.cue:2:15 missing \',\' in struct literal',
    ]);
  });

  it('fails without repo.cue; succeeds with zero projects', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'forge-discover-'));
    expect((await problemsOf(empty))[0]?.message).toMatch(/^not a Forge repository: no \.forge\/repo\.cue/);
    const out = await discover(repoWith({}));
    expect(out.projects).toEqual([]);
    expect(out.phaseGroups).toHaveLength(2);
  });

  it('refuses discovery output over 1 MiB', async () => {
    const huge = 'x'.repeat(MAX_DISCOVERY_BYTES + 10);
    const root = repoWith({ 'big/.forge/project.cue': `package project\nname: "big"\nphases: test: steps: [{name: "unit", action: "script", run: "${huge}"}]\n` });
    expect((await problemsOf(root))[0]?.message).toMatch(/^discovery output is \d+ bytes \(1 projects\), over the 1 MiB limit/);
  });

  it('serves an unchanged tree from the content cache and re-evaluates only an edited file', async () => {
    const root = repoWith({ 'a/.forge/project.cue': project('a'), 'b/.forge/project.cue': project('b') });
    const store = new Map<string, unknown>();
    let sets = 0;
    const cache: ConfigCache = { get: (k) => store.get(k), set: (k, v) => { sets += 1; store.set(k, v); } };
    await discover(root, { cache });
    expect(sets).toBe(3); // repo.cue and both projects
    await discover(root, { cache });
    expect(sets).toBe(3);
    writeFileSync(join(root, 'b/.forge/project.cue'), project('b', '// edited\n'));
    await discover(root, { cache });
    expect(sets).toBe(4);
  });

  it('resolves imports of the Forge schema package', async () => {
    const root = repoWith({
      'api/.forge/project.cue': `package project\n\nimport "forge.dev/schema"\n\nname: "api"\nphases: test: steps: [schema.#Step & {name: "unit", action: "script", run: "true"}]\n`,
    });
    expect((await discover(root)).projects[0]?.phases).toEqual({ test: [{ name: 'unit', action: 'script', run: 'true' }] });
  });
});

describe('attributes', () => {
  const withAttributes = (body: string) => repoWith({ 'api/.forge/project.cue': project('api', body) });
  const RESOURCES = `artifacts: server: {type: "container", producer: {type: "earthly", target: "+image"}, publishers: ["registry"]}
deploy: resources: [{
	apiVersion: "apps/v1"
	kind: "Deployment"
	metadata: name: "api"
	metadata: annotations: {
		digest: string @artifact(name="server", field="digest")
		pushed: string @artifact("server.publishers.registry.uri")
		other:  string @artifact("server.size")
	}
	spec: template: spec: containers: [{name: "api", image: string @artifact("server.uri")}]
}]
`;

  it('14. @artifact resolves to deterministic placeholders during discover and render', async () => {
    expect([artifactPlaceholder('web', 'uri'), artifactPlaceholder('web', 'image'), artifactPlaceholder('web', 'url')]).toEqual(['ARTIFACT_URI_web', 'ARTIFACT_URI_web', 'ARTIFACT_URI_web']);
    expect([artifactPlaceholder('web', 'sha256'), artifactPlaceholder('web', 'version'), artifactPlaceholder('web', 'location'), artifactPlaceholder('web', 'size')])
      .toEqual(['ARTIFACT_DIGEST_web', 'ARTIFACT_TAG_web', 'ARTIFACT_PATH_web', 'ARTIFACT_web_size']);
    const root = withAttributes(RESOURCES);
    const out = await discover(root);
    const rendered = await renderResources(join(root, 'api'), out.repository);
    expect(rendered.resources[0]).toMatchObject({
      metadata: { annotations: { digest: 'ARTIFACT_DIGEST_server', pushed: 'ARTIFACT_URI_server', other: 'ARTIFACT_server_size' } },
      spec: { template: { spec: { containers: [{ image: 'ARTIFACT_URI_server' }] } } },
    });
    expect(rendered.yaml).toContain('image: ARTIFACT_URI_server');
  });

  it('14. at release time @artifact takes the real outputs; a missing artifact or field fails, naming it', async () => {
    const root = withAttributes(RESOURCES);
    const { repository } = await discover(root);
    const outputs = { server: { digest: 'sha256:abc', size: '42 MB', publishers: { registry: { uri: '127.0.0.1:5000/acme/api@sha256:abc' } } } };
    const rendered = await renderResources(join(root, 'api'), repository, outputs);
    expect(rendered.resources[0]).toMatchObject({
      metadata: { annotations: { digest: 'sha256:abc', pushed: '127.0.0.1:5000/acme/api@sha256:abc' } },
      spec: { template: { spec: { containers: [{ image: '127.0.0.1:5000/acme/api@sha256:abc' }] } } },
    });
    // The resource declares a string: CUE still checks the type of what is filled in.
    const mistyped = await renderResources(join(root, 'api'), repository, { server: { ...outputs.server, size: 42 } }).catch((e: unknown) => e);
    expect((mistyped as ConfigError).problems[0]?.message).toMatch(/^deploy\.resources\.0\.metadata\.annotations\.other: conflicting values string and 42/);
    const missing = await renderResources(join(root, 'api'), repository, { web: {} }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).problems.map((p) => p.message)).toContain('@artifact(name="server", field="digest"): artifact "server" has no outputs in this release; produced artifacts: web');
    const noField = await renderResources(join(root, 'api'), repository, { server: { uri: 'x' } }).catch((e: unknown) => e);
    expect((noField as ConfigError).problems.map((p) => p.message)).toContain('@artifact(name="server", field="digest"): artifact "server" has no output "digest"');
  });

  it('15. @repo(path=…) inlines the repository value; a missing path argument or value is an error', async () => {
    const ok = withAttributes('phases: test: steps: [{name: "unit", action: "script", run: "true", timeout: string @repo(path="phases.test.timeout")}]\n');
    expect((await discover(ok)).projects[0]?.phases['test']).toEqual([{ name: 'unit', action: 'script', run: 'true', timeout: '15m' }]);
    const noPath = await problemsOf(withAttributes('release: on: [{branch: string @repo(name="x")}]\n'));
    expect(noPath.map((p) => p.message)).toEqual(['@repo(name="x"): a path argument is required, e.g. @repo(path="phases.test.timeout")']);
    expect(noPath[0]?.positions[0]).toMatchObject({ line: 5, column: 31 });
    const unknown = await problemsOf(withAttributes('release: on: [{branch: string @repo(path="tagging.branch")}]\n'));
    expect(unknown.map((p) => p.message)).toEqual(['@repo(path="tagging.branch"): repo.cue has no value at "tagging.branch"']);
  });

  it('ignores attribute-like text in strings and comments, and other attributes', async () => {
    const root = withAttributes('// not this: @repo(path="nope")\nrelease: on: [{branch: "main"}] @go(x)\ndeploy: resources: [{apiVersion: "v1", kind: "ConfigMap", metadata: name: "c", data: note: "@artifact(\\"x.uri\\")"}]\n');
    const { repository } = await discover(root);
    expect((await renderResources(join(root, 'api'), repository)).resources[0]).toMatchObject({ data: { note: '@artifact("x.uri")' } });
  });
});

describe('the example monorepo', () => {
  it('discovers its projects, skipping the gitignored scratch project', async () => {
    const out = await discover(resolve('examples/monorepo'), { git: { branch: 'main' } });
    expect(out.projects.map((p) => p.name).sort()).toEqual(['api', 'greeting', 'site', 'worker']);
    expect(out.releaseProjects).toEqual(['api']);
  });
});

describe('YAML and JSON project files', () => {
  it('positions a YAML problem at the field it names', async () => {
    const root = repoWith({ 'web/.forge/project.yaml': 'name: web\nphases:\n  test:\n    steps:\n      - name: unit\n        action: bazel\n        run: "true"\n' });
    const problems = await problemsOf(root);
    expect(problems.map((p) => p.message)).toEqual(['phases.test.steps.0.action must be one of "earthly", "script"; got "bazel"']);
    expect(problems[0]?.positions[0]).toEqual({ file: join(root, 'web/.forge/project.yaml'), line: 6, column: 9 });
  });
});

describe('problems that CUE places poorly', () => {
  it('blames an unclosed brace on its own file only, never on a generated file', async () => {
    const root = repoWith({
      'a/.forge/project.cue': project('alpha'),
      'b/.forge/project.cue': 'package project\nname: "beta"\nphases: {\n',
      'c/.forge/project.cue': project('gamma'),
    });
    const problems = await problemsOf(root);
    expect(problems.length).toBeGreaterThan(0);
    for (const p of problems) expect(p.positions[0]?.file).toBe(join(root, 'b/.forge/project.cue'));
  });

  it('takes a package clause followed by a comment', async () => {
    const root = repoWith({ 'a/.forge/project.cue': project('alpha').replace('package project', 'package project // the alpha service') });
    expect((await discover(root)).projects.map((p) => p.name)).toEqual(['alpha']);
  });

  it('says which file misses a required field', async () => {
    const root = repoWith({ 'a/.forge/project.cue': project('alpha'), 'b/.forge/project.cue': 'package project\n\nphases: test: steps: [{name: "unit", action: "script", run: "true"}]\n' });
    const problems = await problemsOf(root);
    expect(problems.map((p) => p.message)).toEqual([expect.stringMatching(/^name is required/)]);
    expect(problems[0]?.positions[0]?.file).toBe(join(root, 'b/.forge/project.cue'));
  });
});

/**
 * Project files that are plain data are evaluated by CUE without the schema and checked against the
 * JSON Schema (config-file.ts, "the fast path"); everything else, and every failure, goes through CUE
 * with the schema. The two paths must give the same result, value and problems, for every file: this
 * corpus holds the cases where they could differ (defaults CUE fills in, definitions, hidden fields,
 * bytes, optional fields, disjunctions, YAML and JSON).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateConfigs, setConfigFastPath, type ConfigSource, type Evaluated } from '../../src/config/config-file.ts';

const NO_CACHE = { get: () => undefined, set: () => undefined };

const CASES: Record<string, string> = {
  'full.cue': `package project

name: "api"
phases: {
	check: steps: [{name: "lint", action: "script", run: "npm run lint", env: {CI: "1"}}]
	test: steps: [{name: "unit", action: "earthly", target: "+test", timeout: "1h30m"}]
}
artifacts: server: {
	type: "container"
	ref: "example/api"
	producer: {type: "earthly", target: "+image"}
	publishers: ["registry"]
}
release: on: [{branch: "main"}, {tag: true}, {manual: true}]
deploy: resources: [{apiVersion: "apps/v1", kind: "Deployment", metadata: {name: "api", labels: app: "api"}, spec: replicas: 2.0}]
`,
  'minimal.cue': 'name: "a"\n',
  // CUE fills `[...T]` with [] when a list is absent; the JSON Schema's defaults must do the same.
  'defaults.cue': `name: "defaults"
phases: lint: {}
release: enabled: true
deploy: {}
artifacts: bin: {type: "binary", name: "tool", producer: {type: "script", run: "make", artifact: "out/tool"}}
`,
  'language.cue': `package project

#Step: {name: string, action: "script", run: "true"}
_hidden: "x"
let owner = "team-a"
name: "lang-\\(owner)"
phases: test: steps: [for s in ["unit", "e2e"] {#Step & {name: s}}]
`,
  // Bytes export as base64 strings: a file that may hold them takes the schema path (and fails there).
  'bytes.cue': `name: "bytes"\nphases: test: steps: [{name: "u", action: "script", run: 'npm test'}]\n`,
  'apostrophe-in-comment.cue': `// the team's project\nname: "apostrophe"\n`,
  // CUE v0.4 lets an optional field through a closed definition; the fast path must not decide it.
  'optional-unknown.cue': 'name: "opt"\nnmae?: "typo"\n',
  'optional-known.cue': 'name: "opt-known"\nrelease?: enabled: true\n',
  'unknown-field.cue': 'name: "unknown"\nnmae: "typo"\n',
  'bad-name.cue': 'name: "API"\n',
  'missing-name.cue': 'phases: test: steps: []\n',
  'bad-action.cue': 'name: "act"\nphases: test: steps: [{name: "u", action: "make"}]\n',
  'bad-duration.cue': 'name: "dur"\nphases: test: steps: [{name: "u", action: "script", run: "x", timeout: "ten minutes"}]\n',
  'incomplete.cue': 'name: "inc"\nphases: test: steps: [{name: "u", action: "script", run: string}]\n',
  'release-empty.cue': 'name: "rel"\nrelease: on: [{}]\n',
  'release-two.cue': 'name: "rel-two"\nrelease: on: [{branch: "main", tag: true}]\n',
  'release-tag-false.cue': 'name: "rel-false"\nrelease: on: [{tag: false}]\n',
  'env-number.cue': 'name: "env"\nphases: test: steps: [{name: "u", action: "script", run: "x", env: {N: 1}}]\n',
  'bad-publisher-name.cue': 'name: "pub"\nartifacts: a: {type: "archive", producer: type: "script", publishers: ["Bad_Name"]}\n',
  'scalar-phase.cue': 'name: "scalar"\nphases: test: 5\n',
  'resource-without-name.cue': 'name: "res"\ndeploy: resources: [{apiVersion: "v1", kind: "ConfigMap", metadata: {}}]\n',
  'conflict.cue': 'name: "a"\nname: "b"\n',
  'syntax.cue': 'name: "syntax"\nphases: {\n',
  'valid.yaml': 'name: yaml-project\nphases:\n  test:\n    steps:\n      - {name: unit, action: script, run: "npm test"}\nrelease: {}\n',
  'unknown.yaml': 'name: yaml-unknown\nfoo: 1\n',
  'valid.json': '{"name": "json-project", "artifacts": {"a": {"type": "archive", "producer": {"type": "script"}}}}\n',
};

const root = mkdtempSync(join(tmpdir(), 'forge-fast-path-'));
afterAll(() => {
  setConfigFastPath(true);
  rmSync(root, { recursive: true, force: true });
});

const sources: ConfigSource[] = Object.entries(CASES).map(([name, text]) => {
  const dir = join(root, name.replace(/\W/g, '-'), '.forge');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `project${name.slice(name.lastIndexOf('.'))}`);
  writeFileSync(file, text);
  return { file, definition: '#ProjectConfig', context: { repo: undefined } };
});

async function evaluate(fast: boolean): Promise<Evaluated[]> {
  setConfigFastPath(fast);
  try {
    return await evaluateConfigs(sources, NO_CACHE);
  } finally {
    setConfigFastPath(true);
  }
}

describe('the fast path (plain data, JSON Schema) and the schema path (CUE with #ProjectConfig)', () => {
  it('give the same value or the same problems for every file, evaluated together and one by one', async () => {
    const [fast, schema] = [await evaluate(true), await evaluate(false)];
    for (const [i, name] of Object.keys(CASES).entries()) expect({ name, result: fast[i] }).toEqual({ name, result: schema[i] });
    const verdicts = Object.fromEntries(Object.keys(CASES).map((name, i) => [name, fast[i]?.ok]));
    expect(verdicts).toEqual({
      'full.cue': true, 'minimal.cue': true, 'defaults.cue': true, 'language.cue': true, 'bytes.cue': false,
      'apostrophe-in-comment.cue': true, 'optional-unknown.cue': true, 'optional-known.cue': true,
      'unknown-field.cue': false, 'bad-name.cue': false, 'missing-name.cue': false, 'bad-action.cue': false,
      'bad-duration.cue': false, 'incomplete.cue': false, 'release-empty.cue': false, 'release-two.cue': false,
      'release-tag-false.cue': false, 'env-number.cue': false, 'bad-publisher-name.cue': false,
      'scalar-phase.cue': false, 'resource-without-name.cue': false, 'conflict.cue': false, 'syntax.cue': false,
      'valid.yaml': true, 'unknown.yaml': false, 'valid.json': true,
    });
    // One file at a time takes the same paths as a batch.
    const one = await evaluateConfigs([sources[2]!], NO_CACHE);
    expect(one[0]).toEqual(schema[2]);
  });

  it('fills in the lists CUE defaults to [] where the file leaves them out', async () => {
    const [result] = await evaluateConfigs([sources[2]!], NO_CACHE);
    expect(result?.ok && result.value).toEqual({
      name: 'defaults',
      phases: { lint: { steps: [] } },
      release: { on: [], enabled: true },
      deploy: { resources: [] },
      artifacts: { bin: { type: 'binary', name: 'tool', producer: { type: 'script', run: 'make', artifact: 'out/tool' }, publishers: [] } },
    });
  });
});

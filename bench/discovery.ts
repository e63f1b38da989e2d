/**
 * bench:discovery — discovery of a generated monorepo of BENCH_PROJECTS projects (default 1,000;
 * ~20 files each, so ~20k files, plus gitignored build output that must be skipped).
 *
 * Measured, each in a fresh process so nothing is shared:
 * - cold: first discovery in a new process: WASM compile, CUE workers, every project evaluated;
 * - warm: a second discovery in the same process with nothing changed (content-hash cache hits);
 * - one change: a third discovery after one project.cue was edited (one project re-evaluated);
 * - cold cache, CUE loaded: a fourth with an empty cache, as a long-running discovery worker sees a new tree;
 * - CLI: `forge discover --json` wall time, without a disk cache and with a warm one.
 * Baselines from the same run: the bare directory walk (readdir of the whole tree) and one raw
 * `cue export` of a single project file, so the figures can be read against what CUE itself costs.
 * Prints figures only; nothing here asserts timings.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROJECTS = Number(process.env.BENCH_PROJECTS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function generate(root: string): number {
  let files = 0;
  const write = (path: string, text: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text);
    files += 1;
  };
  write(join(root, '.forge', 'repo.cue'), `package repo

forgeVersion: "0.1.0"
tagging: strategy: "monorepo"
phases: {
	check: {group: 1}
	test: {group: 2, required: true, timeout: "10m"}
	build: {group: 3}
	publish: {group: 4}
}
publishers: registry: {type: "docker", registry: "127.0.0.1:5000", namespace: "bench"}
`);
  write(join(root, '.gitignore'), 'dist/\nnode_modules/\n');
  for (let i = 0; i < PROJECTS; i++) {
    const name = `svc-${String(i).padStart(4, '0')}`;
    const dir = join(root, `team-${i % 20}`, 'services', name);
    write(join(dir, '.forge', 'project.cue'), `package project

name: "${name}"
phases: {
	check: steps: [{name: "lint", action: "script", run: "npm run lint"}]
	test: steps: [
		{name: "unit", action: "script", run: "npm test", timeout: string @repo(path="phases.test.timeout")},
		{name: "integration", action: "earthly", target: "+integration"},
	]
	build: steps: [{name: "compile", action: "earthly", target: "+build"}]
}
artifacts: image: {
	type: "container"
	ref: "bench/${name}"
	producer: {type: "earthly", target: "+image"}
	publishers: ["registry"]
}
release: on: [{branch: "main"}, {tag: true}]
deploy: resources: [{
	apiVersion: "apps/v1"
	kind: "Deployment"
	metadata: name: "${name}"
	spec: template: spec: containers: [{name: "${name}", image: string @artifact("image.uri")}]
}]
`);
    write(join(dir, 'package.json'), `{"name": "${name}", "version": "1.0.0"}\n`);
    write(join(dir, 'README.md'), `# ${name}\n`);
    write(join(dir, 'Earthfile'), 'VERSION 0.8\n');
    for (let f = 0; f < 8; f++) write(join(dir, 'src', `module${f}.js`), `export const value${f} = ${f};\n`);
    for (let f = 0; f < 4; f++) write(join(dir, 'test', `module${f}.test.js`), `import '../src/module${f}.js';\n`);
    for (let f = 0; f < 3; f++) write(join(dir, 'dist', `bundle${f}.js`), '// built\n');
    // Ignored build output holding a stray project config: discovery must not find it.
    if (i % 100 === 0) write(join(dir, 'dist', 'copy', '.forge', 'project.cue'), `name: "${name}-copy"\n`);
  }
  return files;
}

function walk(dir: string): number {
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    count += 1;
    if (entry.isDirectory()) count += walk(join(dir, entry.name));
  }
  return count;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const ms = (value: number) => `${value.toFixed(0)} ms`;

/** One measurement process: cold, warm, and one-change discovery in-process. */
const CHILD = `
import { discover } from './src/config/discovery.ts';
import { closeCue } from './src/config/cue.ts';
import { appendFileSync } from 'node:fs';
const [root, changed] = process.argv.slice(2);
const time = async (cache) => { const t = performance.now(); const out = await discover(root, { git: { branch: 'main' }, ...(cache ? { cache } : {}) }); return [performance.now() - t, out]; };
const [cold, out] = await time();
const [warm] = await time();
appendFileSync(changed, '\\n// edited\\n');
const [oneChange] = await time();
const [coldCacheWarmCue] = await time({ get: () => undefined, set: () => {} });
console.log(JSON.stringify({ cold, warm, oneChange, coldCacheWarmCue, projects: out.projects.length, released: out.releaseProjects.length, bytes: JSON.stringify(out).length }));
await closeCue();
`;

const root = mkdtempSync(join(tmpdir(), 'forge-bench-discovery-'));
try {
  const started = performance.now();
  const files = generate(root);
  console.log(`generated ${PROJECTS} projects, ${files} files in ${root} (${ms(performance.now() - started)})`);
  const childFile = join(process.cwd(), '.bench-discovery-child.ts');
  writeFileSync(childFile, CHILD);
  const first = join(root, 'team-0', 'services', 'svc-0000', '.forge', 'project.cue');
  const runs: { cold: number; warm: number; oneChange: number; coldCacheWarmCue: number; projects: number; released: number; bytes: number }[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const out = execFileSync(process.execPath, ['bin/run-ts.mjs', childFile, root, first], { encoding: 'utf8' });
      runs.push(JSON.parse(out.trim().split('\n').at(-1) ?? '{}'));
    }
  } finally {
    rmSync(childFile, { force: true });
  }
  const last = runs.at(-1)!;
  console.log(`discovered ${last.projects} projects (${last.released} release-triggered on main), output ${(last.bytes / 1024).toFixed(0)} KiB`);

  const cli = (cacheDir: string) => {
    const t = performance.now();
    execFileSync(process.execPath, ['bin/forge.mjs', 'discover', root, '--json', '--branch', 'main', '--cache-dir', cacheDir], { stdio: ['ignore', 'ignore', 'inherit'] });
    return performance.now() - t;
  };
  const cacheDir = mkdtempSync(join(tmpdir(), 'forge-bench-cache-'));
  const cliCold = median(Array.from({ length: ROUNDS }, () => cli('off')));
  cli(cacheDir);
  const cliWarm = median(Array.from({ length: ROUNDS }, () => cli(cacheDir)));
  rmSync(cacheDir, { recursive: true, force: true });

  // Baselines: the bare walk, and CUE itself on one project file.
  const walks = Array.from({ length: ROUNDS }, () => { const t = performance.now(); walk(root); return performance.now() - t; });
  const single = join(root, 'single.cue');
  writeFileSync(single, 'package p\nname: "x"\nphases: test: steps: [{name: "unit", action: "script", run: "npm test"}]\n');
  const { runCue, closeCue } = await import('../src/config/cue.ts');
  await runCue(['export', single, '--out=json'], root);
  const cueOne = median(await (async () => { const out: number[] = []; for (let i = 0; i < 5; i++) { const t = performance.now(); await runCue(['export', single, '--out=json'], root); out.push(performance.now() - t); } return out; })());
  await closeCue();
  appendFileSync(single, '');

  console.log('');
  console.log(`| measurement (${PROJECTS} projects, ${files} files, median of ${ROUNDS}) | result | target |`);
  console.log('|---|---|---|');
  console.log(`| cold discovery, in-process (WASM compile + every project evaluated) | ${ms(median(runs.map((r) => r.cold)))} | ≤ 3,000 ms |`);
  console.log(`| cold cache, CUE already loaded (a running discovery worker) | ${ms(median(runs.map((r) => r.coldCacheWarmCue)))} | — |`);
  console.log(`| warm discovery, nothing changed (cache hits) | ${ms(median(runs.map((r) => r.warm)))} | ≤ 300 ms |`);
  console.log(`| discovery after editing one project.cue | ${ms(median(runs.map((r) => r.oneChange)))} | — |`);
  console.log(`| \`forge discover --json\` wall time, no disk cache | ${ms(cliCold)} | — |`);
  console.log(`| \`forge discover --json\` wall time, warm disk cache | ${ms(cliWarm)} | — |`);
  console.log(`| baseline: bare readdir walk of the tree | ${ms(median(walks))} | — |`);
  console.log(`| baseline: one raw \`cue export\` call of one small file | ${ms(cueOne)} | — |`);
} finally {
  rmSync(root, { recursive: true, force: true });
}

/**
 * The Dockerfile, read (no container engine runs on Forge's CI machine, so it is never built there):
 * every instruction is one Docker knows, what it copies exists in the repository and in the build
 * context (.dockerignore), every file Forge's code reads at run time relative to its sources is in the
 * runtime stage, and the commands the image and the chart start are `forge` subcommands.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART, FORGE_ENV, ROOT, chartValues, readYaml } from './chart.ts';

interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** Docker's instructions (https://docs.docker.com/reference/dockerfile/). */
const KNOWN = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

/** Instructions with their continuation lines joined; comments and blank lines dropped (as Docker does, also inside a continued RUN). */
function parseDockerfile(text: string): { directives: Record<string, string>; instructions: Instruction[] } {
  const lines = text.split('\n');
  const directives: Record<string, string> = {};
  let i = 0;
  for (; i < lines.length; i++) {
    const directive = /^#\s*([a-z]+)\s*=\s*(\S+)\s*$/.exec(lines[i]!);
    if (!directive) break;
    directives[directive[1]!] = directive[2]!;
  }
  const instructions: Instruction[] = [];
  let current: { line: number; text: string } | undefined;
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\s*#/.test(line) || (current === undefined && line.trim() === '')) continue;
    const continued = /\\\s*$/.test(line);
    const body = line.replace(/\\\s*$/, '');
    current = current ? { line: current.line, text: `${current.text} ${body.trim()}` } : { line: i + 1, text: body.trim() };
    if (!continued) {
      const match = /^(\S+)\s*(.*)$/.exec(current.text)!;
      instructions.push({ line: current.line, keyword: match[1]!.toUpperCase(), args: match[2]!.trim() });
      current = undefined;
    }
  }
  if (current) throw new Error(`Dockerfile line ${current.line}: a continuation runs past the end of the file`);
  return { directives, instructions };
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

/** Instructions by stage (`FROM … AS name`). */
function stages(): Map<string, Instruction[]> {
  const out = new Map<string, Instruction[]>();
  let stage: Instruction[] | undefined;
  for (const instruction of dockerfile.instructions) {
    if (instruction.keyword === 'FROM') {
      const name = /\sAS\s+(\S+)$/i.exec(instruction.args)?.[1];
      if (!name) throw new Error(`Dockerfile line ${instruction.line}: every stage is named`);
      stage = [];
      out.set(name, stage);
    } else {
      stage?.push(instruction);
    }
  }
  return out;
}

interface Copy {
  from: string | undefined;
  sources: string[];
  destination: string;
}

function copies(stage: Instruction[]): Copy[] {
  return stage.filter((i) => i.keyword === 'COPY').map((i) => {
    const words = i.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from, sources: paths.slice(0, -1), destination: paths.at(-1)! };
  });
}

const execForm = (args: string): string[] => JSON.parse(args) as string[];
const workdir = (stage: Instruction[]) => stage.filter((i) => i.keyword === 'WORKDIR').at(-1)!.args;

/** Where a COPY puts a source inside the image (directory sources land under a `dir/` destination as their contents). */
function target(copy: Copy, source: string, cwd: string): string {
  const dest = copy.destination.startsWith('/') ? copy.destination : join(cwd, copy.destination);
  return copy.destination.endsWith('/') ? join(dest, source.split('/').at(-1)!) : dest;
}

describe('Dockerfile', () => {
  it('uses only instructions Docker knows, behind a syntax directive', () => {
    expect(dockerfile.directives.syntax).toBe('docker/dockerfile:1');
    expect(dockerfile.instructions.length).toBeGreaterThan(10);
    for (const { keyword, line } of dockerfile.instructions) expect(KNOWN.has(keyword), `line ${line}: ${keyword}`).toBe(true);
    expect(dockerfile.instructions[0]).toMatchObject({ keyword: 'ARG', args: 'NODE_IMAGE=node:20-bookworm-slim' });
  });

  it('builds in one stage and runs in another, both from the node:20 Debian 12 image named by ARG', () => {
    const froms = dockerfile.instructions.filter((i) => i.keyword === 'FROM').map((i) => i.args);
    expect(froms).toEqual(['${NODE_IMAGE} AS build', '${NODE_IMAGE} AS runtime']);
    const build = stages().get('build')!;
    const runs = build.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    // All dependencies for the dashboard's build, then the production ones only.
    expect(runs).toContain('npm install');
    expect(runs).toContain('npm run build:web');
    expect(runs).toContain('npm prune --omit=dev');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
    expect(pkg.scripts['build:web']).toBeDefined();
    // Forge runs its TypeScript through tsx, so tsx must survive the prune.
    expect(pkg.dependencies.tsx).toBeDefined();
    // The only dependency with an install script is esbuild (tsx's), rebuilt after --ignore-scripts.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { hasInstallScript?: boolean }> };
    const scripted = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript).map(([path]) => path.replace(/^.*node_modules\//, ''));
    for (const name of scripted) expect(runs).toContain(`npm rebuild ${name}`);
  });

  it('copies from the build context only paths that exist, are tracked by git and pass .dockerignore', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    const excludedAgain = ignore.filter((l) => !l.startsWith('!') && l !== '*');
    const sources = [...stages().values()].flatMap((stage) => copies(stage).filter((c) => c.from === undefined).flatMap((c) => c.sources));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      const tracked = execFileSync('git', ['ls-files', '--', source], { cwd: ROOT, encoding: 'utf8' }).trim();
      expect(tracked, `${source} is in the repository`).not.toBe('');
      expect(allowed.some((a) => source === a || source.startsWith(`${a}/`)), `${source} is allowed by .dockerignore`).toBe(true);
    }
    // Tests, local data and dependencies never go in.
    expect(excludedAgain).toEqual(expect.arrayContaining(['**/*.test.ts', '**/node_modules', '**/.forge-data']));
  });

  it('puts in the runtime stage every file Forge reads relative to its sources, and what the build stage made', () => {
    const runtime = stages().get('runtime')!;
    const cwd = workdir(runtime);
    expect(cwd).toBe('/app');
    const inImage = copies(runtime).flatMap((c) => c.sources.map((s) => ({ source: s, at: target(c, s, cwd), from: c.from })));
    // From the build stage: the production node_modules and the dashboard Vite builds into dist/web.
    expect(inImage.filter((c) => c.from === 'build').map((c) => c.source).sort()).toEqual(['/app/dist/web', '/app/node_modules']);
    expect(readFileSync(join(ROOT, 'web/vite.config.ts'), 'utf8')).toContain("new URL('../dist/web', import.meta.url)");
    const underApp = (path: string) => inImage.some(({ at }) => path === relative('/app', at) || path.startsWith(`${relative('/app', at)}/`));
    // Every `new URL('<relative>', import.meta.url)` and `createRequire(...)('<relative>')` under src/.
    const files = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    const read: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(ROOT, 'src', file), 'utf8');
      for (const [, rel] of text.matchAll(/new URL\('(\.{1,2}\/[^']*)', import\.meta\.url\)/g)) read.push(relative(ROOT, resolve(ROOT, 'src', dirname(file), rel!)));
      for (const [, rel] of text.matchAll(/createRequire\(import\.meta\.url\)\('(\.{1,2}\/[^']*)'\)/g)) read.push(relative(ROOT, resolve(ROOT, 'src', dirname(file), rel!)));
    }
    expect(read).toEqual(expect.arrayContaining(['dist/web', 'schema/json/project.schema.json', 'package.json', 'src/store/migrations']));
    for (const path of read) expect(underApp(path.replace(/\/$/, '')), `${path} is in the image under /app`).toBe(true);
    // bin/forge.mjs loads src/ through tsx, which must be a production dependency (above).
    expect(underApp('bin/forge.mjs')).toBe(true);
  });

  it('installs git (workers, the GitOps writer), ssh, CA certificates and tini, and runs as a non-root user', () => {
    const runtime = stages().get('runtime')!;
    const apt = runtime.find((i) => i.keyword === 'RUN' && i.args.includes('apt-get install'))!.args;
    for (const pkg of ['git', 'openssh-client', 'ca-certificates', 'tini']) expect(apt.split(/\s+/)).toContain(pkg);
    expect(apt).toContain('rm -rf /var/lib/apt/lists/*');
    const user = runtime.find((i) => i.keyword === 'USER')!.args;
    expect(user).toBe('10001:10001');
    const { podSecurityContext } = chartValues();
    expect(`${podSecurityContext.runAsUser}:${podSecurityContext.runAsGroup}`).toBe(user);
  });

  it('sets only Forge settings in its environment (besides NODE_ENV and HOME), listens where the chart expects', () => {
    const runtime = stages().get('runtime')!;
    const env = Object.fromEntries(runtime.filter((i) => i.keyword === 'ENV').flatMap((i) => [...i.args.matchAll(/([A-Z_]+)=(\S+)/g)].map(([, k, v]) => [k!, v!])));
    for (const key of Object.keys(env)) expect(FORGE_ENV.has(key) || key === 'NODE_ENV' || key === 'HOME', key).toBe(true);
    expect(env).toMatchObject({ FORGE_HOST: '0.0.0.0', FORGE_PORT: '8080', FORGE_DATA_DIR: '/var/lib/forge', FORGE_WORKER_CACHE_DIR: '/var/cache/forge', HOME: '/home/forge' });
    expect(runtime.find((i) => i.keyword === 'EXPOSE')!.args).toBe(env.FORGE_PORT);
    expect(String(chartValues().api.port)).toBe(env.FORGE_PORT);
    // The directories it names are made for the user.
    const setup = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(setup).toMatch(/install -d -o forge -g forge -m 0750 \/var\/lib\/forge \/var\/cache\/forge/);
    expect(setup).toContain('--home-dir /home/forge');
  });

  it('checks health on /healthz, a route of the API', () => {
    const check = stages().get('runtime')!.find((i) => i.keyword === 'HEALTHCHECK')!.args;
    expect(check).toContain("'/healthz'");
    expect(readFileSync(join(ROOT, 'src/api/health.routes.ts'), 'utf8')).toContain("app.get('/healthz'");
  });

  it('starts `forge` under tini, and every command the image and the chart run is a forge subcommand', () => {
    const runtime = stages().get('runtime')!;
    const entrypoint = execForm(runtime.find((i) => i.keyword === 'ENTRYPOINT')!.args);
    const cmd = execForm(runtime.find((i) => i.keyword === 'CMD')!.args);
    expect(entrypoint).toEqual(['/usr/bin/tini', '--', 'forge']);
    expect(cmd).toEqual(['server']);
    // `forge` is bin/forge.mjs, linked onto PATH; the plugin's wrapper is where cmp-plugin.yaml runs it.
    const setup = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(setup).toContain('ln -s /app/bin/forge.mjs /usr/local/bin/forge');
    const plugin = parse(readYaml(join(ROOT, 'deploy/argocd/cmp-plugin.yaml')).data['plugin.yaml']);
    const wrapper = copies(runtime).find((c) => c.sources.includes('deploy/argocd/catalyst-forge-cmp'))!;
    expect(wrapper.destination).toBe(plugin.spec.generate.command[0]);
    const help = execFileSync(process.execPath, [join(ROOT, 'bin/forge.mjs'), '--help'], { cwd: ROOT, encoding: 'utf8' });
    const subcommands = new Set([...help.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map(([, name]) => name!));
    const chart = readFileSync(join(CHART, 'templates/api-deployment.yaml'), 'utf8') + readFileSync(join(CHART, 'templates/workers.yaml'), 'utf8');
    const chartCommands = [...chart.matchAll(/^ +args: \["([a-z]+)"/gm)].map(([, name]) => name!);
    expect(chartCommands.sort()).toEqual(['server', 'worker']);
    for (const name of [cmd[0]!, ...chartCommands, 'cmp']) expect(subcommands, `forge ${name}`).toContain(name);
  });
});

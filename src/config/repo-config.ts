/**
 * Loading a repository's `.forge/repo.cue` (or repo.json / repo.yaml): evaluated by CUE against the
 * platform schema (schema/repo.cue), then checked for schema-version compatibility. Every problem is
 * reported with its file and position and says what is allowed.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CueError, exportJson, type CueProblem } from './cue.ts';
import { versionProblem } from './version.ts';

export interface PhaseDefinition {
  group: number;
  description?: string;
  timeout?: string;
  required?: boolean;
}

export interface RepoConfig {
  forgeVersion: string;
  tagging: { strategy: 'monorepo' | 'tag-all' };
  phases: Record<string, PhaseDefinition>;
  publishers?: Record<string, { type: string; [key: string]: unknown }>;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: CueProblem[]) {
    super(problems.map((p) => (p.positions[0] ? `${p.positions[0].file}:${p.positions[0].line}:${p.positions[0].column}: ${p.message}` : p.message)).join('\n'));
  }
}

export const REPO_CONFIG_FILES = ['repo.cue', 'repo.json', 'repo.yaml', 'repo.yml'] as const;
const SCHEMA_TEXT = readFileSync(fileURLToPath(new URL('./schema/repo.cue', import.meta.url)), 'utf8');

/** The package a CUE file declares, if any (JSON and YAML files have none). */
export function packageOf(source: string): string | undefined {
  const withoutComments = source.replace(/\/\/[^\n]*/g, '');
  return /^\s*package\s+([A-Za-z_][A-Za-z0-9_]*)\s*$/m.exec(withoutComments)?.[1];
}

/**
 * The schema as a file of the user's package, closing the top level with `#RepoConfig`. Written once
 * per package name into a temp dir (CUE reads files from disk).
 */
function schemaFileFor(pkg: string | undefined): string {
  const text = `${pkg ? `package ${pkg}\n\n` : ''}${SCHEMA_TEXT}\n#RepoConfig\n`;
  const dir = join(tmpdir(), 'forge-cue-schema', createHash('sha256').update(text).digest('hex').slice(0, 16));
  const file = join(dir, 'forge_repo_schema.cue');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${file}.${process.pid}.tmp`, text);
    writeFileSync(file, text);
  }
  return file;
}

/** Turns CUE's terse messages into ones that say what is required or allowed. */
export function explainProblems(problems: CueProblem[]): CueProblem[] {
  const pathOf = (message: string) => message.slice(0, message.indexOf(': '));
  const disjunctions = new Set(problems.filter((p) => /: \d+ errors in empty disjunction$/.test(p.message)).map((p) => pathOf(p.message)));
  const conflicts = new Map<string, [string, string][]>();
  for (const p of problems) {
    const match = /^(.+?): conflicting values (.+) and (.+)$/.exec(p.message);
    if (match?.[1] && disjunctions.has(match[1])) conflicts.set(match[1], [...(conflicts.get(match[1]) ?? []), [match[2] ?? '', match[3] ?? '']]);
  }
  return problems.flatMap((p): CueProblem[] => {
    const path = pathOf(p.message);
    const incomplete = /^(.+?): incomplete value (.+)$/.exec(p.message);
    if (incomplete) return [{ ...p, message: `${incomplete[1]} is required (${incomplete[2]})` }];
    if (!disjunctions.has(path)) return [p];
    const pairs = conflicts.get(path);
    // The disjunction's own line carries the explanation; its "conflicting values" lines fold into it.
    if (!/empty disjunction$/.test(p.message) || !pairs) return pairs ? [] : [p];
    const values = pairs.flat();
    const actual = values.find((v) => pairs.every((pair) => pair.includes(v)));
    const allowed = [...new Set(values.filter((v) => v !== actual))];
    return [{ ...p, message: `${path} must be one of ${allowed.join(', ')}${actual ? `; got ${actual}` : ''}` }];
  });
}

/** Where `pattern` first occurs in `file` (1-based), or its start. */
function positionOf(file: string, pattern: RegExp): { file: string; line: number; column: number } {
  const lines = readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((l) => pattern.test(l));
  return { file, line: index + 1 || 1, column: index >= 0 ? (lines[index]?.search(pattern) ?? 0) + 1 : 1 };
}

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const FIELDS = {
  top: ['forgeVersion', 'tagging', 'phases', 'publishers'],
  tagging: ['strategy'],
  phase: ['group', 'description', 'timeout', 'required'],
} as const;

/**
 * What CUE v0.4 does not enforce when the schema is unified into the user's package: the top level
 * stays open. Unknown fields and badly named phases or publishers are refused here, from the same
 * lists as schema/repo.cue.
 */
function shapeProblems(file: string, config: RepoConfig): CueProblem[] {
  const problems: CueProblem[] = [];
  const unknown = (where: string, keys: string[], allowed: readonly string[]) => {
    for (const key of keys.filter((k) => !allowed.includes(k))) {
      problems.push({ message: `${where}${key}: field not allowed; allowed here: ${allowed.join(', ')}`, positions: [positionOf(file, new RegExp(`["]?${escape(key)}["]?\\s*:`))] });
    }
  };
  unknown('', Object.keys(config), FIELDS.top);
  unknown('tagging.', Object.keys(config.tagging ?? {}), FIELDS.tagging);
  for (const [kind, entries] of [['phases', config.phases ?? {}], ['publishers', config.publishers ?? {}]] as const) {
    for (const [name, value] of Object.entries(entries)) {
      if (!NAME.test(name)) {
        problems.push({ message: `${kind}.${JSON.stringify(name)}: invalid name; names are lowercase letters, digits and "-", starting with a letter (at most 63)`, positions: [positionOf(file, new RegExp(escape(name)))] });
      }
      if (kind === 'phases') unknown(`phases.${name}.`, Object.keys(value as object), FIELDS.phase);
    }
  }
  return problems;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function findRepoConfig(root: string): string | undefined {
  return REPO_CONFIG_FILES.map((name) => join(root, '.forge', name)).find((file) => existsSync(file));
}

export async function loadRepoConfig(root: string): Promise<{ file: string; config: RepoConfig }> {
  const file = findRepoConfig(root);
  if (!file) {
    throw new ConfigError([{ message: `not a Forge repository: no .forge/repo.cue (or repo.json, repo.yaml) in ${root}`, positions: [] }]);
  }
  const pkg = extname(file) === '.cue' ? packageOf(readFileSync(file, 'utf8')) : undefined;
  let value: unknown;
  try {
    value = await exportJson([file, schemaFileFor(pkg)]);
  } catch (error) {
    if (error instanceof CueError) {
      // The user's file first: that is where the fix goes; the schema's lines follow.
      const mineFirst = (p: CueProblem) => ({ ...p, positions: [...p.positions].sort((a, b) => Number(b.file === file) - Number(a.file === file)) });
      throw new ConfigError(explainProblems(error.problems).map(mineFirst));
    }
    throw error;
  }
  const config = value as RepoConfig;
  const shape = shapeProblems(file, config);
  if (shape.length > 0) throw new ConfigError(shape);
  const problem = versionProblem(config.forgeVersion);
  if (problem) throw new ConfigError([{ message: problem, positions: [positionOf(file, /forgeVersion/)] }]);
  return { file, config };
}

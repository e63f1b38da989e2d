/**
 * One configuration file evaluated by CUE against the platform schema (schema/forge.cue): the schema
 * is written in the user's package with the wanted definition embedded, both files are exported
 * together, and CUE's problems come back explained, with the user's file first.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CueError, exportJson, type CueProblem } from './cue.ts';

export type SchemaDefinition = '#RepoConfig' | '#ProjectConfig';

const SCHEMA_TEXT = readFileSync(fileURLToPath(new URL('./schema/forge.cue', import.meta.url)), 'utf8');

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: CueProblem[]) {
    super(problems.map((p) => (p.positions[0] ? `${p.positions[0].file}:${p.positions[0].line}:${p.positions[0].column}: ${p.message}` : p.message)).join('\n'));
  }
}

/** The package a CUE file declares, if any (JSON and YAML files have none). */
export function packageOf(source: string): string | undefined {
  const withoutComments = source.replace(/\/\/[^\n]*/g, '');
  return /^\s*package\s+([A-Za-z_][A-Za-z0-9_]*)\s*$/m.exec(withoutComments)?.[1];
}

/**
 * The schema as a file of the user's package with `definition` embedded at the top level. Written
 * once per package name and definition into a temp dir (CUE reads files from disk).
 */
function schemaFileFor(pkg: string | undefined, definition: SchemaDefinition): string {
  const text = `${pkg ? `package ${pkg}\n\n` : ''}${SCHEMA_TEXT}\n${definition}\n`;
  const dir = join(tmpdir(), 'forge-cue-schema', createHash('sha256').update(text).digest('hex').slice(0, 16));
  const file = join(dir, 'forge_schema.cue');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
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
export function positionOf(file: string, pattern: RegExp): { file: string; line: number; column: number } {
  const lines = readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((l) => pattern.test(l));
  return { file, line: index + 1 || 1, column: index >= 0 ? (lines[index]?.search(pattern) ?? 0) + 1 : 1 };
}

export async function evaluateConfig(file: string, definition: SchemaDefinition): Promise<unknown> {
  const pkg = extname(file) === '.cue' ? packageOf(readFileSync(file, 'utf8')) : undefined;
  try {
    return await exportJson([file, schemaFileFor(pkg, definition)]);
  } catch (error) {
    if (!(error instanceof CueError)) throw error;
    // The user's file first: that is where the fix goes; the schema's lines follow.
    const mineFirst = (p: CueProblem) => ({ ...p, positions: [...p.positions].sort((a, b) => Number(b.file === file) - Number(a.file === file)) });
    throw new ConfigError(explainProblems(error.problems).map(mineFirst));
  }
}

export const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Problems for fields of `value` not in `allowed`, positioned at the field in `file`. */
export function unknownFields(file: string, where: string, value: object, allowed: readonly string[]): CueProblem[] {
  return Object.keys(value).filter((k) => !allowed.includes(k)).map((key) => ({
    message: `${where}${key}: field not allowed; allowed here: ${allowed.join(', ')}`,
    positions: [positionOf(file, new RegExp(`["]?${escapeRegExp(key)}["]?\\s*:`))],
  }));
}

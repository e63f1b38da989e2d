/**
 * Configuration files evaluated by CUE against the platform schema (schema/forge.cue), many at a
 * time. Each file's text (after Forge's attributes are applied) becomes one field of a generated
 * file, `fN: #ProjectConfig & { <the file> }`, so the schema's definitions close it as they would
 * close a definition; files are packed into a few CUE calls (one per worker) and each result is
 * cached by content, so an unchanged file is never evaluated twice. Project files that are plain
 * data first take a faster path (CUE without the schema, then the JSON Schema; see `fastPath`).
 * Problems are mapped back to the user's file, line and column and reworded to say what is allowed.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parseDocument } from 'yaml';
import { Lru } from '../lib/lru.ts';
import { applyAttributes, type ArtifactReference, type AttributeContext } from './attributes.ts';
import { cueParallelism, parseCueErrors, runCue, type CuePosition, type CueProblem } from './cue.ts';

export type SchemaDefinition = '#RepoConfig' | '#ProjectConfig';

export const SCHEMA_TEXT = readFileSync(fileURLToPath(new URL('./schema/forge.cue', import.meta.url)), 'utf8');
/** The CUE package path users import the schema as. */
export const SCHEMA_MODULE = 'forge.dev/schema';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: CueProblem[]) {
    super(problems.map(describeProblem).join('\n'));
  }
}

/** `file:line:column: message`, the form editors and terminals link. */
export function describeProblem(p: CueProblem): string {
  const at = p.positions[0];
  return at ? `${at.file}:${at.line}:${at.column}: ${p.message}` : p.message;
}

export interface ConfigSource {
  file: string;
  definition: SchemaDefinition;
  /** For `@repo` and `@artifact`; without it `@repo` has nothing to read. */
  context?: AttributeContext;
}

export type Evaluated =
  | { ok: true; file: string; value: unknown; references: ArtifactReference[] }
  | { ok: false; file: string; problems: CueProblem[] };

/** Where evaluated values are kept between calls (memory by default; the CLI adds a directory). */
export interface ConfigCache {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

const memoryCache = new Lru<string, unknown>(20_000);
export const MEMORY_CACHE: ConfigCache = { get: (k) => memoryCache.get(k), set: (k, v) => memoryCache.set(k, v) };

/** One file, ready to be evaluated as a field of a generated file. */
interface Segment {
  source: ConfigSource;
  /** The lines to place; the opener is already on `openerLine` (1-based, of the original). */
  lines: string[];
  openerLine: number;
  hasImports: boolean;
  /** Positions can be mapped line for line (CUE and JSON); YAML is converted and cannot. */
  mapsLines: boolean;
  key: string;
  references: ArtifactReference[];
  /** Whether the fast path may evaluate it (see `checkedByJsonSchema`). */
  plainData: boolean;
}

type Prepared = { ok: true; segment: Segment } | { ok: false; file: string; problems: CueProblem[] };

const LABEL = (index: number) => `f${index}`;

function prepare(source: ConfigSource, raw: string): Prepared {
  const { file } = source;
  let text = raw;
  let references: ArtifactReference[] = [];
  let mapsLines = true;
  const ext = extname(file);
  if (ext === '.yaml' || ext === '.yml') {
    const doc = parseDocument(raw, { prettyErrors: false });
    if (doc.errors.length > 0) {
      return { ok: false, file, problems: doc.errors.map((e) => ({ message: e.message.split('\n')[0] ?? e.message, positions: e.linePos ? [{ file, line: e.linePos[0].line, column: e.linePos[0].col }] : [] })) };
    }
    text = JSON.stringify(doc.toJS() ?? {}, null, 1);
    mapsLines = false;
  } else if (ext === '.cue') {
    const applied = applyAttributes(file, raw, source.context ?? { repo: undefined });
    if (applied.problems.length > 0) return { ok: false, file, problems: applied.problems };
    text = applied.text;
    references = applied.references;
  }
  const lines = text.split('\n');
  let inImports = false;
  let hasImports = false;
  let first = -1;
  for (const [i, line] of lines.entries()) {
    const trimmed = line.trim();
    if (inImports) {
      if (trimmed.startsWith(')')) inImports = false;
      continue;
    }
    if (trimmed === '' || trimmed.startsWith('//')) continue;
    if (/^package\s+\w+\s*(\/\/.*)?$/.test(trimmed)) {
      lines[i] = '';
      continue;
    }
    if (/^import\b/.test(trimmed)) {
      hasImports = true;
      inImports = /^import\s*\($/.test(trimmed) || (/^import\s*\(/.test(trimmed) && !trimmed.includes(')'));
      continue;
    }
    first = i;
    break;
  }
  if (first === -1) {
    lines.push('');
    first = lines.length - 1;
  }
  const body = lines.join('\n');
  const key = createHash('sha256').update(`${source.definition}\0${SCHEMA_TEXT}\0${ext}\0${body}`).digest('hex');
  // What exported JSON cannot show but the schema checks: bytes ('…' export as base64 strings) and
  // optional fields (`x?:` are not exported); files that may hold them always take the schema path.
  const plainData = source.definition === '#ProjectConfig' && !hasImports && !body.includes("'") && !/\?\s*:/.test(body);
  return { ok: true, segment: { source, lines, openerLine: first + 1, hasImports, mapsLines, key, references, plainData } };
}

/** A file waiting for CUE: where it goes in the results, and how it is to be evaluated. */
interface Pending {
  segment: Segment;
  index: number;
  /** Evaluate it in a call of its own (to find whose a problem is). */
  alone?: boolean;
  /** Evaluate it against the CUE schema (the fast path is off or has failed for it). */
  schema?: boolean;
}

/**
 * The fast path: a project file that is plain data is evaluated by CUE without the schema and its
 * value checked against the JSON Schema (schema/json/project.schema.json, which fills in the empty
 * lists CUE's `[...T]` defaults to); CUE with the schema costs about 70% more a file. Anything the
 * check refuses, and any CUE error, sends the file down the schema path, so every message a user
 * sees comes from CUE with the schema, which stays authoritative. A test holds the two paths to
 * the same results.
 */
function fastPath(item: Pending): boolean {
  return item.segment.plainData && !item.schema && fastPathEnabled;
}
let fastPathEnabled = true;

/** Turns the fast path off or on (tests compare both paths). */
export function setConfigFastPath(enabled: boolean): void {
  fastPathEnabled = enabled;
}

let projectSchema: ValidateFunction | undefined;
function checkedByJsonSchema(value: unknown): boolean {
  if (!projectSchema) {
    const schema = JSON.parse(readFileSync(fileURLToPath(new URL('../../schema/json/project.schema.json', import.meta.url)), 'utf8')) as object;
    projectSchema = new Ajv2020({ strict: true, useDefaults: true, allErrors: false }).compile(schema);
  }
  return projectSchema(value);
}

/** A generated file and where each of its segments sits in it. */
interface Packed {
  name: string;
  text: string;
  placed: { item: Pending; segment: Segment; label: string; start: number; end: number; shift: number }[];
}

function pack(name: string, segments: Pending[]): Packed {
  const out = ['package forgebatch'];
  const placed: Packed['placed'] = [];
  // Imports are file-scoped and must precede declarations: a file with imports keeps its own file.
  for (const item of segments) {
    const { segment, index } = item;
    const label = LABEL(index);
    const opener = fastPath(item) ? `${label}: {` : `${label}: ${segment.source.definition} & {`;
    const start = out.length + 1;
    segment.lines.forEach((line, i) => out.push(i + 1 === segment.openerLine ? opener + line : line));
    out.push('}');
    placed.push({ item, segment, label, start, end: start + segment.lines.length - 1, shift: opener.length });
  }
  return { name, text: `${out.join('\n')}\n`, placed };
}

/** The directory CUE runs in: the schema in the batch package, and as the importable module. */
let workDir: string | undefined;
function cueWorkDir(): string {
  if (workDir) return workDir;
  const dir = join(tmpdir(), `forge-cue-${createHash('sha256').update(SCHEMA_TEXT).digest('hex').slice(0, 12)}`);
  mkdirSync(join(dir, 'cue.mod', 'pkg', SCHEMA_MODULE), { recursive: true });
  // Other processes share the directory and may be evaluating: a file is replaced only by renaming a
  // complete copy over it, and only when its content differs.
  const put = (file: string, text: string) => {
    if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
    const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    writeFileSync(temp, text);
    renameSync(temp, file);
  };
  put(join(dir, 'cue.mod', 'module.cue'), 'module: "forge.dev/discovery"\n');
  put(join(dir, 'cue.mod', 'pkg', SCHEMA_MODULE, 'schema.cue'), `package schema\n\n${SCHEMA_TEXT}`);
  put(join(dir, 'forge_schema.cue'), `package forgebatch\n\n${SCHEMA_TEXT}`);
  workDir = dir;
  return dir;
}

/** Maps a position in a generated file back to the user's file, or undefined for the schema's own. */
function userPosition(position: CuePosition, files: Map<string, Packed>): { label: string; position?: CuePosition } | undefined {
  const packed = files.get(position.file);
  // In a file of one segment, its closing line (where an unclosed brace is reported) is its own; in a
  // shared file it is ambiguous, and the files are then evaluated one by one.
  const closing = packed?.placed.length === 1 ? 1 : 0;
  const place = packed?.placed.find((p) => position.line >= p.start && position.line <= p.end + closing);
  if (!place) return undefined;
  if (position.line > place.end) {
    return { label: place.label, position: { file: place.segment.source.file, line: place.segment.lines.length, column: 1 } };
  }
  const file = place.segment.source.file;
  if (!place.segment.mapsLines) return { label: place.label }; // YAML: positioned by field name later
  const line = position.line - place.start + 1;
  if (line === place.segment.openerLine && position.column <= place.shift) return { label: place.label }; // inside the generated opener
  const column = line === place.segment.openerLine ? position.column - place.shift : position.column;
  return { label: place.label, position: { file, line, column } };
}

/** Runs one CUE call over `packs`; returns the values by label, or the problems by label. */
async function runPacks(packs: Packed[]): Promise<{ values?: Record<string, unknown>; problems: Map<string, CueProblem[]>; unplaced: CueProblem[] }> {
  const dir = cueWorkDir();
  const files = new Map<string, Packed>();
  await Promise.all(packs.map(async (p) => {
    const path = join(dir, p.name);
    files.set(path, p);
    await writeFile(path, p.text);
  }));
  try {
    const result = await runCue(['export', ...packs.map((p) => p.name), 'forge_schema.cue', '--out=json'], dir);
    if (result.code === 0) return { values: JSON.parse(result.stdout) as Record<string, unknown>, problems: new Map(), unplaced: [] };
    const problems = new Map<string, CueProblem[]>();
    const unplaced: CueProblem[] = [];
    for (const problem of parseCueErrors(result.stderr, dir)) {
      const mapped = problem.positions.map((p) => userPosition(p, files));
      const labelOfPath = /^(f\d+)[.:]/.exec(problem.message)?.[1];
      const label = labelOfPath ?? mapped.find((m) => m)?.label;
      if (!label) {
        unplaced.push(problem);
        continue;
      }
      const message = problem.message.replace(/^f\d+(\.|: )/, '');
      const positions = mapped.flatMap((m) => (m?.label === label && m.position ? [m.position] : []));
      problems.set(label, [...(problems.get(label) ?? []), { message, positions }]);
    }
    return { problems, unplaced };
  } finally {
    await Promise.all([...files.keys()].map((f) => rm(f, { force: true })));
  }
}

/**
 * A problem CUE gave no position in the user's file (YAML is converted to JSON first; a missing
 * field has no line of its own) is placed at the field its message names (`a.b.field …`), or at the
 * file's start, so every problem says which file it is about.
 */
function positionByField(problem: CueProblem, file: string): CueProblem {
  if (problem.positions.length > 0) return problem;
  const path = /^([^\s:]+)/.exec(problem.message)?.[1] ?? '';
  const parts = path.split('.').filter((part) => !/^\d+$/.test(part));
  // The field itself, else its nearest parent that is written in the file.
  for (const field of parts.reverse()) {
    const at = positionOf(file, new RegExp(`(?<=^|[\\s{,"'])${escapeRegExp(field)}["']?\\s*:`));
    if (at.line > 1 || readFileSync(file, 'utf8').split('\n')[0]?.includes(field)) return { ...problem, positions: [at] };
  }
  return { ...problem, positions: [{ file, line: 1, column: 1 }] };
}

/** Problems of a file evaluated alone that CUE placed nowhere in it: kept, at the file's start. */
function unplacedProblems(unplaced: CueProblem[], file: string): CueProblem[] {
  const problems = unplaced.length > 0 ? unplaced : [{ message: 'CUE could not evaluate this file', positions: [] }];
  return problems.map((p) => ({ message: p.message, positions: [{ file, line: 1, column: 1 }] }));
}

/** Splits `items` into `parts` runs of nearly equal size. */
function split<T>(items: T[], parts: number): T[][] {
  const size = Math.ceil(items.length / Math.max(1, parts));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * A configuration file's text, or the problem when it or its `.forge` directory is a symbolic link.
 * A checkout's links are never followed: one could point anywhere on the worker's machine (its own
 * environment in /proc/self/environ included), and what was read would come back in error messages.
 */
function readConfigFile(file: string): string | CueProblem {
  for (const path of [dirname(file), file]) {
    if (lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) {
      return { message: `${path} is a symbolic link; configuration is read only from regular files and directories of the repository`, positions: [] };
    }
  }
  return readFileSync(file, 'utf8');
}

/** Most files one CUE call evaluates (bounds a call's memory; GC is off inside a call). */
const MAX_PER_CALL = 500;

/**
 * Evaluates every source against its schema definition; the result for each source is its value or
 * all of its problems. A file with problems does not stop the others from being evaluated.
 */
export async function evaluateConfigs(sources: ConfigSource[], cache: ConfigCache = MEMORY_CACHE): Promise<Evaluated[]> {
  // Small files read synchronously: for a thousand of them this is several times faster than the thread pool.
  const raws = sources.map((s) => readConfigFile(s.file));
  const results: (Evaluated | undefined)[] = sources.map(() => undefined);
  const pending: Pending[] = [];
  sources.forEach((source, index) => {
    const raw = raws[index] ?? '';
    if (typeof raw !== 'string') {
      results[index] = { ok: false, file: source.file, problems: [raw] };
      return;
    }
    const prepared = prepare(source, raw);
    if (!prepared.ok) {
      results[index] = { ok: false, file: prepared.file, problems: prepared.problems };
      return;
    }
    const hit = cache.get(prepared.segment.key);
    if (hit !== undefined) results[index] = { ok: true, file: source.file, value: structuredClone(hit), references: prepared.segment.references };
    else pending.push({ segment: prepared.segment, index });
  });

  let remaining = pending;
  while (remaining.length > 0) {
    const alone = remaining.filter((p) => p.segment.hasImports || p.alone);
    const together = remaining.filter((p) => !p.segment.hasImports && !p.alone);
    const calls = split(together, Math.max(cueParallelism(), Math.ceil(together.length / MAX_PER_CALL))).map((group) => [pack(`batch-${randomUUID()}.cue`, group)]);
    for (const one of alone) calls.push([pack(`batch-${randomUUID()}.cue`, [one])]);
    const outcomes = await Promise.all(calls.map((packs) => runPacks(packs).then((outcome) => ({ packs, outcome }))));
    const retry: Pending[] = [];
    for (const { packs, outcome } of outcomes) {
      const placed = packs.flatMap((p) => p.placed);
      for (const place of placed) {
        const { item } = place;
        const { index, segment } = item;
        const source = sources[index]!;
        const fast = fastPath(item);
        if (outcome.values) {
          const value = outcome.values[place.label];
          if (fast && !checkedByJsonSchema(value)) {
            retry.push({ segment, index, schema: true });
            continue;
          }
          cache.set(segment.key, value);
          results[index] = { ok: true, file: source.file, value: structuredClone(value), references: segment.references };
          continue;
        }
        const problems = outcome.problems.get(place.label);
        if (fast && (problems || placed.length === 1)) retry.push({ segment, index, schema: true, ...(item.alone ? { alone: true } : {}) }); // the schema path words its problems
        else if (problems) results[index] = { ok: false, file: source.file, problems: explainProblems(problems, source).map((q) => positionByField(q, source.file)) };
        else if (outcome.problems.size > 0) retry.push(item); // evaluated again without the failing files
        else if (placed.length > 1) retry.push({ ...item, alone: true }); // a problem no file claims: find whose, one by one
        else results[index] = { ok: false, file: source.file, problems: unplacedProblems(outcome.unplaced, source.file) };
      }
    }
    remaining = retry;
  }
  return results.map((r, i) => r ?? { ok: false, file: sources[i]?.file ?? '', problems: [{ message: 'not evaluated', positions: [] }] });
}

/** Fields each closed struct of the schema allows, by path (`*` is any name or index). */
const ALLOWED_FIELDS: Record<SchemaDefinition, Record<string, string[]>> = {
  '#RepoConfig': {
    '': ['forgeVersion', 'tagging', 'phases', 'publishers'],
    tagging: ['strategy'],
    'phases.*': ['group', 'description', 'timeout', 'required'],
  },
  '#ProjectConfig': {
    '': ['name', 'phases', 'artifacts', 'release', 'deploy'],
    'phases.*': ['steps'],
    'phases.*.steps.*': ['name', 'action', 'target', 'run', 'timeout', 'env'],
    'artifacts.*': ['type', 'producer', 'publishers', 'ref', 'name', 'compression'],
    'artifacts.*.producer': ['type', 'target', 'run', 'artifact'],
    release: ['on', 'enabled'],
    deploy: ['resources'],
  },
};
/** Maps whose keys are user-chosen names. */
const NAMED_MAPS = ['phases', 'publishers', 'artifacts'];

export const CONFIG_NAME_RULE = 'lowercase letters, digits and "-", starting with a letter (at most 63)';

function allowedAt(definition: SchemaDefinition, path: string): string[] | undefined {
  const generic = path.split('.').map((part, i) => (i % 2 === 1 && /^(phases|artifacts|steps)$/.test(path.split('.')[i - 1] ?? '') ? '*' : part)).join('.');
  return ALLOWED_FIELDS[definition][generic];
}

/** Turns CUE's terse messages into ones that say what is required or allowed. */
export function explainProblems(problems: CueProblem[], source?: Pick<ConfigSource, 'definition'>): CueProblem[] {
  const pathOf = (message: string) => message.slice(0, message.indexOf(': '));
  const disjunctions = new Set(problems.filter((p) => /: \d+ errors in empty disjunction$/.test(p.message)).map((p) => pathOf(p.message)));
  const conflicts = new Map<string, [string, string][]>();
  for (const p of problems) {
    const match = /^(.+?): conflicting values (.+) and (.+)$/.exec(p.message);
    if (match?.[1] && disjunctions.has(match[1])) conflicts.set(match[1], [...(conflicts.get(match[1]) ?? []), [match[2] ?? '', match[3] ?? '']]);
  }
  return problems.flatMap((p): CueProblem[] => {
    const notAllowed = /^(?:(.+?): )?field (.+) not allowed$/.exec(p.message);
    if (notAllowed && source) {
      const parent = notAllowed[1] ?? '';
      const field = notAllowed[2] ?? '';
      const where = parent ? `${parent}.` : '';
      if (NAMED_MAPS.includes(parent)) return [{ ...p, message: `${where}${field.startsWith('"') ? field : JSON.stringify(field)}: invalid name; names are ${CONFIG_NAME_RULE}` }];
      const allowed = allowedAt(source.definition, parent);
      return [{ ...p, message: `${where}${field}: field not allowed${allowed ? `; allowed here: ${allowed.join(', ')}` : ''}` }];
    }
    const path = pathOf(p.message);
    const incomplete = /^(.+?): incomplete value (.+)$/.exec(p.message);
    if (incomplete) return [{ ...p, message: `${incomplete[1]} is required (${incomplete[2]})` }];
    if (!disjunctions.has(path)) return [p];
    const pairs = conflicts.get(path);
    // The disjunction's own line carries the explanation; its "conflicting values" lines fold into it.
    if (!/empty disjunction$/.test(p.message) || !pairs) return pairs ? [] : [p];
    // The user's positions are on the folded "conflicting values" lines.
    const folded = problems.filter((q) => q.message.startsWith(`${path}: conflicting values `)).flatMap((q) => q.positions);
    const positions = [...p.positions, ...folded].filter((pos, i, all) => all.findIndex((o) => o.file === pos.file && o.line === pos.line && o.column === pos.column) === i);
    const values = pairs.flat();
    const actual = values.find((v) => pairs.every((pair) => pair.includes(v)));
    const allowed = [...new Set(values.filter((v) => v !== actual))];
    return [{ message: `${path} must be one of ${allowed.join(', ')}${actual ? `; got ${actual}` : ''}`, positions }];
  });
}

/** Where `pattern` first occurs in `file` (1-based), or its start. */
export function positionOf(file: string, pattern: RegExp): CuePosition {
  const lines = readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((l) => pattern.test(l));
  return { file, line: index + 1 || 1, column: index >= 0 ? (lines[index]?.search(pattern) ?? 0) + 1 : 1 };
}

/** Evaluates one file; its value, or a ConfigError with all of its problems. */
export async function evaluateConfig(source: ConfigSource, cache?: ConfigCache): Promise<{ value: unknown; references: ArtifactReference[] }> {
  const [result] = await evaluateConfigs([source], cache);
  if (!result?.ok) throw new ConfigError(result?.problems ?? []);
  return { value: result.value, references: result.references };
}

export const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

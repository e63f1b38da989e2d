/**
 * Forge's CUE attributes (digest §1.5), applied to a file's text before CUE evaluates it:
 * - `@repo(path="phases.test.timeout")` takes the value at that path of the repository config;
 * - `@artifact("name.field")` (or `@artifact(name="…", field="…")`) takes an artifact output. During
 *   validate/discover there are no outputs yet and a deterministic placeholder stands in
 *   (`ARTIFACT_URI_<name>`, …); at release time the real outputs are given and a reference to a
 *   missing artifact or field is an error naming both.
 * An attribute follows a field's value (`image: string @artifact("api.uri")`); it is replaced by
 * `& <value as JSON>`, so CUE unifies the declared type with the value and still checks it.
 */
import type { CueProblem } from './cue.ts';

/** An artifact's outputs as `@artifact` addresses them (digest §3.6): producer fields plus `publishers.<name>.<field>`. */
export type ArtifactOutputs = Record<string, Record<string, unknown>>;

export interface AttributeContext {
  /** The evaluated repository config, for `@repo`. */
  repo: unknown;
  /** Real artifact outputs (release time); absent during validate/discover, when placeholders are used. */
  artifacts?: ArtifactOutputs;
}

export interface ArtifactReference {
  artifact: string;
  field: string;
  line: number;
  column: number;
}

export interface AttributeResult {
  text: string;
  problems: CueProblem[];
  references: ArtifactReference[];
}

/** The placeholder a reference resolves to before the artifact exists (the [L] processor's rule). */
export function artifactPlaceholder(artifact: string, field: string): string {
  const last = field.split('.').at(-1) ?? field;
  if (['uri', 'image', 'url'].includes(last)) return `ARTIFACT_URI_${artifact}`;
  if (['digest', 'sha256', 'hash'].includes(last)) return `ARTIFACT_DIGEST_${artifact}`;
  if (['tag', 'version'].includes(last)) return `ARTIFACT_TAG_${artifact}`;
  if (['path', 'location'].includes(last)) return `ARTIFACT_PATH_${artifact}`;
  return `ARTIFACT_${artifact}_${field.replace(/\./g, '_')}`;
}

/** The value at a dotted path, or undefined. */
export function valueAt(root: unknown, path: string): unknown {
  let value = root;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

interface Attribute {
  name: string;
  /** Offset of `@` and just past `)` in the text. */
  start: number;
  end: number;
  positional: string[];
  named: Record<string, string>;
}

/**
 * Parses an attribute's arguments: `"a.b"`, `name="x", field="y"`, `path=x`. Returns undefined when
 * the argument list is malformed.
 */
function parseArguments(body: string): { positional: string[]; named: Record<string, string> } | undefined {
  const positional: string[] = [];
  const named: Record<string, string> = {};
  const argument = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)\s*=\s*)?("(?:[^"\\]|\\.)*"|[^,"\s]+)\s*(?:,|$)/y;
  let index = 0;
  while (index < body.length) {
    argument.lastIndex = index;
    const match = argument.exec(body);
    if (!match || match[0] === '') return undefined;
    const raw = match[2] ?? '';
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    if (match[1]) named[match[1]] = value;
    else positional.push(value);
    index = argument.lastIndex;
  }
  return { positional, named };
}

/** Finds `@repo(…)` and `@artifact(…)` outside strings and comments. */
function findAttributes(text: string): Attribute[] {
  const found: Attribute[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'") {
      // Skip a string literal ("…", '…' or a multi-line """…""").
      const triple = text.startsWith(c.repeat(3), i);
      const close = triple ? c.repeat(3) : c;
      i += close.length;
      while (i < text.length && !text.startsWith(close, i)) i += text[i] === '\\' ? 2 : 1;
      i += close.length;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
      continue;
    }
    if (c === '@') {
      const head = /@(repo|artifact)\(/y;
      head.lastIndex = i;
      const match = head.exec(text);
      if (match) {
        // The argument list ends at the first ")" outside a quoted argument.
        let j = head.lastIndex;
        while (j < text.length && text[j] !== ')') {
          if (text[j] === '"') {
            j += 1;
            while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
          }
          j += 1;
        }
        const body = text.slice(head.lastIndex, j);
        const args = parseArguments(body);
        found.push({ name: match[1] ?? '', start: i, end: j + 1, positional: args?.positional ?? [], named: args?.named ?? { __malformed: body } });
        i = j + 1;
        continue;
      }
    }
    i += 1;
  }
  return found;
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** The primary output a reference addresses: `<name>.uri` without a publisher is the first published URI. */
function artifactValue(outputs: Record<string, unknown>, field: string): unknown {
  const direct = valueAt(outputs, field);
  if (direct !== undefined || field !== 'uri') return direct;
  const publishers = outputs['publishers'];
  if (publishers && typeof publishers === 'object') {
    for (const published of Object.values(publishers as Record<string, unknown>)) {
      const uri = valueAt(published, 'uri');
      if (uri !== undefined) return uri;
    }
  }
  return undefined;
}

/**
 * Replaces Forge's attributes in `text` (a CUE file of `file`) by the values they stand for.
 * Problems are positioned in the original text.
 */
export function applyAttributes(file: string, text: string, context: AttributeContext): AttributeResult {
  const problems: CueProblem[] = [];
  const references: ArtifactReference[] = [];
  let result = '';
  let last = 0;
  for (const attribute of findAttributes(text)) {
    const at = { file, ...lineAndColumn(text, attribute.start) };
    const source = text.slice(attribute.start, attribute.end);
    const fail = (message: string) => problems.push({ message: `${source}: ${message}`, positions: [at] });
    let value: unknown;
    if (attribute.named['__malformed'] !== undefined) {
      fail('malformed arguments; write @repo(path="a.b") or @artifact("name.field")');
    } else if (attribute.name === 'repo') {
      const path = attribute.named['path'];
      if (path === undefined) fail('a path argument is required, e.g. @repo(path="phases.test.timeout")');
      else {
        value = valueAt(context.repo, path);
        if (value === undefined) fail(`repo.cue has no value at "${path}"`);
      }
    } else {
      const dotted = attribute.positional[0];
      const name = attribute.named['name'] ?? (dotted === undefined ? undefined : dotted.split('.')[0]);
      const field = attribute.named['field'] ?? (dotted === undefined ? undefined : dotted.split('.').slice(1).join('.'));
      if (!name || !field) {
        fail('name an artifact and a field: @artifact("name.field") or @artifact(name="name", field="field")');
      } else {
        references.push({ artifact: name, field, line: at.line, column: at.column });
        if (!context.artifacts) value = artifactPlaceholder(name, field);
        else {
          const outputs = context.artifacts[name];
          if (!outputs) fail(`artifact "${name}" has no outputs in this release; produced artifacts: ${Object.keys(context.artifacts).sort().join(', ') || '(none)'}`);
          else {
            value = artifactValue(outputs, field);
            if (value === undefined) fail(`artifact "${name}" has no output "${field}"`);
          }
        }
      }
    }
    result += text.slice(last, attribute.start) + (value === undefined ? '' : `& ${JSON.stringify(value)}`);
    last = attribute.end;
  }
  return { text: result + text.slice(last), problems, references };
}

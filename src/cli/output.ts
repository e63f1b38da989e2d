/**
 * Human output of the client commands: aligned plain-text tables, indented trees, label/value
 * blocks, ISO timestamps and short durations (1m03s). Pure functions returning lines; colour is a
 * Style chosen once per process (ANSI only on a TTY without NO_COLOR) and passed in.
 */

/** How a value reads at a glance; the Style decides what (if anything) that looks like. */
export type Tone = 'good' | 'bad' | 'busy' | 'quiet';

export interface Cell {
  text: string;
  tone?: Tone | undefined;
}

/** null / undefined print as '-' ("none"); '' stays blank ("does not apply"). */
export type CellInput = string | number | null | undefined | Cell;

export interface Style {
  paint(cell: Cell): string;
}

const ANSI: Record<Tone, string> = { good: '32', bad: '31', busy: '33', quiet: '2' };

export const plainStyle: Style = { paint: (cell) => cell.text };
export const ansiStyle: Style = {
  paint: (cell) => (cell.tone ? `\u001b[${ANSI[cell.tone]}m${cell.text}\u001b[0m` : cell.text),
};

/** Colour only for a person at a terminal who has not asked for none (https://no-color.org). */
export function styleFor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): Style {
  return stream.isTTY === true && !env.NO_COLOR ? ansiStyle : plainStyle;
}

const STATUS_TONES: Record<string, Tone> = {
  success: 'good', active: 'good',
  failed: 'bad', cancelled: 'bad', revoked: 'bad', expired: 'bad',
  pending: 'busy', running: 'busy',
  skipped: 'quiet', superseded: 'quiet',
};

export function status(value: string): Cell {
  return { text: value, tone: STATUS_TONES[value] };
}

function cell(input: CellInput): Cell {
  if (input === null || input === undefined) return { text: '-' };
  return typeof input === 'object' ? input : { text: String(input) };
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: CellInput[][], style: Style): string[] {
  const cells = [headers.map((h) => ({ text: h })), ...rows.map((row) => row.map(cell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]?.text.length ?? 0)));
  return cells.map((row) => row
    .map((c, i) => (i === row.length - 1 ? style.paint(c) : style.paint(c) + ' '.repeat((widths[i] ?? 0) - c.text.length)))
    .join('  ')
    .trimEnd());
}

/** "label  value" lines with the values aligned, indented under a heading. */
export function fields(pairs: [string, CellInput][], style: Style, indent = '  '): string[] {
  const width = Math.max(...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${indent}${label.padEnd(width)}  ${style.paint(cell(value))}`.trimEnd());
}

export interface TreeNode {
  /** The first cell is the node's label; the tree glyphs are put in front of it. */
  cells: CellInput[];
  children: TreeNode[];
}

/** Flattens a tree into table rows whose first cell carries ├─ / └─ / │ guides. */
export function treeRows(nodes: TreeNode[]): CellInput[][] {
  const rows: CellInput[][] = [];
  const walk = (list: TreeNode[], prefix: string, topLevel: boolean) => {
    list.forEach((node, i) => {
      const last = i === list.length - 1;
      const [label, ...rest] = node.cells;
      const labelCell = cell(label);
      const guide = topLevel ? '' : last ? '└─ ' : '├─ ';
      rows.push([{ ...labelCell, text: `${prefix}${guide}${labelCell.text}` }, ...rest]);
      walk(node.children, topLevel ? '' : `${prefix}${last ? '   ' : '│  '}`, false);
    });
  };
  walk(nodes, '', true);
  return rows;
}

/** 2024-01-01T00:00:00Z: ISO 8601 in UTC, to the second. */
export function iso(timestamp: string | null | undefined): string {
  if (!timestamp) return '-';
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** 450ms, 12s, 1m03s, 2h05m09s. */
export function elapsed(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const total = Math.floor(ms / 1000);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h${two(m)}m${two(s)}s`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}

/** The time between two timestamps, or undefined while the second is missing. */
export function duration(from: string | null | undefined, to: string | null | undefined): string | undefined {
  if (!from || !to) return undefined;
  return elapsed(new Date(to).getTime() - new Date(from).getTime());
}

export const shortSha = (sha: string | null | undefined) => (sha ? sha.slice(0, 12) : undefined);

/** The line under a paged table: "no runs", or where this page sits and how to get the next. */
export function pageFooter(page: { total: number; limit: number; offset: number }, shown: number, noun: string): string[] {
  if (shown === 0) return [page.offset > 0 && page.total > 0 ? `no ${noun} at offset ${page.offset} (${page.total} in all)` : `no ${noun}`];
  if (page.offset === 0 && shown >= page.total) return [];
  const next = page.offset + shown < page.total ? `; next page: --offset ${page.offset + shown}` : '';
  return [`${noun} ${page.offset + 1}-${page.offset + shown} of ${page.total}${next}`];
}

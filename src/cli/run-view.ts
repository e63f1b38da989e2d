/**
 * How a pipeline run reads: its phase → task → step tree (`runs get`, `runs watch`), its progress
 * on one line, and the status transitions between two snapshots of it (`runs watch` in a CI log).
 */
import { isRunTerminal } from '../domain/statuses.ts';
import { duration, fields, iso, shortSha, status, table, treeRows, type Style } from './output.ts';
import type { RunTreeJson } from './wire.ts';

type PhaseJson = RunTreeJson['phases'][number];
type TaskJson = PhaseJson['tasks'][number];

interface Timed {
  started_at: string | null;
  completed_at: string | null;
}

/** started → completed; with `now`, started → now while it has not completed. */
function took(node: Timed, now?: Date): string | undefined {
  return duration(node.started_at, node.completed_at ?? now?.toISOString());
}

const byGroup = (run: RunTreeJson) => [...run.phases].sort((a, b) => a.group_number - b.group_number);

/** The run's fields and its tree; `now` gives what still runs a duration so far (a live view). */
export function renderRun(run: RunTreeJson, style: Style, now?: Date): string[] {
  return [
    `run ${run.id}  ${style.paint(status(run.status))}`,
    ...fields([
      ['repository', run.repository],
      ['branch', run.branch],
      ['commit', run.commit_sha],
      ['trigger', `${run.trigger_type} by ${run.triggered_by}`],
      ...(run.attempt > 1 ? [['attempt', run.attempt] as [string, number]] : []),
      ['started', iso(run.started_at)],
      ['completed', iso(run.completed_at)],
      ['duration', took(run, now)],
      ...(run.error_code ? [['error', `${run.error_code}: ${run.error_message ?? ''}`] as [string, string]] : []),
    ], style),
    '',
    ...renderTree(run, style, now),
  ];
}

/** "run 4f9c…  running  acme/shop main 3f2a9c1d0e4b  attempt 2": the run on one line. */
export function runHeadline(run: RunTreeJson, style: Style): string {
  return `run ${run.id}  ${style.paint(status(run.status))}  ${run.repository} ${run.branch} ${shortSha(run.commit_sha) ?? ''}${run.attempt > 1 ? `  attempt ${run.attempt}` : ''}`;
}

/** The phase → task → step table (a header line, then one line per node), or why there is none. */
export function renderTree(run: RunTreeJson, style: Style, now?: Date): string[] {
  if (run.phases.length === 0) return [isRunTerminal(run.status) ? 'no phases' : 'no phases yet: discovery has not run'];
  const rows = treeRows(byGroup(run).map((phase) => ({
    cells: [`${phase.name} (group ${phase.group_number})`, status(phase.status), '', took(phase, now), ''],
    children: phase.tasks.map((task) => ({
      cells: [task.project_name, status(task.status), '', took(task, now), task.error ?? ''],
      children: task.steps.map((step) => ({
        cells: [step.step_name, status(step.status), step.exit_code, took(step, now), `${step.action} ${step.target}`.trim()],
        children: [],
      })),
    })),
  })));
  return table(['PHASE / TASK / STEP', 'STATUS', 'EXIT', 'DURATION', 'DETAIL'], rows, style);
}

/** A stopwatch: 00:42, 12:03, 1:02:03. */
export function clock(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

const since = (run: RunTreeJson, at: string | Date) => new Date(at).getTime() - new Date(run.started_at).getTime();

/**
 * "running · group 2/3 · 5/12 tasks done · 2 running · 1 failed · 00:42". The group is the one
 * running, else the next to start, else the last that ran; done means finished (success or failed);
 * the time is the run's, to `now` while it runs.
 */
export function progressLine(run: RunTreeJson, style: Style, now: Date): string {
  const parts = [style.paint(status(run.status))];
  if (run.phases.length === 0) {
    parts.push(isRunTerminal(run.status) ? 'no phases' : 'waiting for discovery');
  } else {
    const groups = [...new Set(run.phases.map((p) => p.group_number))].sort((a, b) => a - b);
    const any = (group: number, test: (p: PhaseJson) => boolean) => run.phases.some((p) => p.group_number === group && test(p));
    let at = groups.findIndex((g) => any(g, (p) => p.status === 'running'));
    if (at < 0) at = groups.findIndex((g) => any(g, (p) => p.status === 'pending'));
    if (at < 0) at = groups.findLastIndex((g) => any(g, (p) => p.status !== 'skipped'));
    const tasks = run.phases.flatMap((p) => p.tasks);
    const count = (s: TaskJson['status']) => tasks.filter((task) => task.status === s).length;
    parts.push(`group ${Math.max(at, 0) + 1}/${groups.length}`, `${count('success') + count('failed')}/${tasks.length} tasks done`);
    for (const s of ['running', 'failed', 'skipped'] as const) {
      if (count(s) > 0) parts.push(`${count(s)} ${s}`);
    }
  }
  parts.push(clock(since(run, run.completed_at ?? now)));
  return parts.join(' · ');
}

interface Change {
  /** When it happened, in ms since the run started, as far as the record says. */
  at: number;
  /** At the same moment, parents start before their children and end after them. */
  rank: number;
  line: string;
}

/**
 * One line per status change from `before` (undefined: nothing seen yet, everything pending) to
 * `after`, in the order they happened: "[00:42] test/api/unit failed (exit 2, 3s)". A skipped node
 * under a skipped parent is left out: its parent's line says it.
 */
export function transitionLines(before: RunTreeJson | undefined, after: RunTreeJson, style: Style, now: Date): string[] {
  const seen = new Map<string, string>(before ? [['run', before.status]] : []);
  for (const phase of before?.phases ?? []) {
    seen.set(phase.id, phase.status);
    for (const task of phase.tasks) {
      seen.set(task.id, task.status);
      for (const step of task.steps) seen.set(step.id, step.status);
    }
  }
  const nowAt = since(after, now);
  const firstStart = Math.min(nowAt, ...after.phases.flatMap((p) => (p.started_at ? [since(after, p.started_at)] : [])));
  const changes: Change[] = [];
  const add = (at: number, rank: number, shownAt: number, text: string) => changes.push({ at, rank, line: `[${clock(shownAt)}] ${text}` });
  const note = (id: string, node: Timed & { status: string }, depth: number, label: string, details: (string | undefined)[], parentSkipped: boolean) => {
    if (node.status === (seen.get(id) ?? 'pending') || (node.status === 'skipped' && parentSkipped)) return;
    const running = node.status === 'running';
    const when = running ? node.started_at : node.completed_at;
    const at = when ? since(after, when) : nowAt;
    const extra = details.filter(Boolean);
    add(at, running ? depth : -depth, at, `${label} ${style.paint(status(node.status))}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`);
  };

  const runChanged = after.status !== (before?.status ?? 'pending');
  if ((before?.phases.length ?? 0) === 0 && after.phases.length > 0) {
    const tasks = after.phases.flatMap((p) => p.tasks);
    const groups = new Set(after.phases.map((p) => p.group_number)).size;
    add(-Infinity, 0, firstStart, `discovery: ${plural(groups, 'phase group')}, ${plural(tasks.length, 'task')}, ${plural(tasks.flatMap((t) => t.steps).length, 'step')}`);
  }
  // A run is `running` from its first step's start (its started_at is when it was created).
  if (runChanged && !isRunTerminal(after.status)) add(-Infinity, 1, firstStart, `run ${style.paint(status(after.status))}`);
  for (const phase of byGroup(after)) {
    note(phase.id, phase, 1, phase.name, [took(phase)], false);
    for (const task of phase.tasks) {
      const path = `${phase.name}/${task.project_name}`;
      note(task.id, task, 2, path, [took(task), task.status === 'failed' ? task.error ?? undefined : undefined], phase.status === 'skipped');
      for (const step of task.steps) {
        note(step.id, step, 3, `${path}/${step.step_name}`, [step.exit_code === null ? undefined : `exit ${step.exit_code}`, took(step)], task.status === 'skipped');
      }
    }
  }
  if (runChanged && isRunTerminal(after.status)) {
    const error = after.error_code ? ` (${after.error_code}: ${after.error_message ?? ''})` : '';
    // The run's own end comes after everything in it.
    add(Infinity, 0, since(after, after.completed_at ?? now), `run ${style.paint(status(after.status))}${error}`);
  }
  return changes.map((c, i) => ({ ...c, i })).sort((a, b) => a.at - b.at || a.rank - b.rank || a.i - b.i).map((c) => c.line);
}

export const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

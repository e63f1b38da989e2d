/** `forge runs create | get | list | cancel`: pipeline runs. */
import { type Command, Option } from 'commander';
import { isRunTerminal, RUN_STATUSES, TRIGGER_TYPES, type RunStatus, type TriggerType } from '../domain/statuses.ts';
import * as args from './args.ts';
import { apiPath } from './client.ts';
import { duration, fields, iso, pageFooter, shortSha, status, table, treeRows, type Style } from './output.ts';
import { clientCommand, group } from './session.ts';
import type { CreatedRunJson, Paged, RunJson, RunTreeJson } from './wire.ts';

export function renderRun(run: RunTreeJson, style: Style): string[] {
  const lines = [
    `run ${run.id}  ${style.paint(status(run.status))}`,
    ...fields([
      ['repository', run.repository],
      ['branch', run.branch],
      ['commit', run.commit_sha],
      ['trigger', `${run.trigger_type} by ${run.triggered_by}`],
      ['started', iso(run.started_at)],
      ['completed', iso(run.completed_at)],
      ['duration', duration(run.started_at, run.completed_at)],
      ...(run.error_code ? [['error', `${run.error_code}: ${run.error_message ?? ''}`] as [string, string]] : []),
    ], style),
    '',
  ];
  if (run.phases.length === 0) {
    lines.push(isRunTerminal(run.status) ? 'no phases' : 'no phases yet: discovery has not run');
    return lines;
  }
  const phases = [...run.phases].sort((a, b) => a.group_number - b.group_number);
  const rows = treeRows(phases.map((phase) => ({
    cells: [`${phase.name} (group ${phase.group_number})`, status(phase.status), '', duration(phase.started_at, phase.completed_at), ''],
    children: phase.tasks.map((task) => ({
      cells: [task.project_name, status(task.status), '', duration(task.started_at, task.completed_at), task.error ?? ''],
      children: task.steps.map((step) => ({
        cells: [step.step_name, status(step.status), step.exit_code, duration(step.started_at, step.completed_at), `${step.action} ${step.target}`.trim()],
        children: [],
      })),
    })),
  })));
  lines.push(...table(['PHASE / TASK / STEP', 'STATUS', 'EXIT', 'DURATION', 'DETAIL'], rows, style));
  return lines;
}

export function renderRunList(page: Paged<'runs', RunJson>, style: Style): string[] {
  const rows = page.runs.map((r) => [
    r.id, r.repository, r.branch, shortSha(r.commit_sha), status(r.status), r.trigger_type, r.triggered_by,
    iso(r.started_at), duration(r.started_at, r.completed_at),
  ]);
  return [
    ...(rows.length > 0 ? table(['ID', 'REPOSITORY', 'BRANCH', 'COMMIT', 'STATUS', 'TRIGGER', 'BY', 'STARTED', 'DURATION'], rows, style) : []),
    ...pageFooter(page, rows.length, 'runs'),
  ];
}

export function registerRunCommands(program: Command): void {
  const runs = group(program, 'runs', 'pipeline runs: create, inspect, list, cancel');

  clientCommand<{ repository: string; branch: string; commit: string; triggerType: TriggerType; triggeredBy?: string }>(
    runs, 'create', 'start a pipeline run for a commit (idempotent: one run per repository + commit)',
    (c) => c
      .requiredOption('--repository <owner/name>', 'repository', args.repository)
      .requiredOption('--branch <branch>', 'branch the commit is on', args.branch)
      .requiredOption('--commit <sha>', 'full commit SHA', args.commitSha)
      .addOption(new Option('--trigger-type <type>', 'what started the run').choices(TRIGGER_TYPES).default('manual'))
      .option('--triggered-by <actor>', 'who the run is for (default: you; naming someone else needs operator or service-account)'),
    async (session, _args, o) => {
      const { status: http, body } = await session.api.post<CreatedRunJson>(apiPath('runs'), {
        repository: o.repository, branch: o.branch, commit_sha: o.commit, trigger_type: o.triggerType,
        ...(o.triggeredBy !== undefined ? { triggered_by: o.triggeredBy } : {}),
      });
      if (session.json) return session.printJson(body);
      session.print(http === 201 ? `created run ${body.id} (${body.status})` : `run ${body.id} already exists for this commit (${body.status})`);
    },
  );

  clientCommand(
    runs, 'get', 'show a run with its phases, tasks and steps',
    (c) => c.argument('<id>', 'run id', args.uuid),
    async (session, [id = '']) => {
      const { body } = await session.api.get<RunTreeJson>(apiPath('runs', id));
      if (session.json) return session.printJson(body);
      session.print(renderRun(body, session.style));
    },
  );

  clientCommand<{ repository?: string; branch?: string; status?: RunStatus; limit?: number; offset?: number }>(
    runs, 'list', 'list runs, newest first',
    (c) => c
      .option('--repository <owner/name>', 'only this repository', args.repository)
      .option('--branch <branch>', 'only this branch', args.branch)
      .addOption(new Option('--status <status>', 'only runs with this status').choices(RUN_STATUSES))
      .option('--limit <n>', 'page size, 1-500 (default 20)', args.limit)
      .option('--offset <n>', 'runs to skip', args.offset),
    async (session, _args, o) => {
      const { body } = await session.api.get<Paged<'runs', RunJson>>(apiPath('runs'), {
        repository: o.repository, branch: o.branch, status: o.status, limit: o.limit, offset: o.offset,
      });
      if (session.json) return session.printJson(body);
      session.print(renderRunList(body, session.style));
    },
  );

  clientCommand(
    runs, 'cancel', 'cancel a pending or running run (with --json: prints nothing, the API answers 204)',
    (c) => c.argument('<id>', 'run id', args.uuid),
    async (session, [id = '']) => {
      await session.api.delete(apiPath('runs', id));
      if (!session.json) session.print(`cancelled run ${id}`);
    },
  );
}

/** `forge runs create | get | list | cancel | watch | retry`: pipeline runs. */
import { type Command, Option } from 'commander';
import { RUN_STATUSES, TRIGGER_TYPES, type RunStatus, type TriggerType } from '../domain/statuses.ts';
import * as args from './args.ts';
import { apiPath, EXIT } from './client.ts';
import { duration, iso, pageFooter, shortSha, status, table, type Style } from './output.ts';
import { plural, renderRun } from './run-view.ts';
import { watchExitCode, watchRun } from './run-watch.ts';
import { clientCommand, group, type Session } from './session.ts';
import type { CreatedRunJson, Paged, RunJson, RunTreeJson } from './wire.ts';

const WATCH_HELP = `
While it watches:
  on a terminal    the phase → task → step tree with statuses and durations and a progress line
                   (running · group 2/3 · 5/12 tasks done · 1 failed · 00:42), redrawn in place
  otherwise (CI)   one line per status change ([00:42] test/api/unit failed (exit 2, 3s)), then the
                   final tree and progress line
  --json           newline-delimited JSON: the run tree (as \`runs get --json\`, on one line) each
                   time it changes; the last line is the final tree (\`| tail -n 1\`)
Network errors and HTTP 429/5xx answers are retried (a notice on stderr, or in the frame on a
terminal) for up to 5 minutes without an answer. Ctrl-C stops watching; the run goes on.

Exit status: 0 the run succeeded, ${EXIT.runFailed} it failed, ${EXIT.runCancelled} it was cancelled; as every command,
${EXIT.api} for an API error (e.g. no such run), ${EXIT.usage} for a bad command line, ${EXIT.unreachable} when the server stays unreachable.`;

interface WatchFlags {
  interval: number;
}

const watchOptions = (c: Command) => c
  .addOption(new Option('--interval <seconds>', 'how often to look, in seconds (0.1 to 60)').argParser(args.seconds(0.1, 60)).default(1000, '1'))
  .addHelpText('after', WATCH_HELP);

/** Watches to the end and sets the exit status from the run's outcome. */
async function watchToEnd(session: Session, id: string, o: WatchFlags, first?: RunTreeJson): Promise<void> {
  const mode = session.json ? 'json' : session.stdout.isTTY ? 'tty' : 'lines';
  const run = await watchRun(session.api, id, {
    mode, intervalMs: o.interval, style: session.style, screen: session.stdout, warn: session.warn, ...(first ? { first } : {}),
  });
  process.exitCode = watchExitCode(run.status);
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
  const runs = group(program, 'runs', 'pipeline runs: create, inspect, list, cancel, watch, retry');

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

  clientCommand<WatchFlags>(
    runs, 'watch', 'follow a run until it ends; exit 0 success, 1 failed, 4 cancelled',
    (c) => watchOptions(c.argument('<id>', 'run id', args.uuid)),
    (session, [id = ''], o) => watchToEnd(session, id, o),
  );

  clientCommand<WatchFlags & { watch?: boolean }>(
    runs, 'retry', 'run the failed and cancelled tasks of a finished run again, as its next attempt',
    (c) => watchOptions(c
      .argument('<id>', 'run id', args.uuid)
      .option('--watch', 'then follow the run as `runs watch` does, and exit as it does (with --json: only the watch\'s snapshots)')),
    async (session, [id = ''], o) => {
      const { body } = await session.api.post<RunTreeJson>(apiPath('runs', id, 'retry'), {});
      if (session.json && !o.watch) return session.printJson(body);
      if (!session.json) {
        // The tasks the retry set going again: the ones not finished in its answer.
        const again = body.phases.flatMap((p) => p.tasks).filter((task) => task.status === 'pending' || task.status === 'running').length;
        session.print(`run ${body.id} attempt ${body.attempt ?? '?'}: retrying ${plural(again, 'task')}`);
      }
      if (o.watch) await watchToEnd(session, id, o, body);
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

/** `forge retention run`: apply the server's retention now (operators; POST /v1/retention). */
import type { Command } from 'commander';
import type { RetentionReport } from '../domain/limits.ts';
import { apiPath } from './client.ts';
import { fields, iso, type Style } from './output.ts';
import { plural } from './run-view.ts';
import { clientCommand, group } from './session.ts';

/** Bytes as people read them: 1.5 MiB. */
function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function renderRetention(report: RetentionReport, style: Style): string[] {
  const verb = report.dry_run ? 'would delete' : 'deleted';
  return [
    report.dry_run ? 'dry run: nothing was deleted' : 'retention applied',
    ...fields([
      ['runs', report.runs_older_than ? `finished before ${iso(report.runs_older_than)}: ${verb} ${plural(report.runs_deleted, 'run')} (${plural(report.steps_deleted, 'step')})` : 'kept (FORGE_RUN_RETENTION is off)'],
      ['logs', report.logs_older_than ? `of runs finished before ${iso(report.logs_older_than)}: ${verb} the logs of ${plural(report.runs_logs_expired, 'run')} (${plural(report.steps_logs_expired, 'step')})` : 'kept (FORGE_LOG_RETENTION is off)'],
      ['objects', `${verb} ${plural(report.objects_deleted, 'object')} (${size(report.bytes_deleted)})`],
      ['kept', 'releases, deployments, approvals and the audit trail'],
    ], style),
  ];
}

export function registerRetentionCommands(program: Command): void {
  const retention = group(program, 'retention', 'retention of runs and logs (operators)');
  clientCommand<{ dryRun?: boolean }>(
    retention, 'run', 'delete finished runs and step logs older than the server\'s FORGE_RUN_RETENTION / FORGE_LOG_RETENTION now; releases, deployments and approvals are kept (needs the operator role)',
    (c) => c.option('--dry-run', 'count what would be deleted, delete nothing'),
    async (session, _args, o) => {
      const { body } = await session.api.post<RetentionReport>(apiPath('retention'), { dry_run: o.dryRun === true });
      if (session.json) return session.printJson(body);
      session.print(renderRetention(body, session.style));
    },
  );
}

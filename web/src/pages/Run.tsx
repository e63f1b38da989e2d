/**
 * One run: its phase groups → phases → tasks (one per project) → steps, live while it runs, with
 * the failing step marked, cancel / retry-failed when permitted, and the selected step's log.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import { Link } from 'wouter';
import { api, ApiError, enc } from '../api.ts';
import { ErrorBanner } from '../components/ErrorBanner.tsx';
import { isTerminalRun, StatusBadge } from '../components/Status.tsx';
import { elapsed, formatTime, shortSha } from '../format.ts';
import { useApi, useCan, useEvents, useNow, useTitle } from '../hooks.ts';
import type { Phase, ReleaseBuild, RunTree, Step, Task } from '../types.ts';
import { LogViewer } from './LogViewer.tsx';

interface Located { phase: Phase; task: Task; step: Step }

function groupsOf(run: RunTree): { group: number; phases: Phase[] }[] {
  const groups = new Map<number, Phase[]>();
  for (const phase of run.phases) groups.set(phase.group_number, [...(groups.get(phase.group_number) ?? []), phase]);
  return [...groups.entries()].sort(([a], [b]) => a - b).map(([group, phases]) => ({ group, phases }));
}

function locate(run: RunTree | undefined, predicate: (step: Step, task: Task) => boolean): Located | undefined {
  for (const phase of run?.phases ?? []) for (const task of phase.tasks) for (const step of task.steps) if (predicate(step, task)) return { phase, task, step };
  return undefined;
}

export function RunPage({ runId, stepId }: { runId: string; stepId?: string }) {
  const run = useApi<RunTree>(`/v1/runs/${enc(runId)}`, { pollMs: 1000, poll: (r) => !r || !isTerminalRun(r.status) });
  const builds = useApi<{ release_builds: ReleaseBuild[] }>(`/v1/runs/${enc(runId)}/release-builds`, {
    pollMs: 1500, poll: (b) => !b || b.release_builds.some((x) => !['success', 'failed', 'cancelled'].includes(x.status)) || (run.data !== undefined && !isTerminalRun(run.data.status)),
  });
  useEvents(['pipeline.run.completed', 'pipeline.run.retried', 'release.created', 'release.build.failed'], (event) => {
    if (event.data.run_id === runId || event.data.id === runId || event.data.pipeline_run_id === runId) { run.reload(); builds.reload(); }
  });
  const data = run.data;
  const running = data !== undefined && !isTerminalRun(data.status);
  const now = useNow(1000, running);
  useTitle(data ? `${data.repository} ${shortSha(data.commit_sha)} · ${data.status}` : 'Run');

  const canCancel = useCan('runs:cancel');
  const canRetry = useCan('runs:create');
  const [action, setAction] = useState<{ busy?: string; error?: ApiError; done?: string }>({});
  // The button pressed goes away once the run changes: focus moves to what the action says.
  const notice = useRef<HTMLParagraphElement>(null);
  useEffect(() => { if (action.done) notice.current?.focus(); }, [action.done]);
  const act = async (name: string, call: () => Promise<unknown>, done: string) => {
    setAction({ busy: name });
    try {
      await call();
      setAction({ done });
      run.reload();
      builds.reload();
    } catch (error) {
      setAction({ error: error instanceof ApiError ? error : new ApiError(0, 'client_error', String(error)) });
    }
  };

  const failing = useMemo(() => locate(data, (step) => step.status === 'failed'), [data]);
  const failingTask = useMemo(() => data?.phases.flatMap((p) => p.tasks.map((t) => ({ phase: p, task: t }))).find(({ task }) => task.status === 'failed'), [data]);
  const selected = useMemo(() => (stepId ? locate(data, (step) => step.id === stepId) : undefined), [data, stepId]);

  if (run.error && !data) return <ErrorBanner error={run.error} title="This run could not be loaded" />;
  if (!data) return <p aria-busy="true">Loading run…</p>;

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb"><Link href="/runs">Runs</Link> / <span>{data.repository}</span></nav>
      <div className="page-head run-head">
        <h1>
          <StatusBadge status={data.status} />{' '}
          <span>{data.repository}</span> <span className="muted">@</span> <span>{data.branch}</span>{' '}
          <span className="mono muted" title={data.commit_sha}>{shortSha(data.commit_sha)}</span>
        </h1>
        <div className="actions">
          {running && canCancel && (
            <button type="button" className="danger" disabled={action.busy !== undefined}
              onClick={() => void act('cancel', () => api(`/v1/runs/${enc(runId)}`, { method: 'DELETE' }), 'Cancel requested.')}>
              {action.busy === 'cancel' ? 'Cancelling…' : 'Cancel run'}
            </button>
          )}
          {(data.status === 'failed' || data.status === 'cancelled') && canRetry && (
            <button type="button" disabled={action.busy !== undefined}
              onClick={() => void act('retry', () => api(`/v1/runs/${enc(runId)}/retry`, { method: 'POST' }), 'Failed tasks queued again.')}>
              {action.busy === 'retry' ? 'Retrying…' : 'Retry failed tasks'}
            </button>
          )}
        </div>
      </div>
      <dl className="facts">
        <div><dt>Trigger</dt><dd>{data.trigger_type} by {data.triggered_by}</dd></div>
        <div><dt>Started</dt><dd>{formatTime(data.started_at)}</dd></div>
        <div><dt>Duration</dt><dd className="num" aria-live="off">{elapsed(data.started_at, data.completed_at, now)}</dd></div>
        <div><dt>Attempt</dt><dd>{data.attempt}</dd></div>
      </dl>
      <div aria-live="polite" className="action-status">
        {action.done && <p className="notice" ref={notice} tabIndex={-1}>{action.done}</p>}
      </div>
      <ErrorBanner error={action.error} />
      {run.error && <ErrorBanner error={run.error} title="Live updates failed; retrying" />}
      {data.error_message && <p className="error-banner" role="alert"><strong>Run failed:</strong> {data.error_message} {data.error_code && <span className="error-code">({data.error_code})</span>}</p>}
      {(failing || failingTask) && data.status !== 'success' && (
        <p className="failing-summary">
          Failed: {failing
            ? <Link href={`/runs/${runId}/steps/${failing.step.id}`}>{failing.task.project_name} › {failing.phase.name} › {failing.step.step_name}</Link>
            : <span>{failingTask?.task.project_name} › {failingTask?.phase.name}</span>}
          {failingTask?.task.error && <span className="muted"> — {failingTask.task.error}</span>}
        </p>
      )}

      <section aria-label="Pipeline" className="pipeline">
        {data.phases.length === 0 && <p className="muted">{running ? 'Discovering projects…' : 'No phases ran.'}</p>}
        {groupsOf(data).map(({ group, phases }) => (
          <div className="group" key={group} role="group" aria-label={`Group ${group}`}>
            <h2 className="group-title">Group {group}</h2>
            {phases.map((phase) => (
              <section className="phase" key={phase.id} aria-label={`Phase ${phase.name}`}>
                <h3><StatusBadge status={phase.status} label={phase.name} /> <span className="num muted">{elapsed(phase.started_at, phase.completed_at, now)}</span></h3>
                <ul className="tasks">
                  {phase.tasks.map((task) => (
                    <li key={task.id} className={`task task-${task.status}`}>
                      <div className="task-head">
                        <StatusBadge status={task.status} label={task.project_name} />
                        <span className="num muted">{elapsed(task.started_at, task.completed_at, now)}</span>
                      </div>
                      {task.error && task.status === 'failed' && <p className="task-error">{task.error}</p>}
                      <ol className="steps">
                        {task.steps.map((step) => {
                          const isSelected = step.id === stepId;
                          const isFailing = step.status === 'failed';
                          return (
                            <li key={step.id} className={`step step-${step.status}${isFailing ? ' failing' : ''}${isSelected ? ' selected' : ''}`}>
                              <Link href={`/runs/${runId}/steps/${step.id}`} aria-current={isSelected ? 'true' : undefined} data-step={step.step_name}>
                                {/* The name a screen reader hears starts with the context; the visible text follows it. */}
                                <span className="visually-hidden">{task.project_name} › {phase.name}, {step.status}{isFailing ? ', failing step' : ''}: step </span>
                                <StatusBadge status={step.status} label={step.step_name} />
                                <span className="num muted">{elapsed(step.started_at, step.completed_at, now)}</span>
                              </Link>
                            </li>
                          );
                        })}
                      </ol>
                    </li>
                  ))}
                </ul>
              </section>
            ))}
          </div>
        ))}
        {builds.data && builds.data.release_builds.length > 0 && (
          <div className="group" role="group" aria-label="Release">
            <h2 className="group-title">Release</h2>
            <ul className="tasks">
              {builds.data.release_builds.map((build) => (
                <li key={build.id} className={`task task-${build.status}`}>
                  <div className="task-head">
                    <StatusBadge status={build.status} label={build.project} />
                    <span className="num muted">{elapsed(build.created_at, build.finished_at, now)}</span>
                  </div>
                  {build.error_message && <p className="task-error">{build.error_message}</p>}
                  {build.release_id && <Link href={`/releases?repository=${enc(build.repository)}&project=${enc(build.project)}`}>View release</Link>}
                </li>
              ))}
            </ul>
          </div>
        )}
      </section>

      {stepId && (
        <section className="log-section" aria-label="Step log">
          {selected ? (
            <>
              <h2>
                Log: {selected.task.project_name} › {selected.phase.name} › {selected.step.step_name}{' '}
                <StatusBadge status={selected.step.status} />
                {selected.step.exit_code !== null && <span className="muted"> exit {selected.step.exit_code}</span>}
                {selected.step.attempt > 1 && <span className="muted"> attempt {selected.step.attempt}</span>}
              </h2>
              <LogViewer key={`${selected.step.id}:${selected.step.attempt}`} stepId={selected.step.id} stepStatus={selected.step.status} runStatus={data.status} />
            </>
          ) : <p>This step is not part of the run.</p>}
        </section>
      )}
    </>
  );
}

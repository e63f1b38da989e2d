/** Runs: newest first, filtered by repository / branch / status, live from the event stream. */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { query } from '../api.ts';
import { ErrorBanner } from '../components/ErrorBanner.tsx';
import { Pager } from '../components/Pager.tsx';
import { StatusBadge } from '../components/Status.tsx';
import { elapsed, relativeTime, shortSha } from '../format.ts';
import { useApi, useEvents, useNow, useTitle } from '../hooks.ts';
import { RUN_STATUSES } from '../../../src/domain/statuses.ts';
import type { RunList } from '../types.ts';

const PAGE = 50;

export function RunsPage() {
  useTitle('Runs');
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const repository = search.get('repository') ?? '';
  const branch = search.get('branch') ?? '';
  const status = search.get('status') ?? '';
  const offset = Number(search.get('offset') ?? 0) || 0;
  const path = `/v1/runs${query({ repository, branch, status, limit: PAGE, offset })}`;
  const runs = useApi<RunList>(path, { pollMs: 10_000 });
  const reloadSoon = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const live = useEvents(['pipeline.run.created', 'pipeline.run.completed', 'pipeline.run.retried'], () => {
    clearTimeout(reloadSoon.current);
    reloadSoon.current = setTimeout(runs.reload, 200);
  });
  const anyRunning = runs.data?.runs.some((r) => r.status === 'running' || r.status === 'pending') ?? false;
  const now = useNow(1000, anyRunning);

  // The fields follow the URL (back/forward, Clear) and keep focus when the form is submitted.
  const [fields, setFields] = useState({ repository, branch, status });
  useEffect(() => setFields({ repository, branch, status }), [repository, branch, status]);
  const filter = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    navigate(`/runs${query({ repository: fields.repository.trim(), branch: fields.branch.trim(), status: fields.status })}`);
  };
  const page = (to: number) => navigate(`/runs${query({ repository, branch, status, offset: to || undefined })}`);
  const total = runs.data?.total ?? 0;

  return (
    <>
      <div className="page-head">
        <h1>Runs</h1>
        <span className={live ? 'live on' : 'live'} role="status" aria-live="polite">{live ? 'Live' : 'Reconnecting…'}</span>
      </div>
      <form className="filters" onSubmit={filter} aria-label="Filter runs">
        <label>Repository <input name="repository" value={fields.repository} onChange={(e) => setFields({ ...fields, repository: e.target.value })} placeholder="owner/name" /></label>
        <label>Branch <input name="branch" value={fields.branch} onChange={(e) => setFields({ ...fields, branch: e.target.value })} placeholder="main" /></label>
        <label>Status
          <select name="status" value={fields.status} onChange={(e) => setFields({ ...fields, status: e.target.value })}>
            <option value="">any</option>
            {RUN_STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <button type="submit">Filter</button>
        {(repository || branch || status) && <Link href="/runs">Clear</Link>}
      </form>
      <ErrorBanner error={runs.error} />
      <table className="runs-table">
        <caption className="visually-hidden">Pipeline runs, newest first</caption>
        <thead>
          <tr><th scope="col" className="col-status">Status</th><th scope="col">Repository</th><th scope="col">Branch</th><th scope="col" className="col-sha">Commit</th><th scope="col">Trigger</th><th scope="col" className="col-time">Started</th><th scope="col" className="col-duration">Duration</th></tr>
        </thead>
        <tbody>
          {runs.data?.runs.map((run) => (
            <tr key={run.id} data-run-id={run.id}>
              <td><Link href={`/runs/${run.id}`} aria-label={`Run ${shortSha(run.commit_sha)} on ${run.branch}: ${run.status}`}><StatusBadge status={run.status} /></Link></td>
              <td>{run.repository}</td>
              <td>{run.branch}</td>
              <td className="mono"><Link href={`/runs/${run.id}`}>{shortSha(run.commit_sha)}</Link></td>
              <td>{run.trigger_type} <span className="muted">by {run.triggered_by}</span></td>
              <td title={run.started_at}>{relativeTime(run.started_at, now)}</td>
              <td className="num">{elapsed(run.started_at, run.completed_at, now)}</td>
            </tr>
          ))}
          {runs.data && runs.data.runs.length === 0 && <tr><td colSpan={7} className="empty">No runs match.</td></tr>}
          {!runs.data && !runs.error && <tr><td colSpan={7} className="empty" aria-busy="true">Loading…</td></tr>}
        </tbody>
      </table>
      <Pager total={total} offset={offset} size={PAGE} onPage={page} />
    </>
  );
}

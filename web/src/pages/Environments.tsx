/**
 * Projects × environments: the active release in each, who deployed and approved it, and when.
 * Selecting a cell opens the target: its policy, approvals, history, and the approve / revoke /
 * deploy / rollback actions the user's permissions allow (a refusal is shown with its reasons).
 */
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { api, ApiError, enc, query, repoPath } from '../api.ts';
import { ErrorBanner } from '../components/ErrorBanner.tsx';
import { StatusBadge } from '../components/Status.tsx';
import { formatTime, relativeTime, shortSha } from '../format.ts';
import { RETRY_UNTIL_LOADED, useApi, useCan, useEvents, useMe, useNow, useTitle } from '../hooks.ts';
import type { ActiveDeployment, Approval, Deployment, EnvironmentPolicy, ProjectSummary, ReleaseList, RollbackTarget } from '../types.ts';

const EVENTS = ['deployment.created', 'deployment.activated', 'deployment.failed', 'approval.created', 'approval.revoked', 'release.created'];

export function EnvironmentsPage() {
  useTitle('Environments');
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const environments = useApi<{ environments: EnvironmentPolicy[] }>('/v1/environments', RETRY_UNTIL_LOADED);
  const projects = useApi<{ projects: ProjectSummary[] }>('/v1/projects', RETRY_UNTIL_LOADED);
  const [changes, setChanges] = useState(0);
  const reloadProjects = projects.reload;
  const changed = useCallback(() => { reloadProjects(); setChanges((n) => n + 1); }, [reloadProjects]);
  const live = useEvents(EVENTS, changed, changed);
  const now = useNow(30_000);
  const envs = environments.data?.environments ?? [];
  const selected = { repository: search.get('repository') ?? '', project: search.get('project') ?? '', environment: search.get('environment') ?? '' };
  const policy = envs.find((e) => e.name === selected.environment);
  const summary = projects.data?.projects.find((p) => p.repository === selected.repository && p.project === selected.project);

  return (
    <>
      <div className="page-head">
        <h1>Environments</h1>
        <span className={live ? 'live on' : 'live'} role="status" aria-live="polite">{live ? 'Live' : 'Reconnecting…'}</span>
      </div>
      <ErrorBanner error={environments.error ?? projects.error} />
      <div className="matrix-wrap">
        <table className="matrix">
          <caption className="visually-hidden">Active release of each project in each environment</caption>
          <thead>
            <tr>
              <th scope="col">Project</th>
              {envs.map((env) => (
                <th scope="col" key={env.name}>
                  {env.name}
                  <div className="policy small muted">
                    {env.frozen ? <span className="frozen" title={env.freeze_reason}>frozen</span> : env.requires_approval ? `${env.approvals_required} approval${env.approvals_required === 1 ? '' : 's'}` : 'no approval'}
                    {env.auto_deploy ? ' · auto' : ''}
                  </div>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {projects.data?.projects.map((p) => (
              <tr key={`${p.repository}/${p.project}`}>
                <th scope="row"><span className="project-name">{p.project}</span><div className="muted small">{p.repository}</div></th>
                {envs.map((env) => {
                  const active = p.deployments.find((d) => d.environment === env.name);
                  const isSelected = selected.repository === p.repository && selected.project === p.project && selected.environment === env.name;
                  return (
                    <td key={env.name} className={isSelected ? 'cell selected' : 'cell'}>
                      <Link href={`/environments${query({ repository: p.repository, project: p.project, environment: env.name })}`}
                        data-cell={`${p.repository}/${p.project}@${env.name}`} data-release={active?.release_number ?? ''}
                        aria-current={isSelected ? 'true' : undefined}>
                        <span className="visually-hidden">{p.project} in {env.name}: </span>
                        {active ? <CellSummary active={active} now={now} /> : <span className="muted">—<span className="visually-hidden">nothing deployed</span></span>}
                      </Link>
                    </td>
                  );
                })}
              </tr>
            ))}
            {projects.data && projects.data.projects.length === 0 && <tr><td colSpan={envs.length + 1} className="empty">No project has a release yet.</td></tr>}
          </tbody>
        </table>
      </div>
      {policy && summary && (
        <TargetPanel key={`${selected.repository}/${selected.project}/${selected.environment}`} policy={policy} summary={summary} changes={changes}
          onChanged={changed} onClose={() => {
            navigate('/environments');
            // Focus goes back to the cell the panel was opened from.
            requestAnimationFrame(() => document.querySelector<HTMLElement>(`.matrix a[data-cell="${CSS.escape(`${selected.repository}/${selected.project}@${selected.environment}`)}"]`)?.focus());
          }} />
      )}
    </>
  );
}

function CellSummary({ active, now }: { active: ActiveDeployment; now: number }) {
  return (
    <span className="cell-summary">
      <strong>#{active.release_number}</strong>{active.rollback && <span className="tag">rollback</span>}
      <span className="small">by {active.deployed_by}</span>
      <span className="small muted" title={formatTime(active.deployed_at)}>{relativeTime(active.deployed_at, now)}</span>
      {active.approved_by.length > 0 && <span className="small muted">approved: {active.approved_by.join(', ')}</span>}
    </span>
  );
}

type Outcome = { kind: 'ok'; message: string } | { kind: 'error'; error: ApiError; title: string } | undefined;

function TargetPanel({ policy, summary, changes, onChanged, onClose }: { policy: EnvironmentPolicy; summary: ProjectSummary; changes: number; onChanged: () => void; onClose: () => void }) {
  const me = useMe();
  const env = policy.name;
  const target = `${enc(env)}/${repoPath(summary.repository)}/${enc(summary.project)}`;
  const history = useApi<{ deployments: Deployment[]; total: number }>(`/v1/deployments/${target}/history?limit=20`);
  const releases = useApi<ReleaseList>(`/v1/releases/${repoPath(summary.repository)}/${enc(summary.project)}?limit=50`);
  const active = summary.deployments.find((d) => d.environment === env);
  const [releaseId, setReleaseId] = useState<string | undefined>();
  const chosen = releaseId ?? summary.latest_release?.id;
  const approvals = useApi<{ approvals: Approval[] }>(chosen && policy.requires_approval ? `/v1/approvals/${enc(chosen)}/${enc(env)}` : undefined);
  const rollback = useApi<RollbackTarget>(active ? `/v1/deployments/${target}/rollback-target` : undefined);
  const [outcome, setOutcome] = useState<Outcome>();
  // The pressed button may go away (revoke, deploy): focus moves to what happened.
  const notice = useRef<HTMLParagraphElement>(null);
  useEffect(() => { if (outcome?.kind === 'ok') notice.current?.focus(); }, [outcome]);
  const [busy, setBusy] = useState<string | undefined>();
  const [pending, setPending] = useState<string | undefined>();
  const now = useNow(30_000);
  const canDeploy = useCan(env === 'dev' ? 'deployments:create:dev' : 'deployments:create:any');
  const canApprove = useCan('approvals:create');
  const canRevoke = useCan('approvals:revoke');
  const canOverride = useCan('deployments:override-freeze');

  // Reload on a change seen after the panel opened (not on mount: its first loads are on their way).
  const seenChanges = useRef(changes);
  useEffect(() => {
    if (changes === seenChanges.current) return;
    seenChanges.current = changes;
    history.reload(); approvals.reload(); rollback.reload(); releases.reload();
  }, [changes]);

  // A requested deployment is followed until the pointer commit lands (or fails).
  useEffect(() => {
    if (!pending) return undefined;
    let stopped = false;
    const poll = async () => {
      try {
        const d = await api<Deployment>(`/v1/deployments/${enc(pending)}`);
        if (stopped) return;
        if (d.status === 'pending') { setTimeout(() => void poll(), 700); return; }
        setPending(undefined);
        setOutcome(d.status === 'failed'
          ? { kind: 'error', title: 'Deployment failed', error: new ApiError(0, 'deployment_failed', d.error ?? 'the GitOps commit could not be made') }
          : { kind: 'ok', message: `Release #${d.release_number} is ${d.status} in ${env}${d.gitops_commit_sha ? ` (commit ${shortSha(d.gitops_commit_sha)})` : ''}.` });
        onChanged();
      } catch (error) {
        if (!stopped) { setPending(undefined); setOutcome({ kind: 'error', title: 'Could not follow the deployment', error: error as ApiError }); }
      }
    };
    void poll();
    return () => { stopped = true; };
  }, [pending, env, onChanged]);

  const run = async (name: string, title: string, call: () => Promise<void>) => {
    setBusy(name);
    setOutcome(undefined);
    try {
      await call();
    } catch (error) {
      setOutcome({ kind: 'error', title, error: error instanceof ApiError ? error : new ApiError(0, 'client_error', String(error)) });
    } finally {
      setBusy(undefined);
    }
  };

  const deploy = (releaseToDeploy: string, label: string, freezeReason?: string) => run(label, `${label} refused`, async () => {
    const created = await api<{ id: string; status: string }>('/v1/deployments', {
      method: 'POST', body: { release_id: releaseToDeploy, environment: env, ...(freezeReason ? { freeze_override_reason: freezeReason } : {}) },
    });
    setOutcome({ kind: 'ok', message: `${label} requested; waiting for the GitOps commit…` });
    setPending(created.id);
    history.reload();
  });

  const approve = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    const justification = String(new FormData(form).get('justification') ?? '').trim();
    if (!chosen) return;
    void run('approve', 'Approval refused', async () => {
      await api('/v1/approvals', { method: 'POST', body: { release_id: chosen, environment: env, justification } });
      form.reset();
      setOutcome({ kind: 'ok', message: `Approved for ${env}.` });
      approvals.reload();
      onChanged();
    });
  };
  const revoke = (approval: Approval) => void run(`revoke-${approval.approval_id}`, 'Revoke refused', async () => {
    await api(`/v1/approvals/${enc(approval.approval_id)}`, { method: 'DELETE' });
    setOutcome({ kind: 'ok', message: `Approval by ${approval.approver} revoked.` });
    approvals.reload();
    onChanged();
  });

  const chosenRelease = releases.data?.releases.find((r) => r.id === chosen);
  const activeApprovals = approvals.data?.approvals.filter((a) => a.status === 'active') ?? [];
  const [freezeReason, setFreezeReason] = useState('');

  return (
    <section className="target-panel" aria-labelledby="target-title">
      <div className="page-head">
        <h2 id="target-title">{summary.project} in {env} <span className="muted small">{summary.repository}</span></h2>
        <button type="button" className="link-button" onClick={onClose}>Close</button>
      </div>
      <p className="policy-line">
        Policy: releases from {policy.allowed_triggers.join(', ')} on {policy.allowed_branches.join(', ')};{' '}
        {policy.requires_approval ? `${policy.approvals_required} approval${policy.approvals_required === 1 ? '' : 's'} required` : 'no approval needed'}
        {policy.auto_deploy ? '; deployed automatically' : ''}.
        {policy.frozen && <strong className="frozen"> Frozen{policy.freeze_reason ? `: ${policy.freeze_reason}` : ''}.</strong>}
      </p>
      <div aria-live="polite">
        {outcome?.kind === 'ok' && <p className="notice" role="status" ref={notice} tabIndex={-1}>{outcome.message}</p>}
      </div>
      {outcome?.kind === 'error' && <ErrorBanner error={outcome.error} title={outcome.title} />}

      <div className="panel-grid">
        <section aria-labelledby="current-title">
          <h3 id="current-title">Current</h3>
          {active ? (
            <p>Release <strong>#{active.release_number}</strong> deployed by {active.deployed_by} {relativeTime(active.deployed_at, now)}
              {active.approved_by.length > 0 && <>, approved by {active.approved_by.join(', ')}</>}
              {active.gitops_commit_sha && <> · commit <span className="mono">{shortSha(active.gitops_commit_sha)}</span></>}.</p>
          ) : <p className="muted">Nothing is deployed here yet.</p>}
          {active && rollback.data && !rollback.error && rollback.data.current.release_id === active.release_id && (
            <p>
              {canDeploy ? (
                <button type="button" disabled={busy !== undefined || pending !== undefined}
                  onClick={() => { if (window.confirm(`Roll ${summary.project} in ${env} back to release #${rollback.data?.release_number}?`)) void deploy(rollback.data!.release_id, 'Rollback', freezeReason || undefined); }}>
                  {busy === 'Rollback' ? 'Rolling back…' : `Roll back to #${rollback.data.release_number}`}
                </button>
              ) : <span className="muted">Rolling back needs {env === 'dev' ? 'deployments:create:dev' : 'deployments:create:any'} (your roles: {me.roles.join(', ') || 'none'}).</span>}
            </p>
          )}
          {active && rollback.data && !rollback.error && rollback.data.current.release_id === active.release_id && policy.requires_approval && rollback.data.release_id !== chosen && (
            <p className="small">A rollback needs approvals of #{rollback.data.release_number} too.{' '}
              <button type="button" className="link-button" onClick={() => setReleaseId(rollback.data?.release_id)}>Show its approvals</button></p>
          )}
          {active && rollback.error?.status === 409 && <p className="muted small">No earlier release was active here: nothing to roll back to.</p>}
          {active && rollback.error && rollback.error.status !== 409 && <ErrorBanner error={rollback.error} title="Rollback target unknown" />}
        </section>

        <section aria-labelledby="deploy-title">
          <h3 id="deploy-title">Deploy</h3>
          <label htmlFor="release-select">Release</label>
          <select id="release-select" value={chosen ?? ''} onChange={(e) => setReleaseId(e.target.value)}>
            {releases.data?.releases.map((r) => (
              <option key={r.id} value={r.id}>#{r.release_number} · {r.aliases.map((a) => a.alias).join(', ') || shortSha(r.commit_sha)}{r.trigger ? ` · ${r.trigger.trigger_type}` : ''}</option>
            ))}
          </select>
          {policy.frozen && canOverride && (
            <>
              <label htmlFor="freeze-reason">Freeze override reason</label>
              <input id="freeze-reason" value={freezeReason} onChange={(e) => setFreezeReason(e.target.value)} placeholder="why this cannot wait" />
            </>
          )}
          {canDeploy ? (
            <button type="button" className="primary" disabled={!chosen || busy !== undefined || pending !== undefined}
              onClick={() => chosen && void deploy(chosen, 'Deploy', freezeReason || undefined)}>
              {busy === 'Deploy' ? 'Requesting…' : pending ? 'Deploying…' : `Deploy${chosenRelease ? ` #${chosenRelease.release_number}` : ''} to ${env}`}
            </button>
          ) : <p className="muted small">Deploying to {env} needs {env === 'dev' ? 'deployments:create:dev' : 'deployments:create:any'}; your roles: {me.roles.join(', ') || 'none'}.</p>}
        </section>

        {policy.requires_approval && (
          <section aria-labelledby="approvals-title">
            <h3 id="approvals-title">Approvals{chosenRelease ? ` of #${chosenRelease.release_number}` : ''} <span className="muted small">({activeApprovals.length} of {policy.approvals_required})</span></h3>
            <ul className="approvals">
              {approvals.data?.approvals.map((a) => (
                <li key={a.approval_id}>
                  <StatusBadge status={a.status} /> <strong>{a.approver}</strong> <span className="muted small">{relativeTime(a.approved_at, now)}</span>
                  <div className="small">“{a.justification}”</div>
                  {a.status === 'active' && canRevoke && (
                    <button type="button" className="link-button" disabled={busy !== undefined} onClick={() => revoke(a)}>Revoke</button>
                  )}
                </li>
              ))}
              {(approvals.data?.approvals.length ?? 0) === 0 && <li className="muted">No approvals yet.</li>}
            </ul>
            {canApprove ? (
              <form onSubmit={approve} className="approve-form">
                <label htmlFor="justification">Justification</label>
                <textarea id="justification" name="justification" required minLength={1} maxLength={4000} rows={2} placeholder="why this release may go to production" />
                <button type="submit" disabled={!chosen || busy !== undefined}>{busy === 'approve' ? 'Approving…' : `Approve${chosenRelease ? ` #${chosenRelease.release_number}` : ''}`}</button>
              </form>
            ) : <p className="muted small">Approving needs approvals:create (approver or operator).</p>}
          </section>
        )}
      </div>

      <section aria-labelledby="history-title">
        <h3 id="history-title">History</h3>
        <ErrorBanner error={history.error} />
        <table className="history-table">
          <thead><tr><th scope="col">Release</th><th scope="col">Status</th><th scope="col">By</th><th scope="col">When</th><th scope="col">Commit</th><th scope="col">Note</th></tr></thead>
          <tbody>
            {history.data?.deployments.map((d) => (
              <tr key={d.id}>
                <td>#{d.release_number}{d.rollback && <span className="tag">rollback</span>}</td>
                <td><StatusBadge status={d.status} /></td>
                <td>{d.deployed_by}</td>
                <td title={formatTime(d.deployed_at)}>{relativeTime(d.deployed_at, now)}</td>
                <td className="mono">{shortSha(d.gitops_commit_sha)}</td>
                <td className="small">{d.error ?? (d.freeze_override ? `freeze override: ${d.freeze_override}` : '')}</td>
              </tr>
            ))}
            {history.data?.deployments.length === 0 && <tr><td colSpan={6} className="empty">No deployments yet.</td></tr>}
          </tbody>
        </table>
      </section>
    </section>
  );
}

/** Releases per project: numbers, aliases, trigger, artifacts (tracking images, digests, signatures) and where each runs. */
import { Link, useLocation, useSearch } from 'wouter';
import { enc, query, repoPath } from '../api.ts';
import { ErrorBanner } from '../components/ErrorBanner.tsx';
import { Pager } from '../components/Pager.tsx';
import { ProjectPicker } from '../components/ProjectPicker.tsx';
import { formatTime, relativeTime, shortDigest, shortSha } from '../format.ts';
import { RETRY_UNTIL_LOADED, useApi, useEvents, useNow, useTitle } from '../hooks.ts';
import { assertNever } from '../../../src/lib/assert-never.ts';
import type { Artifact, ProjectSummary, Release, ReleaseList, ReleaseSignatures } from '../types.ts';

const PAGE = 25;

/** The tracking image's signature, verified by the server against the platform's key. */
function Signature({ status }: { status: ReleaseSignatures['signatures'][number] | undefined }) {
  if (!status) return <span className="sig pending">signature…</span>;
  switch (status.status) {
    case 'verified': return <span className="sig signed" title={status.signature_digest ? `signature ${status.signature_digest}` : 'verified'}>✓ signature verified</span>;
    case 'unsigned': return <span className="sig unsigned" title={status.reason ?? 'no signature'}>✗ unsigned</span>;
    case 'invalid': return <span className="sig unsigned" title={status.reason ?? 'does not verify'}>✗ invalid signature</span>;
    case 'unavailable': return <span className="sig pending" title={status.reason ?? ''}>signature not checked: {status.reason ?? 'registry unavailable'}</span>;
    default: return assertNever(status.status, 'signature status');
  }
}

function Artifacts({ release, repository, project }: { release: Release; repository: string; project: string }) {
  const signatures = useApi<ReleaseSignatures>(release.artifacts.length > 0 ? `/v1/releases/${repoPath(repository)}/${enc(project)}/${release.release_number}/signatures` : undefined);
  return (
    <ul className="artifacts">
      {release.artifacts.map((artifact: Artifact) => (
        <li key={artifact.id} data-artifact={artifact.artifact_name}>
          <strong>{artifact.artifact_name}</strong> <span className="muted">{artifact.artifact_type}</span>{' '}
          {signatures.error ? <span className="sig pending" title={signatures.error.message}>signature not checked ({signatures.error.code})</span>
            : <Signature status={signatures.data?.signatures.find((s) => s.artifact_id === artifact.id)} />}
          <div className="mono small wrap" title="tracking image">{artifact.tracking_oci_uri}{artifact.tracking_oci_digest && !artifact.tracking_oci_uri.includes('@') ? `@${artifact.tracking_oci_digest}` : ''}</div>
          <div className="mono small wrap muted" title="published">{artifact.primary_published_uri}</div>
        </li>
      ))}
      {release.artifacts.length === 0 && <li className="muted">none</li>}
    </ul>
  );
}

export function ReleasesPage() {
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const projects = useApi<{ projects: ProjectSummary[] }>('/v1/projects', RETRY_UNTIL_LOADED);
  const first = projects.data?.projects[0];
  const repository = search.get('repository') ?? first?.repository ?? '';
  const project = search.get('project') ?? first?.project ?? '';
  const offset = Number(search.get('offset') ?? 0) || 0;
  useTitle(project ? `Releases of ${project}` : 'Releases');
  const releases = useApi<ReleaseList>(repository && project ? `/v1/releases/${repoPath(repository)}/${enc(project)}${query({ limit: PAGE, offset })}` : undefined, RETRY_UNTIL_LOADED);
  const reloadAll = () => { releases.reload(); projects.reload(); };
  useEvents(['release.created', 'deployment.activated'], reloadAll, reloadAll);
  const now = useNow(30_000);
  const summary = projects.data?.projects.find((p) => p.repository === repository && p.project === project);
  const deployedIn = (releaseId: string) => summary?.deployments.filter((d) => d.release_id === releaseId) ?? [];
  const total = releases.data?.total ?? 0;
  const page = (to: number) => navigate(`/releases${query({ repository, project, offset: to || undefined })}`);

  return (
    <div className="with-sidebar">
      <ProjectPicker projects={projects.data?.projects ?? []} repository={repository} project={project} base="/releases" />
      <section className="main-column" aria-labelledby="releases-title">
        <h1 id="releases-title">Releases{project && <> of <span className="mono">{repository}/{project}</span></>}</h1>
        <ErrorBanner error={projects.error ?? releases.error} />
        {releases.data && releases.data.releases.length === 0 && <p className="muted">No releases yet.</p>}
        {releases.data && releases.data.releases.length > 0 && (
          <table className="releases-table">
            <caption className="visually-hidden">Releases, newest first</caption>
            <thead>
              <tr><th scope="col">Release</th><th scope="col">Aliases</th><th scope="col">Trigger</th><th scope="col">Commit</th><th scope="col">Created</th><th scope="col">Artifacts</th><th scope="col">Deployed in</th></tr>
            </thead>
            <tbody>
              {releases.data.releases.map((release) => (
                <tr key={release.id} data-release={release.release_number}>
                  <th scope="row" className="release-number">
                    #{release.release_number}
                    <div className="muted small mono" title={release.oci_uri}>{shortDigest(release.oci_digest)}</div>
                  </th>
                  <td>{release.aliases.map((a) => <span key={a.alias} className={`alias alias-${a.alias_type}`}>{a.alias}</span>)}</td>
                  <td>{release.trigger ? <>{release.trigger.trigger_type}{release.trigger.branch ? ` · ${release.trigger.branch}` : ''}{release.trigger.tag ? ` · ${release.trigger.tag}` : ''}<div className="muted small">by {release.trigger.triggered_by}</div></> : '–'}</td>
                  <td className="mono">{release.pipeline_run_id ? <Link href={`/runs/${release.pipeline_run_id}`}>{shortSha(release.commit_sha)}</Link> : shortSha(release.commit_sha)}</td>
                  <td title={formatTime(release.created_at)}>{relativeTime(release.created_at, now)}<div className="muted small">by {release.created_by}</div></td>
                  <td>
                    <Artifacts release={release} repository={repository} project={project} />
                  </td>
                  <td>{deployedIn(release.id).map((d) => <Link key={d.environment} href={`/environments${query({ repository, project, environment: d.environment })}`} className="env-chip">{d.environment}</Link>)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Pager total={total} offset={offset} size={PAGE} onPage={page} />
      </section>
    </div>
  );
}

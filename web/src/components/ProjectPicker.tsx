/** The projects that have releases, as a list of links that select one (?repository=&project=). */
import { Link } from 'wouter';
import { query } from '../api.ts';
import type { ProjectSummary } from '../types.ts';

export function ProjectPicker({ projects, repository, project, base }: { projects: ProjectSummary[]; repository: string; project: string; base: string }) {
  return (
    <nav aria-label="Projects" className="project-picker">
      <h2>Projects</h2>
      {projects.length === 0 && <p className="muted">No project has a release yet.</p>}
      <ul>
        {projects.map((p) => {
          const current = p.repository === repository && p.project === project;
          return (
            <li key={`${p.repository}/${p.project}`}>
              <Link href={`${base}${query({ repository: p.repository, project: p.project })}`} className={current ? 'current' : undefined} aria-current={current ? 'page' : undefined}>
                <span className="project-name">{p.project}</span>
                <span className="muted">{p.repository} · {p.releases} release{p.releases === 1 ? '' : 's'}</span>
              </Link>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}

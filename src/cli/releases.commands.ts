/** `forge releases create | get | list`: releases of a project, looked up by alias, number or SHA prefix. */
import { type Command, Option } from 'commander';
import * as args from './args.ts';
import { apiPath, repoSegments, type ApiClient } from './client.ts';
import { fields, iso, pageFooter, shortSha, table, type Style } from './output.ts';
import { clientCommand, group } from './session.ts';
import type { CreatedReleaseJson, Paged, ReleaseJson } from './wire.ts';

/** GET /v1/releases/{owner}/{name}/{project}/{ref}: the API resolves alias, then number, then SHA prefix. */
export async function fetchRelease(api: ApiClient, repository: string, project: string, ref: string): Promise<ReleaseJson> {
  return (await api.get<ReleaseJson>(apiPath('releases', ...repoSegments(repository), project, ref))).body;
}

/** "3, v1.2.0 (tag), canary (custom)": the number first, then the other aliases with their type. */
function aliasList(release: ReleaseJson): string {
  return [...release.aliases]
    .sort((a, b) => Number(b.alias_type === 'numeric') - Number(a.alias_type === 'numeric'))
    .map((a) => (a.alias_type === 'numeric' ? a.alias : `${a.alias} (${a.alias_type})`))
    .join(', ');
}

function triggerText(trigger: ReleaseJson['trigger']): string | undefined {
  if (!trigger) return undefined;
  const what = trigger.tag ?? trigger.branch;
  return `${trigger.trigger_type}${what ? ` ${what}` : ''} by ${trigger.triggered_by} at ${iso(trigger.triggered_at)}`;
}

export const releaseTitle = (r: { release_number: number; repository: string; project: string }) =>
  `release ${r.release_number} of ${r.repository}/${r.project}`;

export function renderRelease(release: ReleaseJson, style: Style): string[] {
  return [
    releaseTitle(release),
    ...fields([
      ['id', release.id],
      ['commit', release.commit_sha],
      ['canonical id', release.canonical_id],
      ['aliases', aliasList(release)],
      ['trigger', triggerText(release.trigger)],
      ['created', `${iso(release.created_at)} by ${release.created_by}`],
      ['pipeline run', release.pipeline_run_id],
      ['oci image', release.oci_uri],
      ['oci digest', release.oci_digest],
    ], style),
    '',
    ...(release.artifacts.length === 0
      ? ['no artifacts']
      : table(['ARTIFACT', 'TYPE', 'TRACKING IMAGE', 'PUBLISHED'], release.artifacts.map((a) => [
        a.artifact_name, a.artifact_type, a.tracking_oci_digest ? `${a.tracking_oci_uri}@${a.tracking_oci_digest}` : a.tracking_oci_uri, a.primary_published_uri,
      ]), style)),
  ];
}

export function renderReleaseList(page: Paged<'releases', ReleaseJson>, style: Style): string[] {
  const rows = page.releases.map((r) => [
    r.release_number, shortSha(r.commit_sha),
    r.aliases.filter((a) => a.alias_type !== 'numeric').map((a) => a.alias).join(', ') || undefined,
    iso(r.created_at), r.created_by,
  ]);
  return [
    ...(rows.length > 0 ? table(['NUMBER', 'COMMIT', 'ALIASES', 'CREATED', 'BY'], rows, style) : []),
    ...pageFooter(page, rows.length, 'releases'),
  ];
}

interface CreateOptions {
  repository: string;
  project: string;
  commit: string;
  artifact?: args.ArtifactSpec[];
  tag?: string;
  branch?: string;
  alias?: string[];
  run?: string;
}

/** What started the release: a tag, a branch push, or (neither) a person. With --run and neither,
 * the API derives it from the run (a push run makes a branch_push release). */
function triggerOf(o: CreateOptions) {
  if (o.tag !== undefined) return { type: 'tag', tag: o.tag };
  if (o.branch !== undefined) return { type: 'branch_push', branch: o.branch };
  return o.run === undefined ? { type: 'manual' } : undefined;
}

export function registerReleaseCommands(program: Command): void {
  const releases = group(program, 'releases', 'releases: create, look up, list');

  clientCommand<CreateOptions>(
    releases, 'create', 'register a release of a project at a commit (idempotent: one release per repository + project + commit)',
    (c) => c
      .requiredOption('--repository <owner/name>', 'repository', args.repository)
      .requiredOption('--project <project>', 'project', args.project)
      .requiredOption('--commit <sha>', 'full commit SHA', args.commitSha)
      .option('--artifact <name:type:trackingUri:publishedUri>', 'an artifact (repeatable); type is container, binary or archive', args.repeatable(args.artifact))
      .addOption(new Option('--tag <tag>', 'released from a tag (monorepo tags: <project>/v1.2.0)').argParser(args.tag).conflicts('branch'))
      .option('--branch <branch>', 'released from a push to this branch', args.branch)
      .option('--alias <alias>', 'a custom alias (repeatable)', args.repeatable(args.alias))
      .option('--run <pipeline-run-id>', 'the pipeline run that built it', args.uuid),
    async (session, _args, o) => {
      const trigger = triggerOf(o);
      const { status: http, body } = await session.api.post<CreatedReleaseJson>(apiPath('releases'), {
        repository: o.repository, project: o.project, commit_sha: o.commit, artifacts: o.artifact ?? [],
        ...(trigger ? { trigger } : {}),
        ...(o.alias ? { aliases: o.alias } : {}),
        ...(o.run ? { pipeline_run_id: o.run } : {}),
      });
      if (session.json) return session.printJson(body);
      const title = releaseTitle({ release_number: body.release_number, repository: o.repository, project: o.project });
      session.print([
        http === 201 ? `created ${title}` : `${title} already exists for this commit`,
        ...fields([['id', body.id], ['canonical id', body.canonical_id], ['oci image', body.oci_uri]], session.style),
      ]);
    },
  );

  clientCommand(
    releases, 'get', 'show a release; <ref> is an alias, a release number or a commit SHA prefix',
    (c) => c
      .argument('<repo>', 'repository owner/name', args.repository)
      .argument('<project>', 'project', args.project)
      .argument('<ref>', 'alias, release number or commit SHA prefix', args.releaseRef),
    async (session, [repository = '', project = '', ref = '']) => {
      const release = await fetchRelease(session.api, repository, project, ref);
      if (session.json) return session.printJson(release);
      session.print(renderRelease(release, session.style));
    },
  );

  clientCommand<{ limit?: number; offset?: number }>(
    releases, 'list', 'list the releases of a project, newest first',
    (c) => c
      .argument('<repo>', 'repository owner/name', args.repository)
      .argument('<project>', 'project', args.project)
      .option('--limit <n>', 'page size, 1-500 (default 20)', args.limit)
      .option('--offset <n>', 'releases to skip', args.offset),
    async (session, [repository = '', project = ''], o) => {
      const { body } = await session.api.get<Paged<'releases', ReleaseJson>>(apiPath('releases', ...repoSegments(repository), project), { limit: o.limit, offset: o.offset });
      if (session.json) return session.printJson(body);
      session.print(renderReleaseList(body, session.style));
    },
  );
}

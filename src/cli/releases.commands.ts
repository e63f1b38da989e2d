/**
 * `forge releases create | get | list`: releases of a project, looked up by alias, number or SHA prefix.
 * `forge release create | retry`: build a release (or rebuild one) and follow the build.
 */
import { type Command, Option } from 'commander';
import type { ArtifactJobState, ReleaseBuild } from '../domain/entities.ts';
import { isReleaseBuildTerminal, type ReleaseBuildStatus } from '../domain/statuses.ts';
import { assertNever } from '../lib/assert-never.ts';
import * as args from './args.ts';
import { apiPath, CliError, EXIT, repoSegments, type ApiClient } from './client.ts';
import { fields, iso, pageFooter, shortSha, status, styleFor, table, type Style } from './output.ts';
import { Retrier, retryMessage, sleep } from './retries.ts';
import { clientCommand, group, type Session } from './session.ts';
import type { CreatedReleaseJson, Json, Paged, ReleaseJson } from './wire.ts';

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

/*
 * `forge release create | retry`: build a release through POST /v1/release-builds (a new manual
 * release of a project at a commit, or the rebuild and re-publish of an existing release), then
 * follow the build by polling GET /v1/release-builds/{id}: progress lines on stderr as the build's
 * status and each artifact's status change, the release it made on stdout at the end.
 */

/** A release build as the API answers it (domain ReleaseBuild, timestamps as ISO strings). */
export type ReleaseBuildJson = Json<ReleaseBuild>;

/** What the CLI reads of an artifact job's result (engine ArtifactJobResult, which the CLI may not import). */
interface ArtifactResultView {
  published: { publisher: string; uri: string; skipped: boolean }[];
  tracking: string | undefined;
  warnings: string[];
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

function artifactResult(result: Record<string, unknown> | undefined): ArtifactResultView {
  const locations = Array.isArray(result?.published_locations) ? (result.published_locations as Record<string, unknown>[]) : [];
  return {
    published: locations.flatMap((l) => {
      const uri = text(l.uri);
      return uri ? [{ publisher: text(l.publisher) ?? '?', uri, skipped: l.skipped === true }] : [];
    }),
    tracking: text(result?.tracking_oci_uri),
    warnings: Array.isArray(result?.warnings) ? (result.warnings as unknown[]).flatMap((w) => text(w) ?? []) : [],
  };
}

/** How often a build is looked at while it runs. */
export const BUILD_POLL_MS = 500;

const shortId = (id: string) => `${id.slice(0, 8)}…`;
const firstLine = (message: string) => message.split('\n', 1)[0] ?? '';

/** The artifacts of a build: those its plan names (not started yet: `waiting`) and those dispatched. */
function artifactStates(build: ReleaseBuildJson): [string, ArtifactJobState['status'] | 'waiting'][] {
  const names = [...new Set([...Object.keys(build.plan?.artifacts ?? {}), ...Object.keys(build.artifacts)])].sort();
  return names.map((name) => [name, build.artifacts[name]?.status ?? 'waiting']);
}

/** "build 1a2b3c4d… building: artifacts server (pending), docs (success)" */
function buildStatusLine(build: ReleaseBuildJson, style: Style): string {
  const artifacts = artifactStates(build);
  let detail = '';
  if (artifacts.length > 0) {
    detail = `: artifacts ${artifacts.map(([name, state]) => `${name} (${style.paint(status(state))})`).join(', ')}`;
  } else if (build.status === 'pending') {
    detail = `: looking for ${build.project} in ${build.repository} at ${shortSha(build.commit_sha) ?? ''} (discovery)`;
  } else if (build.plan) {
    detail = ': no artifacts';
  }
  return `build ${shortId(build.id)} ${style.paint(status(build.status))}${detail}`;
}

/** "artifact server: success → registry 127.0.0.1:5000/acme/api:…@sha256:… (skipped: already there)" */
function artifactLines(name: string, state: ArtifactJobState, style: Style): string[] {
  if (state.status === 'failed') return [`artifact ${name}: ${style.paint(status('failed'))}: ${firstLine(state.error ?? 'no reason recorded')}`];
  const result = artifactResult(state.result);
  const where = result.published.length > 0
    ? result.published.map((p) => `${p.publisher} ${p.uri}${p.skipped ? ' (skipped: already there)' : ''}`).join(', ')
    : result.tracking ? `tracking image ${result.tracking}` : 'done';
  return [
    `artifact ${name}: ${style.paint(status('success'))} → ${where}`,
    ...result.warnings.map((w) => `artifact ${name}: warning: ${w}`),
  ];
}

/**
 * What changed from `before` (undefined: nothing seen yet) to `after`, one line each: an artifact
 * that finished, then the build's status line when its status changed or artifacts were started.
 */
export function buildProgressLines(before: ReleaseBuildJson | undefined, after: ReleaseBuildJson, style: Style): string[] {
  const lines: string[] = [];
  for (const [name, state] of Object.entries(after.artifacts).sort(([a], [b]) => a.localeCompare(b))) {
    const was = before?.artifacts[name]?.status;
    if (state.status !== 'pending' && state.status !== was) lines.push(...artifactLines(name, state, style));
  }
  const shape = (b: ReleaseBuildJson) => `${b.status} ${artifactStates(b).map(([n, s]) => `${n}:${s === 'waiting' ? 'waiting' : 'started'}`).join(',')}`;
  if (!before || shape(before) !== shape(after)) lines.push(buildStatusLine(after, style));
  return lines;
}

/** "started release build <id> of acme/monorepo/api at 0c1d2e3f4a5b (pending)" */
function buildHeadline(build: ReleaseBuildJson, created: boolean): string {
  const what = `release build ${build.id} of ${build.repository}/${build.project} at ${shortSha(build.commit_sha) ?? ''}`;
  const rebuild = build.release_id ? `, rebuilding release ${build.release_id}` : '';
  return `${created ? 'started' : 'joined'} ${what} (${build.status}${created ? '' : ', already running'}${rebuild})`;
}

export interface FollowOptions {
  intervalMs: number;
  style: Style;
  /** A progress line (stderr). */
  progress(line: string): void;
  /** A retry notice. */
  warn(message: string): void;
  retry?: { firstDelayMs?: number; giveUpMs?: number };
}

/** Polls the build until it ends, reporting each change; transient failures are retried (retries.ts). */
export async function followReleaseBuild(api: ApiClient, first: ReleaseBuildJson, options: FollowOptions): Promise<ReleaseBuildJson> {
  const retrier = new Retrier((notice) => options.warn(retryMessage(notice)), options.retry);
  let seen: ReleaseBuildJson | undefined;
  let build = first;
  for (;;) {
    for (const line of buildProgressLines(seen, build, options.style)) options.progress(line);
    seen = build;
    if (isReleaseBuildTerminal(build.status)) return build;
    await sleep(options.intervalMs);
    build = await retrier.call(async () => (await api.get<ReleaseBuildJson>(apiPath('release-builds', first.id))).body);
  }
}

/** 0 success; 1 failed or cancelled (no release was registered, or the rebuild did not finish). */
export function buildExitCode(buildStatus: ReleaseBuildStatus): number {
  switch (buildStatus) {
    case 'success':
      return 0;
    case 'failed':
    case 'cancelled':
      return EXIT.runFailed;
    case 'pending':
    case 'building':
    case 'releasing':
      throw new Error(`release build is still ${buildStatus}`);
    default:
      return assertNever(buildStatus, 'release build status');
  }
}

/**
 * The release a successful build made. There is no lookup by release id, but one release exists per
 * repository + project + commit, so the full commit SHA finds it; the id is checked all the same.
 */
async function buildRelease(api: ApiClient, build: ReleaseBuildJson): Promise<ReleaseJson> {
  if (!build.release_id) throw new CliError(EXIT.api, `release build ${build.id} succeeded but names no release`);
  const release = await fetchRelease(api, build.repository, build.project, build.commit_sha);
  if (release.id !== build.release_id) {
    throw new CliError(EXIT.api, `release build ${build.id} made release ${build.release_id}, but ${build.repository}/${build.project} at ${build.commit_sha} is release ${release.id}`);
  }
  return release;
}

/** The numeric alias first, then the others by name: "3, main-3". */
const plainAliases = (release: ReleaseJson) => [...release.aliases]
  .sort((a, b) => Number(b.alias_type === 'numeric') - Number(a.alias_type === 'numeric') || a.alias.localeCompare(b.alias))
  .map((a) => a.alias)
  .join(', ');

/** "release 3 of acme/monorepo/api (aliases 3, main-3) → <oci_uri>@<digest>" */
export function releaseLine(release: ReleaseJson): string {
  const image = release.oci_digest && !release.oci_uri.includes('@') ? `${release.oci_uri}@${release.oci_digest}` : release.oci_uri;
  return `${releaseTitle(release)} (aliases ${plainAliases(release)}) → ${image}`;
}

const stderrStyle = styleFor(process.stderr, process.env);
const progressLine = (line: string) => {
  process.stderr.write(`${line}\n`);
};

/** After POST /v1/release-builds: print it (--no-wait), or follow it to the end and print the release. */
async function buildRequested(session: Session, posted: { status: number; body: ReleaseBuildJson }, wait: boolean): Promise<void> {
  const created = posted.status === 202;
  if (!wait) {
    if (session.json) return session.printJson(posted.body);
    return session.print(buildHeadline(posted.body, created));
  }
  progressLine(buildHeadline(posted.body, created));
  const build = await followReleaseBuild(session.api, posted.body, {
    intervalMs: BUILD_POLL_MS, style: stderrStyle, progress: progressLine, warn: session.warn,
  });
  const release = build.status === 'success' ? await buildRelease(session.api, build) : null;
  if (session.json) session.printJson({ ...build, release });
  else if (release) session.print(releaseLine(release));
  if (build.status !== 'success') {
    const reason = (build.error_message ?? 'no reason recorded').replace(/\n/g, '\n  ');
    session.warn(`release build ${build.id} ${build.status}: ${reason}`);
  }
  process.exitCode = buildExitCode(build.status);
}

const BUILD_HELP = `
Unless --no-wait, it follows the build (every ${BUILD_POLL_MS} ms) with one line on stderr per change:
  build 1a2b3c4d… building: artifacts server (pending)
  artifact server: success → registry 127.0.0.1:5000/acme/api:1.2.0@sha256:… (skipped: already there)
and at the end prints the release on stdout:
  release 3 of acme/monorepo/api (aliases 3, main-3) → <release image>@sha256:…
With --json, stdout holds only the final build as JSON, with the release under "release" (null when
the build did not succeed); with --no-wait, the build as the API answered (or one line without --json).
A build of the same commit that is already running is joined, not started twice. Network errors and
HTTP 429/5xx answers are retried for up to 5 minutes. Ctrl-C stops following; the build goes on.

Exit status: 0 the release was built (or --no-wait), ${EXIT.runFailed} the build failed or was cancelled (its error on
stderr); as every command, ${EXIT.api} for an API error, ${EXIT.usage} for a bad command line, ${EXIT.unreachable} when the server stays unreachable.`;

function registerReleaseBuildCommands(program: Command): void {
  const release = group(program, 'release', 'build and publish releases: create (a project at a commit), retry (rebuild a release)');

  clientCommand<{ repository: string; project: string; commit: string; branch?: string; wait: boolean }>(
    release, 'create', 'build a release of a project at a commit: its artifacts, their publishing, the release image and number',
    (c) => c
      .requiredOption('--repository <owner/name>', 'repository', args.repository)
      .requiredOption('--project <project>', 'project', args.project)
      .requiredOption('--commit <sha>', 'full commit SHA', args.commitSha)
      .option('--branch <branch>', 'the branch the commit is on (passed to discovery and the build)', args.branch)
      .option('--no-wait', 'print the build and exit 0 without following it')
      .addHelpText('after', `${BUILD_HELP}\n\n\`forge releases create\` registers a release built elsewhere; this command builds one.`),
    async (session, _args, o) => {
      const posted = await session.api.post<ReleaseBuildJson>(apiPath('release-builds'), {
        repository: o.repository, project: o.project, commit_sha: o.commit, ...(o.branch !== undefined ? { branch: o.branch } : {}),
      });
      await buildRequested(session, posted, o.wait);
    },
  );

  clientCommand<{ wait: boolean }>(
    release, 'retry', 'rebuild and re-publish a release (publishers skip what is there already); it keeps its number',
    (c) => c
      .argument('<release-id>', 'release id (`forge releases get … --json` shows it)', args.uuid)
      .option('--no-wait', 'print the build and exit 0 without following it')
      .addHelpText('after', BUILD_HELP),
    async (session, [releaseId = ''], o) => {
      const posted = await session.api.post<ReleaseBuildJson>(apiPath('release-builds'), { release_id: releaseId });
      await buildRequested(session, posted, o.wait);
    },
  );
}

export function registerReleaseCommands(program: Command): void {
  registerReleaseBuildCommands(program);
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

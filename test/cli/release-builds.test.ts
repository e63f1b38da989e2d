/**
 * `forge release create | retry` against the real API over HTTP (startTestApp, no dispatcher and no
 * workers): the CLI starts a release build and follows it while the test moves the build through
 * the engine functions the dispatcher and the artifact / release workers call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleaseBuild } from '../../src/domain/entities.ts';
import {
  failReleaseBuild, markBuildDispatched, recordArtifactOutcome, recordBuildPlan, recordReleaseOutcome,
  type ArtifactJobResult, type DiscoveredRelease,
} from '../../src/engine/release-builds.ts';
import { createRelease } from '../../src/engine/releases.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { pgliteAdapter, type TestStore } from '../helpers/stores.ts';
import { closedUrl, forge, lines, startForge, type RunningCli } from './cli-helpers.ts';

const REPO = 'acme/monorepo';
const REGISTRY = '127.0.0.1:5000';
const DIGEST = (byte: string) => `sha256:${byte.repeat(32)}`;

let test: TestStore;
let t: TestApp;
let alice: Record<string, string>;

beforeAll(async () => {
  test = await pgliteAdapter.open();
  t = await startTestApp(test, { deploymentWorker: false });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  alice = { FORGE_URL: url, FORGE_TOKEN: await t.token('alice', ['developer']) };
});
afterAll(async () => {
  await t?.close();
  await test?.close();
});

/** What discovery finds: project api with these artifacts, the first published to `registry`. */
function discovery(artifacts: string[]): DiscoveredRelease {
  return {
    repository: { publishers: { registry: { type: 'docker', registry: REGISTRY } } },
    projects: [{
      name: 'api', path: 'services/api',
      artifacts: Object.fromEntries(artifacts.map((name, i) => [name, { producer: { type: 'script', run: 'make' }, publishers: i === 0 ? ['registry'] : [] }])),
    }],
  };
}

function artifactResult(name: string, commit: string, published: boolean): ArtifactJobResult {
  const tracking = `forge.local/tracking/${REPO}/api/${name}:sha-${commit}@${DIGEST('cd')}`;
  const locations = published
    ? [{ publisher: 'registry', uri: `${REGISTRY}/acme/api:sha-${commit.slice(0, 7)}@${DIGEST('ef')}`, digest: DIGEST('ef'), skipped: true, metadata: {} }]
    : [];
  return {
    name, type: 'container', digest: DIGEST('ef'), output: {}, published_locations: locations,
    primary_uri: locations[0]?.uri ?? tracking, tracking_oci_uri: tracking, tracking_oci_digest: DIGEST('cd'), warnings: [],
  };
}

/** The build the CLI started or joined: its id from the first line on stderr. */
async function buildOf(cli: RunningCli): Promise<string> {
  await cli.waitFor(/(?:started|joined) release build [0-9a-f-]{36} /, 'stderr');
  return /release build ([0-9a-f-]{36}) /.exec(cli.stderr())![1]!;
}

/** Moves a build on as the engine does and checks the step took. */
async function moved(change: Promise<ReleaseBuild | undefined>, status: ReleaseBuild['status']): Promise<void> {
  expect((await change)?.status).toBe(status);
}

/** The build's artifacts produced, then the release job registers `release` (a new one, or the rebuilt one). */
async function buildAndRelease(cli: RunningCli, id: string, commit: string): Promise<{ id: string; release_number: number }> {
  const short = id.slice(0, 8);
  await cli.waitFor(new RegExp(`^build ${short}… pending: looking for api in ${REPO} at ${commit.slice(0, 12)} \\(discovery\\)$`, 'm'), 'stderr');
  await moved(recordBuildPlan(t.ctx, id, discovery(['server', 'docs'])), 'building');
  await cli.waitFor(new RegExp(`^build ${short}… building: artifacts docs \\(waiting\\), server \\(waiting\\)$`, 'm'), 'stderr');
  await moved(markBuildDispatched(t.ctx, id, { artifacts: ['docs', 'server'] }), 'building');
  await cli.waitFor(new RegExp(`^build ${short}… building: artifacts docs \\(pending\\), server \\(pending\\)$`, 'm'), 'stderr');
  await moved(recordArtifactOutcome(t.ctx, id, 'server', { ok: true, result: artifactResult('server', commit, true) }), 'building');
  await cli.waitFor(/^artifact server: success/m, 'stderr');
  await moved(recordArtifactOutcome(t.ctx, id, 'docs', { ok: true, result: artifactResult('docs', commit, false) }), 'building');
  await cli.waitFor(/^artifact docs: success/m, 'stderr');
  await moved(markBuildDispatched(t.ctx, id, { release: new Date() }), 'releasing');
  await cli.waitFor(new RegExp(`^build ${short}… releasing`, 'm'), 'stderr');
  const { release } = await createRelease(t.ctx, {
    repository: REPO, project: 'api', commit_sha: commit, trigger: { type: 'branch_push', branch: 'main' }, oci_digest: DIGEST('ab'),
    artifacts: [{ name: 'server', type: 'container', tracking_oci_uri: `forge.local/tracking/${REPO}/api/server:sha-${commit}`, primary_published_uri: `${REGISTRY}/acme/api` }],
  }, { actor: 'forge-worker', mayRecordTrigger: true });
  await moved(recordReleaseOutcome(t.ctx, id, {
    ok: true, result: { release_id: release.id, release_number: release.release_number, oci_uri: release.oci_uri, oci_digest: DIGEST('ab'), created: true },
  }), 'success');
  return release;
}

describe('forge release create | retry', () => {
  it('create follows the build: a line per change on stderr, the release on stdout, exit 0', async () => {
    const commit = sha();
    const cli = startForge(['release', 'create', '--repository', REPO, '--project', 'api', '--commit', commit, '--branch', 'main'], alice);
    const id = await buildOf(cli);
    const release = await buildAndRelease(cli, id, commit);
    const done = await cli.done;
    expect(done.code, done.stderr).toBe(0);
    const image = `registry.test/releases/${REPO}/api:${commit}@${DIGEST('ab')}`;
    expect(done.stdout).toBe(`release ${release.release_number} of ${REPO}/api (aliases ${release.release_number}, main-${release.release_number}) → ${image}\n`);
    const short = id.slice(0, 8);
    expect(lines(done.stderr)).toEqual([
      `started release build ${id} of ${REPO}/api at ${commit.slice(0, 12)} (pending)`,
      `build ${short}… pending: looking for api in ${REPO} at ${commit.slice(0, 12)} (discovery)`,
      `build ${short}… building: artifacts docs (waiting), server (waiting)`,
      `build ${short}… building: artifacts docs (pending), server (pending)`,
      `artifact server: success → registry ${REGISTRY}/acme/api:sha-${commit.slice(0, 7)}@${DIGEST('ef')} (skipped: already there)`,
      `artifact docs: success → tracking image forge.local/tracking/${REPO}/api/docs:sha-${commit}@${DIGEST('cd')}`,
      `build ${short}… releasing: artifacts docs (success), server (success)`,
      `build ${short}… success: artifacts docs (success), server (success)`,
    ]);
  });

  it('a failed artifact fails the build: exit 1 with its error on stderr; --json prints the build with release null', async () => {
    const commit = sha();
    const cli = startForge(['release', 'create', '--repository', REPO, '--project', 'api', '--commit', commit, '--json'], alice);
    const id = await buildOf(cli);
    await cli.waitFor(/ pending: looking for api/, 'stderr');
    await moved(recordBuildPlan(t.ctx, id, discovery(['server'])), 'building');
    await moved(markBuildDispatched(t.ctx, id, { artifacts: ['server'] }), 'building');
    await cli.waitFor(/building: artifacts server \(pending\)/, 'stderr');
    await moved(recordArtifactOutcome(t.ctx, id, 'server', { ok: false, error: 'producer exited 3\n--- build output (last lines) ---\nboom' }), 'failed');
    const done = await cli.done;
    expect(done.code).toBe(1);
    const build = JSON.parse(done.stdout) as ReleaseBuild & { release: unknown };
    expect(build).toMatchObject({ id, status: 'failed', release: null, commit_sha: commit, artifacts: { server: { status: 'failed' } } });
    expect(build.error_message).toBe('artifact server failed: producer exited 3\n--- build output (last lines) ---\nboom');
    const err = lines(done.stderr);
    expect(err).toContain('artifact server: failed: producer exited 3');
    expect(err).toContain(`build ${id.slice(0, 8)}… failed: artifacts server (failed)`);
    expect(done.stderr).toContain(`forge: release build ${id} failed: artifact server failed: producer exited 3\n  --- build output (last lines) ---\n  boom\n`);
  });

  it('a cancelled build: exit 1 with the reason', async () => {
    const commit = sha();
    const cli = startForge(['release', 'create', '--repository', REPO, '--project', 'api', '--commit', commit], alice);
    const id = await buildOf(cli);
    await cli.waitFor(/ pending: looking for api/, 'stderr');
    await moved(failReleaseBuild(t.ctx, id, 'run cancelled: cancelled by bob', 'cancelled'), 'cancelled');
    const done = await cli.done;
    expect(done.code).toBe(1);
    expect(done.stdout).toBe('');
    expect(lines(done.stderr).slice(-2)).toEqual([
      `build ${id.slice(0, 8)}… cancelled`,
      `forge: release build ${id} cancelled: run cancelled: cancelled by bob`,
    ]);
  });

  it('--no-wait prints the build (JSON or one line) and exits 0; a second create joins the running build', async () => {
    const commit = sha();
    const args = ['release', 'create', '--repository', REPO, '--project', 'api', '--commit', commit.toUpperCase(), '--no-wait'];
    const created = await forge([...args, '--json'], alice);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const build = JSON.parse(created.stdout) as ReleaseBuild;
    expect(build).toMatchObject({
      repository: REPO, project: 'api', commit_sha: commit, status: 'pending', artifacts: {}, release_id: null,
      pipeline_run_id: null, trigger: { type: 'manual' }, created_by: 'alice', error_message: null,
    });
    const joined = await forge(args, alice);
    expect(joined).toMatchObject({ code: 0, stderr: '' });
    expect(joined.stdout).toBe(`joined release build ${build.id} of ${REPO}/api at ${commit.slice(0, 12)} (pending, already running)\n`);
    await failReleaseBuild(t.ctx, build.id, 'test over');
  });

  it('retry rebuilds a release: the same release at the end (--json: the build with it under "release")', async () => {
    const commit = sha();
    const { release } = await createRelease(t.ctx, {
      repository: REPO, project: 'api', commit_sha: commit, trigger: { type: 'branch_push', branch: 'main' }, oci_digest: DIGEST('ab'), artifacts: [],
    }, { actor: 'forge-worker', mayRecordTrigger: true });
    const queued = await forge(['release', 'retry', release.id, '--no-wait'], alice);
    expect(queued.code, queued.stderr).toBe(0);
    const id = /^started release build ([0-9a-f-]{36}) /.exec(queued.stdout)?.[1] ?? expect.fail(queued.stdout);
    expect(queued.stdout).toBe(`started release build ${id} of ${REPO}/api at ${commit.slice(0, 12)} (pending, rebuilding release ${release.id})\n`);

    // Following the same rebuild (joined: it is running) to its end.
    const cli = startForge(['release', 'retry', release.id, '--json'], alice);
    expect(await buildOf(cli)).toBe(id);
    expect(cli.stderr()).toContain(`joined release build ${id} of ${REPO}/api at ${commit.slice(0, 12)} (pending, already running, rebuilding release ${release.id})`);
    const rebuilt = await buildAndRelease(cli, id, commit);
    expect(rebuilt.id).toBe(release.id);
    const done = await cli.done;
    expect(done.code, done.stderr).toBe(0);
    const out = JSON.parse(done.stdout) as ReleaseBuild & { release: { id: string; release_number: number; oci_digest: string; aliases: { alias: string }[] } };
    expect(out).toMatchObject({ id, status: 'success', release_id: release.id, trigger: { type: 'branch_push', branch: 'main' } });
    expect(out.release).toMatchObject({ id: release.id, release_number: release.release_number, oci_digest: DIGEST('ab') });
    expect(out.release.aliases.map((a) => a.alias).sort()).toEqual([String(release.release_number), `main-${release.release_number}`].sort());
  });

  it('API errors exit 1: an unknown release to retry (404), a role without releases:create (403)', async () => {
    const missing = await forge(['release', 'retry', '4f9c2a3e-8d1b-4c6f-9a7e-2b5d8c1f0e3a'], alice);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^forge: .*\(not_found, HTTP 404\)$/m);

    const approver = { ...alice, FORGE_TOKEN: await t.token('bob', ['approver']) };
    const denied = await forge(['release', 'create', '--repository', REPO, '--project', 'api', '--commit', sha(), '--no-wait'], approver);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/HTTP 403\)$/m);
  });

  it('usage errors exit 2 before any request, saying what is allowed', async () => {
    // Nothing listens at this URL: a request would exit 3.
    const env = { ...alice, FORGE_URL: await closedUrl() };
    const create = (repository: string, project: string, commit: string, extra: string[] = []) =>
      forge(['release', 'create', '--repository', repository, '--project', project, '--commit', commit, ...extra], env);
    const [badSha, shortSha, badProject, badRepo, badBranch, badId, noCommit] = await Promise.all([
      create(REPO, 'api', 'not-a-sha'),
      create(REPO, 'api', sha().slice(0, 12)),
      create(REPO, 'API_server', sha()),
      create('acme', 'api', sha()),
      create(REPO, 'api', sha(), ['--branch', 'feature/../x']),
      forge(['release', 'retry', '42'], env),
      forge(['release', 'create', '--repository', REPO, '--project', 'api'], env),
    ]);
    for (const result of [badSha, shortSha, badProject, badRepo, badBranch, badId, noCommit]) {
      expect(result.code, result.stderr).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).not.toContain('cannot reach');
    }
    expect(badSha.stderr).toContain("option '--commit <sha>' argument 'not-a-sha' is invalid. expected a full commit SHA: 40 (or 64) hexadecimal characters");
    expect(shortSha.stderr).toContain('expected a full commit SHA: 40 (or 64) hexadecimal characters');
    expect(badProject.stderr).toContain('expected a DNS label: lowercase letters, digits and "-", 1-63, starting and ending alphanumeric');
    expect(badRepo.stderr).toContain('expected owner/name: owner of letters, digits and "-"');
    expect(badBranch.stderr).toContain('no "..", "//"');
    expect(badId.stderr).toContain("value '42' is invalid for argument 'release-id'. expected a UUID");
    expect(noCommit.stderr).toContain("required option '--commit <sha>' not specified");
  });
});

/**
 * The release phase end to end (digest §8 behaviours 30–41): the example monorepo committed to a
 * real git repository, the real API over HTTP, the dispatcher, discovery, CI, artifact and release
 * workers, a real Debian docker-registry for the release and tracking images and the `docker`
 * publisher (checked with skopeo), the directory publisher, real signatures.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRegistries, type Registries } from '../../src/bin/registries.ts';
import { publisherFactory } from '../../src/bin/execution.ts';
import type { ReleaseBuild } from '../../src/domain/entities.ts';
import { startDispatcher, type Dispatcher } from '../../src/engine/dispatcher.ts';
import type { JobQueue } from '../../src/engine/ports.ts';
import type { ArtifactJobResult } from '../../src/engine/release-builds.ts';
import { RELEASE_MEDIA_TYPES } from '../../src/oci/release-image.ts';
import { verifyImage } from '../../src/oci/signing.ts';
import { TRACKING_MEDIA_TYPES } from '../../src/oci/tracking-image.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';
import type { ExecutionSettings } from '../../src/settings/settings.ts';
import { createFileObjectStore } from '../../src/store/object-store.files.ts';
import { createGitWorkspaces, seedRepository } from '../../src/worker/git-workspace.ts';
import { httpInternalApi } from '../../src/worker/internal-api.ts';
import { startWorkers } from '../../src/worker/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { eventually, finishedRun } from '../helpers/runs.ts';
import { registryUnavailable, skopeoInspect, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pgliteAdapter, postgresAdapter, type TestStore } from '../helpers/stores.ts';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'monorepo');
const REPOSITORY = 'acme/monorepo';
const adapter = postgresAdapter.unavailable ? pgliteAdapter : postgresAdapter;

describe.skipIf(registryUnavailable !== undefined)('release phase with a real registry', () => {
  let test: TestStore;
  let t: TestApp;
  let registry: TestRegistry;
  let registries: Registries;
  let dispatcher: Dispatcher;
  let workers: { stop(): Promise<void> };
  let publishers: { close(): Promise<void> };
  const queues: JobQueue[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'forge-releases-'));
  const gitRoot = join(dir, 'git');
  const source = join(dir, 'source');
  let dev = '';

  /** Commits the source tree (optionally changed) as the next commit of the repository. */
  async function commit(change?: (root: string) => void): Promise<string> {
    change?.(source);
    const { commitSha } = await seedRepository({ bareDir: join(gitRoot, `${REPOSITORY}.git`), sourceDir: source, message: `commit ${Date.now()}` });
    return commitSha;
  }

  beforeAll(async () => {
    registry = await startRegistry();
    cpSync(EXAMPLE, source, { recursive: true });
    // The example's docker publisher names no registry (the embedded store); here it is the real one.
    const repoCue = join(source, '.forge', 'repo.cue');
    writeFileSync(repoCue, readFileSync(repoCue, 'utf8').replace(/registry: \{\s*type: "docker"/, `registry: {\n\t\ttype: "docker"\n\t\tregistry: "${registry.host}"`));
    expect(readFileSync(repoCue, 'utf8')).toContain(`registry: "${registry.host}"`);

    test = await adapter.open();
    t = await startTestApp(test, { deploymentWorker: false });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    const baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const objects = createFileObjectStore(join(dir, 'objects'));
    const broker = new MemoryBroker({ ackWaitMs: 10_000 });
    const dispatcherQueue = createMemoryJobQueue(broker, { objects });
    const workerQueue = createMemoryJobQueue(broker, { objects });
    queues.push(dispatcherQueue, workerQueue);
    t.ctx.objects = objects;
    t.ctx.releaseRegistry = `${registry.host}/releases`;
    dispatcher = await startDispatcher(t.ctx, { queue: dispatcherQueue, objects, sweepMs: 300 });
    t.ctx.runChanged = (id) => dispatcher.nudge(id);
    registries = openRegistries({ release: `${registry.host}/releases`, tracking: `${registry.host}/tracking`, insecure: true, credentials: undefined, signingKey: undefined }, join(dir, 'data'));
    const factory = publisherFactory({ registries, execution: { s3: undefined } as unknown as ExecutionSettings, dataDir: join(dir, 'data') });
    publishers = factory;
    const service = await t.token('forge-worker', ['service-account']);
    workers = await startWorkers({
      queue: workerQueue, objects, flushMs: 100,
      api: httpInternalApi({ baseUrl, token: async () => service }),
      workspaces: createGitWorkspaces({ cacheDir: join(dir, 'cache'), urlTemplate: `file://${gitRoot}/{repository}.git` }),
      releases: { registries, publisherFor: factory.publisherFor, stagingRoot: join(dir, 'staging') },
      gitops: t.gitops,
    }, ['discovery', 'ci', 'artifact', 'release'], 8);
    dev = await t.token('alice', ['developer']);
  }, 60_000);

  afterAll(async () => {
    await workers?.stop();
    await dispatcher?.stop();
    for (const q of queues) await q.close();
    await publishers?.close();
    await registries?.close();
    await t?.close();
    await test?.close();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${dev}` }, ...(payload ? { payload: payload as Record<string, unknown> } : {}) });
  const createRun = async (commitSha: string) => {
    const res = await call('POST', '/v1/runs', { repository: REPOSITORY, branch: 'main', commit_sha: commitSha, trigger_type: 'push' });
    expect(res.statusCode).toBe(201);
    return res.json<{ id: string }>().id;
  };
  const finished = (id: string, timeoutMs?: number) => finishedRun(t.ctx, id, timeoutMs);
  async function buildDone(id: string, timeoutMs = 120_000): Promise<ReleaseBuild> {
    const start = Date.now();
    for (;;) {
      const res = await call('GET', `/v1/release-builds/${id}`);
      expect(res.statusCode).toBe(200);
      const build = res.json<ReleaseBuild>();
      if (['success', 'failed', 'cancelled'].includes(build.status)) return build;
      if (Date.now() - start > timeoutMs) throw new Error(`build ${id} still ${build.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const runBuilds = async (runId: string) => (await call('GET', `/v1/runs/${runId}/release-builds`)).json<{ release_builds: ReleaseBuild[] }>().release_builds;

  let first = '';
  let firstRelease: { id: string; release_number: number; oci_uri: string; oci_digest: string; aliases: { alias: string; alias_type: string }[]; artifacts: { artifact_name: string; tracking_oci_uri: string; tracking_oci_digest: string; primary_published_uri: string }[]; pipeline_run_id: string | null };

  it('a push to main releases api (its branch trigger) after every phase group, and only api: behaviours 30, 33, 35, 36, 39, 40, 41', async () => {
    first = await commit();
    const runId = await createRun(first);
    const tree = await finished(runId);
    expect(tree.error_message).toBeNull();
    expect(tree.status).toBe('success');
    // 30: no artifact is built in a CI phase: the CI steps are the configured ones, and the one
    // build starts after the last task ended.
    const steps = tree.phases.flatMap((p) => p.tasks.flatMap((task) => task.steps.map((s) => s.step_name)));
    expect(steps).not.toContain('artifact server');
    const builds = await runBuilds(runId);
    expect(builds.map((b) => [b.project, b.status])).toEqual([['api', 'success']]);
    const lastTask = Math.max(...tree.phases.flatMap((p) => p.tasks.map((task) => task.completed_at!.getTime())));
    expect(new Date(builds[0]!.created_at).getTime()).toBeGreaterThanOrEqual(lastTask);

    const res = await call('GET', `/v1/releases/${REPOSITORY}/api/${first}`);
    expect(res.statusCode).toBe(200);
    firstRelease = res.json();
    // 36, 39: the first release is number 1 with its numeric and branch aliases; no tag, no tag alias.
    expect(firstRelease.release_number).toBe(1);
    expect(firstRelease.pipeline_run_id).toBe(runId);
    expect(firstRelease.aliases.map((a) => [a.alias_type, a.alias])).toEqual([['branch', 'main-1'], ['numeric', '1']]);
    // 40: the release image at <release-registry>/<repo>/<project>:<commit-sha>, readable by skopeo.
    expect(firstRelease.oci_uri).toBe(`${registry.host}/releases/acme/monorepo/api:${first}`);
    const raw = await skopeoInspect(`docker://${firstRelease.oci_uri}`, ['--raw']) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[]; config: { mediaType: string } };
    expect(raw.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(raw.layers.map((l) => [l.mediaType, l.annotations['org.catalyst-forge.layer.type']])).toEqual([
      [RELEASE_MEDIA_TYPES.metadata, 'metadata'], [RELEASE_MEDIA_TYPES.resources, 'resources'],
    ]);
    const inspected = await skopeoInspect(`docker://${firstRelease.oci_uri}`);
    expect(inspected.Digest).toBe(firstRelease.oci_digest);
    const store = registries.release.store;
    const metadata = JSON.parse((await store.getBlob('releases/acme/monorepo/api', raw.layers[0]!.digest)).toString('utf8')) as { number: number; artifacts: { name: string; trackingUri: string; digest: string }[] };
    expect(metadata.number).toBe(1);
    // The metadata lists every artifact's tracking URI.
    expect(metadata.artifacts.map((a) => a.name)).toEqual(['server']);
    expect(metadata.artifacts[0]!.trackingUri).toBe(firstRelease.artifacts[0]!.tracking_oci_uri);
    // 41: the resources carry the real published image; no unresolved marker.
    const tar = (await store.getBlob('releases/acme/monorepo/api', raw.layers[1]!.digest)).toString('utf8');
    expect(tar).toContain(`image: ${registry.host}/acme/api:${first}@sha256:`);
    expect(tar).toMatch(/forge\.dev\/digest: sha256:[0-9a-f]{64}/);
    expect(tar).not.toMatch(/ARTIFACT_|@artifact/);
    // 33: the tracking image with its three layers, each annotated.
    const trackingRef = `${registry.host}/tracking/acme/monorepo/api/server:sha-${first}`;
    expect(firstRelease.artifacts[0]!.tracking_oci_uri).toBe(`${registry.host}/tracking/acme/monorepo/api/server@${firstRelease.artifacts[0]!.tracking_oci_digest}`);
    const tracking = await skopeoInspect(`docker://${trackingRef}`, ['--raw']) as typeof raw;
    expect(tracking.layers.map((l) => [l.mediaType, l.annotations['org.catalyst-forge.layer.type']])).toEqual([
      [TRACKING_MEDIA_TYPES.metadata, 'metadata'], [TRACKING_MEDIA_TYPES.sbom, 'sbom'], [TRACKING_MEDIA_TYPES.attestation, 'attestation'],
    ]);
    // Both images are signed with the worker's key.
    const key = (await registries.signingKey()).publicKeyPem;
    expect(await verifyImage(store, 'releases/acme/monorepo/api', first, key)).toMatchObject({ verified: true, digest: firstRelease.oci_digest });
    expect(await verifyImage(registries.tracking.store, 'tracking/acme/monorepo/api/server', `sha-${first}`, key)).toMatchObject({ verified: true });
    // 35: the output @artifact sees has no location_type or path, and has publishers.<name>.uri.
    const result = builds[0]!.artifacts.server!.result as unknown as ArtifactJobResult;
    expect(result.output).not.toHaveProperty('location_type');
    expect(result.output).not.toHaveProperty('path');
    expect(result.output).toMatchObject({ uri: result.primary_uri, publishers: { registry: { uri: result.primary_uri } } });
    // The published image itself, at the docker publisher's repository.
    const published = await skopeoInspect(`docker://${registry.host}/acme/api:${first}`);
    expect(published.Digest).toBe(result.digest);
    // Auto-deploy: dev's policy deploys a branch release at once; staging and production do not.
    const dev = await eventually(() => call('GET', `/v1/deployments/dev/${REPOSITORY}/api`), (r) => r.statusCode === 200);
    expect(dev.json()).toMatchObject({ release_id: firstRelease.id, status: 'active', deployed_by: 'forge-release' });
    expect((await call('GET', `/v1/deployments/staging/${REPOSITORY}/api`)).statusCode).toBe(404);
  }, 180_000);

  it('retrying a release rebuilds and re-publishes: publishers skip what is there, same release: behaviours 32, 37', async () => {
    const res = await call('POST', '/v1/release-builds', { release_id: firstRelease.id });
    expect(res.statusCode).toBe(202);
    const build = await buildDone(res.json<{ id: string }>().id);
    expect(build.error_message).toBeNull();
    expect(build).toMatchObject({ status: 'success', release_id: firstRelease.id, pipeline_run_id: null });
    const result = build.artifacts.server!.result as unknown as ArtifactJobResult;
    expect(result.published_locations).toEqual([expect.objectContaining({ publisher: 'registry', skipped: true, uri: firstRelease.artifacts[0]!.primary_published_uri })]);
    const again = (await call('GET', `/v1/releases/${REPOSITORY}/api/1`)).json<typeof firstRelease>();
    expect(again.id).toBe(firstRelease.id);
    expect(again.release_number).toBe(1);
  }, 180_000);

  it('a failing producer fails the run and leaves no release and no release image; the next release is 2: behaviours 31, 36', async () => {
    const bad = await commit((root) => {
      const file = join(root, 'services', 'api', '.forge', 'project.cue');
      writeFileSync(file, readFileSync(file, 'utf8').replace(/run:\s+"node \.\.\/\.\.\/tools\/oci-image\.mjs/, 'run: "echo producer broke >&2; exit 3; node ../../tools/oci-image.mjs'));
    });
    const runId = await createRun(bad);
    const tree = await finished(runId);
    expect(tree.status).toBe('failed');
    expect(tree.error_code).toBe('release_failed');
    expect(tree.error_message).toMatch(/release of api failed: artifact server failed: .*producer script failed.*exit/s);
    const [build] = await runBuilds(runId);
    expect(build!.error_message).toContain('producer broke');
    expect((await call('GET', `/v1/releases/${REPOSITORY}/api/${bad}`)).statusCode).toBe(404);
    expect(await registries.release.store.resolve('releases/acme/monorepo/api', bad)).toBeUndefined();

    const good = await commit((root) => {
      const file = join(root, 'services', 'api', '.forge', 'project.cue');
      writeFileSync(file, readFileSync(file, 'utf8').replace('echo producer broke >&2; exit 3; ', ''));
    });
    const tree2 = await finished(await createRun(good));
    expect(tree2.error_message).toBeNull();
    const release = (await call('GET', `/v1/releases/${REPOSITORY}/api/${good}`)).json<typeof firstRelease>();
    expect(release.release_number).toBe(2);
  }, 240_000);

  it('a manual release (forge release create) of a project whose trigger is manual: pipeline_run_id null, the directory publisher', async () => {
    const head = await commit();
    const res = await call('POST', '/v1/release-builds', { repository: REPOSITORY, project: 'greeting', commit_sha: head });
    expect(res.statusCode).toBe(202);
    // Asking again while it runs joins the same build.
    const joined = await call('POST', '/v1/release-builds', { repository: REPOSITORY, project: 'greeting', commit_sha: head });
    if (joined.statusCode === 200) expect(joined.json<{ id: string }>().id).toBe(res.json<{ id: string }>().id);
    const build = await buildDone(res.json<{ id: string }>().id);
    expect(build.error_message).toBeNull();
    const release = (await call('GET', `/v1/releases/${REPOSITORY}/greeting/1`)).json<typeof firstRelease & { trigger: { trigger_type: string } }>();
    expect(release).toMatchObject({ pipeline_run_id: null, release_number: 1, trigger: { trigger_type: 'manual' } });
    expect(release.artifacts[0]!.primary_published_uri).toMatch(/^file:\/\/.*\/artifacts\/acme\/monorepo\/greeting\/[0-9a-f]{40}\/greeting\.tgz$/);
    // A project the commit does not have: the build fails naming what is there.
    const missing = await call('POST', '/v1/release-builds', { repository: REPOSITORY, project: 'nope', commit_sha: head });
    const failed = await buildDone(missing.json<{ id: string }>().id);
    expect(failed.status).toBe('failed');
    expect(failed.error_message).toMatch(/^project nope is not in acme\/monorepo at [0-9a-f]{12}; its projects are /);
    expect(failed.error_message).toContain('greeting');
  }, 180_000);

  it('100 concurrent pipeline releases across 10 projects: numbers per project contiguous from 1, no duplicates', async () => {
    const many = join(dir, 'many');
    const projects = Array.from({ length: 10 }, (_, i) => `p${i}`);
    const files: Record<string, string> = {
      '.forge/repo.cue': 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: check: group: 1\n',
    };
    for (const name of projects) {
      files[`${name}/.forge/project.cue`] = `name: "${name}"\nphases: check: steps: [{name: "ok", action: "script", run: "true"}]\n` +
        `release: on: [{branch: "main"}]\ndeploy: resources: [{apiVersion: "v1", kind: "ConfigMap", metadata: name: "${name}", data: {project: "${name}"}}]\n`;
    }
    const shas: string[] = [];
    for (let i = 0; i < 10; i++) {
      rmSync(many, { recursive: true, force: true });
      for (const [path, text] of Object.entries(files)) {
        cpSync(EXAMPLE, many, { recursive: false, filter: () => false });
        const target = join(many, path);
        await import('node:fs/promises').then((fs) => fs.mkdir(join(target, '..'), { recursive: true }));
        writeFileSync(target, text);
      }
      writeFileSync(join(many, 'VERSION'), String(i));
      shas.push((await seedRepository({ bareDir: join(gitRoot, 'acme/many.git'), sourceDir: many, message: `v${i}` })).commitSha);
    }
    const runs = await Promise.all(shas.map(async (commitSha) => {
      const res = await call('POST', '/v1/runs', { repository: 'acme/many', branch: 'main', commit_sha: commitSha, trigger_type: 'push' });
      expect(res.statusCode).toBe(201);
      return res.json<{ id: string }>().id;
    }));
    const trees = await Promise.all(runs.map((id) => finished(id, 300_000)));
    expect(trees.map((tree) => tree.error_message)).toEqual(runs.map(() => null));
    for (const name of projects) {
      const res = await call('GET', `/v1/releases/acme/many/${name}?limit=100`);
      const { releases } = res.json<{ releases: { release_number: number; commit_sha: string }[] }>();
      expect(releases.map((r) => r.release_number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(new Set(releases.map((r) => r.commit_sha)).size).toBe(10);
      expect(new Set(releases.map((r) => r.commit_sha))).toEqual(new Set(shas));
    }
  }, 360_000);
});

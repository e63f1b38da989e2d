/**
 * The API's dispatcher with FORGE_ORCHESTRATOR=argo, against the recording Argo peer (PGlite,
 * in-process queue): an unreachable Argo Server is tried again until it answers, then the Workflow's
 * name is recorded; one that stays away fails the run after the discovery timeout; and nothing of
 * the run is ever published by the dispatcher itself.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startDispatcher, type Dispatcher } from '../../src/engine/dispatcher.ts';
import type { JobMessage } from '../../src/domain/jobs.ts';
import type { JobQueue } from '../../src/engine/ports.ts';
import { createRun, failRun } from '../../src/engine/runs.ts';
import { createRelease } from '../../src/engine/releases.ts';
import { autoDeploy } from '../../src/engine/release-builds.ts';
import { AUTO_DEPLOY_ACTOR, requestDeployment } from '../../src/engine/deployments.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';
import { argoOrchestrator } from '../../src/queue/argo.orchestrator.ts';
import { sha, startTestApp, type TestApp } from '../helpers/app.ts';
import { eventually } from '../helpers/runs.ts';
import { pgliteAdapter, type TestStore } from '../helpers/stores.ts';
import { startArgoPeer, type ArgoPeer } from './argo-peer.ts';

describe('the API\'s dispatcher submitting Workflows (Argo peer, PGlite)', () => {
  let test: TestStore;
  let t: TestApp;
  let queue: JobQueue;
  let dispatcher: Dispatcher;
  let peer: ArgoPeer;
  const published: JobMessage[] = [];

  beforeAll(async () => {
    test = await pgliteAdapter.open();
    t = await startTestApp(test, { deploymentWorker: false });
    peer = await startArgoPeer();
    const inner = createMemoryJobQueue(new MemoryBroker({ ackWaitMs: 5000 }));
    queue = { ...inner, kind: inner.kind, publish: async (job, msgId) => { published.push(job); await inner.publish(job, msgId); } };
    dispatcher = await startDispatcher(t.ctx, {
      queue, sweepMs: 50, jobTimeoutsMs: { discovery: 1500, deployment: 1500 }, workflowCheckMs: 100,
      orchestrator: argoOrchestrator({
        serverUrl: peer.url, token: 't', namespace: 'catalyst-forge-pipelines', serviceAccount: 'pipeline-workflow-runner', image: 'forge:test',
        parallelism: 10, activeDeadlineSeconds: 86_400, env: [],
      }),
    });
    t.ctx.runChanged = (id) => dispatcher.nudge(id);
  });
  afterAll(async () => {
    await dispatcher?.stop();
    await queue?.close();
    await peer?.close();
    await t?.close();
    await test?.close();
  });
  beforeEach(() => {
    peer.requests.length = 0;
    peer.answer = undefined;
  });

  const newRun = async () => (await createRun(t.ctx, { repository: 'acme/argo', branch: 'main', commit_sha: sha(), trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false })).run.id;
  const requestsFor = (id: string) => peer.requests.filter((r) => JSON.stringify(r.body).includes(id));

  it('tries an Argo Server that answers 503 again, and records the Workflow once it is accepted', async () => {
    let refusals = 3;
    peer.answer = (request) => (request.method !== 'POST' ? undefined : refusals-- > 0 ? { status: 503, body: { message: 'starting' } } : { status: 200, body: (request.body as { workflow: unknown }).workflow });
    const id = await newRun();
    const run = await eventually(() => t.ctx.store.getRun(id), (r) => r?.argo_workflow_name != null);
    expect(run).toMatchObject({ status: 'pending', argo_workflow_name: `forge-run-${id}`, discovery_dispatched_at: null });
    expect(requestsFor(id).length).toBe(4);
    // Recorded once: reconciling the run again submits nothing more.
    for (let i = 0; i < 3; i++) {
      dispatcher.nudge(id);
      await dispatcher.idle();
    }
    expect(requestsFor(id).length).toBe(4);
    expect(published.filter((j) => j.run_id === id)).toEqual([]);
  });

  it('fails the run when the Argo Server stays away past the discovery timeout', async () => {
    peer.answer = (request) => (request.method !== 'POST' ? undefined : { status: 502, body: { message: 'bad gateway' } });
    const id = await newRun();
    const run = await eventually(() => t.ctx.store.getRun(id), (r) => r?.status === 'failed', 20_000);
    expect(run).toMatchObject({ error_code: 'orchestrator_unavailable', argo_workflow_name: null });
    expect(run!.error_message).toMatch(/could not be submitted within 1500ms: POST .*: 502 bad gateway/);
    expect(requestsFor(id).length).toBeGreaterThan(1);
    expect(published.filter((j) => j.run_id === id)).toEqual([]);
  });

  it('leaves a run\'s auto-deploy to its Workflow\'s deployment node for one deployment timeout, then publishes it itself; other deployments go at once', async () => {
    const id = await newRun();
    const run = await eventually(() => t.ctx.store.getRun(id), (r) => r?.argo_workflow_name != null);
    const { release } = await createRelease(t.ctx, {
      pipeline_run_id: id, repository: 'acme/argo', project: 'api', commit_sha: run!.commit_sha, trigger: { type: 'branch_push', branch: 'main' }, artifacts: [],
    }, { actor: 'forge-worker', mayRecordTrigger: true });
    const [auto] = await autoDeploy(t.ctx, release.id, AUTO_DEPLOY_ACTOR);
    expect(auto).toMatchObject({ environment: 'dev', deployment_id: expect.any(String) });
    // A deployment someone asked for is not the Workflow's: the API publishes it at once.
    const manual = await requestDeployment(t.ctx, { release_id: release.id, environment: 'staging' }, 'alice');
    await eventually(async () => published.filter((j) => j.type === 'deployment' && j.id === manual.id), (jobs) => jobs.length === 1);
    for (let i = 0; i < 5; i++) {
      dispatcher.nudge(auto!.deployment_id!);
      await dispatcher.idle();
    }
    expect(published.filter((j) => j.id === auto!.deployment_id)).toEqual([]);
    expect(await t.ctx.store.getDeployment(auto!.deployment_id!)).toMatchObject({ status: 'pending', dispatched_at: null, attempts: 0 });
    // No node came for it within the deployment timeout: the API's sweep publishes it.
    t.clock.advance(1600);
    const jobs = await eventually(async () => published.filter((j) => j.id === auto!.deployment_id), (list) => list.length === 1);
    expect(jobs[0]).toMatchObject({ type: 'deployment', run_attempt: 1 });
    expect(await t.ctx.store.getDeployment(auto!.deployment_id!)).toMatchObject({ status: 'pending', attempts: 1 });
  });

  it('publishes the auto-deploy of a run that failed after its release at once (its Workflow never reaches the deployment node)', async () => {
    const id = await newRun();
    const run = await eventually(() => t.ctx.store.getRun(id), (r) => r?.argo_workflow_name != null);
    const { release } = await createRelease(t.ctx, {
      pipeline_run_id: id, repository: 'acme/argo', project: 'web', commit_sha: run!.commit_sha, trigger: { type: 'branch_push', branch: 'main' }, artifacts: [],
    }, { actor: 'forge-worker', mayRecordTrigger: true });
    const [auto] = await autoDeploy(t.ctx, release.id, AUTO_DEPLOY_ACTOR);
    await dispatcher.idle();
    expect(published.filter((j) => j.id === auto!.deployment_id)).toEqual([]);
    await failRun(t.ctx, id, 'task_failed', 'another project\'s release failed');
    await eventually(async () => published.filter((j) => j.id === auto!.deployment_id), (jobs) => jobs.length === 1, 5000);
  });

  it('ends runs whose Workflow Argo stopped (cancelled), failed or lost (failed); a running Workflow\'s run is left alone', async () => {
    const ids = await Promise.all([newRun(), newRun(), newRun(), newRun()]);
    const runs = await Promise.all(ids.map((id) => eventually(() => t.ctx.store.getRun(id), (r) => r?.argo_workflow_name != null)));
    const [stopped, failed, deleted, running] = runs.map((r) => r!);
    peer.workflows.set(stopped!.argo_workflow_name!, { ...peer.workflows.get(stopped!.argo_workflow_name!)!, phase: 'Failed', message: 'Stopped with strategy \'Terminate\'' });
    peer.workflows.set(failed!.argo_workflow_name!, { ...peer.workflows.get(failed!.argo_workflow_name!)!, phase: 'Failed', message: `child '${failed!.argo_workflow_name}-1234' failed` });
    peer.workflows.delete(deleted!.argo_workflow_name!);
    const ended = await Promise.all([stopped!, failed!, deleted!].map((r) => eventually(() => t.ctx.store.getRun(r.id), (x) => x?.status === 'cancelled' || x?.status === 'failed', 5000)));
    expect(ended[0]).toMatchObject({ status: 'cancelled', error_code: 'cancelled' });
    expect(ended[0]!.error_message).toMatch(/^cancelled by Argo \(Workflow forge-run-.*: Stopped with strategy 'Terminate'\)$/);
    expect(ended[1]).toMatchObject({ status: 'failed', error_code: 'workflow_failed', error_message: `the Argo Workflow ${failed!.argo_workflow_name} failed: child '${failed!.argo_workflow_name}-1234' failed` });
    expect(ended[2]).toMatchObject({ status: 'failed', error_code: 'workflow_deleted' });
    // The deleted one was asked for by name before it was believed gone.
    expect(peer.requests.some((r) => r.method === 'GET' && r.path.startsWith(`/api/v1/workflows/catalyst-forge-pipelines/${deleted!.argo_workflow_name}?`))).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    expect(await t.ctx.store.getRun(running!.id)).toMatchObject({ status: 'pending' });
    // Lists ask only for what they need, with the run label.
    const list = peer.requests.find((r) => r.method === 'GET' && r.path.startsWith('/api/v1/workflows/catalyst-forge-pipelines?'))!;
    const query = new URL(list.path, 'http://x').searchParams;
    expect(query.get('listOptions.labelSelector')).toBe('forge.projectcatalyst.io/run-id');
    expect(query.get('fields')).toBe('metadata,items.metadata.name,items.status.phase,items.status.message');
    expect(list.headers.authorization).toBe('Bearer t');
  });

  it('POST /v1/runs/{id}/jobs refuses a group outside the ci stage and an unknown stage (422, naming what is allowed), writing nothing', async () => {
    const id = await newRun();
    const token = await t.token('forge-dispatcher', ['service-account']);
    const ask = (payload: object) => t.app.inject({ method: 'POST', url: `/v1/runs/${id}/jobs`, headers: { authorization: `Bearer ${token}` }, payload });
    const withGroup = await ask({ stage: 'discovery', group: 1 });
    expect(withGroup.statusCode).toBe(422);
    expect(withGroup.json()).toMatchObject({ error: { code: 'validation_error', message: 'group applies to the ci stage only, not discovery', details: { field: 'group' } } });
    const unknown = await ask({ stage: 'deploy' });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ error: { details: { errors: [{ field: 'stage', allowed: ['discovery', 'ci', 'artifact', 'release', 'deployment'] }] } } });
    expect((await t.ctx.store.getRun(id))?.discovery_dispatched_at).toBeNull();
  });
});


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
import { createRun } from '../../src/engine/runs.ts';
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
      queue, sweepMs: 50, jobTimeoutsMs: { discovery: 1500 },
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
    peer.answer = (request) => (refusals-- > 0 ? { status: 503, body: { message: 'starting' } } : { status: 200, body: (request.body as { workflow: unknown }).workflow });
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
    peer.answer = () => ({ status: 502, body: { message: 'bad gateway' } });
    const id = await newRun();
    const run = await eventually(() => t.ctx.store.getRun(id), (r) => r?.status === 'failed', 20_000);
    expect(run).toMatchObject({ error_code: 'orchestrator_unavailable', argo_workflow_name: null });
    expect(run!.error_message).toMatch(/could not be submitted within 1500ms: POST .*: 502 bad gateway/);
    expect(requestsFor(id).length).toBeGreaterThan(1);
    expect(published.filter((j) => j.run_id === id)).toEqual([]);
  });
});

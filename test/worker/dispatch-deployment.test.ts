/**
 * The deployment node of `forge dispatch` polls (decision 207): it asks the API again every few
 * seconds while it waits, so it ends as soon as the API has the outcome of a deployment it did not
 * publish itself, and it publishes the job the API hands it when a deployment is claimed again
 * after a reply that never came, instead of giving up. The API side is a scripted stand-in of the
 * internal API (our own port); the jobs go through the real in-process queue.
 */
import { describe, expect, it } from 'vitest';
import type { DispatchStage, JobMessage } from '../../src/domain/jobs.ts';
import type { StageJobs } from '../../src/engine/run-jobs.ts';
import { draft } from '../../src/engine/run-jobs.ts';
import { MemoryBroker, createMemoryJobQueue } from '../../src/queue/jobs.memory.ts';
import { runDispatch } from '../../src/worker/dispatch.ts';
import type { DispatchApi } from '../../src/worker/internal-api.ts';

const RUN = '0b7c6a55-1f0e-4f53-9d7e-2f3a4b5c6d7e';
const DEPLOYMENT = '5c1d2b0e-8f3a-4c9d-9e1f-2a3b4c5d6e7f';

function answer(outcome: StageJobs['outcome'], more: Partial<StageJobs> = {}): StageJobs {
  return {
    run_id: RUN, run_attempt: 1, run_status: 'success', stage: 'deployment', group: null, outcome, jobs: [], awaiting: [],
    timeout_ms: 600_000, message: outcome === 'done' ? 'deployed svc to dev' : 'deployments of svc to dev', ...more,
  };
}

function scriptedApi(script: StageJobs[]): DispatchApi & { asked: number } {
  const api = {
    asked: 0,
    async stageJobs(_runId: string, stage: DispatchStage) {
      expect(stage).toBe('deployment');
      const next = script[Math.min(api.asked, script.length - 1)]!;
      api.asked += 1;
      return next;
    },
    async handOver() {},
  };
  return api;
}

describe('forge dispatch --job-type deployment polls the API while it waits', () => {
  it('ends with the API\'s outcome for a deployment someone else published, without waiting out the 10-minute timeout', async () => {
    const queue = createMemoryJobQueue(new MemoryBroker());
    const api = scriptedApi([answer('dispatch', { awaiting: [DEPLOYMENT] }), answer('dispatch', { awaiting: [DEPLOYMENT] }), answer('done')]);
    const lines: string[] = [];
    const started = Date.now();
    const result = await runDispatch({ api, queue, runId: RUN, stage: 'deployment', progress: (l) => lines.push(l), deploymentPollMs: 50 });
    expect(result).toMatchObject({ ok: true, stage: 'deployment', published: 0, message: 'deployed svc to dev' });
    expect(api.asked).toBe(3);
    expect(Date.now() - started).toBeLessThan(5000);
    // One progress line for the two identical answers.
    expect(lines).toEqual(['deployment: deployments of svc to dev; published 0 job(s), waiting for 1 reply']);
    await queue.close();
  });

  it('publishes the job again when the API claims the deployment again (no reply came), and never exits on the missing reply', async () => {
    const queue = createMemoryJobQueue(new MemoryBroker());
    const published: JobMessage[] = [];
    const counting = { ...queue, kind: queue.kind, publish: async (job: JobMessage, msgId: string) => { published.push(job); await queue.publish(job, msgId); } };
    const job = (attempt: number) => draft('deployment', DEPLOYMENT, DEPLOYMENT, attempt, { deployment_id: DEPLOYMENT }, new Date(), 600_000, `deployment-${DEPLOYMENT}-${attempt}`);
    const api = scriptedApi([
      answer('dispatch', { jobs: [job(1)], awaiting: [DEPLOYMENT] }),
      answer('dispatch', { awaiting: [DEPLOYMENT] }),
      answer('dispatch', { jobs: [job(2)], awaiting: [DEPLOYMENT] }),
      answer('failed', { message: 'deployment of svc to dev failed: no result from the deployment job after 2 attempts' }),
    ]);
    const result = await runDispatch({ api, queue: counting, runId: RUN, stage: 'deployment', progress: () => undefined, deploymentPollMs: 50 });
    expect(published.map((j) => [j.id, j.run_attempt])).toEqual([[DEPLOYMENT, 1], [DEPLOYMENT, 2]]);
    expect(result).toMatchObject({ ok: false, published: 2, message: expect.stringContaining('no result from the deployment job') });
    await queue.close();
  });
});

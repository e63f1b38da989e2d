/**
 * Worker faults with real, separate `forge worker` processes on NATS JetStream + PostgreSQL: the
 * server (startServer, FORGE_WORKERS=none) runs in this process; workers are spawned as
 * `node bin/forge.mjs worker` and killed (SIGKILL) or frozen (SIGSTOP) in the middle of a step.
 *
 * 1. SIGKILL mid-step: the job comes back after ack_wait to another worker process, which claims
 *    the task as attempt 2 and finishes the step once; attempt 1's streamed log parts stay.
 * 2. SIGSTOP past ack_wait: another worker finishes the task as attempt 2; the frozen worker, once
 *    continued, reports its (attempt 1) step result late and is refused with 409 (fencing), which
 *    changes nothing of the run.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/bin/server.ts';
import { logPartsPrefix, stepLogKey } from '../../src/domain/logs.ts';
import type { ObjectStore } from '../../src/engine/ports.ts';
import { getRunTree, type RunTree } from '../../src/engine/runs.ts';
import { deleteJobStreams, streamNames } from '../../src/queue/jobs.nats.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { seedOneStepProject } from '../helpers/repositories.ts';
import { killAllWorkerProcesses, signalGroup, spawnWorkerProcess, startServerForWorkers, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';

const ACK_WAIT = '2500ms';
/** Long enough to freeze or kill a worker in the middle of it, short enough for a quick test. */
const STEP = 'echo start; sleep 3; echo done';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, diagnostics: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${diagnostics()}`);
    await sleep(100);
  }
}

describe.skipIf(natsUnavailable !== undefined || postgresAdapter.unavailable !== undefined)('worker processes killed or frozen mid-step (NATS JetStream + PostgreSQL)', () => {
  let test: TestStore;
  let running: RunningServer;
  let objects: ObjectStore;
  let dataDir: string;
  let token = '';
  const namespace = `f${randomUUID().slice(0, 8)}.`;

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-faults-'));
    running = await startServerForWorkers({ store: test.store, dataDir, natsUrl: TEST_NATS_URL, namespace, ackWait: ACK_WAIT });
    objects = running.ctx.objects!;
    token = await running.devIssuer!.sign({ sub: 'alice', roles: ['developer'] });
  });

  afterAll(async () => {
    await killAllWorkerProcesses();
    await running?.close();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** A worker process of this server: its own git cache, the server's data dir for objects and the dev issuer key. */
  const worker = (name: string): WorkerProcess => spawnWorkerProcess(name, workerEnv({
    name, natsUrl: TEST_NATS_URL, apiUrl: running.url, dataDir, namespace, ackWait: ACK_WAIT, concurrency: 1,
  }));

  const commit = (repository: string): Promise<string> => seedOneStepProject(dataDir, repository, STEP);

  const createRun = async (repository: string, sha: string): Promise<string> => {
    const res = await fetch(`${running.url}/v1/runs`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ repository, branch: 'main', commit_sha: sha, trigger_type: 'push' }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };

  const onlyStep = (tree: RunTree) => {
    const task = tree.phases[0]?.tasks[0];
    return task ? { task, step: task.steps[0] } : undefined;
  };

  /** The run's step once attempt 1 runs it and its first output ("start") is in the object store as a log part. */
  const runningWithOutput = async (id: string, workers: WorkerProcess[]) => {
    const diagnostics = () => workers.map((w) => w.output()).join('');
    await until('the step to run as attempt 1', async () => {
      const found = onlyStep(await getRunTree(running.ctx, id));
      return found?.step?.status === 'running' && found.task.attempt === 1 ? true : undefined;
    }, 20_000, diagnostics);
    const key = stepLogKey(id, 'test', 'svc', 's1', 1);
    await until('attempt 1\'s first log part', async () => ((await objects.list(logPartsPrefix(key))).length > 0 ? true : undefined), 5000, diagnostics);
    return key;
  };

  const finished = (id: string, workers: WorkerProcess[]) => until(`run ${id} to finish`, async () => {
    const tree = await getRunTree(running.ctx, id);
    return ['success', 'failed', 'cancelled'].includes(tree.status) ? tree : undefined;
  }, 25_000, () => workers.map((w) => w.output()).join(''));

  /** Requests the server answered, by method, route and status code (its Prometheus histogram). */
  const requestCount = async (method: string, route: string, status: number): Promise<number> => {
    const text = await (await fetch(`${running.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('forge_http_request_duration_seconds_count{')
      && l.includes(`method="${method}"`) && l.includes(`route="${route}"`) && l.includes(`status_code="${status}"`));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  const counts = async () => ({
    claims: await requestCount('POST', '/v1/tasks/:id/claim', 200),
    stepReports: await requestCount('PUT', '/v1/steps/:id/status', 200),
    staleStepReports: await requestCount('PUT', '/v1/steps/:id/status', 409),
    taskReports: await requestCount('PUT', '/v1/tasks/:id/status', 200),
    staleTaskReports: await requestCount('PUT', '/v1/tasks/:id/status', 409),
  });
  const delta = (after: Awaited<ReturnType<typeof counts>>, before: Awaited<ReturnType<typeof counts>>) =>
    Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]));

  const text = async (key: string) => (await objects.get(key))?.body.toString('utf8');
  const partsText = async (key: string) => {
    let joined = '';
    for (const part of await objects.list(logPartsPrefix(key))) joined += await text(part.key);
    return joined;
  };
  const completedEvents = async (id: string) => {
    const rows = await test.db.selectFrom('event_outbox').select('envelope').where('event_type', '=', 'pipeline.run.completed').execute();
    return rows.map((r) => r.envelope as { data: { run_id: string; status: string } }).filter((e) => e.data.run_id === id);
  };
  /** Messages left in the namespace's ci stream (a workqueue: an acked job is removed). */
  const ciStreamMessages = async () => {
    const nc = await connect({ servers: TEST_NATS_URL });
    try {
      return (await (await jetstreamManager(nc)).streams.info(streamNames(namespace).ci.stream)).state.messages;
    } finally {
      await nc.close();
    }
  };

  it('SIGKILL mid-step: the job comes back after ack_wait to another worker process, which finishes the step once as attempt 2; attempt 1\'s log parts stay', async () => {
    const before = await counts();
    const a = worker('killed-a');
    let b: WorkerProcess | undefined;
    try {
      const id = await createRun('acme/killed', await commit('acme/killed'));
      const key1 = await runningWithOutput(id, [a]);

      // The worker dies with its machine: the worker process and the step it was running.
      const steps = a.stepGroups();
      expect(steps).toHaveLength(1);
      a.signal('SIGKILL');
      expect(await a.exited).toMatchObject({ signal: 'SIGKILL' });
      for (const group of steps) signalGroup(group, 'SIGKILL');
      const orphaned = onlyStep(await getRunTree(running.ctx, id))!;
      expect(orphaned.task).toMatchObject({ status: 'running', attempt: 1 });
      expect(orphaned.step).toMatchObject({ status: 'running', logs_s3_key: key1 });

      b = worker('killed-b');
      const tree = await finished(id, [a, b]);
      expect(tree.status, b.output()).toBe('success');
      const { task, step } = onlyStep(tree)!;
      expect(task).toMatchObject({ status: 'success', attempt: 2, error: null });
      const key2 = stepLogKey(id, 'test', 'svc', 's1', 2);
      expect(key2).toBe(`pipeline-runs/${id}/logs/test/svc/s1.attempt-2.log`);
      expect(step).toMatchObject({ status: 'success', exit_code: 0, attempt: 2, logs_s3_key: key2 });
      // Attempt 2 ran the step once, whole; its parts were folded into the log.
      expect(await text(key2)).toBe('start\ndone\n');
      expect(await objects.list(logPartsPrefix(key2))).toEqual([]);
      // Attempt 1 never finished its log, but what it streamed before the kill is kept.
      expect(await objects.head(key1)).toBeUndefined();
      expect(await partsText(key1)).toBe('start\n');

      // Exactly one terminal outcome: one accepted task report, one run completion, nothing refused.
      // Claims: attempt 1 (the killed worker) and attempt 2 (the other one).
      // Step reports: running (1), running (2), success (2).
      expect(delta(await counts(), before)).toEqual({ claims: 2, stepReports: 3, staleStepReports: 0, taskReports: 1, staleTaskReports: 0 });
      expect(await completedEvents(id)).toEqual([expect.objectContaining({ data: expect.objectContaining({ run_id: id, status: 'success' }) })]);
      // The second delivery was acked: the workqueue stream holds no job.
      expect(await until('the job to be acked', async () => ((await ciStreamMessages()) === 0 ? 0 : undefined), 5000)).toBe(0);
    } finally {
      await b?.stop();
      await a.stop();
    }
  });

  it('SIGSTOP past ack_wait: another worker process finishes attempt 2; the frozen one, continued, is refused with 409 and changes nothing', async () => {
    const before = await counts();
    const a = worker('frozen-a');
    let b: WorkerProcess | undefined;
    try {
      const id = await createRun('acme/frozen', await commit('acme/frozen'));
      const key1 = await runningWithOutput(id, [a]);

      // Frozen (a long GC pause, a suspended VM): no heartbeats, so the job is redelivered. Its step
      // (in its own process group) runs on and ends; the worker learns of it only when continued.
      a.signal('SIGSTOP');
      b = worker('frozen-b');
      const tree = await finished(id, [a, b]);
      expect(tree.status, b.output()).toBe('success');
      const key2 = stepLogKey(id, 'test', 'svc', 's1', 2);
      expect(onlyStep(tree)!.task).toMatchObject({ status: 'success', attempt: 2 });
      expect(onlyStep(tree)!.step).toMatchObject({ status: 'success', exit_code: 0, attempt: 2, logs_s3_key: key2 });
      expect(await text(key2)).toBe('start\ndone\n');
      const settled = delta(await counts(), before);
      expect(settled).toEqual({ claims: 2, stepReports: 3, staleStepReports: 0, taskReports: 1, staleTaskReports: 0 });

      a.signal('SIGCONT');
      // Its step ended while it was frozen: it stores attempt 1's log (under attempt 1's key) and
      // reports the step's success for attempt 1, which the API refuses.
      const reported = (c: Record<string, number>) => (c.stepReports ?? 0) + (c.staleStepReports ?? 0);
      await until('the late attempt-1 step report', async () => (reported(delta(await counts(), before)) > reported(settled) ? true : undefined),
        10_000, () => a.output() + b!.output());
      await sleep(500); // room for anything the worker does next (with a 200 it would report the task too)
      expect(delta(await counts(), before)).toEqual({ ...settled, staleStepReports: 1 });
      expect(await text(key1)).toBe('start\ndone\n');

      // Nothing changed: the run, its task and step are exactly as attempt 2 left them.
      expect(await getRunTree(running.ctx, id)).toEqual(tree);
      expect(await text(key2)).toBe('start\ndone\n');
      expect(await completedEvents(id)).toHaveLength(1);
      // The worker that was frozen is alive and well: it stops cleanly.
      await a.stop();
      expect(await a.exited).toEqual({ code: 0, signal: null });
    } finally {
      await b?.stop();
      await a.stop();
    }
  });
});

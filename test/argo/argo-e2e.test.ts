/**
 * FORGE_ORCHESTRATOR=argo end to end, on the real NATS JetStream and PostgreSQL, with real `forge
 * worker` processes. No Argo can run here, so the test plays Argo (and Kubernetes): a local peer
 * records the Workflow the server submits; the test validates it against the Workflow schema and
 * runs its DAG nodes in dependency order, each as a child process with exactly the Workflow's
 * command, args and environment (the Secret's token filled in, as Kubernetes would). A node that
 * exits non-zero fails the Workflow: its dependents do not run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import type { PipelineRun } from '../../src/domain/entities.ts';
import { isRunTerminal } from '../../src/domain/statuses.ts';
import { cancelRun, createRun, getRunTree, retryRun } from '../../src/engine/runs.ts';
import { deleteJobStreams, replyStreamName } from '../../src/queue/jobs.nats.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import type { DispatchResult } from '../../src/worker/dispatch.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { freePort } from '../faults/support.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { gitUrlTemplate, seedOneStepProject } from '../helpers/repositories.ts';
import { eventually } from '../helpers/runs.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { startArgoPeer, type ArgoPeer } from './argo-peer.ts';
import { startGitHubPeer, type GitHubPeer } from '../helpers/github-peer.ts';
import { dagInOrder, validateWorkflow, type DagNode } from './workflow.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

const FORGE_BIN = fileURLToPath(new URL('../../bin/forge.mjs', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ACK_WAIT = '10s';

interface NodeOutcome {
  name: string;
  code: number | null;
  stdout: string;
  stderr: string;
  result: DispatchResult | undefined;
}

/** Runs one DAG node as its pod would: the container's command (forge → bin/forge.mjs) and args, its env, the Secret's value. */
function runNode(node: DagNode, secrets: Record<string, string>, onSpawn?: (child: ChildProcess) => void): Promise<NodeOutcome> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() };
  for (const variable of node.container.env) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom) {
      const { name, key } = variable.valueFrom.secretKeyRef;
      const value = secrets[`${name}/${key}`];
      if (value === undefined) throw new Error(`node ${node.name}: no Secret ${name}/${key}`);
      env[variable.name] = value;
    }
  }
  const [command, ...args] = [...node.container.command, ...node.container.args];
  if (command !== 'forge') throw new Error(`node ${node.name} runs ${command}, not forge`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FORGE_BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      let result: DispatchResult | undefined;
      try {
        result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as DispatchResult;
      } catch {
        result = undefined;
      }
      resolve({ name: node.name, code, stdout, stderr, result });
    });
  });
}

/** Plays Argo: the DAG in order, stopping at the first node that fails (its dependents never start). */
async function playWorkflow(workflow: unknown, secrets: Record<string, string>): Promise<NodeOutcome[]> {
  const outcomes: NodeOutcome[] = [];
  for (const node of dagInOrder(workflow)) {
    const outcome = await runNode(node, secrets);
    outcomes.push(outcome);
    if (outcome.code !== 0) break;
  }
  return outcomes;
}

describe.skipIf(natsUnavailable !== undefined || postgresAdapter.unavailable !== undefined)('FORGE_ORCHESTRATOR=argo: Workflow submission and forge dispatch (NATS JetStream + PostgreSQL + worker processes)', () => {
  let test: TestStore;
  let running: RunningServer;
  let peer: ArgoPeer;
  let github: GitHubPeer;
  let worker: WorkerProcess;
  let dataDir: string;
  let secrets: Record<string, string>;
  const namespace = `argo${randomUUID().slice(0, 8)}.`;

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-argo-'));
    peer = await startArgoPeer();
    github = await startGitHubPeer();
    const port = await freePort();
    running = await startServer(parseServerSettings({}, {
      FORGE_WORKERS: 'none', NATS_URL: TEST_NATS_URL, FORGE_NATS_NAMESPACE: namespace, FORGE_ACK_WAIT: ACK_WAIT,
      FORGE_HOST: '127.0.0.1', FORGE_PORT: String(port), FORGE_LOG_LEVEL: 'silent', FORGE_DATA_DIR: dataDir, FORGE_RATE_LIMITS: 'off',
      FORGE_GIT_URL_TEMPLATE: gitUrlTemplate(dataDir),
      FORGE_GITHUB_TOKEN: 'gh-token', FORGE_GITHUB_API_URL: github.url,
      FORGE_ORCHESTRATOR: 'argo', FORGE_ARGO_SERVER_URL: peer.url, FORGE_ARGO_TOKEN: 'argo-bearer-token', FORGE_ARGO_IMAGE: 'ghcr.io/acme/forge:test',
    }), { store: test.store, announce: false });
    // The Kubernetes Secret the pods' token comes from: a service-account token of the server's issuer.
    secrets = { 'forge-dispatcher/token': await running.devIssuer!.sign({ sub: 'forge-dispatcher', roles: ['service-account'] }) };
    worker = spawnWorkerProcess('argo-worker', workerEnv({
      name: 'argo-worker', natsUrl: TEST_NATS_URL, apiUrl: running.url, dataDir, namespace, ackWait: ACK_WAIT, concurrency: 2, logLevel: 'warn',
    }));
    await worker.ready;
  }, 60_000);

  afterAll(async () => {
    await worker?.stop();
    await killAllWorkerProcesses();
    await running?.close();
    await peer?.close();
    await github?.close();
    await test?.close();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    peer.answer = undefined;
  });

  async function startRun(repository: string, step: string): Promise<PipelineRun> {
    const commit = await seedOneStepProject(dataDir, repository, step);
    const { run } = await createRun(running.ctx, { repository, branch: 'main', commit_sha: commit, trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
    return run;
  }

  /** The Workflow the server submitted for a run (recorded by the peer), and the run once its name is recorded. */
  async function submitted(runId: string): Promise<{ workflow: { metadata: { name: string } }; run: PipelineRun }> {
    const run = await eventually(() => running.ctx.store.getRun(runId), (r) => r?.argo_workflow_name != null || (r !== undefined && isRunTerminal(r.status)));
    const request = peer.requests.find((r) => (r.body as { workflow?: { metadata?: { labels?: Record<string, string> } } }).workflow?.metadata?.labels?.['forge.projectcatalyst.io/run-id'] === runId);
    if (!request || !run) throw new Error(`no Workflow was submitted for run ${runId}`);
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/api/v1/workflows/catalyst-forge-pipelines');
    expect(request.headers.authorization).toBe('Bearer argo-bearer-token');
    const { workflow } = request.body as { workflow: { metadata: { name: string } } };
    validateWorkflow(workflow);
    return { workflow, run };
  }

  it('submits one Workflow per run; played node by node, its forge dispatch pods carry the run to success through the real workers', async () => {
    const created = await startRun('acme/argo-ok', 'echo built by argo');
    const { workflow, run } = await submitted(created.id);
    expect(run.argo_workflow_name).toBe(`forge-run-${created.id}`);
    expect(workflow.metadata.name).toBe(run.argo_workflow_name);
    // The API's own dispatcher published nothing of the run: discovery waits for the Workflow's node.
    await running.dispatcher.idle();
    expect((await running.ctx.store.getRun(created.id))?.discovery_dispatched_at).toBeNull();
    expect(await running.ctx.store.listPhases(created.id)).toEqual([]);

    // The run's API JSON names its Workflow (spec 06).
    const token = await running.devIssuer!.sign({ sub: 'alice', roles: ['developer'] });
    const response = await fetch(`${running.url}/v1/runs/${created.id}`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await response.json()) as { argo_workflow_name: string }).argo_workflow_name).toBe(`forge-run-${created.id}`);

    const outcomes = await playWorkflow(workflow, secrets);
    expect(outcomes.map((o) => [o.name, o.code]), outcomes.map((o) => o.stderr).join('\n')).toEqual([['discovery', 0], ['ci', 0], ['artifact', 0], ['release', 0], ['deployment', 0]]);
    expect(outcomes[4]!.result).toMatchObject({ ok: true, stage: 'deployment', published: 0, message: 'this run cut no release' });
    const ci = outcomes[1]!;
    expect(ci.result).toMatchObject({ ok: true, stage: 'ci', run_id: created.id, published: 1 });
    expect(ci.result!.replies).toEqual([expect.objectContaining({ type: 'ci', ok: true })]);
    expect(ci.stderr).toMatch(/group 1: phase group 1: test; published 1 job\(s\), waiting for 1 reply/);
    expect(outcomes[0]!.result).toMatchObject({ ok: true, stage: 'discovery', published: 1 });

    const tree = await getRunTree(running.ctx, created.id);
    expect(tree.status).toBe('success');
    // GitHub heard of the phase group the ci node dispatched, as it does from the built-in dispatcher.
    const statuses = await eventually(async () => github.requests.filter((r) => r.path === `/repos/acme/argo-ok/statuses/${created.commit_sha}`), (list) => list.some((r) => /^Running phase 1 of 1/.test(String(r.body.description))));
    expect(statuses.map((r) => r.body.state)).toContain('pending');
    // Once the run has its Workflow, statuses link to its page in the Argo UI (digest §2.7).
    const progress = statuses.find((r) => /^Running phase 1 of 1/.test(String(r.body.description)))!;
    expect(progress.body.target_url).toBe(`${peer.url}/workflows/catalyst-forge-pipelines/forge-run-${created.id}`);
    expect(tree.phases.flatMap((p) => p.tasks.map((t) => [p.phase_name, t.project_name, t.status]))).toEqual([['test', 'svc', 'success']]);
    expect(tree.phases[0]!.tasks[0]!.steps.map((s) => [s.step_name, s.status, s.exit_code])).toEqual([['s1', 'success', 0]]);

    // Each node removed its inbox when it ended.
    const nc = await connect({ servers: TEST_NATS_URL });
    try {
      const consumers = await (await jetstreamManager(nc)).consumers.list(replyStreamName(namespace).stream).next();
      expect(consumers.map((c) => c.name).filter((n) => n.startsWith('dispatch-'))).toEqual([]);
    } finally {
      await nc.close();
    }
  }, 120_000);

  it('a failing step: the ci node exits 1 saying why, the Workflow stops there, and the run fails', async () => {
    const created = await startRun('acme/argo-fail', 'echo about to fail; exit 3');
    const { workflow } = await submitted(created.id);
    const outcomes = await playWorkflow(workflow, secrets);
    expect(outcomes.map((o) => [o.name, o.code])).toEqual([['discovery', 0], ['ci', 1]]);
    const ci = outcomes[1]!;
    expect(ci.result).toMatchObject({ ok: false, stage: 'ci', run_status: 'failed' });
    expect(ci.result!.replies).toEqual([expect.objectContaining({ type: 'ci', ok: false, error: 'step s1 failed (exit code 3)' })]);
    expect(ci.result!.message).toMatch(/^run failed: test\/svc: /);
    const tree = await eventually(() => getRunTree(running.ctx, created.id), (t) => isRunTerminal(t.status));
    expect(tree.status).toBe('failed');
    expect(tree.phases[0]!.tasks[0]!.steps[0]).toMatchObject({ step_name: 's1', status: 'failed', exit_code: 3 });

    // A retried run is a new attempt with a Workflow of its own; played, it fails the same way.
    await retryRun(running.ctx, created.id, 'alice');
    const retried = await eventually(() => running.ctx.store.getRun(created.id), (r) => r?.argo_workflow_name === `forge-run-${created.id}-a2`);
    expect(retried).toMatchObject({ attempt: 2, status: 'pending' });
    const second = peer.requests.map((r) => (r.body as { workflow?: { metadata: { name: string } } }).workflow).find((w) => w?.metadata.name === `forge-run-${created.id}-a2`);
    validateWorkflow(second);
    const again = await playWorkflow(second, secrets);
    expect(again.map((o) => [o.name, o.code])).toEqual([['discovery', 0], ['ci', 1]]);
    expect(again[1]!.result).toMatchObject({ ok: false, published: 1, run_status: 'failed' });
  }, 120_000);

  it('forge dispatch of a later stage before its turn is refused; --group runs one phase group; a finished stage answers done at once', async () => {
    const created = await startRun('acme/argo-order', 'true');
    const { workflow } = await submitted(created.id);
    const nodes = dagInOrder(workflow);
    const early = await runNode(nodes.find((n) => n.name === 'ci')!, secrets);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/has no plan yet: its discovery stage has not finished/);
    const earlyDeploy = await runNode(nodes.find((n) => n.name === 'deployment')!, secrets);
    expect(earlyDeploy.code).toBe(1);
    expect(earlyDeploy.stderr).toMatch(/is pending; its deployments start after it succeeded/);
    expect((await runNode(nodes[0]!, secrets)).code).toBe(0);
    // One phase group alone (--group), as an operator may run it by hand; a group the plan lacks is refused.
    const ciNode = nodes.find((n) => n.name === 'ci')!;
    const withGroup = (group: string): DagNode => ({ ...ciNode, container: { ...ciNode.container, args: [...ciNode.container.args, '--group', group] } });
    const missing = await runNode(withGroup('7'), secrets);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/has no phase group 7; its groups are 1/);
    const group1 = await runNode(withGroup('1'), secrets);
    expect(group1.code, group1.stderr).toBe(0);
    expect(group1.result).toMatchObject({ ok: true, group: 1, published: 1 });
    const outcomes = await playWorkflow(workflow, secrets);
    expect(outcomes.map((o) => [o.name, o.code, o.result?.published])).toEqual([['discovery', 0, 0], ['ci', 0, 0], ['artifact', 0, 0], ['release', 0, 0], ['deployment', 0, 0]]);
    const again = await runNode(nodes[0]!, secrets);
    expect(again.code).toBe(0);
    expect(again.result).toMatchObject({ ok: true, published: 0, message: 'run succeeded' });
  }, 120_000);

  it('a releasing project: the artifact and release nodes publish the release build\'s jobs and the run ends with its release', async () => {
    const releaser = spawnWorkerProcess('argo-releaser', workerEnv({
      name: 'argo-releaser', natsUrl: TEST_NATS_URL, apiUrl: running.url, dataDir, namespace, ackWait: ACK_WAIT, concurrency: 2, logLevel: 'warn',
    }), ['artifact', 'release']);
    try {
      await releaser.ready;
      const source = mkdtempSync(join(tmpdir(), 'forge-argo-release-'));
      mkdirSync(join(source, '.forge'));
      mkdirSync(join(source, 'lib', '.forge'), { recursive: true });
      mkdirSync(join(source, 'lib', 'src'));
      writeFileSync(join(source, 'lib', 'src', 'index.js'), 'export const x = 1;\n');
      writeFileSync(join(source, '.forge', 'repo.cue'), 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: test: group: 1\npublishers: files: type: "directory"\n');
      writeFileSync(join(source, 'lib', '.forge', 'project.cue'), [
        'name: "lib"',
        'phases: test: steps: [{name: "unit", action: "script", run: "node --check src/index.js"}]',
        'artifacts: bundle: {type: "archive", compression: "gzip", producer: {type: "script", run: "mkdir -p dist && tar -czf dist/lib.tgz src", artifact: "dist/lib.tgz"}, publishers: ["files"]}',
        'release: on: [{branch: "main"}]',
      ].join('\n'));
      const { commitSha } = await seedRepository({ bareDir: join(dataDir, 'git', 'acme', 'argo-release.git'), sourceDir: source, message: 'lib' });
      rmSync(source, { recursive: true, force: true });
      const { run: created } = await createRun(running.ctx, { repository: 'acme/argo-release', branch: 'main', commit_sha: commitSha, trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
      const { workflow } = await submitted(created.id);
      const outcomes = await playWorkflow(workflow, secrets);
      expect(outcomes.map((o) => [o.name, o.code, o.result?.published]), outcomes.map((o) => o.stderr).join('\n')).toEqual([['discovery', 0, 1], ['ci', 0, 1], ['artifact', 0, 1], ['release', 0, 1], ['deployment', 0, 1]]);
      expect(outcomes[2]!.result!.replies).toEqual([expect.objectContaining({ type: 'artifact', ok: true })]);
      const run = await eventually(() => running.ctx.store.getRun(created.id), (r) => r !== undefined && isRunTerminal(r.status));
      expect(run?.status).toBe('success');
      const [build] = await running.ctx.store.listRunReleaseBuilds(created.id);
      expect(build).toMatchObject({ project: 'lib', status: 'success' });
      const release = await running.ctx.store.getRelease(build!.release_id!);
      expect(release).toMatchObject({ project: 'lib', release_number: 1, commit_sha: commitSha });
      // The release deployed itself to dev (auto_deploy): the Workflow's deployment node published
      // that job (published: 1 above; the API's dispatcher left it to the node) and got its reply.
      const deploymentNode = outcomes[4]!;
      expect(deploymentNode.result).toMatchObject({ ok: true, stage: 'deployment', message: 'deployed lib to dev' });
      expect(deploymentNode.result!.replies).toEqual([expect.objectContaining({ type: 'deployment', ok: true })]);
      expect(deploymentNode.stderr).toMatch(/deployment: deployments of lib to dev; published 1 job\(s\), waiting for 1 reply/);
      const [deployment] = await running.ctx.store.listDeploymentsOfReleases([release!.id]);
      expect(deployment).toMatchObject({ environment: 'dev', status: 'active', deployed_by: 'forge-release', attempts: 1 });
      expect(deployment!.gitops_commit_sha).toMatch(/^[0-9a-f]{40}$/);
      // Played again (Argo retrying the node), it publishes nothing and answers done.
      const again = await runNode(dagInOrder(workflow).find((n) => n.name === 'deployment')!, secrets);
      expect(again.result).toMatchObject({ ok: true, published: 0, message: 'deployed lib to dev' });
    } finally {
      await releaser.stop();
    }
  }, 180_000);

  it('DELETE of a run while its ci node waits: the worker stops the step, the node exits 1 with the run cancelled', async () => {
    const created = await startRun('acme/argo-cancel', 'echo started; sleep 60');
    const { workflow } = await submitted(created.id);
    const [discovery, ci] = dagInOrder(workflow);
    expect((await runNode(discovery!, secrets)).code).toBe(0);
    const node = runNode(ci!, secrets);
    await eventually(() => getRunTree(running.ctx, created.id), (t) => t.phases[0]?.tasks[0]?.steps[0]?.status === 'running');
    await cancelRun(running.ctx, created.id, 'alice');
    const outcome = await node;
    expect(outcome.code).toBe(1);
    expect(outcome.result).toMatchObject({ ok: false, stage: 'ci', run_status: 'cancelled' });
    expect(outcome.result!.message).toMatch(/^run cancelled/);
    expect((await getRunTree(running.ctx, created.id)).status).toBe('cancelled');
  }, 120_000);

  it('a ci node told to stop (SIGTERM, as Argo stops a pod) exits 1 at once and removes its inbox', async () => {
    const created = await startRun('acme/argo-sigterm', 'sleep 60');
    const { workflow } = await submitted(created.id);
    const [discovery, ci] = dagInOrder(workflow);
    expect((await runNode(discovery!, secrets)).code).toBe(0);
    let child: ChildProcess | undefined;
    const node = runNode(ci!, secrets, (c) => (child = c));
    await eventually(() => getRunTree(running.ctx, created.id), (t) => t.phases[0]?.tasks[0]?.steps[0]?.status === 'running');
    child!.kill('SIGTERM');
    const outcome = await node;
    expect(outcome.code).toBe(1);
    expect(outcome.result).toMatchObject({ ok: false, stage: 'ci', published: 1, message: 'stopped: received SIGTERM' });
    const nc = await connect({ servers: TEST_NATS_URL });
    try {
      const consumers = await (await jetstreamManager(nc)).consumers.list(replyStreamName(namespace).stream).next();
      expect(consumers.map((c) => c.name).filter((n) => n.includes(created.id))).toEqual([]);
    } finally {
      await nc.close();
    }
    await cancelRun(running.ctx, created.id, 'alice');
  }, 120_000);

  it('no reply within the job\'s timeout (the only CI worker frozen): the ci node gives up and exits 1', async () => {
    const source = mkdtempSync(join(tmpdir(), 'forge-argo-timeout-'));
    mkdirSync(join(source, '.forge'));
    mkdirSync(join(source, 'svc', '.forge'), { recursive: true });
    writeFileSync(join(source, '.forge', 'repo.cue'), 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: test: {group: 1, timeout: "3s"}\n');
    writeFileSync(join(source, 'svc', '.forge', 'project.cue'), 'name: "svc"\nphases: test: steps: [{name: "s1", action: "script", run: "true"}]\n');
    const { commitSha } = await seedRepository({ bareDir: join(dataDir, 'git', 'acme', 'argo-timeout.git'), sourceDir: source, message: 'svc' });
    rmSync(source, { recursive: true, force: true });
    const { run: created } = await createRun(running.ctx, { repository: 'acme/argo-timeout', branch: 'main', commit_sha: commitSha, trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
    const { workflow } = await submitted(created.id);
    const [discovery, ci] = dagInOrder(workflow);
    expect((await runNode(discovery!, secrets)).code).toBe(0);
    worker.signal('SIGSTOP');
    try {
      const outcome = await runNode(ci!, secrets);
      expect(outcome.code).toBe(1);
      expect(outcome.result).toMatchObject({ ok: false, stage: 'ci', published: 1, replies: [] });
      // Whichever comes first: the pod's own wait (3 s without a reply) or the API's watchdog failing the task.
      expect(outcome.result!.message).toMatch(/^no reply for [0-9a-f-]{36} within 3s$|^run failed: .*timed out/);
      // The API's watchdog fails the task at the same timeout (the worker is still frozen, so nothing
      // can finish it first: once thawed, a worker that took the job could still complete it).
      const run = await eventually(() => running.ctx.store.getRun(created.id), (r) => r !== undefined && isRunTerminal(r.status));
      expect(run?.status).toBe('failed');
    } finally {
      worker.signal('SIGCONT');
    }
  }, 120_000);

  it('a Workflow the Argo Server refuses fails the run with Argo\'s reason', async () => {
    peer.answer = () => ({ status: 403, body: { code: 7, message: 'workflows.argoproj.io is forbidden' } });
    const created = await startRun('acme/argo-refused', 'true');
    const run = await eventually(() => running.ctx.store.getRun(created.id), (r) => r !== undefined && isRunTerminal(r.status));
    expect(run).toMatchObject({ status: 'failed', error_code: 'workflow_rejected', argo_workflow_name: null });
    expect(run!.error_message).toMatch(/403 workflows\.argoproj\.io is forbidden/);
  }, 60_000);
});

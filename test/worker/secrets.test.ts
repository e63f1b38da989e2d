/**
 * Steps' secrets end to end: PostgreSQL, NATS JetStream and a real `forge worker` process whose
 * providers are env (its own environment), file (a secrets dir laid out like a mounted Kubernetes
 * Secret), aws (the AWS SDK against a local Secrets Manager peer) and vault (a KV v2 peer).
 *
 * 1. A step that prints its secrets (as variables and from files, whole, in Base64, and one split
 *    across two output chunks with a log flush between them) succeeds, and its log shows `***`.
 * 2. A step whose secret does not exist fails without running; the step's error and log name the
 *    reference (provider, path, key); the run fails.
 * Afterwards no canary value is in any row of the database (outbox events included), in any
 * object (step logs, parts, results), in the API's answers, or in the worker's output.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/bin/server.ts';
import { getRunTree, type RunTree } from '../../src/engine/runs.ts';
import { deleteJobStreams } from '../../src/queue/jobs.nats.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';
import { startAwsSecretsPeer, startVaultPeer, type SecretPeer } from '../helpers/secret-peers.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { killAllWorkerProcesses, spawnWorkerProcess, startServerForWorkers, workerEnv, type WorkerProcess } from '../helpers/worker-process.ts';
import { dumpRows } from '../security/support.ts';

const canary = (what: string) => `canary-${what}-${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every file under `dir` as text (latin1, so binary files are searched too). */
const filesUnder = (dir: string) => readdirSync(dir, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile())
  .map((entry) => ({ path: join(entry.parentPath, entry.name), text: readFileSync(join(entry.parentPath, entry.name)).toString('latin1') }));

describe.skipIf(natsUnavailable !== undefined || postgresAdapter.unavailable !== undefined)('step secrets with a real worker (NATS JetStream + PostgreSQL)', () => {
  let test: TestStore;
  let running: RunningServer;
  let dataDir: string;
  let secretsDir: string;
  let aws: SecretPeer;
  let vault: SecretPeer;
  let worker: WorkerProcess;
  let token = '';
  const namespace = `s${randomUUID().slice(0, 8)}.`;
  const secrets = {
    env: canary('env'),
    file: canary('file'),
    aws: canary('aws'),
    vault: canary('vault'),
    vaultToken: canary('vault-token'),
  };
  /** What the API answered along the way. */
  let answers = '';

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-step-secrets-e2e-'));
    secretsDir = mkdtempSync(join(tmpdir(), 'forge-step-secrets-dir-'));
    mkdirSync(join(secretsDir, 'npm'));
    writeFileSync(join(secretsDir, 'npm', 'token'), secrets.file);
    aws = await startAwsSecretsPeer({ 'ci/deploy': JSON.stringify({ user: 'ci', token: secrets.aws }) });
    vault = await startVaultPeer(secrets.vaultToken, { 'secret/ci/github': { ssh_key: `-----BEGIN KEY-----\n${secrets.vault}\n-----END KEY-----\n` } });
    running = await startServerForWorkers({ store: test.store, dataDir, natsUrl: TEST_NATS_URL, namespace, ackWait: '30s' });
    token = await running.devIssuer!.sign({ sub: 'alice', roles: ['developer'] });
    worker = spawnWorkerProcess('w1', {
      ...workerEnv({ name: 'w1', natsUrl: TEST_NATS_URL, apiUrl: running.url, dataDir, namespace, ackWait: '30s', concurrency: 2, logLevel: 'debug' }),
      NPM_TOKEN: secrets.env,
      FORGE_SECRETS_DIR: secretsDir,
      FORGE_AWS_SECRETS_ENDPOINT: aws.url, FORGE_AWS_SECRETS_REGION: 'eu-central-1', AWS_ACCESS_KEY_ID: 'AKIATESTPEER', AWS_SECRET_ACCESS_KEY: 'test-peer-secret',
      FORGE_VAULT_ADDR: vault.url, FORGE_VAULT_TOKEN: secrets.vaultToken,
    });
    await worker.ready;
  }, 60_000);

  afterAll(async () => {
    await killAllWorkerProcesses();
    await running?.close();
    await deleteJobStreams(TEST_NATS_URL, namespace).catch(() => undefined);
    await aws?.close();
    await vault?.close();
    await test?.close();
    for (const dir of [dataDir, secretsDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Commits a repository whose project `svc` has one step `s1` with `secrets` and `run`. */
  async function seed(repository: string, stepSecrets: string, run: string): Promise<string> {
    const source = mkdtempSync(join(tmpdir(), 'forge-secrets-source-'));
    try {
      mkdirSync(join(source, 'svc', '.forge'), { recursive: true });
      mkdirSync(join(source, '.forge'));
      writeFileSync(join(source, '.forge', 'repo.cue'), 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: test: group: 1\n');
      writeFileSync(join(source, 'svc', '.forge', 'project.cue'), `name: "svc"\nphases: test: steps: [{name: "s1", action: "script", run: ${JSON.stringify(run)}, secrets: ${stepSecrets}}]\n`);
      return (await seedRepository({ bareDir: join(dataDir, 'git', `${repository}.git`), sourceDir: source, message: 'secrets' })).commitSha;
    } finally {
      rmSync(source, { recursive: true, force: true });
    }
  }

  const api = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${running.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });
    const text = await res.text();
    answers += `${text}\n`;
    return { status: res.status, text };
  };

  async function runToEnd(repository: string, sha: string): Promise<RunTree> {
    const created = await api('/v1/runs', { method: 'POST', body: JSON.stringify({ repository, branch: 'main', commit_sha: sha, trigger_type: 'push' }) });
    expect(created.status, created.text).toBe(201);
    const id = (JSON.parse(created.text) as { id: string }).id;
    const deadline = Date.now() + 40_000;
    for (;;) {
      const tree = await getRunTree(running.ctx, id);
      if (['success', 'failed', 'cancelled'].includes(tree.status)) {
        await api(`/v1/runs/${id}`);
        return tree;
      }
      if (Date.now() > deadline) throw new Error(`run ${id} did not finish:\n${worker.output()}`);
      await sleep(100);
    }
  }

  const stepLog = async (stepId: string) => (JSON.parse((await api(`/v1/steps/${stepId}/logs`)).text) as { text: string; complete: boolean }).text;

  const ALL = `[
    {provider: "env", name: "NPM_TOKEN", env: "NODE_AUTH_TOKEN"},
    {provider: "file", path: "npm/token", env: "FILE_TOKEN"},
    {provider: "aws", name: "ci/deploy", key: "token", env: "DEPLOY_TOKEN"},
    {provider: "vault", path: "ci/github", key: "ssh_key", file: "ssh/id"},
    {provider: "aws", name: "ci/absent", env: "ABSENT", optional: true},
  ]`;
  // The deploy token is printed in two writes ~0.8 s apart: two output chunks, a log flush (500 ms) between.
  const PRINT = [
    'echo "npm=$NODE_AUTH_TOKEN"', 'echo "file=$FILE_TOKEN"', 'echo "b64=$(printf %s "$NODE_AUTH_TOKEN" | base64 -w0)"',
    'printf "split=%s" "$(printf %s "$DEPLOY_TOKEN" | cut -c1-15)"', 'sleep 0.8', 'printf "%s\\n" "$(printf %s "$DEPLOY_TOKEN" | cut -c16-)"',
    'echo "key:"; cat "$FORGE_SECRET_FILES/ssh/id"', 'ls -l "$FORGE_SECRET_FILES/ssh" | tail -1 | cut -c1-10', 'echo "absent=${ABSENT:-unset}"',
    'test "$DEPLOY_TOKEN" = "$EXPECTED_DEPLOY" && echo deploy-token-ok',
  ].join('; ');

  let okTree: RunTree;
  let okLog = '';
  let missingTree: RunTree;
  let missingLog = '';

  it('1. a step gets its secrets as variables and files; its log shows *** for each, split ones too', async () => {
    // The step compares its variable with the expected value (given as a hash-free split, so the log check is the masking's).
    const sha = await seed('acme/secrets-ok', ALL, PRINT.replace('$EXPECTED_DEPLOY', `${secrets.aws.slice(0, 10)}""${secrets.aws.slice(10)}`));
    okTree = await runToEnd('acme/secrets-ok', sha);
    const step = okTree.phases[0]!.tasks[0]!.steps[0]!;
    okLog = await stepLog(step.id);
    expect(okTree.status, `${okLog}\n${worker.output()}`).toBe('success');
    expect(okLog).toContain('npm=***\n');
    expect(okLog).toContain('file=***\n');
    expect(okLog).toContain('b64=***\n');
    expect(okLog).toContain('split=***\n');
    expect(okLog).toContain('key:\n***'); // the whole key, its BEGIN/END lines and last newline included
    expect(okLog).toContain('-rw-------');
    expect(okLog).toContain('absent=unset');
    expect(okLog).toContain('deploy-token-ok');
    expect(aws.asked).toEqual(['ci/deploy', 'ci/absent']);
    expect(vault.asked).toEqual(['secret/ci/github']);
    // The files dir is gone with the step.
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith('forge-secrets-')).filter((name) => {
      try {
        return readdirSync(join(tmpdir(), name)).includes('ssh');
      } catch {
        return false;
      }
    })).toEqual([]);
  }, 60_000);

  it('2. a missing secret fails the step before it runs, naming the reference', async () => {
    const sha = await seed('acme/secrets-missing', '[{provider: "aws", name: "ci/missing", key: "token", env: "T"}, {provider: "env", name: "NPM_TOKEN", env: "N"}]', 'echo should-not-run');
    missingTree = await runToEnd('acme/secrets-missing', sha);
    const step = missingTree.phases[0]!.tasks[0]!.steps[0]!;
    missingLog = await stepLog(step.id);
    expect(missingTree.status).toBe('failed');
    expect(step.status).toBe('failed');
    expect(missingLog).toMatch(/^--- step failed: secret aws:ci\/missing#token does not exist in AWS Secrets Manager/);
    expect(missingLog).not.toContain('should-not-run');
    const task = missingTree.phases[0]!.tasks[0]!;
    expect(task.error).toMatch(/secret aws:ci\/missing#token does not exist/);
  }, 60_000);

  it('no canary in the database (events included), the objects, the API\'s answers or the worker\'s output', async () => {
    expect(okTree?.status).toBe('success');
    expect(missingTree?.status).toBe('failed');
    const forms = Object.values(secrets).flatMap((s) => [s, Buffer.from(s).toString('base64')]);
    const leaks = (text: string) => forms.filter((form) => text.includes(form));
    const dump = await dumpRows(test.db);
    expect(dump).toContain('pipeline.run.completed');
    expect(dump).toContain('ci/deploy'); // references are there (the discovery output): values are not
    expect(leaks(dump)).toEqual([]);
    const files = filesUnder(dataDir).filter((f) => !f.path.includes(`${join(dataDir, 'git')}/`) && !f.path.includes('cache-w1'));
    expect(files.some((f) => f.text.includes('npm=***'))).toBe(true);
    expect(files.filter((f) => leaks(f.text).length > 0).map((f) => f.path)).toEqual([]);
    expect(answers).toContain('npm=***');
    expect(leaks(answers)).toEqual([]);
    expect(worker.output()).toMatch(/forge worker/);
    expect(leaks(worker.output())).toEqual([]);
  });
});

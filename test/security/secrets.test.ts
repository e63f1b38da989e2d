/**
 * Secrets never appear in logs, events or the database. A real `forge server` process (node
 * bin/forge.mjs server, debug logging, PostgreSQL) is given canary values for every secret setting
 * it takes; it then serves requests that carry secrets (bearer tokens, a signed webhook, an Actions
 * token) and runs a pipeline whose clone needs the git token, whose workers report with the worker
 * token and whose GitHub notifier fails with the GitHub token. Afterwards no canary (nor its Base64
 * form) is in the process's output, in what GET /v1/events streamed, in any row of the database, in
 * /metrics, or in any file of the data dir. Settings refused at start-up do not echo a secret either.
 * The step also takes secrets from every provider (env, file, aws through a Secrets Manager peer,
 * vault through a KV v2 peer) and prints them: its log holds *** instead, and those canaries (and
 * the Vault token) are nowhere either.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http.ts';
import { startAwsSecretsPeer, startVaultPeer, type SecretPeer } from '../helpers/secret-peers.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { dumpRows } from './support.ts';

const FORGE_BIN = fileURLToPath(new URL('../../bin/forge.mjs', import.meta.url));
const canary = (what: string) => `canary-${what}-${randomUUID()}`;

/** Every file under `dir`, as bytes read as latin1 (binary files included). */
function filesUnder(dir: string): { path: string; text: string }[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => {
      const path = join(entry.parentPath, entry.name);
      return { path, text: readFileSync(path).toString('latin1') };
    });
}

/** The forms a secret could leak in: as is, and Base64 (alone, and as a Basic credential). */
function forms(secret: string, user?: string): string[] {
  return [secret, Buffer.from(secret).toString('base64'), ...(user ? [Buffer.from(`${user}:${secret}`).toString('base64')] : [])];
}

describe('secrets in a running forge server', () => {
  let test: TestStore;
  let dataDir: string;
  let gitRoot: string;
  let gitHttp: GitHttpServer;
  let github: Server;
  let githubSawToken = false;
  let aws: SecretPeer;
  let vault: SecretPeer;
  let secretsDir: string;
  let child: ChildProcess;
  let output = '';
  let url = '';
  const secrets = {
    webhook: canary('webhook-secret'),
    registry: canary('registry-password'),
    git: canary('git-token'),
    github: canary('github-token'),
    clientSecret: canary('client-secret'),
    database: canary('database-password'),
    bearer: canary('bearer'),
    // Secrets of the secret providers, and the step secrets they hold.
    vaultToken: canary('vault-token'),
    stepEnv: canary('step-env'),
    stepFile: canary('step-file'),
    stepAws: canary('step-aws'),
    stepVault: canary('step-vault'),
  };
  let workerToken = '';
  let userToken = '';

  beforeAll(async () => {
    if (postgresAdapter.unavailable) return;
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-security-secrets-'));
    gitRoot = mkdtempSync(join(tmpdir(), 'forge-security-git-'));
    // A repository served over smart HTTP with Basic auth: the clone needs FORGE_GIT_TOKEN.
    const source = join(gitRoot, 'source');
    mkdirSync(join(source, '.forge'), { recursive: true });
    mkdirSync(join(source, 'svc', '.forge'), { recursive: true });
    writeFileSync(join(source, '.forge', 'repo.cue'), 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: {\n\tcheck: { group: 1 }\n}\n');
    // The step prints its whole environment into its log: nothing of the server's may be in it, and
    // its secrets (from every provider) only as ***.
    writeFileSync(join(source, 'svc', '.forge', 'project.yaml'), [
      'name: svc', 'phases:', '  check:', '    steps:', '      - name: env', '        action: script', '        run: env; cat "$FORGE_SECRET_FILES/key"',
      '        secrets:',
      '          - {provider: env, name: NPM_TOKEN, env: NODE_AUTH_TOKEN}',
      '          - {provider: file, path: npm/token, env: FILE_TOKEN}',
      '          - {provider: aws, name: ci/deploy, key: token, env: DEPLOY_TOKEN}',
      '          - {provider: vault, path: ci/github, key: ssh_key, file: key}', '',
    ].join('\n'));
    secretsDir = mkdtempSync(join(tmpdir(), 'forge-security-secrets-dir-'));
    mkdirSync(join(secretsDir, 'npm'));
    writeFileSync(join(secretsDir, 'npm', 'token'), secrets.stepFile);
    aws = await startAwsSecretsPeer({ 'ci/deploy': JSON.stringify({ token: secrets.stepAws }) });
    vault = await startVaultPeer(secrets.vaultToken, { 'secret/ci/github': { ssh_key: secrets.stepVault } });
    const { commitSha } = await seedRepository({ bareDir: join(gitRoot, 'repos', 'acme', 'shop.git'), sourceDir: source });
    gitHttp = await startGitHttpServer(join(gitRoot, 'repos'), { user: 'x-access-token', password: secrets.git });
    // A GitHub API that refuses the token: the notifier's failures carry GitHub's answer and the request.
    github = createServer((req, res) => {
      githubSawToken ||= (req.headers.authorization ?? '').includes(secrets.github);
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' }));
    });
    await new Promise<void>((resolve) => github.listen(0, '127.0.0.1', resolve));
    // The dev issuer's key exists before the server starts, so the worker token can be one of its tokens.
    const issuer = await openDevIssuer(dataDir);
    workerToken = await issuer.sign({ sub: 'forge-worker', roles: ['service-account'], ttlSeconds: 3600 });
    userToken = await issuer.sign({ sub: 'alice', roles: ['operator'], ttlSeconds: 3600 });
    const database = new URL(test.url!);
    database.password = secrets.database;

    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LANG: 'C.UTF-8',
      FORGE_DATA_DIR: dataDir, FORGE_PORT: '0', FORGE_LOG_LEVEL: 'debug', DATABASE_URL: database.toString(),
      FORGE_GIT_URL_TEMPLATE: `${gitHttp.origin}/{repository}.git`, FORGE_GIT_TOKEN: secrets.git,
      FORGE_WORKER_TOKEN: workerToken,
      FORGE_OIDC_TOKEN_URL: 'http://127.0.0.1:1/token', FORGE_WORKER_CLIENT_ID: 'forge-worker', FORGE_WORKER_CLIENT_SECRET: secrets.clientSecret,
      FORGE_REGISTRY_USERNAME: 'forge', FORGE_REGISTRY_PASSWORD: secrets.registry,
      FORGE_GITHUB_WEBHOOK_SECRET: secrets.webhook, FORGE_GITHUB_TOKEN: secrets.github,
      FORGE_GITHUB_API_URL: `http://127.0.0.1:${(github.address() as AddressInfo).port}`,
      FORGE_GITHUB_REPOSITORIES: 'acme/shop', FORGE_RATE_LIMITS: 'off',
      NPM_TOKEN: secrets.stepEnv, FORGE_SECRETS_DIR: secretsDir,
      FORGE_AWS_SECRETS_ENDPOINT: aws.url, FORGE_AWS_SECRETS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIATESTPEER', AWS_SECRET_ACCESS_KEY: 'test-peer-secret',
      FORGE_VAULT_ADDR: vault.url, FORGE_VAULT_TOKEN: secrets.vaultToken,
    };
    child = spawn(process.execPath, [FORGE_BIN, 'server'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    const started = Date.now();
    while (!/is serving (http:\/\/\S+)/.test(output)) {
      if (child.exitCode !== null || Date.now() - started > 60_000) throw new Error(`forge server did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    url = /is serving (http:\/\/\S+)/.exec(output)![1]!;

    // Everything the event stream says from now on.
    const events = new AbortController();
    let streamed = '';
    const stream = await fetch(`${url}/v1/events`, { headers: { authorization: `Bearer ${userToken}` }, signal: events.signal });
    const reading = (async () => {
      const reader = stream.body!.getReader();
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        streamed += new TextDecoder().decode(value);
      }
    })();

    const api = (path: string, init: RequestInit = {}, token = userToken) => fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });
    // Secrets in requests: a bogus bearer token, a webhook signed with the wrong secret, then a good one.
    expect((await api('/v1/runs', {}, secrets.bearer)).status).toBe(401);
    expect((await api('/v1/runs', { headers: { authorization: `Basic ${Buffer.from(`admin:${secrets.bearer}`).toString('base64')}` } })).status).toBe(401);
    const push = JSON.stringify({ ref: 'refs/heads/main', after: commitSha, repository: { full_name: 'acme/shop' }, sender: { login: 'octocat' } });
    const sign = (secret: string) => `sha256=${createHmac('sha256', secret).update(push).digest('hex')}`;
    const webhook = (signature: string) => fetch(`${url}/v1/webhooks/github`, {
      method: 'POST', body: push,
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': signature, authorization: `Bearer ${secrets.bearer}` },
    });
    expect((await webhook(sign(`${secrets.webhook}-wrong`))).status).toBe(401);
    const created = await webhook(sign(secrets.webhook));
    expect(created.status).toBe(201);
    const runId = ((await created.json()) as { run_id: string }).run_id;
    expect((await api('/v1/auth/github', { method: 'POST', body: JSON.stringify({ token: secrets.bearer }) })).status).toBeLessThan(500);
    // The pipeline: clone with the git token, steps reported with the worker token.
    let status = '';
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      status = ((await (await api(`/v1/runs/${runId}`)).json()) as { status: string }).status;
      if (status === 'success' || status === 'failed' || status === 'cancelled') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status, output.slice(-3000)).toBe('success');
    metrics = await (await fetch(`${url}/metrics`)).text();
    // The notifier's calls to the (closed) GitHub API have failed and been logged by now.
    await new Promise((r) => setTimeout(r, 500));
    events.abort();
    await reading;
    eventsText = streamed;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }, 120_000);
  let metrics = '';
  let eventsText = '';

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await gitHttp?.stop();
    await new Promise((resolve) => (github ? github.close(resolve) : resolve(undefined)));
    await aws?.close();
    await vault?.close();
    if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (gitRoot) rmSync(gitRoot, { recursive: true, force: true });
  });

  const leaks = (text: string) => Object.entries(secrets).flatMap(([name, secret]) => forms(secret, name === 'git' ? 'x-access-token' : undefined)
    .filter((form) => text.includes(form)).map(() => name))
    .concat(text.includes(workerToken) ? ['worker token'] : [])
    .concat(text.includes(workerToken.split('.')[2]!) ? ['worker token signature'] : []);

  it('keeps every secret out of the server\'s log output, at debug level', ({ skip }) => {
    if (postgresAdapter.unavailable) skip(postgresAdapter.unavailable);
    expect(output).toMatch(/"msg":"request"/); // the log was captured, requests included
    expect(githubSawToken).toBe(true); // the notifier sent the GitHub token…
    expect(output).toMatch(/"level":40.*GitHub/); // …and its refusals were logged
    expect(leaks(output)).toEqual([]);
  });

  it('keeps every secret out of the events streamed and the outbox', async ({ skip }) => {
    if (postgresAdapter.unavailable) skip(postgresAdapter.unavailable);
    expect(eventsText).toContain('pipeline.run.completed');
    expect(leaks(eventsText)).toEqual([]);
  });

  it('keeps every secret out of every row of the database, /metrics and every file of the data dir (step logs included)', async ({ skip }) => {
    if (postgresAdapter.unavailable) skip(postgresAdapter.unavailable);
    const dump = await dumpRows(test.db);
    expect(dump).toContain('event_outbox');
    expect(dump).toContain('octocat');
    expect(leaks(dump)).toEqual([]);
    expect(leaks(metrics)).toEqual([]);
    const files = filesUnder(dataDir);
    // The step ran `env`: its log is there, and holds nothing of the server's environment.
    expect(files.some((f) => f.text.includes('FORGE_RUN_ID='))).toBe(true);
    // …and its secrets, resolved from every provider, as ***.
    const stepLog = files.find((f) => f.text.includes('FORGE_RUN_ID='))!.text;
    for (const variable of ['NODE_AUTH_TOKEN=***', 'FILE_TOKEN=***', 'DEPLOY_TOKEN=***']) expect(stepLog).toContain(variable);
    expect(stepLog).toMatch(/FORGE_SECRET_FILES=\S+\n/);
    expect(stepLog.trimEnd().endsWith('***')).toBe(true); // the vault secret, cat from its file
    expect(aws.asked).toEqual(['ci/deploy']);
    expect(vault.asked).toEqual(['secret/ci/github']);
    expect(files.filter((f) => leaks(f.text).length > 0).map((f) => `${f.path}: ${leaks(f.text).join(', ')}`)).toEqual([]);
    expect(files.some((f) => f.text.includes('FORGE_WORKER_TOKEN') || f.text.includes('FORGE_GIT_TOKEN'))).toBe(false);
  });
});

describe('secrets in settings refused at start-up', () => {
  it('names the setting but does not echo a password', () => {
    const secret = canary('url-password');
    const cases: Record<string, string>[] = [
      { DATABASE_URL: `mysql://forge:${secret}@db.example.com/forge` },
      { DATABASE_URL: `postgres://forge:${secret}@db.example.com:notaport/forge` },
      { FORGE_GIT_URL_TEMPLATE: `https://forge:${secret}@git.example.com/{repository}.git` },
      { FORGE_GITOPS_URL: `https://forge:${secret}@git.example.com/gitops.git` },
      { NATS_URL: `http://forge:${secret}@nats.example.com:4222` },
      { FORGE_S3_ENDPOINT: `ftp://key:${secret}@s3.example.com` },
      { FORGE_REGISTRY_PASSWORD: secret },
      { FORGE_VAULT_TOKEN: secret },
      { FORGE_VAULT_ADDR: `https://forge:${secret}@vault.example.com`, FORGE_VAULT_TOKEN: 'x' },
      { FORGE_AWS_SECRETS_ENDPOINT: `https://key:${secret}@secretsmanager.example.com` },
    ];
    for (const extra of cases) {
      const dataDir = mkdtempSync(join(tmpdir(), 'forge-security-settings-'));
      try {
        const result = spawnSync(process.execPath, [FORGE_BIN, 'server'], {
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', FORGE_DATA_DIR: dataDir, FORGE_PORT: '0', ...extra },
          encoding: 'utf8', timeout: 30_000,
        });
        const said = `${result.stdout}${result.stderr}`;
        expect(result.status, `${JSON.stringify(extra)}: ${said}`).not.toBe(0);
        expect(said, JSON.stringify(extra)).toMatch(new RegExp(Object.keys(extra)[0]!));
        expect(said, JSON.stringify(extra)).not.toContain(secret);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  }, 120_000); // ten `forge server` starts, each refused; slow when the machine is busy
});

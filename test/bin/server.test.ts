/**
 * `forge server` as `npm start` runs it, composed by the real composition root (startServer) on
 * embedded defaults: PGlite, the in-process queue, files for logs, in-process discovery and CI
 * workers reporting over HTTP with a dev-issuer service token, repositories served from the data
 * dir. The example monorepo's pipeline runs end to end; a signed GitHub push and pull request
 * become runs whose commit status and PR summary reach a local GitHub peer (behaviours 26, 27).
 */
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { getRunTree } from '../../src/engine/runs.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { startGitHubPeer, type GitHubPeer } from '../helpers/github-peer.ts';
import { finishedRun } from '../helpers/runs.ts';

const SECRET = 'webhook secret of the test';
type Payload = Record<string, unknown>;
const definitions = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('@octokit/webhooks-examples'), 'utf8')) as { name: string; examples: Payload[] }[];
const example = (event: string, filter: (p: Payload) => boolean): Payload =>
  structuredClone(definitions.find((d) => d.name === event)!.examples.find(filter)!);

describe('forge server on embedded defaults (npm start)', () => {
  let running: RunningServer;
  let peer: GitHubPeer;
  let dataDir: string;
  let token = '';

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'forge-server-'));
    peer = await startGitHubPeer();
    const settings = parseServerSettings({ example: true }, {
      FORGE_DATA_DIR: dataDir, FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent',
      FORGE_GITHUB_WEBHOOK_SECRET: SECRET, FORGE_GITHUB_TOKEN: 'ghs_test', FORGE_GITHUB_API_URL: peer.url,
    });
    running = await startServer(settings);
    token = await running.devIssuer!.sign({ sub: 'alice', roles: ['developer'] });
  }, 60_000);

  afterAll(async () => {
    await running?.close();
    await peer?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const finished = (id: string) => finishedRun(running.ctx, id);
  const api = async (path: string, init: RequestInit = {}) => fetch(`${running.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });

  it('runs the example monorepo pipeline to success, with every step log readable over the API', async () => {
    const { id } = running.exampleRun!;
    const tree = await finished(id);
    expect(tree.error_message).toBeNull();
    expect(tree).toMatchObject({ status: 'success', repository: 'forge-examples/monorepo', branch: 'main' });
    expect(tree.phases.map((p) => [p.phase_name, p.status])).toEqual([['check', 'success'], ['test', 'success'], ['build', 'success']]);
    // The gitignored scratch project is not discovered.
    const projects = new Set(tree.phases.flatMap((p) => p.tasks.map((t) => t.project_name)));
    expect([...projects].sort()).toEqual(['api', 'greeting', 'site', 'worker']);
    const unit = tree.phases[1]!.tasks.find((t) => t.project_name === 'greeting')!.steps[0]!;
    const res = await api(`/v1/steps/${unit.id}/logs`);
    expect(res.status).toBe(200);
    const log = (await res.json()) as { text: string; complete: boolean };
    expect(log.complete).toBe(true);
    expect(log.text).toMatch(/# pass [1-9]/);
    // The release phase: api releases on a push to main, into the embedded OCI store, signed.
    const release = (await (await api(`/v1/releases/forge-examples/monorepo/api/1`)).json()) as { commit_sha: string; oci_uri: string; oci_digest: string; pipeline_run_id: string; artifacts: { artifact_name: string; primary_published_uri: string }[] };
    expect(release).toMatchObject({ commit_sha: tree.commit_sha, pipeline_run_id: id, oci_uri: `forge.local/releases/forge-examples/monorepo/api:${tree.commit_sha}` });
    expect(release.artifacts.map((a) => a.artifact_name)).toEqual(['server']);
    expect(release.artifacts[0]!.primary_published_uri).toMatch(new RegExp(`^forge\\.local/acme/api:${tree.commit_sha}@sha256:[0-9a-f]{64}$`));
    const verify = spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'forge.mjs'), 'verify', release.oci_uri, '--json'], { env: { ...process.env, FORGE_DATA_DIR: dataDir }, encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    expect(JSON.parse(verify.stdout)).toMatchObject({ verified: true, digest: release.oci_digest });
  });

  it('turns a signed GitHub push and pull request into runs; commit statuses and one PR summary reach GitHub', async () => {
    const source = mkdtempSync(join(tmpdir(), 'forge-hooks-src-'));
    mkdirSync(join(source, '.forge'));
    mkdirSync(join(source, 'app', '.forge'), { recursive: true });
    writeFileSync(join(source, '.forge', 'repo.cue'), 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: test: group: 1\n');
    writeFileSync(join(source, 'app', '.forge', 'project.cue'), 'name: "app"\nphases: test: steps: [{name: "unit", action: "script", run: "echo ok"}]\n');
    const bareDir = join(dataDir, 'git', 'acme', 'hooks.git');
    const { commitSha: pushSha } = await seedRepository({ bareDir, sourceDir: source });
    writeFileSync(join(source, 'app', 'README.md'), 'a change in the pull request\n');
    const { commitSha: prSha } = await seedRepository({ bareDir, sourceDir: source, branch: 'feature' });
    rmSync(source, { recursive: true, force: true });

    const deliver = async (event: string, payload: Payload) => {
      const body = JSON.stringify(payload);
      return fetch(`${running.url}/v1/webhooks/github`, {
        method: 'POST', body,
        headers: {
          'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': crypto.randomUUID(),
          'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
        },
      });
    };
    const push = example('push', (p) => p.ref === 'refs/heads/master');
    Object.assign(push, { ref: 'refs/heads/main', after: pushSha, repository: { ...(push.repository as object), full_name: 'acme/hooks' } });
    const pushed = await deliver('push', push);
    expect(pushed.status).toBe(201);
    const pushRun = await finished(((await pushed.json()) as { run_id: string }).run_id);
    expect(pushRun.status).toBe('success');

    const pr = example('pull_request', (p) => p.action === 'opened');
    const pull = pr.pull_request as { number: number; head: { ref: string; sha: string; repo: { full_name: string } } };
    Object.assign(pull.head, { ref: 'feature', sha: prSha });
    pull.head.repo.full_name = 'acme/hooks';
    Object.assign(pr, { number: 7, repository: { ...(pr.repository as object), full_name: 'acme/hooks' } });
    pull.number = 7;
    const opened = await deliver('pull_request', pr);
    expect(opened.status).toBe(201);
    const prRun = await finished(((await opened.json()) as { run_id: string }).run_id);
    expect(prRun).toMatchObject({ status: 'success', github_context: { pr_number: 7 } });

    // The notifier hears of completion from the event relay: wait for the last status and the comment.
    const statusesOf = (commit: string) => peer.requests.filter((r) => r.path === `/repos/acme/hooks/statuses/${commit}`);
    for (let i = 0; i < 100 && (statusesOf(pushSha).at(-1)?.body.state !== 'success' || statusesOf(prSha).at(-1)?.body.state !== 'success'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const commit of [pushSha, prSha]) {
      const states = statusesOf(commit).map((r) => r.body.state);
      expect(states[0]).toBe('pending');
      expect(states.at(-1)).toBe('success');
      expect(statusesOf(commit).every((r) => r.body.context === 'ci/catalyst-forge' && r.authorization === 'token ghs_test')).toBe(true);
    }
    await new Promise((r) => setTimeout(r, 500));
    const comments = peer.requests.filter((r) => r.path === '/repos/acme/hooks/issues/7/comments');
    expect(comments).toHaveLength(1);
    expect(String(comments[0]!.body.body)).toContain(`<!-- forge:run:${prRun.id} -->`);
    // The push run has no pull request: no comment anywhere else.
    expect(peer.requests.filter((r) => r.path.includes('/comments'))).toHaveLength(1);
  });

  it('POST /v1/runs over HTTP for a commit the repository lacks: discovery fails the run with git\'s reason', async () => {
    const res = await api('/v1/runs', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ repository: 'acme/hooks', branch: 'main', commit_sha: (await getRunTree(running.ctx, running.exampleRun!.id)).commit_sha, trigger_type: 'manual' }),
    });
    // That commit belongs to another repository: discovery cannot fetch it here, and says so.
    expect(res.status).toBe(201);
    const tree = await finished(((await res.json()) as { id: string }).id);
    expect(tree.status).toBe('failed');
    expect(tree).toMatchObject({ error_code: 'discovery_failed', error_message: expect.stringMatching(/acme\/hooks/) });
  });
});

/**
 * Commit statuses and the PR summary comment (behaviours 26-27): the notifier over the real
 * Octokit adapter, talking to a local HTTP peer that stands in for GitHub, against every store.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { envelope, type GithubContext } from '../../src/domain/entities.ts';
import { RUN_STATUSES } from '../../src/domain/statuses.ts';
import {
  createGitHubNotifier, formatElapsed, githubState, notifyPhaseProgress, progressDescription, type GitHubNotifierOptions,
} from '../../src/engine/github.ts';
import { cancelRun, createRun, getRunTree, recordDiscovery, reportTaskStatus, type DiscoveryPlan } from '../../src/engine/runs.ts';
import { createGitHubClient } from '../../src/gitops/github.client.ts';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { apiSuite, sha, type TestApp } from '../helpers/app.ts';
import { startGitHubPeer, type GitHubPeer } from '../helpers/github-peer.ts';

const PUBLIC_URL = 'https://forge.test/';
const plan: DiscoveryPlan = {
  projects: [{ name: 'api', path: 'services/api', phases: { check: [{ name: 'lint', action: 'script', run: 'true' }], test: [{ name: 'unit', action: 'script', run: 'true' }] } }],
  phaseGroups: [{ group: 1, phases: ['check'] }, { group: 2, phases: ['test'] }],
};

describe('commit state and descriptions', () => {
  it('maps every run status, and anything unknown to error (digest §2.7)', () => {
    const mapped = Object.fromEntries(RUN_STATUSES.map((status) => [status, githubState(status)]));
    expect(mapped).toEqual({ pending: 'pending', running: 'pending', success: 'success', failed: 'failure', cancelled: 'error' });
    expect(githubState('exploded')).toBe('error');
  });

  it('words durations and progress as GitHub shows them', () => {
    expect([formatElapsed(0), formatElapsed(125), formatElapsed(3725.4)]).toEqual(['0m0s', '2m5s', '1h2m5s']);
    expect(progressDescription([])).toBe('Pipeline started - discovering projects...');
    const phases = [{ group_number: 1, status: 'success' as const }, { group_number: 2, status: 'running' as const }, { group_number: 2, status: 'pending' as const }, { group_number: 3, status: 'pending' as const }];
    expect(progressDescription(phases)).toBe('Running phase 2 of 3 (33% complete)');
  });
});

describe.each(STORE_ADAPTERS)('GitHub notifier on $name', (adapter) => {
  const s = apiSuite(adapter, {});
  let t: TestApp;
  let peer: GitHubPeer;
  const logged: { message: string; error: unknown }[] = [];
  const options: GitHubNotifierOptions = { publicUrl: PUBLIC_URL, log: (message, error) => logged.push({ message, error }) };
  beforeAll(async () => {
    peer = await startGitHubPeer();
  });
  afterAll(() => peer?.close());
  beforeEach(() => {
    if (adapter.unavailable) return;
    t = s.t;
    peer.requests.length = 0;
    peer.answer = 201;
    logged.length = 0;
  });
  const notifier = () => createGitHubNotifier(t.ctx, createGitHubClient({ token: 'ghs_test', baseUrl: peer.url }), options);
  const newRun = async (githubContext?: GithubContext) => (await createRun(t.ctx, {
    repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'pull_request', github_context: githubContext,
  }, { actor: 'ci-bot', mayActForOthers: true })).run;
  const created = (runId: string) => envelope('pipeline.run.created', { run_id: runId, repository: 'acme/shop', commit_sha: '' }, new Date());
  const completed = (runId: string) => envelope('pipeline.run.completed', { run_id: runId, status: 'success', duration_seconds: 0 }, new Date());
  /** Takes the run through both phase groups, 2 minutes and some seconds (the clock runs on); the task of `failAt` fails with `error`. */
  async function finish(runId: string, failAt?: string, error?: string): Promise<void> {
    await recordDiscovery(t.ctx, runId, plan);
    t.clock.advance(125_000);
    for (const phase of (await getRunTree(t.ctx, runId)).phases) {
      const taskId = phase.tasks[0]?.id ?? '';
      await reportTaskStatus(t.ctx, taskId, 'running');
      if (phase.phase_name === failAt) {
        await reportTaskStatus(t.ctx, taskId, 'failed', error);
        return;
      }
      await reportTaskStatus(t.ctx, taskId, 'success');
    }
  }
  const statuses = () => peer.requests.filter((r) => r.path.includes('/statuses/'));
  const comments = () => peer.requests.filter((r) => r.path.includes('/comments'));

  it('sets pending with context ci/catalyst-forge when a run is created', async () => {
    const run = await newRun();
    await notifier().onEvent(created(run.id));
    expect(peer.requests).toEqual([{
      method: 'POST', path: `/repos/acme/shop/statuses/${run.commit_sha}`, authorization: 'token ghs_test',
      body: { state: 'pending', context: 'ci/catalyst-forge', description: 'Pipeline started - discovering projects...', target_url: `https://forge.test/v1/runs/${run.id}` },
    }]);
  });

  it('sets the final state when a run completes: success, failure with the error, error when cancelled', async () => {
    const succeeded = await newRun({ context: 'ci/forge-custom' });
    await finish(succeeded.id);
    const failed = await newRun();
    await finish(failed.id, 'test', 'exit status 2');
    const cancelled = await newRun();
    await cancelRun(t.ctx, cancelled.id, 'alice');
    const n = notifier();
    for (const run of [succeeded, failed, cancelled]) await n.onEvent(completed(run.id));

    expect(statuses().map((r) => r.body)).toEqual([
      expect.objectContaining({ state: 'success', context: 'ci/forge-custom', description: expect.stringMatching(/^Pipeline succeeded in 2m\d+s$/) }),
      expect.objectContaining({ state: 'failure', context: 'ci/catalyst-forge', description: expect.stringMatching(/^Pipeline failed after 2m\d+s: test\/api: exit status 2$/) }),
      expect.objectContaining({ state: 'error', description: expect.stringMatching(/^Pipeline cancelled after \d+m\d+s: cancelled by alice$/) }),
    ]);
    // A late `created` event describes the run as it is: it never sets a finished run back to pending.
    await n.onEvent(created(succeeded.id));
    expect(statuses().at(-1)?.body).toMatchObject({ state: 'success' });
    expect(comments()).toHaveLength(0);
  });

  it('posts exactly one PR summary, however often and to however many notifiers the completion is delivered', async () => {
    const run = await newRun({ pr_number: 7 });
    await finish(run.id, 'test', 'exit status 2');
    const [first, second] = [notifier(), notifier()];
    await Promise.all([first.onEvent(completed(run.id)), second.onEvent(completed(run.id)), first.onEvent(completed(run.id))]);
    await second.onEvent(completed(run.id));

    expect(comments()).toHaveLength(1);
    const comment = comments()[0];
    expect(comment?.path).toBe('/repos/acme/shop/issues/7/comments');
    const body = String(comment?.body.body);
    expect(body).toContain(`<!-- forge:run:${run.id} -->`);
    expect(body).toContain('Forge pipeline failed');
    expect(body).toMatch(/\*\*Duration\*\* 2m\d+s/);
    expect(body).toContain('| 1 | check | ✅ success | ✅ api |');
    expect(body).toContain('| 2 | test | ❌ failed | ❌ api (exit status 2) |');
    expect(statuses().every((r) => r.body.state === 'failure')).toBe(true);
    expect((await t.ctx.store.getRun(run.id))?.pr_comment_posted_at).toBeInstanceOf(Date);
  });

  it('logs and swallows GitHub failures: nothing thrown, the run untouched', async () => {
    peer.answer = 500;
    const run = await newRun({ pr_number: 9 });
    await finish(run.id);
    const before = await getRunTree(t.ctx, run.id);
    const n = notifier();
    await expect(n.onEvent(created(run.id))).resolves.toBeUndefined();
    await expect(n.onEvent(completed(run.id))).resolves.toBeUndefined();
    await expect(n.onEvent(completed('00000000-0000-4000-8000-000000000000'))).resolves.toBeUndefined();

    expect(statuses()).toHaveLength(2);
    expect(comments()).toHaveLength(1);
    expect(logged.map((l) => l.error)).toEqual([
      expect.objectContaining({ status: 500, githubMessage: '500 from the test peer' }),
      expect.objectContaining({ status: 500 }),
      expect.objectContaining({ status: 500 }),
      expect.objectContaining({ code: 'not_found' }),
    ]);
    const { pr_comment_posted_at: _claimed, ...after } = await getRunTree(t.ctx, run.id);
    const { pr_comment_posted_at: _unclaimed, ...untouched } = before;
    expect(after).toEqual(untouched);
    expect(after.status).toBe('success');
  });

  it('reports phase progress for a running run and leaves a finished run alone', async () => {
    const run = await newRun();
    await recordDiscovery(t.ctx, run.id, plan);
    const [check] = (await getRunTree(t.ctx, run.id)).phases;
    await reportTaskStatus(t.ctx, check?.tasks[0]?.id ?? '', 'running');
    await reportTaskStatus(t.ctx, check?.tasks[0]?.id ?? '', 'success');
    const github = createGitHubClient({ token: 't', baseUrl: peer.url });
    const running = await getRunTree(t.ctx, run.id);
    await notifyPhaseProgress(github, running, running.phases, options);
    expect(statuses().map((r) => r.body)).toEqual([expect.objectContaining({ state: 'pending', description: 'Running phase 2 of 2 (50% complete)' })]);

    await cancelRun(t.ctx, run.id, 'alice');
    const finished = await getRunTree(t.ctx, run.id);
    await notifyPhaseProgress(github, finished, finished.phases, options);
    expect(statuses()).toHaveLength(1);
  });

  it('follows runs through the event bus as the server wires it', async () => {
    const n = notifier();
    const unsubscribe = t.bus.subscribe((event) => void n.onEvent(event));
    try {
      const run = await newRun();
      await vi.waitFor(() => expect(statuses().map((r) => r.path)).toContain(`/repos/acme/shop/statuses/${run.commit_sha}`), { timeout: 5000 });
    } finally {
      unsubscribe();
    }
  });
});

/** The Octokit adapter of the GitHub port, against a local HTTP peer standing in for GitHub. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitHubClient, GitHubApiError, truncateDescription } from '../../src/gitops/github.client.ts';
import { startGitHubPeer, type GitHubPeer } from '../helpers/github-peer.ts';

const SHA = 'a'.repeat(40);
let peer: GitHubPeer;
beforeAll(async () => {
  peer = await startGitHubPeer();
});
afterAll(() => peer.close());
beforeEach(() => {
  peer.requests.length = 0;
  peer.answer = 201;
});

describe('GitHub client', () => {
  it('posts a commit status with the token, cutting the description to 140 characters', async () => {
    const github = createGitHubClient({ token: 'ghs_test', baseUrl: `${peer.url}/` });
    const long = `Pipeline failed after 1m2s: ${'é'.repeat(200)}`;
    await github.setCommitStatus({ repository: 'acme/shop', sha: SHA, state: 'failure', context: 'ci/catalyst-forge', description: long, targetUrl: 'http://forge.test/v1/runs/1' });
    expect(peer.requests).toHaveLength(1);
    const [request] = peer.requests;
    expect(request).toMatchObject({ method: 'POST', path: `/repos/acme/shop/statuses/${SHA}`, authorization: 'token ghs_test' });
    expect(request?.body).toMatchObject({ state: 'failure', context: 'ci/catalyst-forge', target_url: 'http://forge.test/v1/runs/1' });
    const description = String(request?.body.description);
    expect([...description]).toHaveLength(140);
    expect(description.endsWith('…')).toBe(true);
    expect(truncateDescription('short')).toBe('short');
  });

  it('posts a PR comment as an issue comment', async () => {
    const github = createGitHubClient({ token: 't', baseUrl: peer.url });
    await github.createPrComment({ repository: 'acme/shop', prNumber: 7, body: 'hello' });
    expect(peer.requests[0]).toMatchObject({ method: 'POST', path: '/repos/acme/shop/issues/7/comments', body: { body: 'hello' } });
  });

  it('fails with GitHub\'s status and message, or with no status when nobody answers', async () => {
    peer.answer = 422;
    const github = createGitHubClient({ token: 't', baseUrl: peer.url });
    const error = await github.createPrComment({ repository: 'acme/shop', prNumber: 7, body: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitHubApiError);
    expect(error).toMatchObject({ status: 422, githubMessage: '422 from the test peer' });
    expect((error as Error).message).toContain('422 from the test peer');

    const nobody = createGitHubClient({ token: 't', baseUrl: 'http://127.0.0.1:1', timeoutMs: 2000 });
    const refused = await nobody.setCommitStatus({ repository: 'acme/shop', sha: SHA, state: 'pending', context: 'c', description: 'd' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GitHubApiError);
    expect(refused).toMatchObject({ status: undefined });
  });

  it('refuses a repository that is not owner/name without calling GitHub', async () => {
    const github = createGitHubClient({ token: 't', baseUrl: peer.url });
    await expect(github.createPrComment({ repository: 'acme', prNumber: 1, body: 'x' })).rejects.toThrow(/owner\/name/);
    expect(peer.requests).toHaveLength(0);
  });
});

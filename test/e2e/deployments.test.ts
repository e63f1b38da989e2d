/**
 * Deployments end to end (issue 6, digest §8 behaviours 42–47), on the real composition root
 * (startServer) with its in-process workers, the real docker-registry for release images and a
 * GitOps remote served over smart HTTP by `git http-backend`:
 *
 *   push of the example monorepo → pipeline → release 1 of api → auto-deploy to dev → production
 *   refused without approvals → approvals by two approvers → production deploy → `forge cmp
 *   generate` in a checkout's production directory prints the rendered manifests.
 *
 * Then: a second release supersedes the first (44), the same release twice leaves one active (45),
 * `forge rollback` is a forward commit (46), a remote that refuses pushes fails the deployment after
 * retries and leaves the release and the active deployment alone (47), and 20 concurrent
 * deployments to one environment land as 20 commits beside another writer's, `git fsck --strict`
 * clean.
 *
 * The policies are this test's (FORGE_ENVIRONMENTS): production takes releases of main with two
 * approvers, so the pipeline's branch release can go there (the seed's default production policy
 * takes tag and manual releases only, with one approver).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { createGitGitOps } from '../../src/gitops/git.gitops.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { seedRepository } from '../../src/worker/git-workspace.ts';
import { aPointer, git } from '../gitops/git-helpers.ts';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http.ts';
import { registryUnavailable, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { eventually, finishedRun, settledDeployment } from '../helpers/runs.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const FORGE = join(ROOT, 'bin', 'forge.mjs');
const REPO = 'forge-examples/monorepo';
const POLICIES = `environments:
  - name: dev
    allowed_triggers: [branch_push, tag, manual]
    allowed_branches: ["*"]
    auto_deploy: true
  - name: staging
    allowed_triggers: [branch_push, tag, manual]
    allowed_branches: [main, "release/*"]
  - name: production
    allowed_triggers: [branch_push, tag, manual]
    allowed_branches: [main]
    requires_approval: true
    approvals_required: 2
`;

interface DeploymentJson {
  id: string;
  deployment_id: string;
  release_id: string;
  release_number: number;
  status: string;
  gitops_commit_sha: string | null;
  error: string | null;
  deployed_by: string;
  rollback: boolean;
}

describe.skipIf(registryUnavailable)('deployments end to end: pipeline → release → dev → approvals → production → forge cmp', () => {
  let dir: string;
  let registry: TestRegistry;
  let http: GitHttpServer;
  let running: RunningServer;
  let gitopsBare: string;
  let gitopsUrl: string;
  /** Pushes the remote refuses (503) before it serves them again. */
  let refusePushes = 0;
  const tokens: Record<'alice' | 'olga' | 'bob' | 'carol' | 'svc', string> = { alice: '', olga: '', bob: '', carol: '', svc: '' };
  const release1 = { id: '', commit: '' };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'forge-e2e-deploy-'));
    registry = await startRegistry();
    gitopsBare = join(dir, 'git', 'platform', 'gitops.git');
    git(dir, 'init', '--quiet', '--bare', '-b', 'main', gitopsBare);
    http = await startGitHttpServer(join(dir, 'git'), {
      intercept: (request) => {
        if (!request.push || refusePushes <= 0) return undefined;
        refusePushes--;
        return 503;
      },
    });
    gitopsUrl = `${http.origin}/platform/gitops.git`;
    writeFileSync(join(dir, 'environments.yaml'), POLICIES);
    const settings = parseServerSettings({ example: true }, {
      FORGE_DATA_DIR: join(dir, 'data'), FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_RATE_LIMITS: 'off',
      FORGE_GITOPS_URL: gitopsUrl, FORGE_ENVIRONMENTS: join(dir, 'environments.yaml'),
      FORGE_RELEASE_REGISTRY: `${registry.host}/releases`, FORGE_TRACKING_REGISTRY: `${registry.host}/tracking`, FORGE_REGISTRY_INSECURE: '1',
    });
    running = await startServer(settings);
    const issuer = running.devIssuer!;
    tokens.alice = await issuer.sign({ sub: 'alice', roles: ['developer'] });
    tokens.olga = await issuer.sign({ sub: 'olga', roles: ['operator'] });
    tokens.bob = await issuer.sign({ sub: 'bob', roles: ['approver'] });
    tokens.carol = await issuer.sign({ sub: 'carol', roles: ['approver'] });
    tokens.svc = await issuer.sign({ sub: 'release-bot', roles: ['service-account'] });
  }, 60_000);

  afterAll(async () => {
    await running?.close();
    await http?.stop();
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, who: keyof typeof tokens, body?: unknown) => {
    const res = await fetch(`${running.url}${path}`, {
      method, headers: { authorization: `Bearer ${tokens[who]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  };
  const deploy = (releaseId: string, environment: string, who: keyof typeof tokens = 'olga') =>
    api('POST', '/v1/deployments', who, { release_id: releaseId, environment });
  const settle = (id: string) => settledDeployment(async () => (await api('GET', `/v1/deployments/${id}`, 'alice')).body as DeploymentJson, 60_000);
  const deployed = async (releaseId: string, environment: string, who: keyof typeof tokens = 'olga') => {
    const res = await deploy(releaseId, environment, who);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ status: 'pending', gitops_commit_sha: null });
    return settle(res.body.id);
  };
  const approve = async (releaseId: string, environment: string, who: 'bob' | 'carol') => {
    const res = await api('POST', '/v1/approvals', who, { release_id: releaseId, environment, justification: `${who}: CAB-7 reviewed` });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { approval_id: string };
  };
  const remote = (...args: string[]) => git(dir, '--git-dir', gitopsBare, ...args);
  const pointerAt = (environment: string) => parseYaml(remote('show', `main:environments/${environment}/${REPO}/api/release.yaml`));
  // Asynchronous: the server and the git remote answer from this very process.
  const forge = async (args: string[], cwd: string, env: Record<string, string> = {}) => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [FORGE, ...args], { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: 60_000 });
      return { status: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { status: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };

  it('pipeline → release → auto-deploy to dev → two approvals → production → forge cmp generate prints the manifests: behaviours 42, 44', async () => {
    const tree = await finishedRun(running.ctx, running.exampleRun!.id, 240_000);
    expect(tree.error_message).toBeNull();
    expect(tree.status).toBe('success');
    const release = (await api('GET', `/v1/releases/${REPO}/api/1`, 'alice')).body;
    expect(release).toMatchObject({ commit_sha: tree.commit_sha, oci_uri: `${registry.host}/releases/${REPO}/api:${tree.commit_sha}` });
    Object.assign(release1, { id: release.id, commit: tree.commit_sha });

    // Auto-deploy: dev's policy deploys the pipeline's release at once, as forge-release.
    const dev = await eventually(async () => api('GET', `/v1/deployments/dev/${REPO}/api`, 'alice'), (r) => r.status === 200, 60_000);
    expect(dev.body).toMatchObject({ release_id: release.id, status: 'active', deployed_by: 'forge-release', gitops_commit_sha: expect.stringMatching(/^[0-9a-f]{40}$/) });
    expect(pointerAt('dev')).toMatchObject({ apiVersion: 'forge.projectcatalyst.io/v1', kind: 'ReleasePointer', spec: { release: tree.commit_sha, releaseNumber: 1, deployedBy: 'forge-release' } });
    expect(remote('rev-parse', 'main')).toBe(dev.body.gitops_commit_sha);
    expect((await api('GET', `/v1/deployments/production/${REPO}/api`, 'alice')).status).toBe(404);

    // 42: production without approvals is refused, naming the requirement; one approver is not enough.
    const none = await deploy(release.id, 'production');
    expect(none.status).toBe(403);
    expect(none.body.error).toMatchObject({ code: 'permission_denied', details: { reason: 'policy_violation', violations: [{ requirement: 'requires_approval', required: 2, actual: 0 }] } });
    await approve(release.id, 'production', 'bob');
    const one = await deploy(release.id, 'production');
    expect(one.status).toBe(403);
    expect(one.body.error.details.violations).toEqual([{ requirement: 'requires_approval', required: 2, actual: 1 }]);
    expect(one.body.error.message).toContain('needs 2 active approvals by distinct approvers');
    expect((await api('POST', '/v1/approvals', 'alice', { release_id: release.id, environment: 'production', justification: 'x' })).status).toBe(403);
    await approve(release.id, 'production', 'carol');

    // 44: the deployment writes the pointer (full SHA), commits and pushes it, records the commit.
    const prod = await deployed(release.id, 'production');
    expect(prod).toMatchObject({ status: 'active', release_number: 1, deployed_by: 'olga', error: null });
    expect(remote('rev-parse', 'main')).toBe(prod.gitops_commit_sha);
    expect(pointerAt('production').spec).toMatchObject({ release: tree.commit_sha, releaseNumber: 1, deployedBy: 'olga', approvedBy: 'bob, carol', aliases: { numeric: '1', branch: 'main-1' } });
    const message = remote('log', '-1', '--format=%B', 'main');
    expect(message.split('\n')[0]).toBe('Deploy api release 1 (main-1) to production');
    expect(message).toContain(`Release: 1 (${tree.commit_sha})`);
    expect(message).toMatch(/Deployed-by: olga\nApproved-by: bob at \S+\nApproved-by: carol at \S+\nDeployment: /);
    const audit = (await api('GET', `/v1/audit?release_id=${release.id}&environment=production`, 'alice')).body;
    expect(audit.entries.map((e: { action: string; actor: string }) => `${e.action} ${e.actor}`).reverse()).toEqual([
      'approval.created bob', 'approval.created carol', 'deployment.requested olga', 'deployment.activated olga',
    ]);

    // Argo CD's view: a checkout of the GitOps repo, the plugin run in the production app directory.
    const checkout = join(dir, 'argocd-checkout');
    await promisify(execFile)('git', ['clone', '--quiet', gitopsUrl, checkout], { env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' } });
    const appDir = join(checkout, 'environments', 'production', REPO, 'api');
    writeFileSync(join(appDir, 'env.yaml'), 'apiVersion: forge.projectcatalyst.io/v1alpha1\nkind: EnvironmentConfig\nmetadata:\n  name: forge-examples-monorepo-api\nspec:\n  overrides: {}\n');
    const registryEnv = { FORGE_RELEASE_REGISTRY: `${registry.host}/releases`, FORGE_REGISTRY_INSECURE: '1' };
    const discover = await forge(['cmp', 'discover'], appDir, registryEnv);
    expect(discover.status, discover.stderr).toBe(0);
    const generate = await forge(['cmp', 'generate'], appDir, registryEnv);
    expect(generate.stderr).toBe('');
    expect(generate.status).toBe(0);
    const docs = parseAllDocuments(generate.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> });
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Deployment/api', 'Service/api', 'EnvironmentConfig/forge-examples-monorepo-api']);
    const image = (docs[0]!.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]!.image;
    expect(image).toBe(release.artifacts[0].primary_published_uri);
    expect(generate.stdout).not.toContain('@artifact');
    // Not a pointer directory: discover fails, generate fails on stderr.
    const elsewhere = await forge(['cmp', 'generate'], checkout, registryEnv);
    expect(elsewhere.status).not.toBe(0);
    expect(elsewhere.stderr).toMatch(/^forge cmp: /);
  }, 300_000);

  it('a second release supersedes the first; the same release twice leaves one active; forge rollback is a forward commit: behaviours 44, 45, 46', async () => {
    expect(release1.id).not.toBe('');
    // A second commit of the example, released by hand (a manual release: production takes those too).
    const source = join(dir, 'example-2');
    cpSync(join(ROOT, 'examples', 'monorepo'), source, { recursive: true });
    writeFileSync(join(source, 'services', 'api', 'VERSION'), '2\n');
    const { commitSha } = await seedRepository({ bareDir: join(dir, 'data', 'git', `${REPO}.git`), sourceDir: source, message: 'api: version 2' });
    const build = await api('POST', '/v1/release-builds', 'alice', { repository: REPO, project: 'api', commit_sha: commitSha, branch: 'main' });
    expect(build.status, JSON.stringify(build.body)).toBe(202);
    const built = await eventually(async () => (await api('GET', `/v1/release-builds/${build.body.id}`, 'alice')).body, (b) => ['success', 'failed', 'cancelled'].includes(b.status), 180_000);
    expect(built.error_message).toBeNull();
    const release2 = (await api('GET', `/v1/releases/${REPO}/api/2`, 'alice')).body;
    expect(release2).toMatchObject({ id: built.release_id, commit_sha: commitSha, release_number: 2 });

    await approve(release2.id, 'production', 'bob');
    await approve(release2.id, 'production', 'carol');
    const first = (await api('GET', `/v1/deployments/production/${REPO}/api`, 'alice')).body as DeploymentJson;
    const second = await deployed(release2.id, 'production');
    expect(second.status).toBe('active');
    expect((await api('GET', `/v1/deployments/${first.id}`, 'alice')).body.status).toBe('superseded');
    expect(pointerAt('production').spec.release).toBe(commitSha);

    // 45: the same release again: a new commit (the audit trail), one active deployment.
    const commitsBefore = Number(remote('rev-list', '--count', 'main'));
    const again = await deployed(release2.id, 'production');
    expect(Number(remote('rev-list', '--count', 'main'))).toBe(commitsBefore + 1);
    const history = (await api('GET', `/v1/deployments/production/${REPO}/api/history`, 'alice')).body as { deployments: DeploymentJson[] };
    expect(history.deployments.filter((d) => d.status === 'active').map((d) => d.id)).toEqual([again.id]);

    // 46: forge rollback deploys the previous release as a new deployment; the history keeps both.
    const rollback = await forge(['rollback', 'production', REPO, 'api'], ROOT, { FORGE_URL: running.url, FORGE_TOKEN: tokens.olga });
    expect(rollback.stderr).toContain('rolling back forge-examples/monorepo/api in production: release 2 → 1');
    expect(rollback.status, rollback.stderr).toBe(0);
    expect(rollback.stdout.split('\n')[0]).toBe(`rolled back release 1 of ${REPO}/api in production`);
    const current = (await api('GET', `/v1/deployments/production/${REPO}/api`, 'alice')).body as DeploymentJson;
    expect(current).toMatchObject({ release_number: 1, rollback: true, status: 'active' });
    expect(pointerAt('production').spec.release).toBe(release1.commit);
    const message = remote('log', '-1', '--format=%B', 'main');
    expect(message.split('\n')[0]).toBe('Rollback api in production to release 1 (main-1)');
    expect(message).toContain(`Previous release: 2 (`);
    expect(message).toContain('Rolled-back-by: olga');
    const all = (await api('GET', `/v1/deployments/production/${REPO}/api/history`, 'alice')).body as { deployments: DeploymentJson[]; total: number };
    expect(all.total).toBe(4);
    expect(all.deployments.map((d) => `${d.release_number}:${d.status}`)).toEqual(['1:active', '2:superseded', '2:superseded', '1:superseded']);
  }, 300_000);

  it('a remote that keeps refusing pushes fails the deployment after retries; the release and the active deployment stay: behaviour 47', async () => {
    const release2 = (await api('GET', `/v1/releases/${REPO}/api/2`, 'alice')).body;
    const active = (await api('GET', `/v1/deployments/dev/${REPO}/api`, 'alice')).body as DeploymentJson;
    const head = remote('rev-parse', 'main');
    const pushesBefore = http.requests.filter((r) => r.push).length;
    refusePushes = 1_000;
    let failed: DeploymentJson;
    try {
      failed = await deployed(release2.id, 'dev', 'alice');
    } finally {
      refusePushes = 0;
    }
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/gitops write to .* failed 3 times/);
    expect(failed.gitops_commit_sha).toBeNull();
    // Retried: three tries per delivery, and the job was delivered again with backoff.
    expect(http.requests.filter((r) => r.push).length - pushesBefore).toBeGreaterThanOrEqual(6);
    expect(remote('rev-parse', 'main')).toBe(head);
    expect((await api('GET', `/v1/deployments/dev/${REPO}/api`, 'alice')).body.id).toBe(active.id);
    expect((await api('GET', `/v1/releases/${REPO}/api/2`, 'alice')).body).toEqual(release2);
    // A remote that refuses once: the retry lands it.
    refusePushes = 1;
    const landed = await deployed(release2.id, 'dev', 'alice');
    expect(landed.status).toBe('active');
    expect(pointerAt('dev').spec.release).toBe(release2.commit_sha);
  }, 120_000);

  it('20 concurrent deployments to one environment land as 20 commits beside another writer, git fsck --strict clean', async () => {
    const projects = Array.from({ length: 20 }, (_, i) => `svc-${String(i + 1).padStart(2, '0')}`);
    const releases = await Promise.all(projects.map(async (project, i) => {
      const commit = (i + 1).toString(16).padStart(40, 'a');
      const res = await api('POST', '/v1/releases', 'svc', {
        repository: REPO, project, commit_sha: commit, artifacts: [], trigger: { type: 'branch_push', branch: 'main' },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return { project, id: res.body.id as string, commit };
    }));
    // Another Forge (its own clone) writes to the same remote meanwhile.
    const rival = await createGitGitOps({ url: gitopsUrl, dataDir: join(dir, 'rival'), authorName: 'Rival Forge' });
    const rivalWrites = Promise.all(Array.from({ length: 10 }, (_, i) =>
      rival.writePointer(aPointer({ environment: 'staging', repository: 'other/repo', project: `r${i}`, releaseNumber: i + 1 }))));
    const requested = await Promise.all(releases.map((r) => deploy(r.id, 'staging')));
    expect(requested.map((r) => r.status)).toEqual(releases.map(() => 201));
    const done = await Promise.all(requested.map((r) => settle(r.body.id)));
    await rivalWrites;
    await rival.close();
    expect(done.map((d) => d.status)).toEqual(releases.map(() => 'active'));
    const log = remote('log', '--format=%H %s%n%b', 'main');
    for (const d of done) {
      // Each deployment is its own commit, exactly once.
      expect(log.split(`Deployment: ${d.id}`).length - 1).toBe(1);
      expect(remote('log', '-1', '--format=%B', d.gitops_commit_sha!)).toContain(`Deployment: ${d.id}`);
    }
    expect(remote('log', '--format=%an', 'main').split('\n').filter((a) => a === 'Rival Forge')).toHaveLength(10);
    for (const r of releases) {
      expect(parseYaml(remote('show', `main:environments/staging/${REPO}/${r.project}/release.yaml`)).spec.release).toBe(r.commit);
    }
    remote('fsck', '--strict', '--no-dangling'); // throws on a non-zero exit
    expect(readFileSync(join(gitopsBare, 'HEAD'), 'utf8').trim()).toBe('ref: refs/heads/main');
  }, 180_000);
});

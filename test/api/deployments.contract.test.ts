/** Deployments and approvals: policies, approvals, supersede, history, pointer commits — every adapter. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import YAML from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { STORE_ADAPTERS } from '../helpers/stores.ts';
import { apiSuite, sha, type TestApp } from '../helpers/app.ts';

describe.each(STORE_ADAPTERS)('deployments and approvals API on $name', (adapter) => {
  const s = apiSuite(adapter, {
    dev: ['alice', ['developer']], svc: ['release-bot', ['service-account']], approver: ['bob', ['approver']],
    approver2: ['carol', ['approver']], operator: ['olga', ['operator']], viewer: ['victor', []],
  }, { approvalTtlMs: 3600_000 });
  const { call } = s;
  let t: TestApp;
  let dev = '', svc = '', approver = '', approver2 = '', operator = '', viewer = '';
  beforeAll(() => {
    if (adapter.unavailable) return;
    t = s.t;
    ({ dev = '', svc = '', approver = '', approver2 = '', operator = '', viewer = '' } = s.tokens);
  });
  /** A release; `trigger: null` sends none (a developer's manual release). */
  const makeRelease = async (trigger: Record<string, unknown> | null = { type: 'branch_push', branch: 'main' }, project = 'api', token = svc) => {
    const commit = sha();
    const res = await call('POST', '/v1/releases', token, { repository: 'acme/shop', project, commit_sha: commit, artifacts: [], ...(trigger ? { trigger } : {}) });
    expect(res.statusCode).toBe(201);
    return { ...res.json<{ id: string; release_number: number }>(), commit };
  };
  const deploy = (release_id: string, environment: string, token = dev, extra: Record<string, unknown> = {}) =>
    call('POST', '/v1/deployments', token, { release_id, environment, ...extra });
  /** Follows a deployment until its job has committed the pointer (active) or failed. */
  const settle = async (id: string) => {
    for (let i = 0; i < 400; i++) {
      const d = (await call('GET', `/v1/deployments/${id}`, viewer)).json();
      if (d.status !== 'pending') return d;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`deployment ${id} stayed pending`);
  };
  /** POST /v1/deployments (201 expected), then the deployment once its job is done. */
  const deployed = async (release_id: string, environment: string, token = dev, extra: Record<string, unknown> = {}) => {
    const res = await deploy(release_id, environment, token, extra);
    expect(res.statusCode, res.body).toBe(201);
    return settle(res.json().id);
  };
  const showPointer = (env: string, project = 'api') =>
    YAML.parse(execFileSync('git', ['--git-dir', join(t.dataDir, 'gitops.git'), 'show', `main:environments/${env}/acme/shop/${project}/release.yaml`], { encoding: 'utf8' }));

  it('deploys to dev: 201 {id, deployment_id, gitops_commit_sha, status: pending}, the job writes the ReleasePointer, shows as current', async () => {
    const r = await makeRelease();
    const res = await deploy(r.id, 'dev');
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({ id: body.deployment_id, deployment_id: expect.any(String), gitops_commit_sha: null, status: 'pending' });
    const done = await settle(body.id);
    expect(done).toMatchObject({ id: body.id, status: 'active', gitops_commit_sha: expect.stringMatching(/^[0-9a-f]{40}$/), attempts: 1, rollback: false, error: null });
    expect(execFileSync('git', ['--git-dir', join(t.dataDir, 'gitops.git'), 'rev-parse', 'main'], { encoding: 'utf8' }).trim()).toBe(done.gitops_commit_sha);
    const pointer = showPointer('dev');
    expect(pointer).toMatchObject({ apiVersion: 'forge.projectcatalyst.io/v1', kind: 'ReleasePointer', spec: { release: r.commit, deployedBy: 'alice' } });
    const current = await call('GET', '/v1/deployments/dev/acme/shop/api', viewer);
    expect(current.statusCode).toBe(200);
    expect(current.json()).toMatchObject({ deployment_id: body.id, release_id: r.id, release_number: 1, environment: 'dev', status: 'active', deployed_by: 'alice' });
    expect((await call('GET', '/v1/deployments/dev/acme%2Fshop/api', viewer)).json().deployment_id).toBe(body.id);
  });

  it('supersedes the previous active deployment; the same release twice leaves one active; history keeps all', async () => {
    const r1 = await makeRelease();
    const r2 = await makeRelease();
    const d1 = await deployed(r1.id, 'dev');
    const d2 = await deployed(r2.id, 'dev');
    const d3 = await deployed(r2.id, 'dev');
    expect(d3.status).toBe('active');
    const history = (await call('GET', '/v1/deployments/dev/acme/shop/api/history', viewer)).json();
    expect(history.total).toBe(3);
    const byId = Object.fromEntries(history.deployments.map((d: { deployment_id: string; status: string }) => [d.deployment_id, d.status]));
    expect(byId).toEqual({ [d1.id]: 'superseded', [d2.id]: 'superseded', [d3.id]: 'active' });
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api/history?limit=1&offset=1', viewer)).json().deployments).toHaveLength(1);
    // Rollback = deploy the older release again: a forward commit, history grows.
    const back = await deployed(r1.id, 'dev');
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api', viewer)).json()).toMatchObject({ deployment_id: back.id, release_number: 1, rollback: true, rollback_from_release_id: r2.id });
    expect(showPointer('dev').spec.release).toBe(r1.commit);
    const message = execFileSync('git', ['--git-dir', join(t.dataDir, 'gitops.git'), 'log', '-1', '--format=%B', 'main'], { encoding: 'utf8' });
    expect(message).toMatch(/^Rollback api in dev to release 1 \(main-1|^Rollback api in dev to release 1 \(/);
    expect(message).toContain('Previous release: 2');
    expect(message).toContain('Rolled-back-by: alice');
    expect(message).toContain(`Deployment: ${back.id}`);
  });

  it('keeps exactly one active deployment under concurrent deploys to one target', async () => {
    const releases = await Promise.all(Array.from({ length: 5 }, () => makeRelease()));
    const results = await Promise.all(releases.map((r) => deploy(r.id, 'dev')));
    expect(results.every((r) => r.statusCode === 201)).toBe(true);
    const done = await Promise.all(results.map((r) => settle(r.json().id)));
    expect(done.every((d) => d.status === 'active' || d.status === 'superseded')).toBe(true);
    const history = (await call('GET', '/v1/deployments/dev/acme/shop/api/history', viewer)).json();
    expect(history.deployments.filter((d: { status: string }) => d.status === 'active')).toHaveLength(1);
    const active = (await call('GET', '/v1/deployments/dev/acme/shop/api', viewer)).json();
    expect(showPointer('dev').spec.release).toBe(active.commit_sha);
    // The active one is the last commit: pointer commits and activations follow one order.
    expect(execFileSync('git', ['--git-dir', join(t.dataDir, 'gitops.git'), 'log', '-1', '--format=%B', 'main'], { encoding: 'utf8' })).toContain(`Deployment: ${active.deployment_id}`);
  });

  it('refuses by policy with required vs actual: staging only from main or release/*, production only tag/manual', async () => {
    const feature = await makeRelease({ type: 'branch_push', branch: 'feature/x' });
    const staging = await deploy(feature.id, 'staging', operator);
    expect(staging.statusCode).toBe(403);
    expect(staging.json().error).toMatchObject({
      code: 'permission_denied',
      details: { reason: 'policy_violation', environment: 'staging', violations: [{ requirement: 'allowed_branches', required: ['main', 'release/*'], actual: 'feature/x' }] },
    });
    const rel = await makeRelease({ type: 'branch_push', branch: 'release/1.2' });
    expect((await deployed(rel.id, 'staging', operator)).status).toBe('active');
    const main = await makeRelease({ type: 'branch_push', branch: 'main' });
    const prod = await deploy(main.id, 'production', operator);
    expect(prod.statusCode).toBe(403);
    expect(prod.json().error.details.violations).toEqual([{ requirement: 'allowed_triggers', required: ['tag', 'manual'], actual: 'branch_push' }]);
    expect(prod.json().error.message).toContain('allowed_triggers');
  });

  it('production needs an active approval by someone other than the release creator', async () => {
    const r = await makeRelease(null, 'api', dev);
    const none = await deploy(r.id, 'production', operator);
    expect(none.statusCode).toBe(403);
    expect(none.json().error.details.violations).toEqual([{ requirement: 'requires_approval', required: 1, actual: 0 }]);
    // alice created it; an approver named alice would be refused, bob is fine.
    const self = await call('POST', '/v1/approvals', await t.token('alice', ['approver']), { release_id: r.id, environment: 'production', justification: 'mine' });
    expect(self.statusCode).toBe(403);
    expect(self.json().error.details.reason).toBe('self_approval');
    expect((await call('POST', '/v1/approvals', dev, { release_id: r.id, environment: 'production', justification: 'x' })).statusCode).toBe(403);
    const approval = await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: 'CAB-42 approved' });
    expect(approval.statusCode).toBe(201);
    const a = approval.json();
    expect(a).toMatchObject({ approval_id: expect.any(String), approver: 'bob', status: 'active', justification: 'CAB-42 approved' });
    expect(new Date(a.expires_at).getTime() - new Date(a.approved_at).getTime()).toBe(3600_000);
    expect((await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: 'again' })).statusCode).toBe(409);
    const status = await call('GET', `/v1/approvals/${r.id}/production`, viewer);
    expect(status.json()).toMatchObject({ approval_id: a.approval_id, approver: 'bob', status: 'active' });
    expect((await deployed(r.id, 'production', operator, { approval_id: a.approval_id })).status).toBe('active');
    const pointer = showPointer('production');
    expect(pointer.spec).toMatchObject({ release: r.commit, approvedBy: 'bob' });
    // Developers may deploy only to dev.
    expect((await deploy(r.id, 'production', dev, { approval_id: a.approval_id })).statusCode).toBe(403);
  });

  it('expired and revoked approvals block production; expiry reads as expired', async () => {
    const r = await makeRelease({ type: 'manual' });
    const a = (await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: 'ok' })).json();
    t.clock.advance(3600_000 + 1);
    expect((await call('GET', `/v1/approvals/${r.id}/production`, viewer)).json().status).toBe('expired');
    const expired = await deploy(r.id, 'production', operator, { approval_id: a.approval_id });
    expect(expired.statusCode).toBe(403);
    expect(expired.json().error.message).toContain('expired');
    expect((await call('DELETE', `/v1/approvals/${a.approval_id}`, approver)).statusCode).toBe(409);
    const b = (await call('POST', '/v1/approvals', approver2, { release_id: r.id, environment: 'production', justification: 'ok' })).json();
    const revoked = await call('DELETE', `/v1/approvals/${b.approval_id}`, approver);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ status: 'revoked', revoked_by: 'bob' });
    expect((await call('DELETE', `/v1/approvals/${b.approval_id}`, approver)).statusCode).toBe(409);
    expect((await call('DELETE', `/v1/approvals/${b.approval_id}`, dev)).statusCode).toBe(403);
    const blocked = await deploy(r.id, 'production', operator);
    expect(blocked.statusCode).toBe(403);
    const list = (await call('GET', `/v1/approvals/${r.id}/production`, viewer)).json();
    expect(list.approvals.map((x: { status: string }) => x.status).sort()).toEqual(['expired', 'revoked']);
  });

  it('an approval for another release or environment is a 422; unknown ids are 404', async () => {
    const r1 = await makeRelease({ type: 'manual' });
    const r2 = await makeRelease({ type: 'manual' });
    const a = (await call('POST', '/v1/approvals', approver, { release_id: r1.id, environment: 'production', justification: 'ok' })).json();
    await call('POST', '/v1/approvals', approver, { release_id: r2.id, environment: 'production', justification: 'ok' });
    expect((await deploy(r2.id, 'production', operator, { approval_id: a.approval_id })).statusCode).toBe(422);
    const unknown = '8d5e0f38-0c2c-4f55-9d9f-3a5b7d7a0e11';
    expect((await deploy(unknown, 'dev')).statusCode).toBe(404);
    expect((await call('GET', `/v1/approvals/${unknown}/production`, viewer)).statusCode).toBe(404);
    expect((await call('GET', `/v1/approvals/${r2.id}/staging`, viewer)).statusCode).toBe(404);
    expect((await call('DELETE', `/v1/approvals/${unknown}`, approver)).statusCode).toBe(404);
    expect((await call('POST', '/v1/approvals', approver, { release_id: unknown, environment: 'production', justification: 'x' })).statusCode).toBe(404);
  });

  it('validates environments (422 listing them), names and bodies', async () => {
    const r = await makeRelease();
    for (const token of [dev, operator]) {
      const unknownEnv = await deploy(r.id, 'qa', token);
      expect(unknownEnv.statusCode).toBe(422);
      expect(unknownEnv.json().error.details.allowed).toEqual(['dev', 'staging', 'production']);
    }
    expect((await deploy(r.id, 'staging', dev)).statusCode).toBe(403);
    expect((await deploy(r.id, 'Prod/../x', operator)).statusCode).toBe(422);
    expect((await call('POST', '/v1/deployments', operator, { release_id: 'nope', environment: 'dev' })).statusCode).toBe(422);
    expect((await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: '' })).statusCode).toBe(422);
    expect((await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: 'ok\u0000' })).statusCode).toBe(422);
    expect((await call('GET', '/v1/deployments/qa/acme/shop/api', viewer)).statusCode).toBe(422);
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api', viewer)).statusCode).toBe(404);
    expect((await call('GET', '/v1/deployments/dev/acme/../api', viewer)).statusCode).toBeGreaterThanOrEqual(400);
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api/history', viewer)).json()).toEqual({ deployments: [], total: 0, limit: 20, offset: 0 });
  });

  it('records a deployment failed when the pointer cannot be written, and keeps the previous one active and the release untouched', async () => {
    const r1 = await makeRelease();
    const r2 = await makeRelease();
    const d1 = await deployed(r1.id, 'dev');
    t.setGitOps({ writePointer: async () => { throw new Error('remote rejected the push 6 times'); } });
    try {
      const failed = await deployed(r2.id, 'dev');
      expect(failed).toMatchObject({ status: 'failed', error: 'remote rejected the push 6 times', gitops_commit_sha: null, finished_at: expect.any(String) });
      const history = (await call('GET', '/v1/deployments/dev/acme/shop/api/history', viewer)).json();
      expect(history.deployments.find((d: { deployment_id: string }) => d.deployment_id === failed.id)).toMatchObject({ status: 'failed' });
      expect((await call('GET', '/v1/deployments/dev/acme/shop/api', viewer)).json().deployment_id).toBe(d1.id);
      expect((await call('GET', '/v1/releases/acme/shop/api/2', viewer)).json().id).toBe(r2.id);
      const audit = (await call('GET', `/v1/audit?deployment_id=${failed.id}`, viewer)).json();
      expect(audit.entries.map((e: { action: string }) => e.action)).toEqual(['deployment.failed', 'deployment.requested']);
    } finally {
      t.setGitOps(undefined);
    }
  });

  it('emits deployment.created', async () => {
    const seen: { event_type: string; data: Record<string, unknown> }[] = [];
    const off = t.bus.subscribe((e) => seen.push(e as never));
    const r = await makeRelease();
    const d = await deployed(r.id, 'dev');
    await t.relay.drain();
    off();
    expect(seen.find((e) => e.event_type === 'deployment.created')?.data).toEqual({ deployment_id: d.id, release_id: r.id, environment: 'dev', deployed_by: 'alice' });
    expect(seen.find((e) => e.event_type === 'deployment.activated')?.data).toMatchObject({ deployment_id: d.id, gitops_commit_sha: d.gitops_commit_sha, release_number: 1, rollback: false });
  });
});

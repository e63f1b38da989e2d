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

  it('a frozen environment refuses deployments; an operator overrides with a justification, audited and in the commit', async () => {
    const r = await makeRelease();
    const dev = t.ctx.environments.find((p) => p.name === 'dev')!;
    Object.assign(dev, { frozen: true, freeze_reason: 'year-end freeze' });
    try {
      const refused = await deploy(r.id, 'dev', operator);
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.message).toContain('dev is frozen (year-end freeze)');
      expect(refused.json().error.details.violations).toEqual([{ requirement: 'frozen', required: expect.any(String), actual: 'frozen' }]);
      const developer = await deploy(r.id, 'dev', dev ? (await t.token('alice', ['developer'])) : '', { freeze_override_reason: 'hotfix INC-7' });
      expect(developer.statusCode).toBe(403);
      expect(developer.json().error.details.permission).toBe('deployments:override-freeze');
      const done = await deployed(r.id, 'dev', operator, { freeze_override_reason: 'hotfix INC-7' });
      expect(done).toMatchObject({ status: 'active', freeze_override: 'hotfix INC-7' });
      const message = execFileSync('git', ['--git-dir', join(t.dataDir, 'gitops.git'), 'log', '-1', '--format=%B', 'main'], { encoding: 'utf8' });
      expect(message).toContain('Freeze-override: hotfix INC-7');
      const audit = (await call('GET', `/v1/audit?deployment_id=${done.id}`, viewer)).json();
      expect(audit.entries.map((e: { action: string }) => e.action).sort()).toEqual(['deployment.activated', 'deployment.freeze_overridden', 'deployment.requested']);
      expect(audit.entries.find((e: { action: string }) => e.action === 'deployment.freeze_overridden')).toMatchObject({ actor: 'olga', details: { justification: 'hotfix INC-7', freeze_reason: 'year-end freeze' } });
    } finally {
      Object.assign(dev, { frozen: false });
      delete dev.freeze_reason;
    }
    // Not frozen: an override reason is a mistake, not silently kept.
    expect((await deploy(r.id, 'dev', operator, { freeze_override_reason: 'x' })).statusCode).toBe(422);
    expect((await call('GET', '/v1/environments', viewer)).json().environments.map((e: { name: string; frozen: boolean }) => `${e.name}:${e.frozen}`)).toEqual(['dev:false', 'staging:false', 'production:false']);
  });

  it('a quorum of two distinct approvers; an approval revoked while the deployment waits fails it before any commit', async () => {
    const production = t.ctx.environments.find((p) => p.name === 'production')!;
    production.approvals_required = 2;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { open = resolve; });
    try {
      const r = await makeRelease({ type: 'manual' });
      await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: 'one' });
      const short = await deploy(r.id, 'production', operator);
      expect(short.statusCode).toBe(403);
      expect(short.json().error.details.violations).toEqual([{ requirement: 'requires_approval', required: 2, actual: 1 }]);
      const second = (await call('POST', '/v1/approvals', approver2, { release_id: r.id, environment: 'production', justification: 'two' })).json();
      // A first deployment of the target holds the line (its pointer write waits on the gate)…
      const blocker = await makeRelease({ type: 'manual' });
      await call('POST', '/v1/approvals', approver, { release_id: blocker.id, environment: 'production', justification: 'b1' });
      await call('POST', '/v1/approvals', approver2, { release_id: blocker.id, environment: 'production', justification: 'b2' });
      t.setGitOps({ writePointer: async (p) => { await gate; return t.gitops.writePointer(p); } });
      const first = (await deploy(blocker.id, 'production', operator)).json();
      const queued = await deploy(r.id, 'production', operator);
      expect(queued.statusCode).toBe(201);
      // …while the second waits behind it, one of its approvals is revoked.
      expect((await call('DELETE', `/v1/approvals/${second.approval_id}`, approver2)).statusCode).toBe(200);
      open();
      expect((await settle(first.id)).status).toBe('active');
      const failed = await settle(queued.json().id);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/^not deployed: .*needs 2 active approvals by distinct approvers.*it has 1/);
      expect(showPointer('production').spec.release).toBe(blocker.commit);
      const audit = (await call('GET', `/v1/audit?release_id=${r.id}`, viewer)).json();
      expect(audit.entries.map((e: { action: string; actor: string }) => `${e.action}:${e.actor}`).reverse()).toEqual([
        'approval.created:bob', 'approval.created:carol', 'deployment.requested:olga', 'approval.revoked:carol', 'deployment.failed:olga',
      ]);
    } finally {
      open();
      production.approvals_required = 1;
      t.setGitOps(undefined);
    }
  });

  it('rollback-target: the highest release below the active one that was deployed; 404 with nothing active, 409 with nothing older', async () => {
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api/rollback-target', viewer)).statusCode).toBe(404);
    const [r1, r2, r3] = [await makeRelease(), await makeRelease(), await makeRelease()];
    await deployed(r1!.id, 'dev');
    const nothingOlder = await call('GET', '/v1/deployments/dev/acme/shop/api/rollback-target', viewer);
    expect(nothingOlder.statusCode).toBe(409);
    await deployed(r3!.id, 'dev');
    // r2 was never deployed here: the rollback goes to r1.
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api/rollback-target', viewer)).json()).toMatchObject({ release_id: r1!.id, release_number: 1, current: { release_number: 3 } });
    await deployed(r2!.id, 'dev');
    // 3 → 2 was a rollback; the next one goes 2 → 1, not back to 3.
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api', viewer)).json()).toMatchObject({ release_number: 2, rollback: true });
    expect((await call('GET', '/v1/deployments/dev/acme/shop/api/rollback-target', viewer)).json()).toMatchObject({ release_number: 1 });
    expect((await call('GET', '/v1/deployments/00000000-0000-4000-8000-000000000000', viewer)).statusCode).toBe(404);
  });

  it('approvals and revocations are events and audit entries', async () => {
    const seen: { event_type: string; data: Record<string, unknown> }[] = [];
    const off = t.bus.subscribe((e) => seen.push(e as never));
    const r = await makeRelease({ type: 'manual' });
    const a = (await call('POST', '/v1/approvals', approver, { release_id: r.id, environment: 'production', justification: 'CAB-9' })).json();
    await call('DELETE', `/v1/approvals/${a.approval_id}`, approver2);
    await t.relay.drain();
    off();
    expect(seen.find((e) => e.event_type === 'approval.created')?.data).toMatchObject({ approval_id: a.approval_id, release_id: r.id, environment: 'production', approver: 'bob' });
    expect(seen.find((e) => e.event_type === 'approval.revoked')?.data).toEqual({ approval_id: a.approval_id, release_id: r.id, environment: 'production', revoked_by: 'carol' });
    const audit = (await call('GET', `/v1/audit?release_id=${r.id}&action=approval.created`, viewer)).json();
    expect(audit).toMatchObject({ total: 1, entries: [{ actor: 'bob', approval_id: a.approval_id, repository: 'acme/shop', project: 'api', details: { justification: 'CAB-9', release_number: 1 } }] });
    expect((await call('GET', '/v1/audit?action=nope', viewer)).statusCode).toBe(422);
    expect((await call('GET', '/v1/audit?environment=qa', viewer)).statusCode).toBe(422);
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

/**
 * `forge releases …`, `forge deploy`, `forge approve`, `forge approvals …`, `forge deployments …`
 * against a real server: alice (developer, operator) releases and deploys, bob (approver) approves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forge, lines, startTestServer, type TestServer } from './cli-helpers.ts';

const SHA1 = '0c1d2e3f'.repeat(5);
const SHA2 = '9f8e7d6c'.repeat(5);
const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`;

let t: TestServer;
let alice: Record<string, string>;
let bob: Record<string, string>;

beforeAll(async () => {
  t = await startTestServer();
  alice = { FORGE_URL: t.url, FORGE_TOKEN: await t.token('alice', ['developer', 'operator']) };
  bob = { FORGE_URL: t.url, FORGE_TOKEN: await t.token('bob', ['approver']) };
});
afterAll(async () => {
  await t?.close();
});

describe('forge releases, deploy, approve, deployments', () => {
  let release1Id = '';
  let approvalId = '';

  it('creates a release once per commit (the second create finds it)', async () => {
    const args = [
      'releases', 'create', '--repository', 'acme/shop', '--project', 'api', '--commit', SHA1,
      '--artifact', 'api-server:container:oci://registry.local:5000/tracking/api-server:sha-0c1d2e3f:ghcr.io/acme/api:1.0.0',
      '--branch', 'feature/x', '--alias', 'canary',
    ];
    const created = await forge(args, alice);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const out = lines(created.stdout);
    expect(out[0]).toBe('created release 1 of acme/shop/api');
    expect(out).toContain(`  canonical id  acme/shop/api/${SHA1}`);
    release1Id = /^ {2}id +([0-9a-f-]{36})$/m.exec(created.stdout)![1]!;

    // …and a manual release (no --tag / --branch), which production admits.
    const [again, manual] = await Promise.all([
      forge(args, alice),
      forge(['releases', 'create', '--repository', 'acme/shop', '--project', 'api', '--commit', SHA2, '--json'], alice),
    ]);
    expect(again.code).toBe(0);
    expect(lines(again.stdout)[0]).toBe('release 1 of acme/shop/api already exists for this commit');
    expect(again.stdout).toContain(release1Id);
    expect(manual.code).toBe(0);
    expect(JSON.parse(manual.stdout)).toMatchObject({ release_number: 2, canonical_id: `acme/shop/api/${SHA2}` });
  });

  it('gets a release by number, by alias (a `/` in it is encoded) and by SHA prefix', async () => {
    const [byNumber, byBranchAlias, byPrefix] = await Promise.all([
      forge(['releases', 'get', 'acme/shop', 'api', '1'], alice),
      forge(['releases', 'get', 'acme/shop', 'api', 'feature/x-1', '--json'], alice),
      forge(['releases', 'get', 'acme/shop', 'api', SHA2.slice(0, 7)], alice),
    ]);
    expect(byNumber.code).toBe(0);
    expect(lines(byNumber.stdout)).toEqual(expect.arrayContaining([
      'release 1 of acme/shop/api',
      `  id            ${release1Id}`,
      '  aliases       1, feature/x-1 (branch), canary (custom)',
      expect.stringMatching(new RegExp(`^ {2}trigger {7}branch_push feature/x by alice at ${ISO}$`)),
      'ARTIFACT    TYPE       TRACKING IMAGE                                              PUBLISHED',
      'api-server  container  oci://registry.local:5000/tracking/api-server:sha-0c1d2e3f  ghcr.io/acme/api:1.0.0',
    ]));

    expect(byBranchAlias.code).toBe(0);
    const json = JSON.parse(byBranchAlias.stdout) as { id: string; aliases: { alias: string }[] };
    expect(json.id).toBe(release1Id);
    expect(json.aliases.map((a) => a.alias).sort()).toEqual(['1', 'canary', 'feature/x-1']);

    expect(byPrefix.code).toBe(0);
    expect(lines(byPrefix.stdout)[0]).toBe('release 2 of acme/shop/api');
    expect(byPrefix.stdout).toContain('  trigger       manual by alice');
    expect(byPrefix.stdout).toContain('no artifacts');
  });

  it('lists releases: number, commit, aliases, created, by', async () => {
    const list = await forge(['releases', 'list', 'acme/shop', 'api'], alice);
    expect(list.code).toBe(0);
    const out = lines(list.stdout);
    expect(out).toHaveLength(3);
    expect(out[0]).toBe('NUMBER  COMMIT        ALIASES              CREATED               BY');
    expect(out[1]).toMatch(new RegExp(`^2       ${SHA2.slice(0, 12)}  -                    ${ISO}  alice$`));
    expect(out[2]).toMatch(new RegExp(`^1       ${SHA1.slice(0, 12)}  feature/x-1, canary  ${ISO}  alice$`));
  });

  it('deploys to dev, then shows the current deployment and the history', async () => {
    const first = await forge(['deploy', 'dev', 'acme/shop', 'api', 'canary'], alice);
    expect(first.code).toBe(0);
    expect(lines(first.stdout)).toEqual([
      'deployed release 1 of acme/shop/api to dev',
      expect.stringMatching(/^ {2}deployment {5}[0-9a-f-]{36}$/),
      '  status         active',
      expect.stringMatching(/^ {2}gitops commit {2}[0-9a-f]{40}$/),
    ]);
    const second = await forge(['deploy', 'dev', 'acme/shop', 'api', '2', '--json'], alice);
    expect(second.code).toBe(0);
    const deployment = JSON.parse(second.stdout) as { deployment_id: string; status: string; gitops_commit_sha: string };
    expect(deployment.status).toBe('active');

    const [current, history] = await Promise.all([
      forge(['deployments', 'current', 'dev', 'acme/shop', 'api'], alice),
      forge(['deployments', 'history', 'dev', 'acme/shop', 'api'], alice),
    ]);
    expect(current.code).toBe(0);
    expect(lines(current.stdout)).toEqual(expect.arrayContaining([
      `acme/shop/api in dev: release 2 (${SHA2.slice(0, 12)})`,
      `  deployment     ${deployment.deployment_id}`,
      '  status         active',
      expect.stringMatching(new RegExp(`^ {2}deployed {7}${ISO} by alice$`)),
      `  gitops commit  ${deployment.gitops_commit_sha}`,
    ]));
    expect(history.code).toBe(0);
    const rows = lines(history.stdout);
    expect(rows[0]).toMatch(/^DEPLOYMENT\s+RELEASE\s+COMMIT\s+STATUS\s+DEPLOYED\s+BY\s+GITOPS COMMIT$/);
    expect(rows.slice(1).map((r) => r.split(/\s+/).slice(1, 4))).toEqual([
      ['2', SHA2.slice(0, 12), 'active'],
      ['1', SHA1.slice(0, 12), 'superseded'],
    ]);
  });

  it('rolls back to the previous release (a forward commit), takes the repository from --repo or FORGE_REPOSITORY, and follows with --no-wait', async () => {
    const rollback = await forge(['rollback', 'dev', 'acme/shop', 'api'], alice);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stderr).toContain('rolling back acme/shop/api in dev: release 2 → 1');
    expect(rollback.stderr).toMatch(/deployment [0-9a-f-]{36} active/);
    expect(lines(rollback.stdout)[0]).toBe('rolled back release 1 of acme/shop/api in dev');
    const current = JSON.parse((await forge(['deployments', 'current', 'dev', 'acme/shop', 'api', '--json'], alice)).stdout);
    expect(current).toMatchObject({ release_number: 1, rollback: true, status: 'active' });
    // Nothing below release 1 was ever deployed: a 409 saying so.
    const none = await forge(['rollback', 'dev', 'api', '--repo', 'acme/shop'], alice);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no earlier release of acme/shop/api was deployed to dev');
    // The repository from FORGE_REPOSITORY; --no-wait prints the pending deployment.
    const noWait = await forge(['deploy', 'dev', 'api', '2', '--no-wait', '--json'], { ...alice, FORGE_REPOSITORY: 'acme/shop' });
    expect(noWait.code, noWait.stderr).toBe(0);
    const pending = JSON.parse(noWait.stdout);
    expect(pending).toMatchObject({ status: 'pending', gitops_commit_sha: null });
    const [got] = await Promise.all([forge(['deployments', 'get', pending.id, '--json'], alice)]);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout).id).toBe(pending.id);
    // Usage errors name what is missing.
    const noRepo = await forge(['deploy', 'dev', 'api', '2'], alice);
    expect(noRepo.code).toBe(2);
    expect(noRepo.stderr).toContain('name the repository: as an argument (owner/name), with --repo, or in FORGE_REPOSITORY');
    const badProject = await forge(['deploy', 'dev', 'acme/shop', 'API', '2'], alice);
    expect(badProject.code).toBe(2);
    expect(badProject.stderr).toContain('invalid project "API"');
  });

  it('lists the environments and the audit trail', async () => {
    const envs = await forge(['environments'], alice);
    expect(envs.code).toBe(0);
    expect(lines(envs.stdout)[0]).toMatch(/^ENVIRONMENT\s+TRIGGERS\s+BRANCHES\s+AUTO-DEPLOY\s+APPROVALS\s+FROZEN$/);
    expect(envs.stdout).toMatch(/production\s+tag,manual\s+main\s+no\s+1\s+no/);
    const audit = await forge(['audit', '--repository', 'acme/shop', '--env', 'dev', '--json'], alice);
    expect(audit.code).toBe(0);
    const entries = JSON.parse(audit.stdout).entries as { action: string; actor: string }[];
    expect(entries.filter((e) => e.action === 'deployment.activated').length).toBeGreaterThanOrEqual(3);
    const table = await forge(['audit', '--action', 'deployment.requested', '--limit', '2'], alice);
    expect(lines(table.stdout)[0]).toMatch(/^AT\s+ACTOR\s+ACTION\s+ENV\s+PROJECT\s+RELEASE\s+DETAIL$/);
    expect(lines(table.stdout)).toHaveLength(4); // header, 2 rows, the page footer
    expect((await forge(['audit', '--action', 'nope'], alice)).code).toBe(2);
  });

  it('refuses self-approval with a clear permission_denied, and production without an approval', async () => {
    const [self, unapproved, branchRelease] = await Promise.all([
      forge(['approve', 'acme/shop', 'api', '2', '--env', 'production', '--justification', 'ship it'], alice),
      forge(['deploy', 'production', 'acme/shop', 'api', '2'], alice),
      forge(['deploy', 'production', 'acme/shop', 'api', '1'], alice),
    ]);
    expect(self).toMatchObject({ code: 1, stdout: '' });
    expect(lines(self.stderr)[0]).toBe('forge: you created this release and cannot approve it yourself; ask another approver (permission_denied, HTTP 403)');
    expect(self.stderr).toContain('  reason: self_approval');
    expect(self.stderr).toContain('  created by: alice');

    expect(unapproved.code).toBe(1);
    expect(unapproved.stderr).toContain('(permission_denied, HTTP 403)');
    expect(unapproved.stderr).toContain('  violation: requires_approval requires 1; actual: 0');

    // Release 1 came from a branch push; production admits only tag and manual releases.
    expect(branchRelease.code).toBe(1);
    expect(branchRelease.stderr).toContain('  violation: allowed_triggers requires tag, manual; actual: branch_push');
  });

  it('bob approves; alice deploys to production under the approval; bob revokes it', async () => {
    const approve = await forge(['approve', 'acme/shop', 'api', '2', '--env', 'production', '--justification', 'ship it'], bob);
    expect(approve).toMatchObject({ code: 0, stderr: '' });
    expect(lines(approve.stdout)[0]).toBe('approved release 2 of acme/shop/api for production');
    approvalId = /^ {2}approval +([0-9a-f-]{36})$/m.exec(approve.stdout)![1]!;
    expect(approve.stdout).toContain('  approver  bob');
    expect(approve.stdout).toContain('forge deploy production acme/shop api 2');

    const status = await forge(['approvals', 'get', 'acme/shop', 'api', '2', '--env', 'production'], alice);
    expect(status.code).toBe(0);
    const out = lines(status.stdout);
    expect(out[0]).toBe(`release 2 of acme/shop/api for production: active (approval ${approvalId} by bob)`);
    expect(out[2]).toMatch(/^APPROVAL\s+APPROVER\s+STATUS\s+APPROVED\s+EXPIRES\s+JUSTIFICATION$/);
    expect(out[3]).toMatch(new RegExp(`^${approvalId}  bob       active  ${ISO}  ${ISO}  ship it$`));

    const deploy = await forge(['deploy', 'production', 'acme/shop', 'api', SHA2.slice(0, 10), '--approval', approvalId], alice);
    expect(deploy.code).toBe(0);
    expect(lines(deploy.stdout)[0]).toBe('deployed release 2 of acme/shop/api to production');

    const current = await forge(['deployments', 'current', 'production', 'acme/shop', 'api', '--json'], alice);
    expect(current.stderr).toBe('');
    expect(JSON.parse(current.stdout)).toMatchObject({ release_number: 2, approval_id: approvalId, deployed_by: 'alice', status: 'active' });

    const revoke = await forge(['approvals', 'revoke', approvalId], bob);
    expect(revoke).toMatchObject({ code: 0, stderr: '' });
    expect(revoke.stdout).toMatch(new RegExp(`^revoked approval ${approvalId} of release [0-9a-f-]{36} for production\n$`));
  });

  it('an unknown release ref is a 404 with what was tried; usage errors exit 2', async () => {
    const [missing, badArtifact, both] = await Promise.all([
      forge(['deploy', 'dev', 'acme/shop', 'api', '99'], alice),
      forge(['releases', 'create', '--repository', 'acme/shop', '--project', 'api', '--commit', SHA1, '--artifact', 'x:tarball:a:b'], alice),
      forge(['releases', 'create', '--repository', 'acme/shop', '--project', 'api', '--commit', SHA1, '--tag', 'api/v1.0.0', '--branch', 'main'], alice),
    ]);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toBe([
      'forge: release 99 of acme/shop/api not found (not_found, HTTP 404)',
      '  repository: acme/shop',
      '  project: api',
      '  ref: 99',
      '  looked up as: alias, release number, commit SHA or prefix',
      '',
    ].join('\n'));
    expect(badArtifact.code).toBe(2);
    expect(badArtifact.stderr).toContain('the type must be one of container, binary, archive');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("option '--tag <tag>' cannot be used with option '--branch <branch>'");
  });
});

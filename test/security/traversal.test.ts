/**
 * Path traversal: `..`, `%2e%2e`, `%2F`, NUL, absolute paths and backslashes in every name the API
 * takes (path segments sent raw over a socket, query strings, body fields), in step log keys, in the
 * dashboard's file paths; and symbolic links in a checked-out repository, which discovery (run the
 * way a discovery worker runs it, on a real git checkout) must never follow out of the checkout.
 * Every request: a 4xx with the error body, never a 5xx, nothing written, nothing from outside read.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isForgeError } from '../../src/domain/errors.ts';
import type { JobMessage } from '../../src/domain/jobs.ts';
import { createGitWorkspaces, seedRepository } from '../../src/worker/git-workspace.ts';
import { discoveryHandler } from '../../src/worker/handlers.ts';
import { sha } from '../helpers/app.ts';
import { postgresAdapter } from '../helpers/stores.ts';
import { expectError, rawHttp, rowCounts, securitySuite, statusOf, stepOfNewRun, uuid } from './support.ts';

/** Names that try to leave wherever a name ends up (a path, an object key, an OCI reference). */
const TRAVERSALS = [
  '..', '../..', '../../etc/passwd', 'a/../../b', '%2e%2e', '%2e%2e%2f%2e%2e', '..%2F..%2Fetc', '/etc/passwd', '//etc/passwd',
  '..\\..\\windows', 'a\\b', 'C:\\Windows\\win.ini', 'a\u0000b', 'api\u0000.json', '.', './a', '~/.ssh/id_rsa', '.forge-tmp/x', '',
];

describe('path traversal through the API', () => {
  const suite = securitySuite(postgresAdapter);
  const get = (path: string, bearer = true) => rawHttp(suite.s.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n${bearer ? `Authorization: Bearer ${suite.token}\r\n` : ''}Connection: close\r\n\r\n`);

  it('refuses traversal in path segments and query strings sent raw (no client normalisation): 4xx, never a 5xx, nothing from outside', async () => {
    const segments = ['..', '%2e%2e', '.%2e', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%2F..%2Fetc%2Fpasswd', '..%5c..%5cwindows', '%2Fetc%2Fpasswd', 'api%00', 'api%00.json', '%00', '..%00', '%c0%ae%c0%ae', '..%252f..%252f'];
    const templates = [
      '/v1/releases/acme/shop/{}', '/v1/releases/acme/shop/{}/1', '/v1/releases/acme/{}/api', '/v1/releases/{}/shop/api', '/v1/releases/acme%2F{}/api/1',
      '/v1/releases/acme/shop/api/{}', '/v1/releases/acme/shop/api/{}/signatures', '/v1/deployments/{}/acme/shop/api', '/v1/deployments/dev/acme/shop/{}/history',
      '/v1/deployments/{}/acme/shop/api/rollback-target', `/v1/approvals/${uuid()}/{}`, '/v1/runs/{}', '/v1/steps/{}/logs', '/v1/release-builds/{}',
      '/v1/runs?repository={}', '/v1/runs?branch={}', '/v1/audit?environment={}', '/v1/audit?project={}', '/v1/audit?repository={}',
      '/v1/releases/acme/shop/../../../etc/passwd', '/v1/../../../../etc/passwd',
    ];
    const statuses = new Map<number, number>();
    let requests = 0;
    for (const template of templates) {
      for (const segment of template.includes('{}') ? segments : ['']) {
        const path = template.replace('{}', segment);
        const answer = await get(path);
        const status = statusOf(answer);
        requests++;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        expect(status >= 400 && status < 500, `${path} → ${answer.slice(0, 300)}`).toBe(true);
        expect(answer, path).not.toMatch(/root:x:0|OUTSIDE THE WEB ROOT/);
        const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
        if (body.trim() !== '') expect(JSON.parse(body).error, path).toMatchObject({ code: expect.any(String), message: expect.any(String) });
      }
    }
    // A segment longer than any name: the standard error body, not the router's own.
    for (const path of [`/v1/runs/${'a'.repeat(300)}`, `/v1/releases/acme/shop/api/${'a'.repeat(300)}`, `/v1/deployments/${'a'.repeat(300)}/acme/shop/api`]) {
      const long = await get(path);
      expect([404, 414], long.slice(0, 200)).toContain(statusOf(long));
      expect(JSON.parse(long.slice(long.indexOf('\r\n\r\n') + 4)).error).toMatchObject({ code: expect.stringMatching(/^(validation_error|not_found)$/) });
    }
    // The longest alias a release may have is looked up like any other (it was a 414 at 101 characters).
    const longest = await get(`/v1/releases/acme/shop/api/${'a'.repeat(128)}`);
    expect(statusOf(longest)).toBe(404);
    expect(JSON.parse(longest.slice(longest.indexOf('\r\n\r\n') + 4)).error.message).not.toMatch(/no route/);
    expect(requests).toBeGreaterThan(200);
    if (process.env.FORGE_PRINT_FIGURES) console.log(`traversal in URLs: ${requests} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('refuses traversal in every name of a request body with 422, writing nothing', async () => {
    const { s, token, test } = suite;
    const before = await rowCounts(test.db);
    const run = { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' };
    const release = { repository: 'acme/shop', project: 'api', commit_sha: sha(), artifacts: [] as object[] };
    const artifact = { name: 'api', type: 'docker', tracking_oci_uri: 'registry.test/t/api:1', primary_published_uri: 'registry.test/api:1' };
    const bodies: [string, string, (name: string) => object][] = [
      ['/v1/runs', 'repository', (n) => ({ ...run, repository: n })],
      ['/v1/runs', 'repository (owner/..)', (n) => ({ ...run, repository: `acme/${n}` })],
      ['/v1/runs', 'branch', (n) => ({ ...run, branch: n })],
      ['/v1/releases', 'project', (n) => ({ ...release, project: n })],
      ['/v1/releases', 'artifact name', (n) => ({ ...release, artifacts: [{ ...artifact, name: n }] })],
      ['/v1/releases', 'alias', (n) => ({ ...release, aliases: [n] })],
      ['/v1/releases', 'trigger tag', (n) => ({ ...release, trigger: { type: 'tag', tag: n } })],
      ['/v1/release-builds', 'project', (n) => ({ repository: 'acme/shop', project: n, commit_sha: sha() })],
      ['/v1/release-builds', 'branch', (n) => ({ repository: 'acme/shop', project: 'api', commit_sha: sha(), branch: n })],
      ['/v1/deployments', 'environment', (n) => ({ release_id: uuid(), environment: n })],
      ['/v1/approvals', 'environment', (n) => ({ release_id: uuid(), environment: n, justification: 'x' })],
    ];
    let refused = 0;
    for (const [url, field, body] of bodies) {
      for (const name of TRAVERSALS) {
        // `a\u0000b`-like branch names and '.'-led aliases are refused like the rest; '' is never a name.
        const res = await s.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${token}` }, payload: body(name) });
        expectError(res, 422, 'validation_error', `${url} ${field}=${JSON.stringify(name)}`);
        refused++;
      }
    }
    expect(refused).toBe(bodies.length * TRAVERSALS.length);
    expect(await rowCounts(test.db)).toEqual(before);
  });

  it('refuses step log keys that leave the log store, and never reads outside it', async () => {
    const { s, token } = suite;
    const auth = { authorization: `Bearer ${token}` };
    const { runId, stepId } = await stepOfNewRun(s, token);
    const keys = [
      '../../../../etc/passwd', '/etc/passwd', 'pipeline-runs/../../x.log', 'a/../../b', 'a\\..\\..\\b', 'a\u0000b', '%2e%2e/%2e%2e/x', '..',
      'a//b', 'a/./b', './a', 'a/', '.forge-tmp/part', '.forge-tmp', `pipeline-runs/${runId}/logs/${'x'.repeat(2000)}`,
    ];
    for (const key of keys) {
      const res = await s.app.inject({ method: 'PUT', url: `/v1/steps/${stepId}/status`, headers: auth, payload: { status: 'running', logs_s3_key: key } });
      expectError(res, 422, 'validation_error', `logs_s3_key=${JSON.stringify(key)}`);
    }
    const after = (await s.app.inject({ url: `/v1/runs/${runId}`, headers: auth })).json<{ phases: { tasks: { steps: { logs_s3_key: string | null; status: string }[] }[] }[] }>();
    expect(after.phases[0]!.tasks[0]!.steps[0]).toMatchObject({ logs_s3_key: null, status: 'pending' });
    for (const path of [`/v1/steps/${stepId}/logs?offset=-1`, `/v1/steps/${stepId}/logs?limit=99999999`, `/v1/steps/${stepId}/logs/search?q=${'x'.repeat(201)}`]) {
      expectError(await s.app.inject({ url: path, headers: auth }), 422, 'validation_error', path);
    }
  });

  it('serves nothing from outside the dashboard root, whatever the spelling', async () => {
    const paths = [
      '/../outside.txt', '/..%2foutside.txt', '/%2e%2e/outside.txt', '/%2e%2e%2foutside.txt', '/assets/../../outside.txt', '/assets/..%2f..%2foutside.txt',
      '/assets/%2e%2e/%2e%2e/outside.txt', '/assets/..%5c..%5coutside.txt', '/assets\\..\\..\\outside.txt', '/assets/app-1.js%00.html', '/assets/app-1.js%00',
      '//outside.txt', '/assets//..//..//outside.txt', '/%252e%252e/outside.txt', '/assets/%c0%ae%c0%ae/outside.txt', '/.%2e/outside.txt',
      `/${'../'.repeat(20)}etc/passwd`, `/assets/${'..%2f'.repeat(20)}etc%2fpasswd`, '/etc/passwd', '/index.html/../../outside.txt',
    ];
    for (const path of paths) {
      const answer = await get(path, false);
      const status = statusOf(answer);
      expect(answer, path).not.toMatch(/OUTSIDE THE WEB ROOT|root:x:0/);
      expect(status, `${path} → ${answer.slice(0, 200)}`).toBeGreaterThanOrEqual(200);
      expect(status, `${path} → ${answer.slice(0, 200)}`).toBeLessThan(500);
      // What is answered at all is the app's index (a dashboard route) or a 4xx.
      if (status === 200) expect(answer, path).toContain('<title>Forge</title>');
    }
  });
});

/**
 * A repository's tree: files by path; `{ link: target }` makes a symbolic link, committed as one
 * (git keeps the link, not what it points to).
 */
type Tree = Record<string, string | { link: string }>;

const REPO_CUE = 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: {\n\tcheck: { group: 1 }\n}\n';
const PROJECT = (name: string) => `name: "${name}"\nphases:\n  check:\n    steps:\n      - name: lint\n        action: script\n        run: "true"\n`;

describe('symbolic links in a checked-out repository', () => {
  const CANARY = `CANARY-${uuid()}`;
  let root: string;
  let outside: string;
  let gitRoot: string;
  let cacheDir: string;
  let jobs = 0;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'forge-security-links-'));
    outside = join(root, 'outside');
    gitRoot = join(root, 'git');
    cacheDir = join(root, 'cache');
    // What a link could reach: files and .forge directories outside the checkout, holding a canary.
    mkdirSync(join(outside, 'forge'), { recursive: true });
    mkdirSync(join(outside, 'project', '.forge'), { recursive: true });
    writeFileSync(join(outside, 'secret.yaml'), `name: "${CANARY}"\n`);
    writeFileSync(join(outside, 'forge', 'repo.cue'), `forgeVersion: "${CANARY}"\n`);
    writeFileSync(join(outside, 'forge', 'project.yaml'), `name: "${CANARY}"\n`);
    writeFileSync(join(outside, 'project', '.forge', 'project.yaml'), PROJECT('outside-project'));
    process.env.FORGE_SECURITY_CANARY = CANARY;
  });
  afterAll(() => {
    delete process.env.FORGE_SECURITY_CANARY;
    rmSync(root, { recursive: true, force: true });
  });

  /** Commits `tree` as repository acme/<name>, and runs discovery on it as a discovery worker does. */
  async function discoverRepository(name: string, tree: Tree): Promise<{ output?: { projects: { name: string; path: string }[] }; error?: Error }> {
    const source = join(root, 'src', name);
    for (const [path, content] of Object.entries(tree)) {
      const file = join(source, path);
      mkdirSync(dirname(file), { recursive: true });
      if (typeof content === 'string') writeFileSync(file, content);
      else symlinkSync(content.link, file);
    }
    const { commitSha } = await seedRepository({ bareDir: join(gitRoot, 'acme', `${name}.git`), sourceDir: source });
    const workspaces = createGitWorkspaces({ cacheDir, urlTemplate: `file://${gitRoot}/{repository}.git` });
    const handler = discoveryHandler({ workspaces });
    const job: JobMessage = {
      id: `job-${++jobs}`, type: 'discovery', run_id: uuid(), run_attempt: 1, reply_to: 'nowhere', deadline: new Date(Date.now() + 60_000).toISOString(),
      payload: { run_id: uuid(), repository: `acme/${name}`, commit_sha: commitSha, branch: 'main' },
    };
    try {
      return { output: (await handler({ job, deliveryCount: 1, signal: new AbortController().signal })) as { projects: { name: string; path: string }[] } };
    } catch (error) {
      return { error: error as Error };
    } finally {
      await workspaces.close();
    }
  }

  /** The discovery failed as invalid configuration that names the link and shows nothing it points to. */
  function expectLinkRefused(result: { error?: Error }, link: string): void {
    expect(result.error, 'discovery should fail').toBeDefined();
    expect(isForgeError(result.error) && result.error.code).toBe('validation_error');
    expect(result.error!.message).toContain(link);
    expect(result.error!.message).toMatch(/symbolic link/);
    expect(result.error!.message).not.toContain(CANARY);
    expect(result.error!.message).not.toMatch(/root:x:0|FORGE_SECURITY_CANARY/);
  }

  it('does not read a project config that links out of the checkout (absolute, relative, /proc/self/environ)', async () => {
    for (const [name, target] of [
      ['absolute', join(outside, 'secret.yaml')],
      ['relative', `../../${'../'.repeat(12)}${resolve(outside, 'secret.yaml').slice(1)}`],
      ['environ', '/proc/self/environ'],
      ['passwd', '/etc/passwd'],
    ] as const) {
      const result = await discoverRepository(`project-${name}`, { '.forge/repo.cue': REPO_CUE, 'svc/.forge/project.yaml': { link: target } });
      expectLinkRefused(result, 'svc/.forge/project.yaml');
    }
  });

  it('does not read a repo.cue, or a root .forge directory, that links out of the checkout', async () => {
    expectLinkRefused(await discoverRepository('repo-file', { '.forge/repo.cue': { link: join(outside, 'forge', 'repo.cue') } }), '.forge/repo.cue');
    expectLinkRefused(await discoverRepository('repo-dir', { '.forge': { link: join(outside, 'forge') }, 'svc/.forge/project.yaml': PROJECT('svc') }), '.forge');
  });

  it('does not read a project config through a link that stays inside the checkout either (links are never followed)', async () => {
    const result = await discoverRepository('inside', {
      '.forge/repo.cue': REPO_CUE, 'real/.forge/project.yaml': PROJECT('real'), 'copy/.forge/project.yaml': { link: '../../real/.forge/project.yaml' },
    });
    expectLinkRefused(result, 'copy/.forge/project.yaml');
  });

  it('skips linked directories: a project or .forge directory behind a link is not discovered', async () => {
    const result = await discoverRepository('dirs', {
      '.forge/repo.cue': REPO_CUE, 'svc/.forge/project.yaml': PROJECT('svc'),
      'elsewhere': { link: join(outside, 'project') }, 'api/.forge': { link: join(outside, 'forge') }, 'up': { link: '../../..' },
      '.gitignore': { link: '/etc/passwd' },
    });
    expect(result.error?.message).toBeUndefined();
    expect(result.output?.projects.map((p) => [p.name, p.path])).toEqual([['svc', 'svc']]);
    expect(JSON.stringify(result.output)).not.toContain(CANARY);
  });
});

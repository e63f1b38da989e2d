/** `forge runs …` against a real server, plus the CLI's error paths (404, usage, no token, unreachable). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRun, recordDiscovery, reportStepStatus } from '../../src/engine/runs.ts';
import { closedUrl, forge, lines, startTestServer, type TestServer } from './cli-helpers.ts';

const SHA = '1a2b3c4d'.repeat(5);
const TREE_SHA = '5e6f7a8b'.repeat(5);

let t: TestServer;
let env: Record<string, string>;

beforeAll(async () => {
  t = await startTestServer();
  env = { FORGE_URL: t.url, FORGE_TOKEN: await t.token('alice', ['developer', 'operator']) };
});
afterAll(async () => {
  await t?.close();
});

/** A run that ran: group 1 `test` (api: lint ok, unit exit 2; web never started), group 2 `publish`. */
async function failedRunWithTree(): Promise<string> {
  const { run } = await createRun(t.server.ctx, { repository: 'acme/shop', branch: 'main', commit_sha: TREE_SHA, trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
  await recordDiscovery(t.server.ctx, run.id, {
    projects: [
      { name: 'api', path: 'services/api', phases: { test: [{ name: 'lint', action: 'earthly', target: '+lint' }, { name: 'unit', action: 'earthly', target: '+test' }], publish: [{ name: 'push', action: 'earthly', target: '+publish' }] } },
      { name: 'web', path: 'apps/web', phases: { test: [{ name: 'unit', action: 'earthly', target: '+test' }] } },
    ],
    phaseGroups: [{ group: 1, phases: ['test'] }, { group: 2, phases: ['publish'] }],
  });
  const tree = await t.server.ctx.store.listPhases(run.id);
  const tasks = await t.server.ctx.store.listTasks(tree.map((p) => p.id));
  const steps = await t.server.ctx.store.listSteps(tasks.map((task) => task.id));
  const api = tasks.find((task) => task.project_name === 'api' && tree.find((p) => p.id === task.phase_execution_id)?.phase_name === 'test');
  const step = (name: string) => steps.find((s) => s.task_execution_id === api?.id && s.step_name === name)!.id;
  await reportStepStatus(t.server.ctx, step('lint'), { status: 'running' });
  await reportStepStatus(t.server.ctx, step('lint'), { status: 'success', exit_code: 0 });
  await reportStepStatus(t.server.ctx, step('unit'), { status: 'running' });
  await reportStepStatus(t.server.ctx, step('unit'), { status: 'failed', exit_code: 2 });
  return run.id;
}

describe('forge runs', () => {
  let runId = '';

  it('creates a run, and finds the same run for the same commit (--json prints only the response)', async () => {
    const args = ['runs', 'create', '--repository', 'acme/shop', '--branch', 'main', '--commit', SHA];
    const created = await forge(args, env);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const match = /^created run ([0-9a-f-]{36}) \(pending\)\n$/.exec(created.stdout);
    expect(match, created.stdout).not.toBeNull();
    runId = match![1]!;

    const again = await forge([...args, '--trigger-type', 'push', '--json'], env);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ id: runId, status: 'pending' });
  });

  it('shows a run without phases, and lists runs as an aligned table', async () => {
    const [get, list] = await Promise.all([forge(['runs', 'get', runId], env), forge(['runs', 'list', '--repository', 'acme/shop', '--limit', '5'], env)]);
    expect(get.code).toBe(0);
    expect(lines(get.stdout)).toEqual(expect.arrayContaining([
      `run ${runId}  pending`,
      '  repository  acme/shop',
      `  commit      ${SHA}`,
      '  trigger     manual by alice',
      '  completed   -',
      'no phases yet: discovery has not run',
    ]));

    expect(list.code).toBe(0);
    const [header, row, ...rest] = lines(list.stdout);
    expect(header).toMatch(/^ID\s+REPOSITORY\s+BRANCH\s+COMMIT\s+STATUS\s+TRIGGER\s+BY\s+STARTED\s+DURATION$/);
    expect(row).toMatch(new RegExp(`^${runId}  acme/shop   main    ${SHA.slice(0, 12)}  pending  manual   alice  \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ  -$`));
    expect(header!.indexOf('STATUS')).toBe(row!.indexOf('pending'));
    expect(rest).toEqual([]);
  });

  it('shows the phase → task → step tree with statuses, exit codes and durations', async () => {
    const id = await failedRunWithTree();
    const result = await forge(['runs', 'get', id], env);
    expect(result.code).toBe(0);
    const out = lines(result.stdout);
    expect(out[0]).toBe(`run ${id}  failed`);
    expect(out).toContain('  trigger     push by alice');
    const tree = out.slice(out.findIndex((l) => l.startsWith('PHASE / TASK / STEP')));
    const D = String.raw`\d+(?:ms|s)`;
    const expected = [
      /^PHASE \/ TASK \/ STEP\s+STATUS\s+EXIT\s+DURATION\s+DETAIL$/,
      new RegExp(`^test \\(group 1\\)\\s+failed\\s+${D}$`),
      new RegExp(`^├─ api\\s+failed\\s+${D}\\s+step unit failed with exit code 2$`),
      new RegExp(`^│  ├─ lint\\s+success\\s+0\\s+${D}\\s+earthly \\+lint$`),
      new RegExp(`^│  └─ unit\\s+failed\\s+2\\s+${D}\\s+earthly \\+test$`),
      /^└─ web\s+skipped\s+-$/,
      /^ {3}└─ unit\s+skipped\s+-\s+-\s+earthly \+test$/,
      /^publish \(group 2\)\s+skipped\s+-$/,
      /^└─ api\s+skipped\s+-$/,
      /^ {3}└─ push\s+skipped\s+-\s+-\s+earthly \+publish$/,
    ];
    expect(tree).toHaveLength(expected.length);
    tree.forEach((line, i) => expect(line).toMatch(expected[i]!));
    // Columns line up: every STATUS starts where the header's does.
    const column = tree[0]!.indexOf('STATUS');
    for (const line of tree.slice(1)) expect(line.slice(column)).toMatch(/^(failed|success|skipped)/);

    const cancelFinished = await forge(['runs', 'cancel', id], env);
    expect(cancelFinished).toMatchObject({ code: 1, stdout: '' });
    expect(cancelFinished.stderr).toBe(
      'forge: run already finished with status failed; only pending or running runs can be cancelled (conflict, HTTP 409)\n  status: failed\n',
    );
  });

  it('cancels a run, and lists it by status', async () => {
    const cancel = await forge(['runs', 'cancel', runId], env);
    expect(cancel).toMatchObject({ code: 0, stdout: `cancelled run ${runId}\n`, stderr: '' });
    const list = await forge(['runs', 'list', '--status', 'cancelled', '--json'], env);
    expect(list.code).toBe(0);
    const page = JSON.parse(list.stdout) as { runs: { id: string; status: string }[]; total: number };
    expect(page.runs.map((r) => [r.id, r.status])).toEqual([[runId, 'cancelled']]);
  });
});

describe('forge client errors', () => {
  it('a 404 exits 1 with the message; bad arguments exit 2 before any request', async () => {
    const missing = randomUUID();
    const [notFound, badRepo, badLimit] = await Promise.all([
      forge(['runs', 'get', missing], env),
      forge(['runs', 'create', '--repository', 'acme', '--branch', 'main', '--commit', SHA], env),
      forge(['runs', 'list', '--limit', '0'], env),
    ]);
    expect(notFound).toMatchObject({ code: 1, stdout: '' });
    expect(notFound.stderr).toBe(`forge: pipeline run not found (not_found, HTTP 404)\n  id: ${missing}\n`);
    expect(badRepo.code).toBe(2);
    expect(badRepo.stderr).toContain("argument 'acme' is invalid. expected owner/name");
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain('expected a whole number from 1 to 500');
  });

  it('without a token it says how to get one; an unreachable server exits 3 and names the URL', async () => {
    const url = await closedUrl();
    const [noToken, unreachable, badToken] = await Promise.all([
      forge(['runs', 'list'], { FORGE_URL: t.url }),
      forge(['runs', 'list', '--url', url], env),
      forge(['runs', 'list', '--token', 'not-a-jwt'], { FORGE_URL: t.url }),
    ]);
    expect(noToken).toMatchObject({ code: 2, stdout: '' });
    expect(noToken.stderr).toContain('no API token: set FORGE_TOKEN or pass --token');
    expect(noToken.stderr).toContain('npx forge dev-token --sub you --roles developer');

    expect(unreachable).toMatchObject({ code: 3, stdout: '' });
    expect(unreachable.stderr).toContain(`cannot reach the Forge API at ${url} (ECONNREFUSED)`);
    expect(unreachable.stderr).toContain('npm start');

    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/^forge: .* \(authentication_required, HTTP 401\)\n/);
    expect(badToken.stderr).toContain('check FORGE_TOKEN');
  });
});

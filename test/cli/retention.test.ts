/**
 * Retention and limits through a real `forge server` (embedded defaults, settings as flags) and the
 * `forge` CLI as a child process: `forge retention run [--dry-run] [--json]`, who may run it, the
 * per-repository run limit as the CLI reports it, and the server's own periodic pass.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import type { EngineContext } from '../../src/engine/context.ts';
import { cancelRun, createRun, recordDiscovery } from '../../src/engine/runs.ts';
import { stepLogKey } from '../../src/domain/logs.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { sha } from '../helpers/app.ts';
import { eventually } from '../helpers/runs.ts';
import { forge } from './cli-helpers.ts';

const DAY = 86_400_000;

async function start(flags: Record<string, string>): Promise<{ server: RunningServer; close(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'forge-retention-'));
  const server = await startServer(parseServerSettings({ port: '0', dataDir, rateLimits: 'off', logLevel: 'silent', workers: 'none', ...flags }, {}), { announce: false });
  return { server, close: async () => { await server.close(); rmSync(dataDir, { recursive: true, force: true }); } };
}

/** A cancelled run whose completion is dated `daysAgo` days back (retention counts from completed_at); `withLog`: one step with a stored log. */
async function finishedRun(ctx: EngineContext, daysAgo: number, withLog?: (stepId: string) => void): Promise<string> {
  const { run } = await createRun(ctx, { repository: 'acme/shop', branch: 'main', commit_sha: sha(), trigger_type: 'push' }, { actor: 'alice', mayActForOthers: false });
  if (withLog) {
    await recordDiscovery(ctx, run.id, { projects: [{ name: 'api', path: 'api', phases: { test: [{ name: 'unit', action: 'run', run: 'true' }] } }], phaseGroups: [{ group: 1, phases: ['test'] }] });
    const [step] = await ctx.store.listSteps((await ctx.store.listTasks((await ctx.store.listPhases(run.id)).map((p) => p.id))).map((t) => t.id));
    const key = stepLogKey(run.id, 'test', 'api', 'unit', 1);
    await ctx.objects!.put(key, 'ok\n');
    await ctx.store.updateStep(step!.id, { logs_s3_key: key, status: 'success' });
    withLog(step!.id);
  }
  await cancelRun(ctx, run.id, 'alice');
  await ctx.store.updateRun(run.id, { completed_at: new Date(Date.now() - daysAgo * DAY) });
  return run.id;
}

describe('forge retention run, and the run limit, against a server with FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY=2', () => {
  let s: Awaited<ReturnType<typeof start>>;
  let operator: Record<string, string>;
  let developer: Record<string, string>;

  beforeAll(async () => {
    s = await start({ maxActiveRunsPerRepository: '2', retentionInterval: 'off' });
    const sign = (sub: string, roles: ('operator' | 'developer')[]) => s.server.devIssuer!.sign({ sub, roles });
    operator = { FORGE_URL: s.server.url, FORGE_TOKEN: await sign('olga', ['operator']) };
    developer = { FORGE_URL: s.server.url, FORGE_TOKEN: await sign('dave', ['developer']) };
  });
  afterAll(async () => {
    await s?.close();
  });

  it('--dry-run --json counts, deletes nothing; then a real pass deletes and says what', async () => {
    const old = await finishedRun(s.server.ctx, 91);
    let stepId = '';
    const recent = await finishedRun(s.server.ctx, 31, (id) => { stepId = id; });
    expect(await forge(['logs', stepId], operator)).toMatchObject({ code: 0, stdout: 'ok\n' });
    const dry = await forge(['retention', 'run', '--dry-run', '--json'], operator);
    expect(dry).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(dry.stdout)).toMatchObject({ dry_run: true, runs_deleted: 1, runs_logs_expired: 1 });
    expect(await s.server.store.getRun(old)).toBeDefined();

    const real = await forge(['retention', 'run'], operator);
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/^retention applied\n/);
    expect(real.stdout).toMatch(/runs +finished before \S+: deleted 1 run \(0 steps\)/);
    expect(real.stdout).toMatch(/logs +of runs finished before \S+: deleted the logs of 1 run \(1 step\)/);
    expect(real.stdout).toMatch(/objects +deleted 1 object \(3 B\)/);
    expect(real.stdout).toMatch(/kept +releases, deployments, approvals and the audit trail/);
    expect(await s.server.store.getRun(old)).toBeUndefined();
    expect((await s.server.store.getRun(recent))?.logs_expired_at).toBeInstanceOf(Date);
    const expired = await forge(['logs', stepId], operator);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(new RegExp(`the log of step ${stepId} expired: the retention job deleted it at`));
  });

  it('refuses a developer: exit 1 naming the permission and the role that has it', async () => {
    const refused = await forge(['retention', 'run', '--dry-run'], developer);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/retention:run.*operator/);
  });

  it('`forge runs create` past the limit: exit 1 with the limit and the count', async () => {
    const args = () => ['runs', 'create', '--repository', 'acme/limited', '--branch', 'main', '--commit', sha()];
    expect((await forge(args(), developer)).code).toBe(0);
    expect((await forge(args(), developer)).code).toBe(0);
    const third = await forge(args(), developer);
    expect(third.code).toBe(1);
    expect(third.stderr).toMatch(/repository acme\/limited already has 2 unfinished \(pending or running\) runs, the most it may have at once \(2\)/);
  });
});

describe('the server applies retention on its own every FORGE_RETENTION_INTERVAL', () => {
  let s: Awaited<ReturnType<typeof start>>;
  afterAll(async () => {
    await s?.close();
  });

  it('deletes a run past FORGE_RUN_RETENTION without being asked', async () => {
    s = await start({ retentionInterval: '300ms', runRetention: '10d', logRetention: 'off' });
    const old = await finishedRun(s.server.ctx, 11);
    const kept = await finishedRun(s.server.ctx, 9);
    await eventually(() => s.server.store.getRun(old), (run) => run === undefined, 20_000);
    expect(await s.server.store.getRun(kept)).toMatchObject({ logs_expired_at: null });
  });
});

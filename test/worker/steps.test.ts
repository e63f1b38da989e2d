/** Running one CI step on a worker: real processes, real process groups, the real example monorepo. */
import { chmodSync, cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { tmpdir } from 'node:os';
import { basename, delimiter, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discover } from '../../src/config/discovery.ts';
import type { Step } from '../../src/config/project-config.ts';
import { KILL_GRACE_MS, findExecutable, formatDuration, runStep, type RunStepOptions } from '../../src/worker/steps.ts';

const temps: string[] = [];
function tempDir(prefix = 'forge-steps-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

const script = (run: string, extra: Partial<Step> = {}): Step => ({ name: 'step', action: 'script', run, ...extra });

/** Runs a step and keeps what it printed, per stream and interleaved. */
async function run(step: Step, options: Partial<RunStepOptions> = {}) {
  const chunks: { chunk: string; stream: 'stdout' | 'stderr' }[] = [];
  const outcome = await runStep(step, { cwd: options.cwd ?? tmpdir(), ...options, onOutput: (chunk, stream) => chunks.push({ chunk, stream }) });
  const of = (stream: 'stdout' | 'stderr') => chunks.filter((c) => c.stream === stream).map((c) => c.chunk).join('');
  return { outcome, chunks, stdout: of('stdout'), stderr: of('stderr') };
}

/** Whether a process is still running (a zombie waiting for its reaper counts as dead). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    // no /proc entry (gone, or no /proc on this system)
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitDead(pid: number, withinMs = 3_000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !alive(pid);
}

/** The pid a script printed as "pid <n>". */
function printedPid(stdout: string): number {
  const match = /pid (\d+)/.exec(stdout);
  if (!match) throw new Error(`no pid in output: ${stdout}`);
  return Number(match[1]);
}

const activeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('runStep: script steps', () => {
  it('succeeds and streams its output as it comes, stdout and stderr apart', async () => {
    const { outcome, stdout, stderr, chunks } = await run(script('echo first; sleep 0.2; echo second; echo oops >&2'));
    expect(outcome).toMatchObject({ status: 'success', exitCode: 0 });
    expect(outcome.error).toBeUndefined();
    expect(outcome.durationMs).toBeGreaterThanOrEqual(150);
    expect(stdout).toBe('first\nsecond\n');
    expect(stderr).toBe('oops\n');
    // "first" arrived on its own, before the sleep: streamed, not collected at the end.
    expect(chunks[0]).toEqual({ chunk: 'first\n', stream: 'stdout' });
  });

  it('passes the environment: worker env, then options.env, then step.env', async () => {
    const { outcome, stdout } = await run(
      script('echo "$FROM_OPTIONS $SHARED $FROM_STEP"', { env: { FROM_STEP: 'step', SHARED: 'from-step' } }),
      { env: { FROM_OPTIONS: 'options', SHARED: 'from-options' } },
    );
    expect(outcome.status).toBe('success');
    expect(stdout).toBe('options from-step step\n');
  });

  it('inherits the worker process environment', async () => {
    process.env.FORGE_STEPS_TEST_INHERITED = 'inherited';
    try {
      const { stdout } = await run(script('echo "$FORGE_STEPS_TEST_INHERITED"'));
      expect(stdout).toBe('inherited\n');
    } finally {
      delete process.env.FORGE_STEPS_TEST_INHERITED;
    }
  });

  it('runs in the given directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'marker.txt'), 'here\n');
    const { outcome, stdout } = await run(script('pwd; cat marker.txt'), { cwd: dir });
    expect(outcome.status).toBe('success');
    expect(stdout).toBe(`${realpathSync(dir)}\nhere\n`);
  });

  it('still finds the shell when the step sets PATH to nothing useful', async () => {
    const { outcome, stdout } = await run(script('echo "$PATH"'), { env: { PATH: tempDir() } });
    expect(outcome.status).toBe('success');
    expect(stdout).toContain('forge-steps-');
  });

  it('decodes UTF-8 split across output chunks', async () => {
    // "é" is C3 A9: the two bytes are written 200 ms apart, so they arrive as separate chunks.
    const { outcome, stdout } = await run(script("printf '\\303'; sleep 0.2; printf '\\251\\n'"));
    expect(outcome.status).toBe('success');
    expect(stdout).toBe('é\n');
    expect(stdout).not.toContain('\uFFFD');
  });

  it('reports a non-zero exit as failed and keeps the exit code', async () => {
    const { outcome, stderr } = await run(script('echo broken >&2; exit 3'));
    expect(outcome).toMatchObject({ status: 'failed', exitCode: 3, error: 'exited with code 3' });
    expect(stderr).toBe('broken\n');
  });

  it('reports a step killed by a signal', async () => {
    const { outcome } = await run(script('kill -9 $$'));
    expect(outcome).toMatchObject({ status: 'failed', exitCode: null, error: 'killed by signal SIGKILL' });
  });

  it('stops processes a finished step left running in the background', async () => {
    const started = Date.now();
    const { outcome, stdout } = await run(script('sleep 30 & echo "pid $!"'));
    expect(outcome.status).toBe('success');
    expect(Date.now() - started).toBeLessThan(KILL_GRACE_MS + 3_000);
    expect(await waitDead(printedPid(stdout))).toBe(true);
  });

  it('fails clearly, without running anything, when run is missing, the timeout is bad or the directory is absent', async () => {
    const noRun = await run({ name: 'lint', action: 'script' });
    expect(noRun.outcome).toMatchObject({ status: 'failed', exitCode: null });
    expect(noRun.outcome.error).toMatch(/script step "lint" has no command; add run:/);

    const badTimeout = await run(script('echo never', { timeout: 'soon' }));
    expect(badTimeout.outcome.status).toBe('failed');
    expect(badTimeout.outcome.error).toMatch(/invalid timeout "soon"/);
    expect(badTimeout.stdout).toBe('');

    const missingDir = await run(script('echo never'), { cwd: join(tempDir(), 'absent') });
    expect(missingDir.outcome.status).toBe('failed');
    expect(missingDir.outcome.error).toMatch(/working directory .*absent does not exist/);
  });

  it('leaves no timers or abort listeners behind', async () => {
    const controller = new AbortController();
    const before = activeTimeouts();
    const { outcome } = await run(script('echo done'), { timeoutMs: 60_000, signal: controller.signal });
    expect(outcome.status).toBe('success');
    // At most as many as before: a timer of an earlier test (a kill grace) may end meanwhile, but the
    // step's own 60 s timeout must not be left.
    expect(activeTimeouts()).toBeLessThanOrEqual(before);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('runStep: timeouts and cancellation', () => {
  it('kills a step that runs past options.timeoutMs, with its whole process group', async () => {
    const started = Date.now();
    // The sleep is a grandchild (the shell forks it and waits), so killing only the shell would not do.
    const { outcome, stdout } = await run(script('sleep 30 & echo "pid $!"; wait'), { timeoutMs: 500 });
    const took = Date.now() - started;
    expect(outcome).toMatchObject({ status: 'failed', error: 'timed out after 500ms' });
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(5_000);
    expect(await waitDead(printedPid(stdout))).toBe(true);
  });

  it('uses the smaller of step.timeout and options.timeoutMs, named as written', async () => {
    const stepWins = await run(script('sleep 30', { timeout: '1s' }), { timeoutMs: 60_000 });
    expect(stepWins.outcome).toMatchObject({ status: 'failed', error: 'timed out after 1s' });
    expect(stepWins.outcome.durationMs).toBeLessThan(5_000);

    const optionWins = await run(script('sleep 30', { timeout: '10m' }), { timeoutMs: 300 });
    expect(optionWins.outcome).toMatchObject({ status: 'failed', error: 'timed out after 300ms' });
  });

  it('follows SIGTERM with SIGKILL after the grace period', async () => {
    const started = Date.now();
    // TERM is ignored by the shell and (inherited) by the sleep: only SIGKILL ends them.
    const { outcome, stdout } = await run(script(`trap '' TERM; sleep 30 & echo "pid $!"; wait`), { timeoutMs: 300 });
    const took = Date.now() - started;
    expect(outcome).toMatchObject({ status: 'failed', exitCode: null, error: 'timed out after 300ms' });
    expect(took).toBeGreaterThanOrEqual(300 + KILL_GRACE_MS - 100);
    expect(took).toBeLessThan(300 + KILL_GRACE_MS + 5_000);
    expect(await waitDead(printedPid(stdout))).toBe(true);
  });

  it('cancels a running step when the signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    let pid: number | undefined;
    const outcome = await runStep(script('sleep 30 & echo "pid $!"; wait'), {
      cwd: tmpdir(),
      signal: controller.signal,
      onOutput: (chunk) => {
        pid = printedPid(chunk);
        controller.abort();
      },
    });
    expect(outcome).toMatchObject({ status: 'failed', error: 'cancelled' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(pid).toBeDefined();
    expect(await waitDead(pid!)).toBe(true);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('does not start a step whose signal is already aborted', async () => {
    const dir = tempDir();
    const { outcome } = await run(script('touch started'), { cwd: dir, signal: AbortSignal.abort() });
    expect(outcome).toMatchObject({ status: 'failed', exitCode: null, error: 'cancelled' });
    expect(() => readFileSync(join(dir, 'started'))).toThrow();
  });

  it('formats limits the way they are written', () => {
    expect([formatDuration(300), formatDuration(1_500), formatDuration(600_000), formatDuration(5_400_000)]).toEqual(['300ms', '1s500ms', '10m', '1h30m']);
  });
});

describe('runStep: earthly steps', () => {
  const earthlyStep: Step = { name: 'unit', action: 'earthly', target: '+test' };

  /** A directory holding a fake `earthly` that prints its arguments. */
  function fakeEarthly(): string {
    const dir = tempDir('forge-fake-earthly-');
    writeFileSync(join(dir, 'earthly'), '#!/bin/sh\necho "fake earthly: $*"\n');
    chmodSync(join(dir, 'earthly'), 0o755);
    return dir;
  }

  it('fails with what to do when earthly is not on the PATH of the step', async () => {
    const { outcome } = await run(earthlyStep, { env: { PATH: tempDir() } });
    expect(outcome.status).toBe('failed');
    expect(outcome.exitCode).toBeNull();
    expect(outcome.error?.startsWith('earthly is not installed on this worker:')).toBe(true);
    expect(outcome.error).toContain('step "unit"');
    expect(outcome.error).toContain('+test');
    expect(outcome.error).toMatch(/install Earthly/);
    expect(outcome.error).toContain('action: "script"');
  });

  it('does not take a non-executable file named earthly for Earthly', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'earthly'), '#!/bin/sh\necho no\n');
    chmodSync(join(dir, 'earthly'), 0o644);
    expect(findExecutable('earthly', dir, tmpdir())).toBeUndefined();
    const { outcome } = await run(earthlyStep, { env: { PATH: dir } });
    expect(outcome.error).toMatch(/^earthly is not installed on this worker:/);
  });

  it('runs earthly <target> in the project directory (no shell), found on the effective PATH', async () => {
    const bin = fakeEarthly();
    const cwd = tempDir();
    const { outcome, stdout } = await run(earthlyStep, { cwd, env: { PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` } });
    expect(outcome).toMatchObject({ status: 'success', exitCode: 0 });
    expect(stdout).toBe('fake earthly: +test\n');

    // step.env overrides options.env: the step's PATH is the one searched.
    const overridden = await run({ ...earthlyStep, target: '+build', env: { PATH: bin } }, { cwd, env: { PATH: tempDir() } });
    expect(overridden.outcome.status).toBe('success');
    expect(overridden.stdout).toContain('+build');
    expect(findExecutable('earthly', `${tempDir()}${delimiter}${bin}`, cwd)).toBe(join(bin, 'earthly'));
  });

  it('passes the step\'s secret variables to Earthly as --secret <NAME> (the value stays in the environment)', async () => {
    const dir = tempDir('forge-fake-earthly-');
    writeFileSync(join(dir, 'earthly'), '#!/bin/sh\necho "fake earthly: $*"\necho "NPM_TOKEN set: ${NPM_TOKEN:+yes}"\n');
    chmodSync(join(dir, 'earthly'), 0o755);
    const { outcome, stdout } = await run(earthlyStep, { env: { PATH: dir, NPM_TOKEN: 'canary-npm', DEPLOY_KEY: 'canary-deploy' }, earthlySecrets: ['NPM_TOKEN', 'DEPLOY_KEY'] });
    expect(outcome.status).toBe('success');
    expect(stdout).toBe('fake earthly: --secret NPM_TOKEN --secret DEPLOY_KEY +test\nNPM_TOKEN set: yes\n');
  });

  it('fails clearly when an earthly step has no target', async () => {
    const { outcome } = await run({ name: 'image', action: 'earthly' }, { env: { PATH: fakeEarthly() } });
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatch(/earthly step "image" has no target/);
  });
});

describe('runStep: the example monorepo', () => {
  it('runs every script step of every project, and each one passes', { timeout: 120_000 }, async () => {
    const source = resolve('examples/monorepo');
    const out = await discover(source);
    // A copy, so build outputs (dist/, caches) never land in the working tree; skipped as a fresh checkout would lack them.
    const root = join(tempDir('forge-monorepo-'), 'monorepo');
    cpSync(source, root, { recursive: true, filter: (path) => !['dist', 'node_modules', '__pycache__'].includes(basename(path)) });

    const ran: string[] = [];
    const skipped: string[] = [];
    const failures: string[] = [];
    for (const { phases } of out.phaseGroups) {
      for (const phase of phases) {
        for (const project of out.projects) {
          for (const step of project.phases[phase] ?? []) {
            const id = `${project.name}/${phase}/${step.name}`;
            if (step.action !== 'script') {
              skipped.push(id); // no Earthly on this machine
              continue;
            }
            const { outcome, stdout, stderr } = await run(step, { cwd: join(root, project.path), timeoutMs: 60_000 });
            ran.push(id);
            if (outcome.status !== 'success') failures.push(`${id}: ${outcome.error}\n${stdout}${stderr}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(ran.length).toBeGreaterThan(0);
    // Every project takes part in the required test phase; the gitignored scratch project is not discovered.
    expect(out.projects.map((p) => p.name).sort()).toEqual(['api', 'greeting', 'site', 'worker']);
    for (const project of out.projects) expect(ran.some((id) => id.startsWith(`${project.name}/`))).toBe(true);
    expect(ran).toContain('api/build/dist');
    console.info(`example monorepo: ran ${ran.length} script steps (${ran.join(', ')}); skipped ${skipped.length} earthly steps`);
  });
});

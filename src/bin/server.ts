/**
 * Composition root of `forge server`: picks each port's adapter from the settings (embedded by
 * default), wires the engine, the outbox relay and the HTTP app, and tears them down in order.
 * The API reads tracking images' signatures through registries of its own (short timeouts) with the
 * signing key's public half only.
 */
import type { FastifyInstance } from 'fastify';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { buildApp } from '../api/app.ts';
import type { UiAuthConfig } from '../api/web.routes.ts';
import { devIssuerSigner } from '../auth/github-oidc.ts';
import { startDispatcher, type Dispatcher } from '../engine/dispatcher.ts';
import { createGitHubNotifier, notifyPhaseProgress, type GitHubNotifierOptions } from '../engine/github.ts';
import { createRun, getRunTree } from '../engine/runs.ts';
import type { CrashPoint } from '../domain/faults.ts';
import { isRunTerminal } from '../domain/statuses.ts';
import { createGitHubClient } from '../gitops/github.client.ts';
import { seedRepository } from '../worker/git-workspace.ts';
import { jobQueueFactory, openExecutionObjects, serverWorkerCacheDir, startWorkerPool, workerTokenSource, type RunningWorkers } from './execution.ts';
import { openSignatureVerifier } from './registries.ts';
import { openDevIssuer, type DevIssuer } from '../auth/dev-issuer.ts';
import { createOidcVerifier } from '../auth/oidc.verifier.ts';
import type { TokenVerifier } from '../auth/token-verifier.ts';
import type { EngineContext } from '../engine/context.ts';
import { startEventRelay, type EventRelay } from '../engine/events.ts';
import { startRetentionJob } from '../engine/retention.ts';
import { systemClock, type EventPublisher, type RunOrchestrator, type Store } from '../engine/ports.ts';
import { EventBus } from '../queue/events.memory.ts';
import { connectNatsEvents } from '../queue/events.nats.ts';
import type { ArgoSettings, ExecutionSettings, ServerSettings } from '../settings/settings.ts';
import type { PodEnv } from '../engine/argo-workflow.ts';
import { argoOrchestrator } from '../queue/argo.orchestrator.ts';
import { openStore } from '../store/store.ts';
import { VERSION } from './version.ts';
import { startTracing } from './telemetry.ts';
import { createMetrics } from '../lib/metrics.ts';
import { Lru } from '../lib/lru.ts';
import { traceparentOf } from '../lib/tracing.ts';
import { instrumentQueue } from '../queue/instrumented.ts';
import type { JobQueue } from '../engine/ports.ts';

export { VERSION };

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  store: Store;
  ctx: EngineContext;
  bus: EventBus;
  relay: EventRelay;
  devIssuer: DevIssuer | undefined;
  dispatcher: Dispatcher;
  workers: RunningWorkers | undefined;
  /** The example pipeline's run, when started with `example`. */
  exampleRun: { id: string; created: boolean } | undefined;
  dashboard: Dashboard;
  close(): Promise<void>;
}

export interface Dashboard {
  url: string;
  /** The directory it is served from, and whether a build is there (index.html). */
  root: string;
  built: boolean;
  /** Dev issuer only: the dashboard URL with a 12 h dev token in its fragment. */
  devLoginUrl: string | undefined;
  /** What the server prints about it. */
  lines: string[];
}

export interface StartOptions {
  store?: Store;
  listen?: boolean;
  /**
   * Where the dashboard lines go once the server listens; default stdout, printed on the next turn of
   * the event loop so they follow the banner `forge server` prints when startServer returns.
   * `false`: not printed (they are in RunningServer.dashboard).
   */
  announce?: ((line: string) => void) | false;
}

/** The dashboard as `npm run build:web` leaves it in the package: <package root>/dist/web. */
export const PACKAGE_WEB_ROOT = fileURLToPath(new URL('../../dist/web', import.meta.url));
const DEV_LOGIN = { sub: 'dev', roles: ['developer', 'approver', 'operator'], ttlSeconds: 12 * 60 * 60 } as const;

/** What the dashboard is told about logging in: the dev issuer has no login page, only tokens. */
export function uiAuthConfig(settings: Pick<ServerSettings, 'oidc' | 'ui'>): UiAuthConfig {
  if (!settings.oidc) return { mode: 'dev', issuer: null, client_id: null, scopes: settings.ui.scopes, resource: null };
  return { mode: 'oidc', issuer: settings.oidc.issuer, client_id: settings.ui.clientId ?? null, scopes: settings.ui.scopes, resource: settings.ui.resource ?? null };
}

async function describeDashboard(url: string, root: string, devIssuer: DevIssuer | undefined): Promise<Dashboard> {
  const dashboardUrl = `${url.replace(/\/+$/, '')}/`;
  const built = existsSync(join(root, 'index.html'));
  const devLoginUrl = devIssuer ? `${dashboardUrl}#token=${await devIssuer.sign(DEV_LOGIN)}` : undefined;
  const lines = [`  dashboard: ${dashboardUrl}${built ? '' : `   (not built in ${root}: run \`npm run build:web\`)`}`];
  if (devLoginUrl) {
    lines.push(`  DEV-ONLY login link (dev issuer; signs you in as "${DEV_LOGIN.sub}" with roles ${DEV_LOGIN.roles.join(', ')} for 12 h; do not share): ${devLoginUrl}`);
  }
  return { url: dashboardUrl, root, built, devLoginUrl, lines };
}

/**
 * The test-only fault hook: at `point` this process is SIGKILLed by itself, exactly as `kill -9`
 * landing there would end it (no cleanup, no flushing), so fault tests hit that window every time.
 */
function crashAt(point: CrashPoint): (reached: CrashPoint) => void {
  return (reached) => {
    if (reached === point) process.kill(process.pid, 'SIGKILL');
  };
}

/** The repository `npm start` serves from the data dir, and the example it is seeded from. */
export const EXAMPLE_REPOSITORY = 'forge-examples/monorepo';
const EXAMPLE_SOURCE = fileURLToPath(new URL('../../examples/monorepo', import.meta.url));

export async function startServer(settings: ServerSettings, options: StartOptions = {}): Promise<RunningServer> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const tracing = await startTracing(settings.telemetry, 'forge-api');
    cleanups.push(() => tracing.shutdown());
    const metrics = createMetrics();
    const store = options.store ?? (await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir }));
    if (!options.store) cleanups.push(() => store.close());

    const bus = new EventBus();
    const publisher: EventPublisher = settings.natsUrl ? await connectNatsEvents(settings.natsUrl, bus) : bus;
    cleanups.push(() => publisher.close());

    let devIssuer: DevIssuer | undefined;
    let verifier: TokenVerifier;
    if (settings.oidc) {
      verifier = createOidcVerifier({ issuer: settings.oidc.issuer, audience: settings.oidc.audience, clientId: settings.oidc.clientId });
    } else {
      devIssuer = await openDevIssuer(settings.dataDir);
      verifier = devIssuer.verifier;
    }

    const { execution } = settings;
    const objects = await openExecutionObjects(execution, settings.dataDir);
    cleanups.push(() => objects.close());
    const openQueue = jobQueueFactory(execution, objects);

    const signatures = openSignatureVerifier(execution.registries, settings.dataDir);
    cleanups.push(() => signatures.close());

    const webRoot = settings.webRoot ?? PACKAGE_WEB_ROOT;
    const relayRef: { relay?: EventRelay } = {};
    const dispatcherRef: { dispatcher?: Dispatcher } = {};
    const ctx: EngineContext = {
      store, clock: systemClock, eventsWritten: () => relayRef.relay?.nudge(),
      environments: settings.environments, approvalTtlMs: settings.approvalTtlMs,
      releaseRegistry: settings.releaseRegistry, runTimeoutMs: settings.runTimeoutMs,
      maxActiveRunsPerRepository: settings.maxActiveRunsPerRepository,
      runChanged: (id) => dispatcherRef.dispatcher?.nudge(id), objects, signatures: signatures.verifier,
      ...(settings.crashAfter ? { crashPoint: crashAt(settings.crashAfter) } : {}),
      telemetry: {
        traceparent: () => traceparentOf(),
        stepFinished: (step) => {
          if (step.started_at && step.completed_at) metrics.stepDuration.observe({ status: step.status }, Math.max(0, step.completed_at.getTime() - step.started_at.getTime()) / 1000);
        },
      },
    };
    const app = await buildApp({
      ctx, verifier, bus, rateLimits: settings.rateLimits, logLevel: settings.logLevel, version: VERSION,
      github: {
        webhookSecret: settings.github.webhookSecret, registeredRepositories: settings.github.repositories,
        signPlatformToken: devIssuer ? devIssuerSigner(devIssuer) : undefined,
        oidc: { issuer: settings.github.oidcIssuer, jwksUrl: settings.github.oidcJwksUrl, audience: settings.github.oidcAudience, maxTtlSeconds: settings.github.tokenTtlSeconds },
      },
      web: { root: webRoot, authConfig: uiAuthConfig(settings) },
      metrics,
      retention: settings.retention,
    });
    cleanups.push(() => app.close());

    const { github } = settings;
    const githubClient = github.token ? createGitHubClient({ token: github.token, ...(github.apiUrl ? { baseUrl: github.apiUrl } : {}) }) : undefined;
    const { orchestrator } = settings;
    const notifierOptions: GitHubNotifierOptions = {
      publicUrl: settings.publicUrl, log: (message, error) => app.log.warn({ err: error }, message),
      // The Argo Server serves the Argo UI: /workflows/<namespace>/<name> is a Workflow's page.
      ...(orchestrator.kind === 'argo' ? { workflowUrl: (name: string) => `${orchestrator.serverUrl}/workflows/${orchestrator.namespace}/${name}` } : {}),
    };
    if (githubClient) {
      const notifier = createGitHubNotifier(ctx, githubClient, notifierOptions);
      ctx.groupDispatched = (run, phases) => void notifyPhaseProgress(githubClient, run, phases, notifierOptions);
      const unsubscribe = bus.subscribe((event) => void notifier.onEvent(event));
      cleanups.push(async () => unsubscribe());
    }

    const relay = startEventRelay(store, publisher, { onError: (error) => app.log.warn({ err: error }, 'event relay pass failed; retrying') });
    relayRef.relay = relay;
    cleanups.push(() => relay.stop());

    // The run's stored traceparent, for every job published for it (a group's tasks ask at once);
    // looked up only when traces are exported.
    const traceContexts = new Lru<string, Promise<string | null | undefined>>(1000);
    const runTraceContext = (runId: string) => {
      let found = traceContexts.get(runId);
      if (!found) {
        found = store.getRun(runId).then((run) => run?.trace_context, (error: unknown) => {
          traceContexts.delete(runId);
          throw error;
        });
        traceContexts.set(runId, found);
      }
      return found;
    };
    // In-process workers' job lines at debug: `npm start` prints the pipeline's progress itself.
    const quieter = (component: string) => {
      const log = app.log.child({ component });
      return { info: (fields: Record<string, unknown>, message: string) => log.debug(fields, message), warn: (fields: Record<string, unknown>, message: string) => log.warn(fields, message) };
    };
    const instrument = (queue: JobQueue, component: string) => instrumentQueue(queue, { metrics, ...(tracing.enabled ? { runTraceContext } : {}), log: quieter(component) });
    const dispatcherQueue = instrument(await openQueue('forge-dispatcher'), 'dispatcher');
    cleanups.push(() => dispatcherQueue.close());
    metrics.watchQueue(() => dispatcherQueue.lag());
    const dispatcher = await startDispatcher(ctx, {
      queue: dispatcherQueue, objects,
      ...(settings.orchestrator.kind === 'argo' ? { orchestrator: argoOrchestratorOf(settings.orchestrator, execution) } : {}),
      log: (message, error, fields) => app.log.warn({ err: error, ...fields }, message),
    });
    dispatcherRef.dispatcher = dispatcher;
    cleanups.push(() => dispatcher.stop());

    const retention = startRetentionJob(ctx, settings.retention, {
      onPass: (report) => {
        if (report.runs_deleted + report.runs_logs_expired + report.objects_deleted > 0) app.log.info({ retention: report }, 'retention applied');
      },
      onError: (error) => app.log.warn({ err: error }, 'retention pass failed; the next pass tries again'),
    });
    cleanups.push(() => retention.stop());

    let url = settings.publicUrl;
    let apiUrl = settings.publicUrl;
    if (options.listen !== false) {
      await app.listen({ host: settings.host, port: settings.port });
      const address = app.server.address();
      if (address && typeof address === 'object') {
        if (settings.port === 0) url = url.replace(/:0$/, `:${address.port}`);
        // In-process workers talk to this very process, whatever address users reach it at.
        const host = address.family === 'IPv6' ? `[${address.address === '::' ? '::1' : address.address}]` : address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
        apiUrl = `http://${host}:${address.port}`;
      }
    }
    const dashboard = await describeDashboard(url, webRoot, devIssuer);
    const announce = options.announce ?? ((line: string) => console.log(line));
    if (options.listen !== false && announce !== false) setImmediate(() => dashboard.lines.forEach((line) => announce(line)));

    let workers: RunningWorkers | undefined;
    if (settings.inProcessWorkers.length > 0 && options.listen !== false) {
      const workerQueue = instrument(await openQueue('forge-server-workers'), 'worker');
      cleanups.push(() => workerQueue.close());
      workers = await startWorkerPool({
        execution, types: settings.inProcessWorkers, apiUrl, token: workerTokenSource(execution, devIssuer),
        cacheDir: serverWorkerCacheDir(settings.dataDir), objects, queue: workerQueue, dataDir: settings.dataDir,
        github: { token: settings.github.token, apiUrl: settings.github.apiUrl }, log: quieter('worker'),
      });
      // Stopped before the dispatcher and the app: cleanups run in reverse.
      cleanups.push(() => workers!.stop());
    }

    let exampleRun: RunningServer['exampleRun'];
    if (settings.example) {
      const { commitSha } = await seedRepository({
        bareDir: join(settings.dataDir, 'git', `${EXAMPLE_REPOSITORY}.git`), sourceDir: EXAMPLE_SOURCE, message: 'Forge example monorepo',
      });
      const { run, created } = await createRun(ctx, {
        repository: EXAMPLE_REPOSITORY, branch: 'main', commit_sha: commitSha, trigger_type: 'push', triggered_by: 'forge-example',
      }, { actor: 'forge-example', mayActForOthers: true });
      exampleRun = { id: run.id, created };
    }
    return { app, url, store, ctx, bus, relay, devIssuer, dispatcher, workers, exampleRun, dashboard, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * Argo Workflows from the settings: dispatcher pods reach NATS and the API as configured, in the
 * same NATS namespace, and report with the token of a Kubernetes Secret (never put in the Workflow).
 */
function argoOrchestratorOf(argo: ArgoSettings, execution: ExecutionSettings): RunOrchestrator {
  const env: PodEnv[] = [
    { name: 'NATS_URL', value: execution.natsUrl ?? '' },
    { name: 'FORGE_URL', value: argo.apiUrl },
    ...(execution.natsNamespace ? [{ name: 'FORGE_NATS_NAMESPACE', value: execution.natsNamespace }] : []),
    // Every process that opens the queue brings the consumers to its ack wait: the pods must agree.
    { name: 'FORGE_ACK_WAIT', value: String(execution.ackWaitMs) },
    { name: 'FORGE_WORKER_TOKEN', valueFrom: { secretKeyRef: { name: argo.tokenSecret.name, key: argo.tokenSecret.key } } },
  ];
  return argoOrchestrator({
    serverUrl: argo.serverUrl, token: argo.token, namespace: argo.namespace, serviceAccount: argo.serviceAccount, image: argo.image,
    parallelism: argo.parallelism, activeDeadlineSeconds: 86_400, env,
  });
}

/**
 * Prints a run's progress as lines (task started/finished, run finished) until it ends; what
 * `npm start` shows of the example pipeline. Stops quietly when the server closes.
 */
export async function followRun(running: RunningServer, runId: string, print: (line: string) => void, intervalMs = 500): Promise<void> {
  const seen = new Map<string, string>();
  for (;;) {
    let tree;
    try {
      tree = await getRunTree(running.ctx, runId);
    } catch {
      return;
    }
    for (const phase of tree.phases) {
      for (const task of phase.tasks) {
        const key = `${phase.phase_name}/${task.project_name}`;
        if (seen.get(key) === task.status || task.status === 'pending') continue;
        seen.set(key, task.status);
        print(`${key}: ${task.status}${task.error ? ` (${task.error})` : ''}`);
      }
    }
    for (const build of await running.ctx.store.listRunReleaseBuilds(runId)) {
      const key = `release/${build.project}#${build.run_attempt ?? 1}`;
      if (seen.get(key) === build.status) continue;
      seen.set(key, build.status);
      const release = build.release_id ? await running.ctx.store.getRelease(build.release_id) : undefined;
      print(`release ${build.project}: ${build.status}${release ? ` → release ${release.release_number} ${release.oci_uri}` : ''}${build.error_message ? ` (${build.error_message})` : ''}`);
    }
    if (isRunTerminal(tree.status)) {
      const seconds = tree.completed_at ? Math.round((tree.completed_at.getTime() - tree.started_at.getTime()) / 100) / 10 : undefined;
      print(`run ${tree.id}: ${tree.status}${seconds !== undefined ? ` in ${seconds}s` : ''}${tree.error_message ? ` (${tree.error_message})` : ''}`);
      return;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

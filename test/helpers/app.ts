/**
 * A real Forge app over a test store: dev issuer and GitOps repo in a temp dir, a clock the test
 * can move, rate limits as the test wants them. Requests go through `app.inject()`. A dispatcher
 * and an in-process release worker (deployment jobs only) carry deployments to the GitOps repo.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/api/app.ts';
import type { WebOptions } from '../../src/api/web.routes.ts';
import { openDevIssuer, type DevIssuer } from '../../src/auth/dev-issuer.ts';
import type { Role } from '../../src/domain/identity.ts';
import { DEFAULT_POLICIES, type EnvironmentPolicy } from '../../src/domain/policy.ts';
import type { EngineContext } from '../../src/engine/context.ts';
import { startEventRelay, type EventRelay } from '../../src/engine/events.ts';
import { createGitGitOps, type GitGitOps } from '../../src/gitops/git.gitops.ts';
import { startDispatcher, type Dispatcher } from '../../src/engine/dispatcher.ts';
import type { GitOpsWriter, JobConsumer, ObjectStore, SignatureVerifier } from '../../src/engine/ports.ts';
import { createMemoryJobQueue, MemoryBroker } from '../../src/queue/jobs.memory.ts';
import { deploymentHandler } from '../../src/worker/deployment-handler.ts';
import { EventBus } from '../../src/queue/events.memory.ts';
import type { RateLimits } from '../../src/settings/settings.ts';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { truncateAll, type StoreAdapter, type TestStore } from './stores.ts';

export interface TestApp {
  app: FastifyInstance;
  ctx: EngineContext;
  bus: EventBus;
  relay: EventRelay;
  issuer: DevIssuer;
  gitops: GitGitOps;
  /** The writer deployment jobs use: the GitOps repo, unless a test swaps it (setGitOps). */
  setGitOps(writer: GitOpsWriter | undefined): void;
  dataDir: string;
  clock: { now(): Date; advance(ms: number): void };
  token(sub: string, roles: Role[]): Promise<string>;
  close(): Promise<void>;
}

export async function startTestApp(test: TestStore, options: {
  rateLimits?: RateLimits | 'off'; approvalTtlMs?: number; environments?: EnvironmentPolicy[];
  /** A dispatcher and a deployment worker of the app's own (default); off when the test runs its own dispatcher. */
  deploymentWorker?: boolean;
  /** Step logs (none by default: log reads answer 503). */
  objects?: ObjectStore;
  /** Tracking images' signatures (none by default: signature reads answer 503). */
  signatures?: SignatureVerifier;
  /** The dashboard and GET /v1/auth/config (buildApp's `web`). */
  web?: WebOptions;
} = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'forge-api-'));
  const issuer = await openDevIssuer(dataDir);
  const gitops = await createGitGitOps({ dataDir });
  const bus = new EventBus();
  let offset = 0;
  const clock = { now: () => new Date(Date.now() + offset), advance: (ms: number) => { offset += ms; } };
  const relayRef: { relay?: EventRelay; dispatcher?: Dispatcher } = {};
  const ctx: EngineContext = {
    store: test.store, clock, eventsWritten: () => relayRef.relay?.nudge(),
    environments: options.environments ?? DEFAULT_POLICIES.map((p) => ({ ...p })), approvalTtlMs: options.approvalTtlMs ?? 24 * 3600_000,
    releaseRegistry: 'registry.test/releases', runTimeoutMs: 24 * 3600_000, runChanged: (id) => relayRef.dispatcher?.nudge(id),
    ...(options.objects ? { objects: options.objects } : {}),
    ...(options.signatures ? { signatures: options.signatures } : {}),
  };
  let writer: GitOpsWriter = gitops;
  const pipeline = options.deploymentWorker === false ? undefined : await (async () => {
    const broker = new MemoryBroker();
    const queues = [createMemoryJobQueue(broker), createMemoryJobQueue(broker)] as const;
    const dispatcher = await startDispatcher(ctx, { queue: queues[0], sweepMs: 200 });
    relayRef.dispatcher = dispatcher;
    const consumer: JobConsumer = await queues[1].consume('release', deploymentHandler({ gitops: { writePointer: (p) => writer.writePointer(p) } }), { concurrency: 4 });
    return {
      dispatcher,
      async stop() {
        await consumer.stop();
        await dispatcher.stop();
        await Promise.all(queues.map((q) => q.close()));
      },
    };
  })();
  const app = await buildApp({
    ctx, verifier: issuer.verifier, bus, rateLimits: options.rateLimits ?? 'off', logLevel: process.env.TEST_LOG ?? 'silent',
    ...(options.web ? { web: options.web } : {}),
  });
  const relay = startEventRelay(test.store, bus, { intervalMs: 200 });
  relayRef.relay = relay;
  const tokens = new Map<string, string>();
  return {
    app, ctx, bus, relay, issuer, gitops, dataDir, clock,
    setGitOps(next) {
      writer = next ?? gitops;
    },
    async token(sub, roles) {
      const key = `${sub}:${roles.join(',')}`;
      let token = tokens.get(key);
      if (!token) {
        token = await issuer.sign({ sub, roles });
        tokens.set(key, token);
      }
      return token;
    },
    async close() {
      await pipeline?.stop();
      await relay.stop();
      await app.close();
      await gitops.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let shaCounter = 0;
/** A valid 40-hex commit SHA: the SHA-1 of `seed`, or a fresh one per call. */
export function sha(seed?: string): string {
  return createHash('sha1').update(seed ?? `${process.pid}-${shaCounter++}-${Math.random()}`).digest('hex');
}

export type Call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token?: string, payload?: unknown) => Promise<LightMyRequestResponse>;

export interface ApiSuite {
  /** The app of the current adapter (set in beforeAll). */
  readonly t: TestApp;
  readonly test: TestStore;
  /** Signed tokens by the names given to apiSuite. */
  readonly tokens: Record<string, string>;
  call: Call;
}

/**
 * Registers the hooks of an API suite on one store adapter: a fresh database and app per file, the
 * given identities' tokens, empty tables before each test, and a skip with the reason when the
 * adapter's service is unavailable (which only happens outside CI).
 */
export function apiSuite(adapter: StoreAdapter, identities: Record<string, [string, Role[]]>, options: Parameters<typeof startTestApp>[1] = {}): ApiSuite {
  const state: { t?: TestApp; test?: TestStore; tokens: Record<string, string> } = { tokens: {} };
  beforeAll(async () => {
    if (adapter.unavailable) return;
    state.test = await adapter.open();
    state.t = await startTestApp(state.test, options);
    for (const [key, [sub, roles]] of Object.entries(identities)) state.tokens[key] = await state.t.token(sub, roles);
  });
  afterAll(async () => {
    await state.t?.close();
    await state.test?.close();
  });
  beforeEach(async (context) => {
    if (adapter.unavailable) context.skip(adapter.unavailable);
    if (state.test) await truncateAll(state.test);
  });
  const must = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('apiSuite used outside its tests');
    return value;
  };
  return {
    get t() { return must(state.t); },
    get test() { return must(state.test); },
    tokens: state.tokens,
    call: (method, url, token, payload) => must(state.t).app.inject({
      method, url,
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
      ...(payload !== undefined ? { payload: payload as object } : {}),
    }),
  };
}

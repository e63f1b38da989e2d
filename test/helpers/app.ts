/**
 * A real Forge app over a test store: dev issuer and GitOps repo in a temp dir, a clock the test
 * can move, rate limits as the test wants them. Requests go through `app.inject()`.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.ts';
import { openDevIssuer, type DevIssuer } from '../../src/auth/dev-issuer.ts';
import type { Role } from '../../src/domain/identity.ts';
import { DEFAULT_POLICIES } from '../../src/domain/policy.ts';
import type { EngineContext } from '../../src/engine/context.ts';
import { startEventRelay, type EventRelay } from '../../src/engine/events.ts';
import { createGitGitOps, type GitGitOps } from '../../src/gitops/git.gitops.ts';
import { EventBus } from '../../src/queue/events.memory.ts';
import type { RateLimits } from '../../src/settings/settings.ts';
import type { TestStore } from './stores.ts';

export interface TestApp {
  app: FastifyInstance;
  ctx: EngineContext;
  bus: EventBus;
  relay: EventRelay;
  issuer: DevIssuer;
  gitops: GitGitOps;
  dataDir: string;
  clock: { now(): Date; advance(ms: number): void };
  token(sub: string, roles: Role[]): Promise<string>;
  close(): Promise<void>;
}

export async function startTestApp(test: TestStore, options: { rateLimits?: RateLimits | 'off'; approvalTtlMs?: number } = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'forge-api-'));
  const issuer = await openDevIssuer(dataDir);
  const gitops = await createGitGitOps({ dataDir });
  const bus = new EventBus();
  let offset = 0;
  const clock = { now: () => new Date(Date.now() + offset), advance: (ms: number) => { offset += ms; } };
  const relayRef: { relay?: EventRelay } = {};
  const ctx: EngineContext = {
    store: test.store, clock, eventsWritten: () => relayRef.relay?.nudge(),
    environments: DEFAULT_POLICIES.map((p) => ({ ...p })), approvalTtlMs: options.approvalTtlMs ?? 24 * 3600_000,
    releaseRegistry: 'registry.test/releases', gitops,
  };
  const app = await buildApp({ ctx, verifier: issuer.verifier, bus, rateLimits: options.rateLimits ?? 'off', logLevel: process.env.TEST_LOG ?? 'silent' });
  const relay = startEventRelay(test.store, bus, { intervalMs: 200 });
  relayRef.relay = relay;
  const tokens = new Map<string, string>();
  return {
    app, ctx, bus, relay, issuer, gitops, dataDir, clock,
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

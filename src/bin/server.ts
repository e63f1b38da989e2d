/**
 * Composition root of `forge server`: picks each port's adapter from the settings (embedded by
 * default), wires the engine, the outbox relay and the HTTP app, and tears them down in order.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.ts';
import { openDevIssuer, type DevIssuer } from '../auth/dev-issuer.ts';
import { createOidcVerifier } from '../auth/oidc.verifier.ts';
import type { TokenVerifier } from '../auth/token-verifier.ts';
import type { EngineContext } from '../engine/context.ts';
import { startEventRelay, type EventRelay } from '../engine/events.ts';
import { systemClock, type EventPublisher, type Store } from '../engine/ports.ts';
import { createGitGitOps } from '../gitops/git.gitops.ts';
import { EventBus } from '../queue/events.memory.ts';
import { connectNatsEvents } from '../queue/events.nats.ts';
import type { ServerSettings } from '../settings/settings.ts';
import { openStore } from '../store/store.ts';
import { VERSION } from './version.ts';

export { VERSION };

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  store: Store;
  ctx: EngineContext;
  bus: EventBus;
  relay: EventRelay;
  devIssuer: DevIssuer | undefined;
  close(): Promise<void>;
}

export async function startServer(settings: ServerSettings, options: { store?: Store; listen?: boolean } = {}): Promise<RunningServer> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
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

    const gitops = await createGitGitOps({ url: settings.gitopsUrl, dataDir: settings.dataDir });
    cleanups.push(() => gitops.close());

    const relayRef: { relay?: EventRelay } = {};
    const ctx: EngineContext = {
      store, clock: systemClock, eventsWritten: () => relayRef.relay?.nudge(),
      environments: settings.environments, approvalTtlMs: settings.approvalTtlMs,
      releaseRegistry: settings.releaseRegistry, gitops, runTimeoutMs: 24 * 3600_000, runChanged: () => undefined,
    };
    const app = await buildApp({ ctx, verifier, bus, rateLimits: settings.rateLimits, logLevel: settings.logLevel, version: VERSION });
    const relay = startEventRelay(store, publisher, { onError: (error) => app.log.warn({ err: error }, 'event relay pass failed; retrying') });
    relayRef.relay = relay;
    cleanups.push(() => relay.stop());
    cleanups.push(() => app.close());

    let url = settings.publicUrl;
    if (options.listen !== false) {
      await app.listen({ host: settings.host, port: settings.port });
      const address = app.server.address();
      if (address && typeof address === 'object' && settings.port === 0) url = url.replace(/:0$/, `:${address.port}`);
    }
    return { app, url, store, ctx, bus, relay, devIssuer, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

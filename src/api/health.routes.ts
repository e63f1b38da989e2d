/** Liveness, readiness (the database answers) and Prometheus metrics; no token needed. */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import type { EngineContext } from '../engine/context.ts';
import { errorBody } from './errors.ts';

export const healthRoutes = (ctx: EngineContext, metrics: Registry): FastifyPluginAsync => async (app) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await ctx.store.ping();
      return { status: 'ready', store: ctx.store.kind };
    } catch {
      return reply.status(503).send(errorBody('service_unavailable', 'database is not reachable', { store: ctx.store.kind }));
    }
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('content-type', metrics.contentType).send(await metrics.metrics()));
};

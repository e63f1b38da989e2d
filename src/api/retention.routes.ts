/** Beyond the seed: POST /v1/retention applies the server's retention now (`forge retention run`); operators only. */
import type { FastifyPluginAsync } from 'fastify';
import type { EngineContext } from '../engine/context.ts';
import { applyRetention, type RetentionOptions } from '../engine/retention.ts';
import { errorResponses, retentionBody, retentionResponse } from './schemas.ts';

export const retentionRoutes = (ctx: EngineContext, retention: Pick<RetentionOptions, 'runsOlderThanMs' | 'logsOlderThanMs'>): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { dry_run?: boolean } | undefined }>('/v1/retention', {
    config: { permission: 'retention:run' },
    schema: {
      summary: 'Apply retention now with the server\'s FORGE_RUN_RETENTION and FORGE_LOG_RETENTION (beyond the seed): finished runs and step logs past their age are deleted; releases, deployments and approvals are kept',
      tags: ['retention'], body: retentionBody, response: { 200: retentionResponse, ...errorResponses },
    },
  }, async (request) => applyRetention(ctx, { ...retention, dryRun: request.body?.dry_run === true }));
};

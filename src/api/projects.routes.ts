/** The projects overview (beyond the seed): what has been released and what is deployed where. */
import type { FastifyPluginAsync } from 'fastify';
import { listProjects } from '../engine/projects.ts';
import type { RouteDeps } from './app.ts';
import { errorResponses, projectsResponse } from './schemas.ts';

export const projectRoutes = ({ ctx }: RouteDeps): FastifyPluginAsync => async (app) => {
  app.get('/v1/projects', {
    config: { permission: 'read' },
    schema: {
      summary: 'Every project with at least one release (beyond the seed): release count, latest release, active deployments with their approvers',
      tags: ['releases'], response: { 200: projectsResponse, ...errorResponses },
    },
  }, async () => ({ projects: await listProjects(ctx) }));
};

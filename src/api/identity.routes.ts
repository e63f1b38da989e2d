/** Who is calling (beyond the seed): the dashboard shows it and hides what the caller may not do. */
import type { FastifyPluginAsync } from 'fastify';
import { PERMISSIONS, permissionsOf } from '../auth/permissions.ts';
import { errorResponses, meResponse } from './schemas.ts';

export const identityRoutes = (): FastifyPluginAsync => async (app) => {
  app.get('/v1/me', {
    config: { permission: 'read' },
    schema: {
      summary: 'The caller (beyond the seed): subject, username, roles and the permissions they grant', tags: ['auth'],
      response: { 200: meResponse, ...errorResponses },
    },
  }, async (request) => {
    const granted = permissionsOf(request.identity);
    return {
      subject: request.identity.subject,
      username: request.identity.actor,
      roles: request.identity.roles,
      // In the catalogue's order, so the answer does not depend on the order of the token's roles.
      permissions: PERMISSIONS.filter((p) => granted.has(p)),
    };
  });
};

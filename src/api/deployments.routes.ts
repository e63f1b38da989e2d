/** Deployments (create, current, history) and approvals (create, status, revoke). */
import type { FastifyPluginAsync } from 'fastify';
import { can, deployPermissionFor, requirePermission } from '../auth/permissions.ts';
import type { AuditFilter } from '../engine/ports.ts';
import { createApproval, listApprovals, listAudit, revokeApproval } from '../engine/approvals.ts';
import { currentDeployment, deploymentHistory, getDeployment, requestDeployment, rollbackTarget, type DeploymentRequest } from '../engine/deployments.ts';
import { environmentPolicy } from '../engine/environments.ts';
import type { RouteDeps } from './app.ts';
import { repositoryOf } from './releases.routes.ts';
import {
  S, approvalSchema, approvalStatusResponse, auditQuery, auditResponse, createApprovalBody, createApprovalResponse, createDeploymentBody,
  createDeploymentResponse, deploymentHistoryResponse, deploymentParams, deploymentSchema, environmentsResponse, errorResponses, pageQuery,
  rollbackTargetResponse,
} from './schemas.ts';

type TargetParams = { environment: string; owner: string; name: string; project: string };

export const deploymentRoutes = ({ ctx, limiters }: RouteDeps): FastifyPluginAsync => async (app) => {
  app.post<{ Body: DeploymentRequest }>('/v1/deployments', {
    // The least a deployment needs; environments other than dev need deployments:create:any (below).
    config: { permission: 'deployments:create:dev' },
    schema: {
      summary: 'Deploy a release to an environment (policy and approvals permitting): recorded pending, committed by a deployment job; follow it with GET /v1/deployments/{id}. Needs deployments:create:any for environments other than dev',
      tags: ['deployments'],
      body: createDeploymentBody, response: { 201: createDeploymentResponse, ...errorResponses },
    },
  }, async (request, reply) => {
    // An unknown environment is a 422 listing the real ones, whoever asks.
    environmentPolicy(ctx, request.body.environment);
    requirePermission(request.identity, deployPermissionFor(request.body.environment));
    limiters.deploymentCreate?.take(request.body.environment);
    const deployment = await requestDeployment(ctx, request.body, request.identity.actor, {
      overrideFreeze: can(request.identity, 'deployments:override-freeze'),
    });
    return reply.status(201).send({ id: deployment.id, deployment_id: deployment.id, gitops_commit_sha: deployment.gitops_commit_sha, status: deployment.status });
  });

  app.get<{ Params: { id: string } }>('/v1/deployments/:id', {
    config: { permission: 'read' },
    schema: {
      summary: 'A deployment by id (beyond the seed): pending until its pointer is committed, then active (or failed with the error)',
      tags: ['deployments'],
      params: { type: 'object', properties: { id: S.uuid }, required: ['id'], additionalProperties: false },
      response: { 200: deploymentSchema, ...errorResponses },
    },
  }, async (request) => getDeployment(ctx, request.params.id));

  app.get<{ Params: TargetParams }>('/v1/deployments/:environment/:owner/:name/:project/rollback-target', {
    config: { permission: 'read' },
    schema: {
      summary: 'The release a rollback would deploy (beyond the seed): the highest-numbered release below the active one that was once active here',
      tags: ['deployments'], params: deploymentParams, response: { 200: rollbackTargetResponse, ...errorResponses },
    },
  }, async (request) => {
    const p = request.params;
    const { release, current } = await rollbackTarget(ctx, p.environment, repositoryOf(p), p.project);
    return { release_id: release.id, release_number: release.release_number, commit_sha: release.commit_sha, aliases: release.aliases, current };
  });

  app.get('/v1/environments', {
    config: { permission: 'read' },
    schema: { summary: 'The environments and their policies (beyond the seed)', tags: ['deployments'], response: { 200: environmentsResponse, ...errorResponses } },
  }, async () => ({ environments: ctx.environments }));

  app.get<{ Querystring: AuditFilter & { limit: number; offset: number } }>('/v1/audit', {
    config: { permission: 'read' },
    schema: {
      summary: 'The audit trail of approvals and deployments, newest first (beyond the seed)', tags: ['approvals'],
      querystring: auditQuery, response: { 200: auditResponse, ...errorResponses },
    },
  }, async (request) => {
    const { limit = 20, offset = 0, ...filter } = request.query;
    const page = await listAudit(ctx, filter, limit, offset);
    return { entries: page.rows, total: page.total, limit, offset };
  });

  app.get<{ Params: TargetParams }>('/v1/deployments/:environment/:owner/:name/:project', {
    config: { permission: 'read' },
    schema: { summary: 'The active deployment of a project in an environment', tags: ['deployments'], params: deploymentParams, response: { 200: deploymentSchema, ...errorResponses } },
  }, async (request) => {
    const p = request.params;
    return currentDeployment(ctx, p.environment, repositoryOf(p), p.project);
  });

  app.get<{ Params: TargetParams; Querystring: { limit: number; offset: number } }>('/v1/deployments/:environment/:owner/:name/:project/history', {
    config: { permission: 'read' },
    schema: {
      summary: 'Deployments of a project in an environment, newest first', tags: ['deployments'],
      params: deploymentParams, querystring: pageQuery, response: { 200: deploymentHistoryResponse, ...errorResponses },
    },
  }, async (request) => {
    const p = request.params;
    const { limit, offset } = request.query;
    const page = await deploymentHistory(ctx, p.environment, repositoryOf(p), p.project, limit, offset);
    return { deployments: page.rows, total: page.total, limit, offset };
  });

  app.post<{ Body: { release_id: string; environment: string; justification: string } }>('/v1/approvals', {
    config: { permission: 'approvals:create' },
    schema: { summary: 'Approve a release for an environment (as yourself)', tags: ['approvals'], body: createApprovalBody, response: { 201: createApprovalResponse, ...errorResponses } },
  }, async (request, reply) => reply.status(201).send(await createApproval(ctx, request.body, request.identity.actor)));

  app.get<{ Params: { release_id: string; environment: string } }>('/v1/approvals/:release_id/:environment', {
    config: { permission: 'read' },
    schema: {
      summary: 'Approval status of a release for an environment: the newest active approval (else the newest), plus all approvals',
      tags: ['approvals'],
      params: { type: 'object', properties: { release_id: S.uuid, environment: S.environment }, required: ['release_id', 'environment'], additionalProperties: false },
      response: { 200: approvalStatusResponse, ...errorResponses },
    },
  }, async (request) => {
    const approvals = await listApprovals(ctx, request.params.release_id, request.params.environment);
    const primary = approvals.find((a) => a.status === 'active') ?? approvals[0];
    return { ...primary, approvals };
  });

  app.delete<{ Params: { id: string } }>('/v1/approvals/:id', {
    config: { permission: 'approvals:revoke' },
    schema: {
      summary: 'Revoke an approval', tags: ['approvals'],
      params: { type: 'object', properties: { id: S.uuid }, required: ['id'], additionalProperties: false },
      response: { 200: approvalSchema, ...errorResponses },
    },
  }, async (request) => revokeApproval(ctx, request.params.id, request.identity.actor));
};

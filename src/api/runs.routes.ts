/** Pipeline runs and the internal task/step status endpoints (service accounts only). */
import type { FastifyPluginAsync } from 'fastify';
import { requirePermission } from '../auth/permissions.ts';
import type { RunStatus, ReportedStatus, TriggerType } from '../domain/statuses.ts';
import { cancelRun, createRun, getRunTree, listRuns, reportStepStatus, reportTaskStatus } from '../engine/runs.ts';
import type { GithubContext } from '../domain/entities.ts';
import type { RouteDeps } from './app.ts';
import {
  S, createRunBody, createRunResponse, errorResponses, runListQuery, runListResponse, runTreeSchema,
  stepResponse, stepStatusBody, taskResponse, taskStatusBody,
} from './schemas.ts';

const idParams = { type: 'object', properties: { id: S.uuid }, required: ['id'], additionalProperties: false } as const;

export const runRoutes = ({ ctx, limiters }: RouteDeps): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { repository: string; branch: string; commit_sha: string; triggered_by?: string; trigger_type: TriggerType; github_context?: GithubContext } }>('/v1/runs', {
    schema: {
      summary: 'Create a pipeline run (idempotent per repository + commit)', tags: ['runs'], body: createRunBody,
      response: { 200: createRunResponse, 201: createRunResponse, ...errorResponses },
    },
  }, async (request, reply) => {
    requirePermission(request.identity, 'runs:create');
    limiters.runCreate?.take(request.body.repository);
    const { run, created } = await createRun(ctx, request.body, {
      actor: request.identity.actor,
      mayActForOthers: request.identity.roles.includes('service-account') || request.identity.roles.includes('operator'),
    });
    return reply.status(created ? 201 : 200).send({ id: run.id, status: run.status, started_at: run.started_at });
  });

  app.get<{ Querystring: { repository?: string; branch?: string; status?: RunStatus; limit: number; offset: number } }>('/v1/runs', {
    schema: { summary: 'List pipeline runs, newest first', tags: ['runs'], querystring: runListQuery, response: { 200: runListResponse, ...errorResponses } },
  }, async (request) => {
    const { limit, offset } = request.query;
    const page = await listRuns(ctx, { ...request.query });
    return { runs: page.rows, total: page.total, limit, offset };
  });

  app.get<{ Params: { id: string } }>('/v1/runs/:id', {
    schema: { summary: 'Get a run with its phases, tasks and steps', tags: ['runs'], params: idParams, response: { 200: runTreeSchema, ...errorResponses } },
  }, async (request) => {
    const run = await getRunTree(ctx, request.params.id);
    return { ...run, phases: run.phases.map((p) => ({ ...p, name: p.phase_name })) };
  });

  app.delete<{ Params: { id: string } }>('/v1/runs/:id', {
    schema: { summary: 'Cancel a run', tags: ['runs'], params: idParams, response: { 204: { type: 'null' }, ...errorResponses } },
  }, async (request, reply) => {
    requirePermission(request.identity, 'runs:cancel');
    await cancelRun(ctx, request.params.id, request.identity.actor);
    return reply.status(204).send();
  });

  app.put<{ Params: { id: string }; Body: { status: ReportedStatus; error?: string } }>('/v1/tasks/:id/status', {
    schema: { summary: 'Report a task status (internal, service accounts)', tags: ['internal'], params: idParams, body: taskStatusBody, response: { 200: taskResponse, ...errorResponses } },
  }, async (request) => {
    requirePermission(request.identity, 'internal:status');
    return reportTaskStatus(ctx, request.params.id, request.body.status, request.body.error);
  });

  app.put<{ Params: { id: string }; Body: { status: ReportedStatus; exit_code?: number | null; logs_s3_key?: string | null } }>('/v1/steps/:id/status', {
    schema: { summary: 'Report a step status (internal, service accounts)', tags: ['internal'], params: idParams, body: stepStatusBody, response: { 200: stepResponse, ...errorResponses } },
  }, async (request) => {
    requirePermission(request.identity, 'internal:status');
    return reportStepStatus(ctx, request.params.id, request.body);
  });

};

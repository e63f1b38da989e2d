/** Pipeline runs and the internal task/step status endpoints (service accounts only). */
import type { FastifyPluginAsync } from 'fastify';
import { requireRepository } from '../auth/permissions.ts';
import type { RunStatus, ReportedStatus, TriggerType } from '../domain/statuses.ts';
import { readStepLog } from '../engine/logs.ts';
import { applyJobReply, stageJobs } from '../engine/run-jobs.ts';
import type { DispatchStage, JobReply } from '../domain/jobs.ts';
import { searchStepLog, stepLogIndex } from '../engine/log-lines.ts';
import { cancelRun, claimTask, createRun, getRunTree, listRuns, reportStepStatus, reportTaskStatus, retryRun } from '../engine/runs.ts';
import type { GithubContext } from '../domain/entities.ts';
import type { RouteDeps } from './app.ts';
import { publishSpan } from '../lib/tracing.ts';
import {
  claimResponse, createRunBody, createRunResponse, errorResponses, idParams, logIndexResponse, logQuery, logResponse, logSearchQuery, logSearchResponse,
  jobReplyBody, runListQuery, runListResponse, runTreeSchema, stageJobsBody, stageJobsResponse, stepResponse, stepStatusBody, taskResponse, taskStatusBody,
} from './schemas.ts';


const LOG_HEARTBEAT_MS = 15_000;

export const runRoutes = ({ ctx, limiters, metrics }: RouteDeps): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { repository: string; branch: string; commit_sha: string; triggered_by?: string; trigger_type: TriggerType; github_context?: GithubContext } }>('/v1/runs', {
    config: { permission: 'runs:create' },
    schema: {
      summary: 'Create a pipeline run (idempotent per repository + commit)', tags: ['runs'], body: createRunBody,
      response: { 200: createRunResponse, 201: createRunResponse, ...errorResponses },
    },
  }, async (request, reply) => {
    requireRepository(request.identity, request.body.repository);
    limiters.runCreate?.take(request.body.repository);
    const { run, created } = await createRun(ctx, request.body, {
      actor: request.identity.actor,
      mayActForOthers: request.identity.roles.includes('service-account') || request.identity.roles.includes('operator'),
    });
    return reply.status(created ? 201 : 200).send({ id: run.id, status: run.status, started_at: run.started_at });
  });

  app.get<{ Querystring: { repository?: string; branch?: string; status?: RunStatus; limit: number; offset: number } }>('/v1/runs', {
    config: { permission: 'read' },
    schema: { summary: 'List pipeline runs, newest first', tags: ['runs'], querystring: runListQuery, response: { 200: runListResponse, ...errorResponses } },
  }, async (request) => {
    const { limit, offset } = request.query;
    const page = await listRuns(ctx, { ...request.query });
    return { runs: page.rows, total: page.total, limit, offset };
  });

  app.get<{ Params: { id: string } }>('/v1/runs/:id', {
    config: { permission: 'read' },
    schema: { summary: 'Get a run with its phases, tasks and steps', tags: ['runs'], params: idParams, response: { 200: runTreeSchema, ...errorResponses } },
  }, async (request) => {
    const run = await getRunTree(ctx, request.params.id);
    return { ...run, phases: run.phases.map((p) => ({ ...p, name: p.phase_name })) };
  });

  app.delete<{ Params: { id: string } }>('/v1/runs/:id', {
    config: { permission: 'runs:cancel' },
    schema: { summary: 'Cancel a run', tags: ['runs'], params: idParams, response: { 204: { type: 'null' }, ...errorResponses } },
  }, async (request, reply) => {
    await cancelRun(ctx, request.params.id, request.identity.actor);
    return reply.status(204).send();
  });

  app.post<{ Params: { id: string } }>('/v1/runs/:id/retry', {
    config: { permission: 'runs:create' },
    schema: {
      summary: 'Retry a failed or cancelled run: a new attempt re-runs only the tasks that did not succeed (beyond the seed)', tags: ['runs'],
      params: idParams, response: { 202: runTreeSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    if (request.identity.repository !== undefined) requireRepository(request.identity, (await getRunTree(ctx, request.params.id)).repository);
    await retryRun(ctx, request.params.id, request.identity.actor);
    const run = await getRunTree(ctx, request.params.id);
    return reply.status(202).send({ ...run, phases: run.phases.map((p) => ({ ...p, name: p.phase_name })) });
  });

  app.put<{ Params: { id: string }; Body: { status: ReportedStatus; error?: string; attempt?: number } }>('/v1/tasks/:id/status', {
    config: { permission: 'internal:status' },
    schema: { summary: 'Report a task status (internal, service accounts)', tags: ['internal'], params: idParams, body: taskStatusBody, response: { 200: taskResponse, ...errorResponses } },
  }, async (request) => reportTaskStatus(ctx, request.params.id, request.body.status, request.body.error, request.body.attempt));

  app.post<{ Params: { id: string } }>('/v1/tasks/:id/claim', {
    config: { permission: 'internal:status' },
    schema: {
      summary: 'Claim a task for a worker (internal): its attempt goes up by one and its steps start over', tags: ['internal'],
      params: idParams, response: { 200: claimResponse, ...errorResponses },
    },
  }, async (request) => claimTask(ctx, request.params.id));

  app.post<{ Params: { id: string }; Body: { stage: DispatchStage; group?: number } }>('/v1/runs/:id/jobs', {
    config: { permission: 'internal:status' },
    schema: {
      summary: 'The next jobs of a stage of the run, marked dispatched (internal: Argo dispatcher pods publish them)', tags: ['internal'],
      params: idParams, body: stageJobsBody, response: { 200: stageJobsResponse, ...errorResponses },
    },
  }, async (request) => {
    const answer = await stageJobs(ctx, request.params.id, request.body.stage, { group: request.body.group });
    if (answer.jobs.length === 0) return answer;
    // The pod publishes these jobs as they are, so their publication is traced and counted here,
    // under the run's trace, as the built-in dispatcher's are (decision 208).
    const stored = (await ctx.store.getRun(answer.run_id))?.trace_context;
    const jobs: typeof answer.jobs = [];
    for (const job of answer.jobs) await publishSpan(job, stored, 'nats', async (stamped) => void jobs.push(stamped));
    for (const job of jobs) metrics.jobsPublished.inc({ job_type: job.type });
    return { ...answer, jobs };
  });

  app.post<{ Body: JobReply }>('/v1/job-replies', {
    config: { permission: 'internal:status' },
    // Results up to 1 MiB travel inline (digest §2.4), inside the reply's own JSON.
    bodyLimit: 2 * 1_048_576,
    schema: {
      summary: 'A worker\'s reply to a job, handed over by the dispatcher pod that received it (internal)', tags: ['internal'],
      body: jobReplyBody, response: { 204: { type: 'null' }, ...errorResponses },
    },
  }, async (request, reply) => {
    const next = await applyJobReply(ctx, request.body, { objects: ctx.objects, log: (message, error) => request.log.warn({ err: error }, message) });
    if (next !== undefined) ctx.runChanged(next);
    return reply.status(204).send();
  });

  app.get<{ Params: { id: string }; Querystring: { offset: number; limit: number; follow?: string } }>('/v1/steps/:id/logs', {
    config: { permission: 'read' },
    schema: {
      summary: 'Read a step log by byte range; follow=1 streams it as server-sent events while the step runs', tags: ['runs'],
      params: idParams, querystring: logQuery, response: { 200: logResponse, ...errorResponses },
    },
  }, async (request, reply) => {
    const { offset, limit, follow } = request.query;
    const first = await readStepLog(ctx.store, ctx.objects, request.params.id, offset, limit);
    // HEAD never streams: its response has no body, so Node would hold its headers back for good.
    if ((follow !== '1' && follow !== 'true') || request.method === 'HEAD') return first;
    // Server-sent events: one `data:` event per range read, `event: end` once the log is complete.
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    let closed = false;
    request.raw.on('close', () => { closed = true; });
    // The next range is read only once the client has taken the last: a follower that stops
    // reading holds one range, not the whole log.
    const drained = () => new Promise<void>((resolve) => {
      const done = () => {
        out.off('drain', done);
        request.raw.off('close', done);
        resolve();
      };
      out.on('drain', done);
      request.raw.on('close', done);
    });
    let range = first;
    let lastWrite = Date.now();
    try {
      for (;;) {
        if (range.text.length > 0) {
          if (!out.write(`data: ${JSON.stringify(range)}\n\n`) && !closed) await drained();
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= LOG_HEARTBEAT_MS) {
          // A quiet step: a comment line keeps proxies from closing the stream.
          out.write(': heartbeat\n\n');
          lastWrite = Date.now();
        }
        if (range.complete || closed) break;
        if (range.next_offset >= range.size) await new Promise((r) => setTimeout(r, 250));
        range = await readStepLog(ctx.store, ctx.objects, request.params.id, range.next_offset, limit);
      }
      if (!closed) out.end(`event: end\ndata: ${JSON.stringify({ next_offset: range.next_offset, size: range.size })}\n\n`);
    } catch (error) {
      // The headers are sent: the failure goes in the stream; the client resumes from next_offset.
      request.log.warn({ err: error }, 'log stream stopped');
      if (!closed) out.end(`event: error\ndata: ${JSON.stringify({ next_offset: range.next_offset, message: 'the log could not be read; resume from next_offset' })}\n\n`);
    }
    return reply;
  });

  app.get<{ Params: { id: string } }>('/v1/steps/:id/logs/index', {
    config: { permission: 'read' },
    schema: {
      summary: 'A step log\'s line index (beyond the seed): its line count and the byte offset of every 1000th line; extended as a running step writes more',
      tags: ['runs'], params: idParams, response: { 200: logIndexResponse, ...errorResponses },
    },
  }, async (request) => stepLogIndex(ctx.store, ctx.objects, request.params.id));

  app.get<{ Params: { id: string }; Querystring: { q: string; limit: number; case: 0 | 1 } }>('/v1/steps/:id/logs/search', {
    config: { permission: 'read' },
    schema: {
      summary: 'Search a step log (beyond the seed): lines containing q literally, ANSI escapes removed, case-insensitive unless case=1',
      tags: ['runs'], params: idParams, querystring: logSearchQuery, response: { 200: logSearchResponse, ...errorResponses },
    },
  }, async (request) => {
    const { q, limit, case: caseSensitive } = request.query;
    return searchStepLog(ctx.store, ctx.objects, request.params.id, { query: q, limit, caseSensitive: caseSensitive === 1 });
  });

  app.put<{ Params: { id: string }; Body: { status: ReportedStatus; exit_code?: number | null; logs_s3_key?: string | null; attempt?: number; error?: string } }>('/v1/steps/:id/status', {
    config: { permission: 'internal:status' },
    schema: { summary: 'Report a step status (internal, service accounts)', tags: ['internal'], params: idParams, body: stepStatusBody, response: { 200: stepResponse, ...errorResponses } },
  }, async (request) => reportStepStatus(ctx, request.params.id, request.body));

};

/**
 * The Fastify application: /v1 routes, health, metrics and the OpenAPI document. Routes parse,
 * authorise, call one engine function and shape the result; errors become HTTP only in errors.ts.
 */
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import { ForgeError } from '../domain/errors.ts';
import type { Identity } from '../domain/identity.ts';
import type { EngineContext } from '../engine/context.ts';
import type { EventStream } from '../engine/ports.ts';
import type { RateLimits } from '../settings/settings.ts';
import type { TokenVerifier } from '../auth/token-verifier.ts';
import { requirePermission, type Permission } from '../auth/permissions.ts';
import { handleError, errorBody } from './errors.ts';
import { RateLimiter } from './rate-limit.ts';
import { runRoutes } from './runs.routes.ts';
import { releaseRoutes } from './releases.routes.ts';
import { deploymentRoutes } from './deployments.routes.ts';
import { eventRoutes } from './events.routes.ts';
import { healthRoutes } from './health.routes.ts';
import { githubRoutes, type GitHubRouteDeps } from './github.routes.ts';
import { identityRoutes } from './identity.routes.ts';
import { projectRoutes } from './projects.routes.ts';
import { retentionRoutes } from './retention.routes.ts';
import type { RetentionOptions } from '../engine/retention.ts';
import { DEFAULT_LOG_RETENTION_MS, DEFAULT_RUN_RETENTION_MS } from '../domain/limits.ts';
import { webRoutes, type WebOptions } from './web.routes.ts';
import { createMetrics, type ForgeMetrics } from '../lib/metrics.ts';
import { otelContext, SpanStatusCode, startServerSpan, type Context, type Span } from '../lib/tracing.ts';

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity;
    /** The request's server span and its context (a no-op span when tracing is off). */
    trace: { span: Span; ctx: Context } | undefined;
  }
  /** Every /v1 route declares exactly one of these beside its schema (buildApp refuses a route without). */
  interface FastifyContextConfig {
    /** What the caller needs (auth/permissions.ts): checked right after the bearer token, before the body is read. */
    permission?: Permission;
    /** The route authenticates its caller itself (GitHub's signature, an OIDC token) or is open: no bearer token is asked for. */
    public?: boolean;
  }
}

export interface AppOptions {
  ctx: EngineContext;
  verifier: TokenVerifier;
  bus: EventStream;
  rateLimits: RateLimits | 'off';
  logLevel?: string;
  version?: string;
  /** The webhook and the Actions token exchange; without it both answer 503 (not configured). */
  github?: Omit<GitHubRouteDeps, 'ctx'>;
  /** Beyond the seed: the built dashboard served at `/`, and GET /v1/auth/config. Without it neither exists. */
  web?: WebOptions;
  /** The process's metrics (the dispatcher and in-process workers add theirs); default a set of its own. */
  metrics?: ForgeMetrics;
  /** What POST /v1/retention applies (the server's FORGE_RUN_RETENTION / FORGE_LOG_RETENTION); default the seed's 90 and 30 days. */
  retention?: Pick<RetentionOptions, 'runsOlderThanMs' | 'logsOlderThanMs'>;
}

export interface Limiters {
  runCreate?: RateLimiter;
  releaseLookup?: RateLimiter;
  deploymentCreate?: RateLimiter;
}

export interface RouteDeps {
  ctx: EngineContext;
  bus: EventStream;
  limiters: Limiters;
  metrics: ForgeMetrics;
}

const addFormats = addFormatsPlugin as unknown as (ajv: Ajv) => Ajv;
const BODY_LIMIT = 1_048_576;
const MAX_PARAM_LENGTH = 256;
/** How long a request's headers and body may take to arrive. */
export const REQUEST_TIMEOUT_MS = 120_000;

function makeAjv(coerceTypes: false | 'array'): Ajv {
  const ajv = new Ajv({ coerceTypes, removeAdditional: false, useDefaults: true, allErrors: false, strict: false });
  addFormats(ajv);
  return ajv;
}
const strictAjv = makeAjv(false);
const coercingAjv = makeAjv('array');

/** `{repo}` is owner/name; clients may send it as one URL-encoded segment (owner%2Fname). */
export function rewriteEncodedRepository(url: string): string {
  const match = /^(\/v1\/(?:releases|deployments\/[^/?]+))\/([^/?]+)(.*)$/.exec(url);
  if (!match || !/%2f/i.test(match[2] ?? '')) return url;
  return `${match[1]}/${(match[2] ?? '').replace(/%2f/gi, '/')}${match[3] ?? ''}`;
}

/** The router's refusals, before any route: a path that does not decode, a segment beyond MAX_PARAM_LENGTH. */
function frameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_BAD_URL') return reply.status(400).send(errorBody('validation_error', 'the URL path is not valid percent-encoded UTF-8', {}));
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return reply.status(414).send(errorBody('validation_error', `a path segment is longer than ${MAX_PARAM_LENGTH} characters`, { limit: MAX_PARAM_LENGTH }));
  }
  return handleError(error, request, reply);
}

/** The run, task or step a /v1 URL names, as log fields. */
function idsOf(route: string, params: unknown): Record<string, string> {
  const id = (params as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string') return {};
  if (route.startsWith('/v1/runs/:id')) return { run_id: id };
  if (route.startsWith('/v1/tasks/:id')) return { task_id: id };
  if (route.startsWith('/v1/steps/:id')) return { step_id: id };
  return {};
}

function prefixed(ids: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(ids).map(([key, value]) => [`forge.${key.replace('_id', '')}.id`, value]));
}

async function authenticate(verifier: TokenVerifier, request: FastifyRequest): Promise<Identity> {
  const header = request.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match?.[1]) {
    throw new ForgeError('authentication_required', 'send a bearer token: Authorization: Bearer <token>', {
      reason: header ? 'malformed_authorization_header' : 'missing_token',
    });
  }
  return verifier.verify(match[1]);
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: options.logLevel ?? 'info' },
    // One line per request, written below: refusals and errors at info/error, the rest at debug
    // (workers report every step, which would drown everything else at info).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    rewriteUrl: (req) => rewriteEncodedRepository(req.url ?? '/'),
    requestIdHeader: 'x-request-id',
    // A path segment may be as long as the longest name (a 128-character alias, a 100-character
    // repository name); the router's default of 100 answered longer ones 414 before any route.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Fastify's default is no limit: a client sending its body a byte a minute would hold its socket
    // for ever (Node still drops headers slower than 60 s). Bodies are at most 1 MiB.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // The router's own refusals get the same error body as every other answer.
    frameworkErrors: (error, request, reply) => frameworkError(error, request as FastifyRequest, reply as FastifyReply),
  });

  // Who may call each /v1 route is declared beside it, and becomes its OpenAPI security (the
  // permission as the bearer scheme's role name, which OpenAPI 3.1 allows for non-OAuth schemes).
  // A route declaring neither, or both, is a programming error: the app does not start.
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1/')) return;
    const permission = route.config?.permission;
    const isPublic = route.config?.public === true;
    if ((permission === undefined) === !isPublic) {
      throw new Error(`route ${String(route.method)} ${route.url} must declare exactly one of config.permission or config.public`);
    }
    route.schema = { ...route.schema, security: permission === undefined ? [] : [{ bearer: [permission] }] };
  });

  const metrics = options.metrics ?? createMetrics();

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Forge API', version: options.version ?? '0.1.0', description: 'Forge /v1: pipeline runs, releases, deployments, approvals, events.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });

  // Bodies are validated as sent (a number or an array where a string belongs is a 422); only the
  // URL's parts, which are always text, are coerced to the schema's types.
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strictAjv : coercingAjv).compile(schema as object));

  // JSON only: a text/plain body is refused (415), not parsed into a string. An empty JSON body is
  // fine on DELETE (clients often send the header anyway) and an error elsewhere.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (request.method === 'DELETE' && (body as string).trim() === '') return done(null, undefined);
    return parseJson(request, body as string, done);
  });
  app.setErrorHandler(handleError);
  const web = options.web ? webRoutes(options.web) : undefined;
  const noRoute = (request: FastifyRequest, reply: FastifyReply) =>
    reply.status(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`, {}));
  app.setNotFoundHandler(web ? web.notFound(noRoute) : noRoute);

  app.decorateRequest('identity', undefined as unknown as Identity);
  app.decorateRequest('trace', undefined);
  // Traces and log fields: a server span per API request (a child of the caller's, when a worker
  // sends its traceparent), and the run, task or step the URL names on every log line of it.
  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url;
    if (route === undefined || !route.startsWith('/v1/')) return done();
    const ids = idsOf(route, request.params);
    if (Object.keys(ids).length > 0) request.log = request.log.child(ids);
    const trace = startServerSpan(`${request.method} ${route}`, request.headers, {
      'http.request.method': request.method, 'http.route': route, 'url.path': request.url.split('?')[0] ?? '', ...prefixed(ids),
    });
    request.trace = trace;
    // onResponse runs only for a response that finished: a client that left first (an event stream
    // or a log follow it closed, an aborted request) ends the span here.
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      trace.span.setAttribute('forge.request.aborted', true);
      trace.span.end();
    });
    done();
  });
  // The handler runs in the span's context (body parsing ran outside it), so what it starts (a run
  // storing its traceparent) belongs to the request's trace.
  app.addHook('preHandler', (request, _reply, done) => {
    if (!request.trace) return done();
    otelContext.with(request.trace.ctx, done);
  });
  // Decided on the route that matched, never on the raw URL: the router decodes the path
  // (`/%761/runs` reaches `/v1/runs`), so a URL test would let encoded paths skip authentication.
  // 401, then 403, both before the body is parsed: a caller who may not act is not read.
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined || !route.startsWith('/v1/')) return;
    const { permission } = request.routeOptions.config;
    if (permission === undefined) return;
    request.identity = await authenticate(options.verifier, request);
    requirePermission(request.identity, permission);
  });
  app.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode;
    const span = request.trace?.span;
    const traceId = span?.isRecording() ? span.spanContext().traceId : undefined;
    request.log[status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug']({
      method: request.method, url: request.url, status_code: status, ms: Math.round(reply.elapsedTime), ...(traceId ? { trace_id: traceId } : {}),
    }, 'request');
    metrics.httpDuration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    if (span) {
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
      span.end();
    }
  });

  const limits = options.rateLimits;
  const limiters: Limiters = limits === 'off' ? {} : {
    runCreate: new RateLimiter('run creation', limits.runCreate),
    releaseLookup: new RateLimiter('release lookups', limits.releaseLookup),
    deploymentCreate: new RateLimiter('deployment creation', limits.deploymentCreate),
  };
  const deps: RouteDeps = { ctx: options.ctx, bus: options.bus, limiters, metrics };

  await app.register(healthRoutes(options.ctx, metrics.registry));
  await app.register(runRoutes(deps));
  await app.register(releaseRoutes(deps));
  await app.register(deploymentRoutes(deps));
  await app.register(eventRoutes(deps));
  await app.register(githubRoutes({ webhookSecret: undefined, registeredRepositories: [], signPlatformToken: undefined, ...options.github, ctx: options.ctx }));
  await app.register(identityRoutes());
  await app.register(projectRoutes(deps));
  await app.register(retentionRoutes(options.ctx, options.retention ?? { runsOlderThanMs: DEFAULT_RUN_RETENTION_MS, logsOlderThanMs: DEFAULT_LOG_RETENTION_MS }));
  if (web) await app.register(web.routes);
  app.get('/v1/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  return app;
}

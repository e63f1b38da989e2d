/**
 * GitHub: the webhook (push / pull_request → a pipeline run) and the Actions OIDC token exchange.
 * Both authenticate their caller themselves (the webhook's HMAC signature, GitHub's OIDC token), so
 * their routes carry `config.public`: the app's bearer-token hook must let them through.
 *
 * The webhook answers fast: verify, one insert for the run (plus its event), one for the delivery;
 * GitHub itself is only called later, by the notifier reacting to the run's events.
 */
import { Webhooks } from '@octokit/webhooks';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { createGitHubOidcExchange, type GitHubOidcExchange, type PlatformTokenSigner } from '../auth/github-oidc.ts';
import { ForgeError, invalid } from '../domain/errors.ts';
import { checkName } from '../domain/names.ts';
import type { EngineContext } from '../engine/context.ts';
import { createRunForDelivery, type Caller, type CreateRunInput } from '../engine/runs.ts';
import { errorResponses } from './schemas.ts';

export interface GitHubRouteDeps {
  ctx: EngineContext;
  /** The webhook's shared secret; undefined → the webhook answers 503. */
  webhookSecret: string | undefined;
  /** owner/name of the repositories whose Actions tokens may be exchanged. */
  registeredRepositories: readonly string[];
  /** Mints platform tokens; undefined → the exchange answers 503 (tokens come from an issuer Forge cannot sign for). */
  signPlatformToken: PlatformTokenSigner | undefined;
  oidc?: { issuer?: string | undefined; jwksUrl?: string | undefined; audience?: string | undefined; maxTtlSeconds?: number | undefined };
}

/** What webhook-created runs are recorded as doing: acting for the GitHub user who pushed. */
const WEBHOOK_CALLER: Caller = { actor: 'github-webhook', mayActForOthers: true };
const RUN_PR_ACTIONS = ['opened', 'synchronize', 'reopened'];
const ZERO_SHA = /^0+$/;
const DELIVERY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const EVENT_NAME = /^[a-z_]{1,64}$/;

/** A webhook payload as parsed: nothing in it is trusted to be there, or to have the type GitHub gives it. */
type WebhookPayload = Record<string, unknown>;

export type WebhookDecision =
  | { kind: 'run'; input: CreateRunInput }
  | { kind: 'ignored'; reason: string }
  | { kind: 'pong' };

const ignored = (reason: string): WebhookDecision => ({ kind: 'ignored', reason });

/** The value at a dotted path; undefined when a step is missing or null, a 422 when a step is not an object. */
function field(payload: WebhookPayload, path: string): unknown {
  let at: unknown = payload;
  for (const key of path.split('.')) {
    if (at === undefined || at === null) return undefined;
    if (typeof at !== 'object' || Array.isArray(at)) throw invalid(`webhook payload: ${path} is not where GitHub puts it`, { field: path });
    at = (at as Record<string, unknown>)[key];
  }
  return at ?? undefined;
}

/** A string field, or undefined; any other type is a 422 (a number where GitHub sends text is not GitHub). */
function text(payload: WebhookPayload, path: string): string | undefined {
  const value = field(payload, path);
  if (value !== undefined && typeof value !== 'string') throw invalid(`webhook payload: ${path} must be a string`, { field: path });
  return value;
}

/** Who the run is recorded as triggered by: the sender's login, checked like any actor. */
function actor(payload: WebhookPayload, ...paths: string[]): string {
  for (const path of paths) {
    const value = text(payload, path);
    if (value !== undefined) return checkName('actor', path, value);
  }
  return WEBHOOK_CALLER.actor;
}

/** Which run, if any, a GitHub event asks for (docs/decisions.md: tag pushes, PR actions, forks). */
export function decideWebhook(event: string, payload: WebhookPayload): WebhookDecision {
  if (event === 'ping') return { kind: 'pong' };
  if (event !== 'push' && event !== 'pull_request') return ignored(`event ${event} does not start runs`);
  const repository = checkName('repository', 'repository.full_name', text(payload, 'repository.full_name') ?? '');
  if (event === 'push') {
    const ref = text(payload, 'ref') ?? '';
    const after = text(payload, 'after');
    if (field(payload, 'deleted') === true || ZERO_SHA.test(after ?? '0')) return ignored(`${ref} was deleted`);
    if (ref.startsWith('refs/tags/')) {
      return ignored('tag pushes start no run: a run is per commit, and the tagged commit runs from its branch push (release a tag with POST /v1/releases)');
    }
    if (!ref.startsWith('refs/heads/')) return ignored(`${ref} is not a branch`);
    return {
      kind: 'run',
      input: {
        repository, trigger_type: 'push',
        branch: checkName('branch', 'ref', ref.slice('refs/heads/'.length)),
        commit_sha: checkName('commitSha', 'after', after ?? ''),
        triggered_by: actor(payload, 'sender.login', 'pusher.name'),
      },
    };
  }
  const action = text(payload, 'action') ?? '';
  if (!RUN_PR_ACTIONS.includes(action)) return ignored(`pull_request action ${action} does not start runs (only ${RUN_PR_ACTIONS.join(', ')})`);
  // A fork's code is untrusted, and its branch names could pass for ours (a fork's "main").
  if (text(payload, 'pull_request.head.repo.full_name')?.toLowerCase() !== repository.toLowerCase()) return ignored('pull requests from forks do not start runs');
  const prNumber = field(payload, 'number') ?? field(payload, 'pull_request.number');
  if (prNumber === undefined) throw invalid('pull_request event without a number', { field: 'number' });
  if (typeof prNumber !== 'number' || !Number.isSafeInteger(prNumber) || prNumber < 1) throw invalid('webhook payload: number must be a positive integer', { field: 'number' });
  return {
    kind: 'run',
    input: {
      repository, trigger_type: 'pull_request',
      branch: checkName('branch', 'pull_request.head.ref', text(payload, 'pull_request.head.ref') ?? ''),
      commit_sha: checkName('commitSha', 'pull_request.head.sha', text(payload, 'pull_request.head.sha') ?? ''),
      triggered_by: actor(payload, 'sender.login'),
      github_context: { pr_number: prNumber },
    },
  };
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** GitHub sends JSON, or `payload=<json>` form-encoded when the hook is set up that way. */
function parsePayload(raw: string, contentType: string | undefined): WebhookPayload {
  const json = contentType?.startsWith('application/x-www-form-urlencoded') ? new URLSearchParams(raw).get('payload') ?? '' : raw;
  let payload: unknown;
  try {
    payload = JSON.parse(json);
  } catch {
    throw invalid('webhook payload is not valid JSON');
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw invalid('webhook payload is not a JSON object');
  return payload as WebhookPayload;
}

const webhookResponse = {
  type: 'object', additionalProperties: false, required: ['status'],
  properties: {
    status: { type: 'string', enum: ['created', 'exists', 'duplicate', 'ignored', 'pong'] },
    run_id: { type: 'string', format: 'uuid' },
    reason: { type: 'string' },
  },
} as const;

const exchangeBody = {
  type: 'object', additionalProperties: false, required: ['token'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 16_384 }, audience: { type: 'string', minLength: 1, maxLength: 255 } },
} as const;

const exchangeResponse = {
  type: 'object', additionalProperties: false, required: ['token', 'expires_at', 'repository'],
  properties: { token: { type: 'string' }, expires_at: { type: 'string', format: 'date-time' }, repository: { type: 'string' } },
} as const;

export const githubRoutes = (deps: GitHubRouteDeps): FastifyPluginAsync => async (app) => {
  const { ctx, webhookSecret } = deps;
  const webhooks = webhookSecret === undefined ? undefined : new Webhooks({ secret: webhookSecret });
  const exchange: GitHubOidcExchange | undefined = deps.signPlatformToken === undefined ? undefined : createGitHubOidcExchange({
    ...deps.oidc, registeredRepositories: deps.registeredRepositories, signPlatformToken: deps.signPlatformToken,
  });

  // Its own scope: the signature covers the body's exact bytes, so this route alone takes them raw.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    scope.post('/v1/webhooks/github', {
      config: { public: true },
      schema: {
        summary: 'GitHub webhook: push and pull_request events start runs (signed with X-Hub-Signature-256)', tags: ['github'],
        security: [], response: { 200: webhookResponse, 201: webhookResponse, 202: webhookResponse, ...errorResponses },
      },
    }, async (request, reply) => {
      if (webhooks === undefined) {
        throw new ForgeError('service_unavailable', 'GitHub webhooks are not configured on this server (no webhook secret)');
      }
      const raw = Buffer.isBuffer(request.body) ? request.body.toString('utf8') : '';
      const signature = header(request, 'x-hub-signature-256');
      if (signature === undefined) {
        throw new ForgeError('authentication_required', 'send the webhook signature in X-Hub-Signature-256', { reason: 'missing_signature' });
      }
      if (raw === '' || !(await webhooks.verify(raw, signature))) {
        throw new ForgeError('authentication_required', 'X-Hub-Signature-256 does not match the body and the webhook secret', { reason: 'bad_signature' });
      }
      const event = header(request, 'x-github-event');
      const delivery = header(request, 'x-github-delivery');
      if (event === undefined || delivery === undefined) {
        throw invalid('X-GitHub-Event and X-GitHub-Delivery headers are required', { missing: event === undefined ? 'x-github-event' : 'x-github-delivery' });
      }
      // Both are stored, and the signature does not cover headers: bound them (a delivery id is
      // GitHub's GUID; a key far longer than that fails the index, not the request).
      if (!DELIVERY_ID.test(delivery)) throw invalid('X-GitHub-Delivery must be 1-128 letters, digits, ".", "_", ":" or "-" (GitHub sends a GUID)', { field: 'x-github-delivery' });
      if (!EVENT_NAME.test(event)) throw invalid('X-GitHub-Event must be a GitHub event name (1-64 lowercase letters and "_")', { field: 'x-github-event' });
      const decision = decideWebhook(event, parsePayload(raw, request.headers['content-type']));
      if (decision.kind === 'pong') return reply.status(200).send({ status: 'pong' });
      if (decision.kind === 'ignored') return reply.status(202).send({ status: 'ignored', reason: decision.reason });
      // The run is idempotent per commit; the delivery record tells a redelivery from a new event.
      const { run, outcome } = await createRunForDelivery(ctx, decision.input, WEBHOOK_CALLER, { id: delivery, event });
      return reply.status(outcome === 'created' ? 201 : 200).send({ status: outcome, run_id: run.id });
    });
  });

  app.post<{ Body: { token: string; audience?: string } }>('/v1/auth/github', {
    config: { public: true },
    schema: {
      summary: 'Exchange a GitHub Actions OIDC token for a platform token (registered repositories only)', tags: ['auth'],
      security: [], body: exchangeBody, response: { 200: exchangeResponse, ...errorResponses },
    },
  }, async (request) => {
    if (exchange === undefined) {
      throw new ForgeError('service_unavailable', 'GitHub token exchange is not configured on this server (no platform token signer)');
    }
    const grant = await exchange.exchange(request.body.token, request.body.audience);
    return { token: grant.token, expires_at: grant.expiresAt.toISOString(), repository: grant.repository };
  });
};

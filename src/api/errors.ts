/**
 * The one place error codes become HTTP statuses and the seed's body {"error":{code,message,details}}.
 * Fastify's own errors (validation, body size, content type, JSON syntax) are mapped here too, so
 * every response of the API has the same shape. Internal errors never leak their message.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ForgeError, type ErrorCode, type ErrorDetails } from '../domain/errors.ts';
import { assertNever } from '../lib/assert-never.ts';

export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'authentication_required': return 401;
    case 'permission_denied': return 403;
    case 'not_found': return 404;
    case 'gone': return 410;
    case 'conflict': return 409;
    case 'validation_error': return 422;
    case 'payload_too_large': return 413;
    case 'rate_limited': return 429;
    case 'service_unavailable': return 503;
    case 'internal_error': return 500;
    default: return assertNever(code, 'error code');
  }
}

export function errorBody(code: ErrorCode, message: string, details: ErrorDetails = {}) {
  return { error: { code, message, details } };
}

/** Postgres down, connection refused, pool exhausted, contention that outlived a retry: unavailable, not broken. */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === '57P01' || code === '57P03' || code === '53300' || code === '40P01' || code === '40001'
    || (error instanceof Error && /Connection terminated|timeout exceeded when trying to connect/.test(error.message));
}

function fromFastify(error: FastifyError): { code: ErrorCode; status: number; message: string; details: ErrorDetails } | undefined {
  if (error.validation) {
    const problems = error.validation.map((v) => ({
      field: `${error.validationContext ?? 'body'}${v.instancePath.replace(/\//g, '.')}`.replace(/^body\.?/, '') || (error.validationContext ?? 'body'),
      message: v.message ?? 'is invalid',
      ...(v.params && 'allowedValues' in v.params ? { allowed: v.params.allowedValues } : {}),
      ...(v.params && 'additionalProperty' in v.params ? { unknown_field: v.params.additionalProperty } : {}),
      ...(v.params && 'missingProperty' in v.params ? { missing: v.params.missingProperty } : {}),
    }));
    const first = problems[0];
    const summary = first ? `${first.field} ${first.message}${'unknown_field' in first ? ` (${String(first.unknown_field)})` : ''}` : 'request is invalid';
    return { code: 'validation_error', status: 422, message: `invalid request: ${summary}`, details: { errors: problems } };
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'payload_too_large', status: 413, message: 'request body is larger than 1 MiB', details: { limit_bytes: 1_048_576 } };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'validation_error', status: 415, message: 'send the body as application/json', details: { allowed: ['application/json'] } };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { code: 'validation_error', status: 422, message: 'request body is empty; send a JSON object', details: {} };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { code: 'validation_error', status: 422, message: 'request body is not valid JSON', details: {} };
    default:
      break;
  }
  if (error instanceof SyntaxError || error.statusCode === 400) {
    return { code: 'validation_error', status: 422, message: `invalid request: ${error.message}`, details: {} };
  }
  return undefined;
}

export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  if (error instanceof ForgeError) {
    const status = statusOf(error.code);
    if (status >= 500) request.log.error({ err: error, cause: error.cause }, error.message);
    if (error.code === 'rate_limited') reply.header('retry-after', String(error.details.retry_after_seconds ?? 60));
    if (error.code === 'authentication_required') reply.header('www-authenticate', 'Bearer');
    return reply.status(status).send(errorBody(error.code, error.message, error.details));
  }
  const mapped = fromFastify(error as FastifyError);
  if (mapped) return reply.status(mapped.status).send(errorBody(mapped.code, mapped.message, mapped.details));
  if (isUnavailable(error)) {
    request.log.error({ err: error }, 'dependency unavailable');
    return reply.status(503).header('retry-after', '5').send(errorBody('service_unavailable', 'a backing service is unavailable; retry shortly', {}));
  }
  request.log.error({ err: error }, 'internal error');
  return reply.status(500).send(errorBody('internal_error', 'internal error', { request_id: request.id }));
}

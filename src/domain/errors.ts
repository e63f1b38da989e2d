/**
 * The one error catalogue. Use cases throw ForgeError with a stable code; only the API layer maps a
 * code to an HTTP status and the seed's body {"error": {code, message, details}}.
 */
export const ERROR_CODES = [
  'authentication_required',
  'permission_denied',
  'not_found',
  'gone',
  'conflict',
  'validation_error',
  'payload_too_large',
  'rate_limited',
  'service_unavailable',
  'internal_error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type ErrorDetails = Record<string, unknown>;

export class ForgeError extends Error {
  override readonly name = 'ForgeError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const notFound = (what: string, details: ErrorDetails = {}) =>
  new ForgeError('not_found', `${what} not found`, details);
/** Existed once and was deleted on purpose (a step log past FORGE_LOG_RETENTION). */
export const gone = (message: string, details: ErrorDetails = {}) => new ForgeError('gone', message, details);
export const conflict = (message: string, details: ErrorDetails = {}) => new ForgeError('conflict', message, details);
export const invalid = (message: string, details: ErrorDetails = {}) =>
  new ForgeError('validation_error', message, details);
export const denied = (message: string, details: ErrorDetails = {}) =>
  new ForgeError('permission_denied', message, details);

export function isForgeError(error: unknown): error is ForgeError {
  return error instanceof ForgeError;
}

/** Retry semantics as a type: only the queue adapter turns it into ack / nak(delay) / term. */
export class RetryableError extends Error {
  override readonly name = 'RetryableError';
  constructor(message: string, readonly retryAfterMs?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

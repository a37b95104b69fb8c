/**
 * How both of the parent's Fastify apps (the public API and the listener between parents) answer
 * errors: Fastify's own errors (validation, body size, content type) become ours, every reply goes
 * through the one code → status table, unknown routes are our 404, and the rate limiter's refusal is
 * a typed 429 with Retry-After.
 */
import type { FastifyInstance } from 'fastify';
import { HttpError } from '../shared/errors.ts';
import { toHttpError } from './http-errors.ts';

/** Fastify's own errors (validation, body size, content type) become ours. */
export function fromFastify(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  if (typeof code === 'string' && code.startsWith('ERR_') && !code.startsWith('FST_')) return error;
  const status = (error as { statusCode?: number }).statusCode;
  if ((error as { validation?: unknown }).validation !== undefined) {
    return new HttpError('ERR_HTTP_BAD_REQUEST', (error as Error).message.slice(0, 300));
  }
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpError('ERR_HTTP_BODY_TOO_LARGE', 'the request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError('ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', 'unsupported content type');
    default:
      if (status === 400 || code?.startsWith('FST_ERR_CTP') === true)
        return new HttpError('ERR_HTTP_BAD_REQUEST', 'malformed request');
      if (status === 413) return new HttpError('ERR_HTTP_BODY_TOO_LARGE', 'the request body is too large');
      if (status === 415) return new HttpError('ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', 'unsupported content type');
      return error;
  }
}

/**
 * Installs the error and not-found handlers. `onServerError` sees the code and status of 5xx
 * replies (for a log line; never the error's message).
 */
export function installErrorReplies(
  app: FastifyInstance,
  onServerError?: (code: string, status: number, log: FastifyInstance['log']) => void,
): void {
  app.setErrorHandler((error, request, reply) => {
    const mapped = toHttpError(fromFastify(error));
    if (mapped.status >= 500) onServerError?.(mapped.body.error.code, mapped.status, request.log);
    void reply.code(mapped.status).headers(mapped.headers).send(mapped.body);
  });
  app.setNotFoundHandler((_request, reply) => {
    const mapped = toHttpError(new HttpError('ERR_HTTP_NOT_FOUND', 'no such route'));
    void reply.code(mapped.status).send(mapped.body);
  });
}

/** `errorResponseBuilder` for @fastify/rate-limit: our typed 429 (the table adds Retry-After). */
export function rateLimitedError(_request: unknown, context: { max: number; after: string }): HttpError {
  const error = new HttpError(
    'ERR_HTTP_RATE_LIMITED',
    `rate limit: ${context.max} requests per ${context.after}`,
  );
  (error as unknown as { statusCode: number }).statusCode = 429;
  return error;
}

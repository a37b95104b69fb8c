/**
 * The one table from error codes to HTTP statuses (STYLE.md 4; DESIGN.md 4.1). Only the parent's
 * edge knows about statuses. Unknown errors become a generic 500 ERR_INTERNAL: Fastify's default
 * would echo `error.message`, which could carry anything.
 */
import { isNitroInferError } from '../shared/errors.ts';
import type { ErrorCode } from '../shared/errors.ts';

/** Seconds a client should wait before retrying a 503 or 429. */
export const RETRY_AFTER_SECONDS = 1;

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_HTTP_BAD_REQUEST: 400,
  ERR_LINK_REQUEST_INVALID: 400,
  ERR_ARTIFACT_SOURCE_INVALID: 400,
  ERR_ARTIFACT_VERSION_REQUIRED: 400,
  ERR_ATTESTATION_NONCE_MISMATCH: 400,
  ERR_INFERENCE_INPUT_INVALID: 400,
  ERR_ARTIFACT_INVALID: 422,
  ERR_MODEL_INVALID: 422,
  ERR_MODEL_DIGEST_MISMATCH: 422,
  ERR_DECRYPT_FAILED: 422,
  ERR_KMS_INVALID_CIPHERTEXT: 422,
  ERR_HTTP_UNAUTHORIZED: 401,
  ERR_KMS_ACCESS_DENIED: 403,
  ERR_ARTIFACT_ACCESS_DENIED: 502,
  ERR_HTTP_NOT_FOUND: 404,
  ERR_MODEL_NOT_FOUND: 404,
  ERR_ARTIFACT_NOT_FOUND: 404,
  ERR_KMS_NOT_FOUND: 404,
  ERR_HTTP_BODY_TOO_LARGE: 413,
  ERR_MODEL_TOO_LARGE: 413,
  ERR_HTTP_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_HTTP_RATE_LIMITED: 429,
  ERR_ARTIFACT_SOURCE_UNAVAILABLE: 502,
  ERR_ARTIFACT_INTEGRITY: 502,
  ERR_KMS_UNAVAILABLE: 502,
  ERR_KMS_NO_CREDENTIALS: 503,
  ERR_LINK_UNAVAILABLE: 503,
  ERR_LINK_OVERLOADED: 503,
  ERR_LINK_TIMEOUT: 504,
};

/** What the error handler sends. */
export interface HttpErrorReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: { readonly code: string; readonly message: string } };
}

/** Maps any thrown value to a reply; only our own errors keep their code and message. */
export function toHttpError(error: unknown): HttpErrorReply {
  if (isNitroInferError(error)) {
    const status = STATUS[error.code] ?? 500;
    const headers = status === 503 || status === 429 ? { 'retry-after': String(RETRY_AFTER_SECONDS) } : {};
    const message = status === 500 ? 'internal error' : error.message;
    return {
      status,
      headers,
      body: { error: { code: status === 500 ? 'ERR_INTERNAL' : error.code, message } },
    };
  }
  return { status: 500, headers: {}, body: { error: { code: 'ERR_INTERNAL', message: 'internal error' } } };
}

/** The status a code maps to (for tests and docs). */
export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

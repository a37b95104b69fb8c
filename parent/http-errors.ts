/**
 * The one table from error codes to HTTP statuses (STYLE.md 4; DESIGN.md 4.1). Only the parent's
 * edge knows about statuses. Unknown errors become a generic 500 ERR_INTERNAL: Fastify's default
 * would echo `error.message`, which could carry anything.
 */
import { isNitroInferError } from '../shared/errors.ts';
import type { ErrorCode } from '../shared/errors.ts';

/** Seconds a client should wait before retrying a 503 or 429. */
export const RETRY_AFTER_SECONDS = 1;

/** Codes the parent's edge answers with, and their statuses. */
export const HTTP_STATUS_BY_CODE: Readonly<Partial<Record<ErrorCode, number>>> = {
  ERR_HTTP_BAD_REQUEST: 400,
  ERR_LINK_REQUEST_INVALID: 400,
  ERR_ARTIFACT_SOURCE_INVALID: 400,
  ERR_ARTIFACT_VERSION_REQUIRED: 400,
  ERR_ATTESTATION_NONCE_MISMATCH: 400,
  ERR_INFERENCE_INPUT_INVALID: 400,
  ERR_ARTIFACT_INVALID: 422,
  ERR_MODEL_INVALID: 422,
  ERR_MODEL_DIGEST_MISMATCH: 422,
  // The enclave could not take the artifact (empty, larger than it declared, bigger plaintext than
  // ciphertext) or abandoned the load; nothing was loaded and the previous version still serves.
  ERR_MODEL_LOAD_FAILED: 422,
  ERR_DECRYPT_FAILED: 422,
  ERR_KMS_INVALID_CIPHERTEXT: 422,
  ERR_HTTP_UNAUTHORIZED: 401,
  ERR_HTTP_FORBIDDEN: 403,
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
  ERR_HTTP_DRAINING: 503,
  ERR_ARTIFACT_SOURCE_UNAVAILABLE: 502,
  ERR_ARTIFACT_INTEGRITY: 502,
  ERR_KMS_UNAVAILABLE: 502,
  ERR_KMS_NO_CREDENTIALS: 503,
  ERR_LINK_UNAVAILABLE: 503,
  ERR_MODEL_NOT_READY: 503,
  ERR_LINK_OVERLOADED: 503,
  ERR_LINK_DRAINING: 503,
  ERR_LINK_TIMEOUT: 504,
  ERR_CLUSTER_PEER_UNTRUSTED: 403,
  ERR_CLUSTER_CHALLENGE_UNKNOWN: 409,
  ERR_CLUSTER_KEY_NOT_PREFERRED: 409,
  ERR_CLUSTER_BINDING_MISMATCH: 422,
  ERR_CLUSTER_BUSY: 503,
  ERR_CLUSTER_PEER_UNAVAILABLE: 502,
};

/**
 * Codes that deliberately have no status here, each with the reason: they are raised only where no
 * HTTP reply is made (client, CLI, start-up), are translated before they get here (the OHTTP route
 * turns decapsulation failures into ERR_HTTP_BAD_REQUEST), travel inside the encryption, or are
 * internal failures whose details stay out of replies (a generic 500 ERR_INTERNAL). A test keeps
 * this list and {@link HTTP_STATUS_BY_CODE} together covering every code exactly once.
 */
export const CODES_WITHOUT_STATUS: Readonly<Partial<Record<ErrorCode, string>>> = {
  ERR_CBOR_TOO_LARGE: 'internal: a frame from the enclave the parent cannot decode',
  ERR_CBOR_MALFORMED: 'internal: a frame from the enclave the parent cannot decode',
  ERR_CBOR_DUPLICATE_KEY: 'internal: a frame from the enclave the parent cannot decode',
  ERR_CBOR_FLOAT_REFUSED: 'internal: a frame from the enclave the parent cannot decode',
  ERR_CBOR_LIMIT_EXCEEDED: 'internal: a frame from the enclave the parent cannot decode',
  ERR_ATTESTATION_TOO_LARGE: 'client side: documents are verified by clients, not the parent',
  ERR_ATTESTATION_MALFORMED: 'client side',
  ERR_ATTESTATION_UNSUPPORTED_ALGORITHM: 'client side',
  ERR_ATTESTATION_PAYLOAD_INVALID: 'client side',
  ERR_ATTESTATION_CERTIFICATE_INVALID: 'client side',
  ERR_ATTESTATION_ROOT_UNTRUSTED: 'client side',
  ERR_ATTESTATION_CHAIN_INVALID: 'client side',
  ERR_ATTESTATION_CERTIFICATE_NOT_YET_VALID: 'client side',
  ERR_ATTESTATION_CERTIFICATE_EXPIRED: 'client side',
  ERR_ATTESTATION_SIGNATURE_INVALID: 'client side',
  ERR_ATTESTATION_DEBUG_MODE: 'client side',
  ERR_ATTESTATION_PCR_MISMATCH: 'client side',
  ERR_ATTESTATION_STALE: 'client side',
  ERR_ATTESTATION_FROM_FUTURE: 'client side',
  ERR_ATTESTATION_TIMESTAMP_INVALID: 'client side',
  ERR_POLICY_INVALID: 'client and CLI side',
  ERR_NSM_INVALID_ARGUMENT: 'internal: the enclave could not get a document from its NSM',
  ERR_NSM_INVALID_INDEX: 'internal: the enclave could not get a document from its NSM',
  ERR_NSM_READ_ONLY_INDEX: 'internal: the enclave could not get a document from its NSM',
  ERR_NSM_INVALID_OPERATION: 'internal: the enclave could not get a document from its NSM',
  ERR_NSM_INPUT_TOO_LARGE: 'internal: the enclave could not get a document from its NSM',
  ERR_NSM_INTERNAL: 'internal: the enclave could not get a document from its NSM',
  ERR_CMS_MALFORMED: 'internal: KMS answered the enclave with an envelope it cannot read',
  ERR_FRAME_TOO_LARGE: 'internal: the link broke; the parent reconnects',
  ERR_FRAME_MALFORMED: 'internal: the link broke; the parent reconnects',
  ERR_FRAME_HEADER_TOO_LARGE: 'internal: the link broke; the parent reconnects',
  ERR_FRAME_PAYLOAD_REFUSED: 'internal: the link broke; the parent reconnects',
  ERR_FRAME_PAYLOAD_TOO_LARGE: 'internal: the link broke; the parent reconnects',
  ERR_FRAME_TRUNCATED: 'internal: the link broke; the parent reconnects',
  ERR_FRAME_STALLED: 'internal: the link broke; the parent reconnects',
  ERR_TRANSPORT_ADDRESS_INVALID: 'start-up configuration',
  ERR_TRANSPORT_UNSUPPORTED: 'start-up configuration',
  ERR_TRANSPORT_FAILED: 'internal: a socket could not be made',
  ERR_INFERENCE_FAILED: 'inside the encryption (the enclave answers it in the OHTTP response)',
  ERR_OHTTP_MALFORMED: 'translated by the OHTTP route to ERR_HTTP_BAD_REQUEST',
  ERR_OHTTP_KEY_UNKNOWN: 'translated by the OHTTP route to the RFC 9458 ohttp-key problem (400)',
  ERR_OHTTP_DATE_INVALID: 'inside the encryption (replay window)',
  ERR_OHTTP_REPLAYED: 'inside the encryption (replay window)',
  ERR_OHTTP_REPLAY_CACHE_FULL: 'inside the encryption (replay window)',
  ERR_BHTTP_MALFORMED: 'inside the encryption',
  ERR_RECEIPT_INVALID: 'client side',
  ERR_CLIENT_BINDING_MISMATCH: 'client side',
  ERR_CLIENT_REQUEST_FAILED: 'client side',
  ERR_CLIENT_MODEL_NOT_ATTESTED: 'client side',
  ERR_CLIENT_KEY_CHANGED: 'client side',
  ERR_CLIENT_UNREACHABLE: 'client side',
  ERR_CLIENT_TIMEOUT: 'client side',
  ERR_CLIENT_ABORTED: 'client side',
  ERR_CLIENT_OPTIONS_INVALID: 'client side',
  ERR_CONFIG_INVALID: 'start-up configuration',
  ERR_CLI_USAGE: 'command line',
  ERR_CLI_INPUT: 'command line',
  ERR_INTERNAL: 'the generic 500 itself',
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
    const status = HTTP_STATUS_BY_CODE[error.code] ?? 500;
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
  return HTTP_STATUS_BY_CODE[code] ?? 500;
}

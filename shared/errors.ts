/**
 * Typed errors with stable codes.
 *
 * Codes are public API: callers switch on `code`, never on messages and never on `instanceof`
 * (which breaks across duplicate copies of a package). Codes are never renamed or reused, and
 * `docs/errors.md` lists every one of them (a test keeps the two in step). HTTP statuses are not
 * decided here: only the parent edge maps codes to statuses.
 *
 * Messages and causes never carry keys, plaintext or tokens.
 */

/** Every error code nitro-infer can raise, grouped by area. */
export const ERROR_CODES = [
  // CBOR decoding of untrusted bytes.
  'ERR_CBOR_TOO_LARGE',
  'ERR_CBOR_MALFORMED',
  'ERR_CBOR_LIMIT_EXCEEDED',
  'ERR_CBOR_DUPLICATE_KEY',
  'ERR_CBOR_FLOAT_REFUSED',
  // Attestation documents (DESIGN.md 4.4), in the order the verifier checks them.
  'ERR_ATTESTATION_TOO_LARGE',
  'ERR_ATTESTATION_MALFORMED',
  'ERR_ATTESTATION_UNSUPPORTED_ALGORITHM',
  'ERR_ATTESTATION_PAYLOAD_INVALID',
  'ERR_ATTESTATION_CERTIFICATE_INVALID',
  'ERR_ATTESTATION_ROOT_UNTRUSTED',
  'ERR_ATTESTATION_CHAIN_INVALID',
  'ERR_ATTESTATION_CERTIFICATE_NOT_YET_VALID',
  'ERR_ATTESTATION_CERTIFICATE_EXPIRED',
  'ERR_ATTESTATION_SIGNATURE_INVALID',
  'ERR_ATTESTATION_TIMESTAMP_INVALID',
  'ERR_ATTESTATION_DEBUG_MODE',
  'ERR_ATTESTATION_PCR_MISMATCH',
  'ERR_ATTESTATION_NONCE_MISMATCH',
  'ERR_ATTESTATION_STALE',
  'ERR_ATTESTATION_FROM_FUTURE',
  // A verification policy that cannot be applied (bad PCR index, unreadable pcrs.json, ...).
  'ERR_POLICY_INVALID',
  // The Nitro Secure Module, mirroring the NSM's own ErrorCode values.
  'ERR_NSM_INVALID_ARGUMENT',
  'ERR_NSM_INVALID_INDEX',
  'ERR_NSM_READ_ONLY_INDEX',
  'ERR_NSM_INVALID_OPERATION',
  'ERR_NSM_INPUT_TOO_LARGE',
  'ERR_NSM_INTERNAL',
  // Any decryption, unwrap or authentication failure, collapsed so its cause is not revealed.
  'ERR_DECRYPT_FAILED',
  // KMS and its CMS envelopes (DESIGN.md 4.6).
  'ERR_CMS_MALFORMED',
  'ERR_KMS_ACCESS_DENIED',
  'ERR_KMS_INVALID_CIPHERTEXT',
  'ERR_KMS_NOT_FOUND',
  'ERR_KMS_NO_CREDENTIALS',
  'ERR_KMS_UNAVAILABLE',
  // The parent ↔ enclave link (DESIGN.md 4.5).
  'ERR_FRAME_TOO_LARGE',
  'ERR_FRAME_MALFORMED',
  'ERR_FRAME_HEADER_TOO_LARGE',
  'ERR_FRAME_PAYLOAD_REFUSED',
  'ERR_FRAME_PAYLOAD_TOO_LARGE',
  'ERR_FRAME_TRUNCATED',
  'ERR_FRAME_STALLED',
  'ERR_LINK_REQUEST_INVALID',
  'ERR_LINK_UNAVAILABLE',
  'ERR_LINK_TIMEOUT',
  'ERR_LINK_OVERLOADED',
  'ERR_LINK_DRAINING',
  // Transports: vsock, Unix and TCP addresses (DESIGN.md 5).
  'ERR_TRANSPORT_ADDRESS_INVALID',
  'ERR_TRANSPORT_UNSUPPORTED',
  'ERR_TRANSPORT_FAILED',
  // Sealed models (DESIGN.md 4.7) and their sessions.
  'ERR_ARTIFACT_INVALID',
  'ERR_ARTIFACT_SOURCE_INVALID',
  'ERR_ARTIFACT_VERSION_REQUIRED',
  'ERR_ARTIFACT_NOT_FOUND',
  'ERR_ARTIFACT_ACCESS_DENIED',
  'ERR_ARTIFACT_SOURCE_UNAVAILABLE',
  'ERR_ARTIFACT_INTEGRITY',
  'ERR_MODEL_TOO_LARGE',
  'ERR_MODEL_DIGEST_MISMATCH',
  'ERR_MODEL_INVALID',
  'ERR_MODEL_NOT_FOUND',
  'ERR_MODEL_NOT_READY',
  'ERR_MODEL_LOAD_FAILED',
  // Inference requests (Open Inference Protocol v2).
  'ERR_INFERENCE_INPUT_INVALID',
  'ERR_INFERENCE_FAILED',
  // Oblivious HTTP and Binary HTTP (DESIGN.md 4.2), receipts, and the client SDK.
  'ERR_OHTTP_MALFORMED',
  'ERR_OHTTP_KEY_UNKNOWN',
  // Anti-replay (RFC 9458 section 6.5): refused inside the encryption, never processed.
  'ERR_OHTTP_DATE_INVALID',
  'ERR_OHTTP_REPLAYED',
  'ERR_OHTTP_REPLAY_CACHE_FULL',
  // The OHTTP cluster key's peer exchange between attested enclaves (docs/protocols.md).
  'ERR_CLUSTER_PEER_UNTRUSTED',
  'ERR_CLUSTER_CHALLENGE_UNKNOWN',
  'ERR_CLUSTER_BINDING_MISMATCH',
  'ERR_CLUSTER_BUSY',
  'ERR_CLUSTER_KEY_NOT_PREFERRED',
  'ERR_CLUSTER_PEER_UNAVAILABLE',
  'ERR_BHTTP_MALFORMED',
  'ERR_RECEIPT_INVALID',
  'ERR_CLIENT_BINDING_MISMATCH',
  'ERR_CLIENT_REQUEST_FAILED',
  'ERR_CLIENT_MODEL_NOT_ATTESTED',
  'ERR_CLIENT_KEY_CHANGED',
  // The SDK could not get an answer at all: network, deadline, or the caller gave up.
  'ERR_CLIENT_UNREACHABLE',
  'ERR_CLIENT_TIMEOUT',
  'ERR_CLIENT_ABORTED',
  'ERR_CLIENT_OPTIONS_INVALID',
  // The parent's HTTP edge (DESIGN.md 4.1); statuses are decided in parent/http-errors.ts.
  'ERR_HTTP_BAD_REQUEST',
  'ERR_HTTP_UNAUTHORIZED',
  'ERR_HTTP_FORBIDDEN',
  'ERR_HTTP_NOT_FOUND',
  'ERR_HTTP_BODY_TOO_LARGE',
  'ERR_HTTP_UNSUPPORTED_MEDIA_TYPE',
  'ERR_HTTP_RATE_LIMITED',
  'ERR_HTTP_DRAINING',
  // Start-up configuration files and environment variables.
  'ERR_CONFIG_INVALID',
  // The command line: wrong arguments, unreadable input files.
  'ERR_CLI_USAGE',
  'ERR_CLI_INPUT',
  // Anything unexpected; its details stay in the process that saw it.
  'ERR_INTERNAL',
] as const;

/** A stable error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes of the attestation verifier. */
export type AttestationErrorCode = Extract<ErrorCode, `ERR_ATTESTATION_${string}` | 'ERR_POLICY_INVALID'>;

/** Codes of the CBOR decoder. */
export type CborErrorCode = Extract<ErrorCode, `ERR_CBOR_${string}`>;

/** Codes of the Nitro Secure Module. */
export type NsmErrorCode = Extract<ErrorCode, `ERR_NSM_${string}`>;

// A registry-wide symbol, so that a second copy of this module still recognises our errors.
const BRAND = Symbol.for('nitro-infer.error');

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** Codes of the KMS client, the KMS simulator and CMS unwrapping. */
export type KmsErrorCode = Extract<
  ErrorCode,
  `ERR_KMS_${string}` | 'ERR_CMS_MALFORMED' | 'ERR_DECRYPT_FAILED'
>;

/** Codes of the link codec and server. */
export type LinkErrorCode = Extract<ErrorCode, `ERR_FRAME_${string}` | `ERR_LINK_${string}`>;

/** Codes of sealed artifacts and model loading. */
export type ModelErrorCode = Extract<
  ErrorCode,
  `ERR_MODEL_${string}` | 'ERR_ARTIFACT_INVALID' | 'ERR_DECRYPT_FAILED' | 'ERR_KMS_ACCESS_DENIED'
>;

/** Codes of inference requests. */
export type InferenceErrorCode = Extract<
  ErrorCode,
  `ERR_INFERENCE_${string}` | 'ERR_MODEL_NOT_FOUND' | 'ERR_MODEL_NOT_READY'
>;

/** Codes of transports. */
export type TransportErrorCode = Extract<ErrorCode, `ERR_TRANSPORT_${string}`>;

/** Codes of artifact sources (S3, files). */
export type ArtifactErrorCode = Extract<ErrorCode, `ERR_ARTIFACT_${string}`>;

/** Codes of the parent's HTTP edge. */
export type HttpErrorCode = Extract<ErrorCode, `ERR_HTTP_${string}`>;

/** Codes of OHTTP / BHTTP encapsulation (decryption failures collapse into ERR_DECRYPT_FAILED). */
export type OhttpErrorCode = Extract<
  ErrorCode,
  `ERR_OHTTP_${string}` | 'ERR_BHTTP_MALFORMED' | 'ERR_DECRYPT_FAILED'
>;

/** Codes of the cluster key exchange. */
export type ClusterErrorCode = Extract<ErrorCode, `ERR_CLUSTER_${string}` | 'ERR_DECRYPT_FAILED'>;

/** Codes of the client SDK's own checks. */
export type ClientErrorCode = Extract<ErrorCode, `ERR_CLIENT_${string}` | 'ERR_RECEIPT_INVALID'>;

/** Codes of the command line. */
export type CliErrorCode = Extract<ErrorCode, `ERR_CLI_${string}`>;

/** Base class of every error nitro-infer raises on purpose. */
export class NitroInferError<C extends ErrorCode = ErrorCode> extends Error {
  /** The stable code; switch on this. */
  readonly code: C;
  readonly [BRAND] = true;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Raised when bytes are not well-formed CBOR within our bounds. */
export class CborError extends NitroInferError<CborErrorCode> {}

/** Raised by the attestation parser, verifier and policy checks. */
export class AttestationError extends NitroInferError<AttestationErrorCode> {}

/** Raised by the Nitro Secure Module (real or simulated). */
export class NsmError extends NitroInferError<NsmErrorCode> {}

/** Raised by the KMS client and simulator, and by CMS unwrapping. */
export class KmsError extends NitroInferError<KmsErrorCode> {}

/** Raised by the link codec and the link server. */
export class LinkError extends NitroInferError<LinkErrorCode> {}

/** Raised while sealing, unsealing and loading models. */
export class ModelError extends NitroInferError<ModelErrorCode> {}

/** Raised for inference requests that cannot be served. */
export class InferenceError extends NitroInferError<InferenceErrorCode> {}

/** Raised when a transport address is wrong or a socket cannot be made. */
export class TransportError extends NitroInferError<TransportErrorCode> {}

/** Raised by artifact sources: a bad location, a missing object or version, an unreachable store. */
export class ArtifactError extends NitroInferError<ArtifactErrorCode> {}

/** Raised at the parent's HTTP edge for requests refused before they reach the enclave. */
export class HttpError extends NitroInferError<HttpErrorCode> {}

/** Raised for a configuration that is wrong; the message names every wrong field. */
export class ConfigError extends NitroInferError<'ERR_CONFIG_INVALID'> {}

/** Raised by OHTTP and BHTTP codecs. */
export class OhttpError extends NitroInferError<OhttpErrorCode> {}

/** Raised by the cluster key exchange: an untrusted peer, an unknown nonce, a broken binding. */
export class ClusterError extends NitroInferError<ClusterErrorCode> {}

/** Raised by the client SDK when what it received does not verify. */
export class ClientError extends NitroInferError<ClientErrorCode> {}

/** Raised by the command line for wrong arguments or unreadable input. */
export class CliError extends NitroInferError<CliErrorCode> {}

/**
 * True when `value` is an error raised by nitro-infer (from any copy of this package), so that
 * `value.code` is one of {@link ERROR_CODES}.
 */
export function isNitroInferError(value: unknown): value is NitroInferError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [BRAND]?: unknown })[BRAND] === true &&
    KNOWN_CODES.has((value as { code?: unknown }).code as string)
  );
}

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

/**
 * COSE_Sign1 (RFC 9052 section 4.2) as the Nitro Secure Module produces it.
 *
 * Only the exact shape AWS documents is accepted: an array of four items, optionally wrapped in
 * tag 18; a protected header that is the byte string of the map `{1: -35}` (alg ES384) and nothing
 * else; an empty unprotected header (anything there would be unauthenticated); an attached payload;
 * a 96-byte raw r‖s signature.
 */
import { decodeCbor, encodeCbor, isTag } from '../cbor.ts';
import { AttestationError, isNitroInferError } from '../errors.ts';

/** Largest attestation document accepted. The NSM answers into a 12 KiB buffer; this leaves room. */
export const MAX_ATTESTATION_DOCUMENT_BYTES = 16 * 1024;

/**
 * Most CBOR items in a COSE_Sign1 or its protected header. The Nitro shape has 6 (tag 18, the
 * array, protected and payload and signature byte strings, the empty unprotected map) and the
 * header `{1: -35}` 3; 16 leaves room for byte strings sent in a few chunks, nothing more.
 */
export const MAX_COSE_ITEMS = 16;

/**
 * Largest decoded-size estimate of a COSE_Sign1 (`cbor-scan.ts`): the Nitro shape costs about
 * 1.2 KiB (tag 144 + array 112 + map 416 + three views 3 × 176); a payload sent in chunks is
 * joined into one copy of up to 16 KiB. 1.2 KiB + 16 KiB < 24 KiB.
 */
export const MAX_COSE_DECODED_BYTES = 24 * 1024;

/** COSE tag for COSE_Sign1 (RFC 9052 section 2). */
export const COSE_SIGN1_TAG = 18;

/** COSE algorithm identifier ES384 (RFC 9053 section 2.1). */
export const COSE_ALGORITHM_ES384 = -35;

/** ES384 signatures are r‖s, each 48 bytes (RFC 9053 section 2.1). */
export const ES384_SIGNATURE_BYTES = 96;

/** The four parts of a COSE_Sign1 message, as the bytes that were received. */
export interface CoseSign1 {
  /** The serialized protected header, exactly as received (it is signed as is). */
  readonly protectedHeader: Uint8Array;
  /** The payload bytes, exactly as received (never re-encoded before verification). */
  readonly payload: Uint8Array;
  /** The raw r‖s signature. */
  readonly signature: Uint8Array;
}

/**
 * Parses the outer COSE_Sign1 structure of an attestation document.
 * @throws {AttestationError} `ERR_ATTESTATION_TOO_LARGE`, `ERR_ATTESTATION_MALFORMED` or
 *   `ERR_ATTESTATION_UNSUPPORTED_ALGORITHM`.
 */
export function parseCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (bytes.byteLength > MAX_ATTESTATION_DOCUMENT_BYTES) {
    throw new AttestationError(
      'ERR_ATTESTATION_TOO_LARGE',
      `attestation document of ${bytes.byteLength} bytes exceeds ${MAX_ATTESTATION_DOCUMENT_BYTES}`,
    );
  }
  let outer = decodeOrFail(bytes, 'COSE_Sign1');
  if (isTag(outer, COSE_SIGN1_TAG)) outer = outer.contents;
  if (!Array.isArray(outer) || outer.length !== 4) {
    throw malformed('COSE_Sign1 must be an array of 4 items');
  }
  const [protectedHeader, unprotectedHeader, payload, signature] = outer as unknown[];
  if (!(protectedHeader instanceof Uint8Array)) throw malformed('protected header must be a byte string');
  if (!(unprotectedHeader instanceof Map)) throw malformed('unprotected header must be a map');
  if (unprotectedHeader.size !== 0) throw malformed('unprotected header must be empty');
  if (!(payload instanceof Uint8Array)) throw malformed('payload must be an attached byte string');
  if (!(signature instanceof Uint8Array)) throw malformed('signature must be a byte string');
  checkProtectedHeader(protectedHeader);
  if (signature.byteLength !== ES384_SIGNATURE_BYTES) {
    throw malformed(`ES384 signature must be ${ES384_SIGNATURE_BYTES} bytes, got ${signature.byteLength}`);
  }
  return { protectedHeader, payload, signature };
}

/**
 * The bytes an ES384 COSE_Sign1 signature covers (RFC 9052 section 4.4):
 * `["Signature1", protected, external_aad = h'', payload]`, with the protected header and payload as
 * received.
 */
export function signatureStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', protectedHeader, new Uint8Array(0), payload]);
}

/** The serialized protected header `{1: -35}` that every Nitro document carries. */
export const ES384_PROTECTED_HEADER: Uint8Array = encodeCbor(new Map([[1, COSE_ALGORITHM_ES384]]));

function checkProtectedHeader(bytes: Uint8Array): void {
  const header = decodeOrFail(bytes, 'protected header');
  if (!(header instanceof Map)) throw malformed('protected header must encode a map');
  const algorithm = header.get(1);
  if (header.size !== 1 || algorithm === undefined) {
    throw new AttestationError(
      'ERR_ATTESTATION_UNSUPPORTED_ALGORITHM',
      'protected header must hold exactly the algorithm ES384',
    );
  }
  if (algorithm !== COSE_ALGORITHM_ES384) {
    throw new AttestationError(
      'ERR_ATTESTATION_UNSUPPORTED_ALGORITHM',
      `unsupported COSE algorithm ${String(algorithm)}; only ES384 (-35) is accepted`,
    );
  }
}

function decodeOrFail(bytes: Uint8Array, what: string): unknown {
  try {
    return decodeCbor(bytes, {
      maxBytes: MAX_ATTESTATION_DOCUMENT_BYTES,
      maxItems: MAX_COSE_ITEMS,
      maxDecodedBytes: MAX_COSE_DECODED_BYTES,
    });
  } catch (error) {
    if (isNitroInferError(error)) throw malformed(`${what}: ${error.message}`, error);
    throw error;
  }
}

function malformed(message: string, cause?: unknown): AttestationError {
  return new AttestationError(
    'ERR_ATTESTATION_MALFORMED',
    message,
    cause === undefined ? undefined : { cause },
  );
}

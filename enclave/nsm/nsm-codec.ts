/**
 * The NSM's wire format (aws-nitro-enclaves-nsm-api `api::Request` / `api::Response`): serde's
 * externally tagged CBOR. Struct variants are one-entry maps `{"Attestation": {...}}`, unit variants
 * bare text (`"GetRandom"`), errors `{"Error": "InvalidArgument"}`. Responses come from a device
 * driver and are still checked before use.
 */
import { decodeCbor, encodeCbor } from '../../shared/cbor.ts';
import { NsmError, isNitroInferError } from '../../shared/errors.ts';
import type { NsmErrorCode } from '../../shared/errors.ts';
import type { AttestationRequest, PcrDescription } from './nsm.ts';

/** The driver's request buffer (`NSM_REQUEST_MAX_SIZE`). */
export const NSM_REQUEST_MAX_BYTES = 0x1000;
/** The driver's response buffer (`NSM_RESPONSE_MAX_SIZE`). */
export const NSM_RESPONSE_MAX_BYTES = 0x3000;
/**
 * Most CBOR items in an NSM response: the largest we read, `{"DescribePCR": {"lock", "data"}}`,
 * has 7; 32 leaves room for chunked strings only.
 */
export const NSM_RESPONSE_MAX_ITEMS = 32;
/**
 * Largest decoded-size estimate of an NSM response (`cbor-scan.ts`): two maps (800), six members
 * (6 × 48), short keys and a view (≈ 500) ≈ 1.6 KiB; 32 KiB also covers chunks joined into one
 * copy of the 12 KiB buffer (24 KiB as UTF-16 text).
 */
export const NSM_RESPONSE_MAX_DECODED_BYTES = 32 * 1024;

const ERROR_CODES: Readonly<Record<string, NsmErrorCode>> = {
  InvalidArgument: 'ERR_NSM_INVALID_ARGUMENT',
  InvalidIndex: 'ERR_NSM_INVALID_INDEX',
  ReadOnlyIndex: 'ERR_NSM_READ_ONLY_INDEX',
  InvalidOperation: 'ERR_NSM_INVALID_OPERATION',
  InputTooLarge: 'ERR_NSM_INPUT_TOO_LARGE',
  InvalidResponse: 'ERR_NSM_INTERNAL',
  BufferTooSmall: 'ERR_NSM_INTERNAL',
  InternalError: 'ERR_NSM_INTERNAL',
};

/** `Request::Attestation { user_data, nonce, public_key }`, absent fields as `null`. */
export function encodeAttestationRequest(request: AttestationRequest): Uint8Array {
  return checked(
    encodeCbor(
      new Map([
        [
          'Attestation',
          new Map<string, Uint8Array | null>([
            ['user_data', request.userData ?? null],
            ['nonce', request.nonce ?? null],
            ['public_key', request.publicKey ?? null],
          ]),
        ],
      ]),
    ),
  );
}

export function encodeDescribePcrRequest(index: number): Uint8Array {
  return checked(encodeCbor(new Map([['DescribePCR', new Map([['index', pcrIndex(index)]])]])));
}

export function encodeExtendPcrRequest(index: number, data: Uint8Array): Uint8Array {
  return checked(
    encodeCbor(
      new Map([
        [
          'ExtendPCR',
          new Map<string, unknown>([
            ['index', pcrIndex(index)],
            ['data', data],
          ]),
        ],
      ]),
    ),
  );
}

export function encodeLockPcrRequest(index: number): Uint8Array {
  return checked(encodeCbor(new Map([['LockPCR', new Map([['index', pcrIndex(index)]])]])));
}

export function encodeLockPcrsRequest(range: number): Uint8Array {
  return checked(encodeCbor(new Map([['LockPCRs', new Map([['range', pcrIndex(range)]])]])));
}

export function encodeGetRandomRequest(): Uint8Array {
  return encodeCbor('GetRandom');
}

/** Reads `{"Attestation": {"document": bytes}}`. */
export function decodeAttestationResponse(bytes: Uint8Array): Uint8Array {
  return bytesField(variant(bytes, 'Attestation'), 'document');
}

/** Reads `{"DescribePCR": {"lock": bool, "data": bytes}}`. */
export function decodeDescribePcrResponse(bytes: Uint8Array): PcrDescription {
  const body = variant(bytes, 'DescribePCR');
  const lock = body.get('lock');
  if (typeof lock !== 'boolean') throw invalidResponse('DescribePCR.lock is not a boolean');
  return { locked: lock, data: bytesField(body, 'data') };
}

/** Reads `{"ExtendPCR": {"data": bytes}}`. */
export function decodeExtendPcrResponse(bytes: Uint8Array): Uint8Array {
  return bytesField(variant(bytes, 'ExtendPCR'), 'data');
}

/** Reads `{"GetRandom": {"random": bytes}}`. */
export function decodeGetRandomResponse(bytes: Uint8Array): Uint8Array {
  return bytesField(variant(bytes, 'GetRandom'), 'random');
}

/** Reads the unit response `"LockPCR"` or `"LockPCRs"`. */
export function decodeUnitResponse(bytes: Uint8Array, name: 'LockPCR' | 'LockPCRs'): void {
  const value = decode(bytes);
  if (value !== name) throw invalidResponse(`expected ${name}`);
}

function variant(bytes: Uint8Array, name: string): Map<unknown, unknown> {
  const value = decode(bytes);
  if (!(value instanceof Map) || value.size !== 1)
    throw invalidResponse('the response is not a single variant');
  const body = value.get(name);
  if (!(body instanceof Map)) throw invalidResponse(`expected a ${name} response`);
  return body;
}

function decode(bytes: Uint8Array): unknown {
  let value: unknown;
  try {
    value = decodeCbor(bytes, {
      maxBytes: NSM_RESPONSE_MAX_BYTES,
      maxDepth: 4,
      maxItems: NSM_RESPONSE_MAX_ITEMS,
      maxDecodedBytes: NSM_RESPONSE_MAX_DECODED_BYTES,
    });
  } catch (error) {
    throw invalidResponse(isNitroInferError(error) ? error.message : 'not CBOR');
  }
  if (value instanceof Map && value.size === 1 && value.has('Error')) {
    const name = value.get('Error');
    const code = typeof name === 'string' ? ERROR_CODES[name] : undefined;
    throw new NsmError(
      code ?? 'ERR_NSM_INTERNAL',
      `the NSM answered ${typeof name === 'string' ? name.slice(0, 32) : 'an unknown error'}`,
    );
  }
  return value;
}

function bytesField(body: Map<unknown, unknown>, name: string): Uint8Array {
  const value = body.get(name);
  if (!(value instanceof Uint8Array)) throw invalidResponse(`${name} is not a byte string`);
  return value;
}

function pcrIndex(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff)
    throw new NsmError('ERR_NSM_INVALID_INDEX', `${value} is not a u16`);
  return value;
}

function checked(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength > NSM_REQUEST_MAX_BYTES) {
    throw new NsmError(
      'ERR_NSM_INPUT_TOO_LARGE',
      `the NSM request of ${bytes.byteLength} bytes exceeds ${NSM_REQUEST_MAX_BYTES}`,
    );
  }
  return bytes;
}

function invalidResponse(message: string): NsmError {
  return new NsmError('ERR_NSM_INTERNAL', `invalid NSM response: ${message}`);
}

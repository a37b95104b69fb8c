/**
 * The NSM's wire format (aws-nitro-enclaves-nsm-api `api::Request` / `api::Response`): serde's
 * externally tagged CBOR. Struct variants are one-entry maps `{"Attestation": {...}}`, unit variants
 * bare text (`"GetRandom"`), errors `{"Error": "InvalidArgument"}`. Responses come from a device
 * driver and are still checked before use.
 */
import { decodeCbor, encodeCbor } from '../../shared/cbor.ts';
import { NsmError, isNitroInferError } from '../../shared/errors.ts';
import type { NsmErrorCode } from '../../shared/errors.ts';
import type { AttestationRequest, NsmDescription, NsmDigest, PcrDescription } from './nsm.ts';
import { NSM_MAX_INPUT_BYTES, NSM_PCR_COUNT } from './nsm.ts';

/** The driver's request buffer (`NSM_REQUEST_MAX_SIZE`). */
export const NSM_REQUEST_MAX_BYTES = 0x1000;
/** The driver's response buffer (`NSM_RESPONSE_MAX_SIZE`). */
export const NSM_RESPONSE_MAX_BYTES = 0x3000;
/**
 * Most CBOR items in an NSM response. The largest we read is DescribeNSM's: `{"DescribeNSM": {…6
 * members…}}` is 15 items plus one per locked PCR (up to 32 — found under QEMU's NSM after
 * LockPCRs, test/vm), so 47; 96 leaves room for chunked strings.
 */
export const NSM_RESPONSE_MAX_ITEMS = 96;
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

/** Refuses data over {@link NSM_MAX_INPUT_BYTES}, as the simulation does (QEMU's NSM would take it). */
export function encodeExtendPcrRequest(index: number, data: Uint8Array): Uint8Array {
  if (data.byteLength > NSM_MAX_INPUT_BYTES) {
    throw new NsmError('ERR_NSM_INPUT_TOO_LARGE', `PCR extension data exceeds ${NSM_MAX_INPUT_BYTES} bytes`);
  }
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
  return checked(encodeCbor(new Map([['LockPCRs', new Map([['range', pcrRange(range)]])]])));
}

export function encodeGetRandomRequest(): Uint8Array {
  return encodeCbor('GetRandom');
}

export function encodeDescribeNsmRequest(): Uint8Array {
  return encodeCbor('DescribeNSM');
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

/** Longest `module_id` accepted: AWS's are `i-<17 hex>-enc<16 hex>` (41 characters). */
export const NSM_MAX_MODULE_ID_LENGTH = 256;

const DIGESTS: readonly NsmDigest[] = ['SHA256', 'SHA384', 'SHA512'];

/**
 * Reads `{"DescribeNSM": {"version_major": u16, "version_minor": u16, "version_patch": u16,
 * "module_id": text, "max_pcrs": u16, "locked_pcrs": [u16], "digest": "SHA384"}}`; locked indices
 * must be distinct and below `max_pcrs`.
 */
export function decodeDescribeNsmResponse(bytes: Uint8Array): NsmDescription {
  const body = variant(bytes, 'DescribeNSM');
  const moduleId = body.get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0 || moduleId.length > NSM_MAX_MODULE_ID_LENGTH) {
    throw invalidResponse('DescribeNSM.module_id is not a short text');
  }
  const digest = body.get('digest');
  if (!DIGESTS.includes(digest as NsmDigest)) throw invalidResponse('DescribeNSM.digest is unknown');
  const maxPcrs = u16Field(body, 'max_pcrs');
  const locked = body.get('locked_pcrs');
  if (!Array.isArray(locked)) throw invalidResponse('DescribeNSM.locked_pcrs is not an array');
  const lockedPcrs = locked.map((index: unknown) => {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= maxPcrs) {
      throw invalidResponse('DescribeNSM.locked_pcrs holds an impossible index');
    }
    return index;
  });
  if (new Set(lockedPcrs).size !== lockedPcrs.length)
    throw invalidResponse('DescribeNSM.locked_pcrs repeats');
  return {
    versionMajor: u16Field(body, 'version_major'),
    versionMinor: u16Field(body, 'version_minor'),
    versionPatch: u16Field(body, 'version_patch'),
    moduleId,
    maxPcrs,
    lockedPcrs: lockedPcrs.sort((a, b) => a - b),
    digest: digest as NsmDigest,
  };
}

function u16Field(body: Map<unknown, unknown>, name: string): number {
  const value = body.get(name);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw invalidResponse(`DescribeNSM.${name} is not a u16`);
  }
  return value;
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

/**
 * Indices are checked here, not left to the device: the wire type is u16, but QEMU's NSM reads
 * one byte and answers InvalidOperation above 255 where AWS's answers InvalidIndex, so a bad index
 * would give a different code on each. Checking first gives ERR_NSM_INVALID_INDEX everywhere.
 */
function pcrIndex(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value >= NSM_PCR_COUNT)
    throw new NsmError('ERR_NSM_INVALID_INDEX', `PCR index ${value} is outside 0–${NSM_PCR_COUNT - 1}`);
  return value;
}

function pcrRange(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > NSM_PCR_COUNT)
    throw new NsmError('ERR_NSM_INVALID_INDEX', `PCR range ${value} is outside 0–${NSM_PCR_COUNT}`);
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

/**
 * The attestation document payload, checked field by field as AWS's
 * `attestation_process.md` section 3.2 prescribes, before anything reads it.
 */
import { decodeCbor } from '../cbor.ts';
import { AttestationError, isNitroInferError } from '../errors.ts';
import { MAX_ATTESTATION_DOCUMENT_BYTES } from './cose-sign1.ts';

/** PCR indices run from 0 to 31 (the NSM has 32 registers). */
export const MAX_PCR_INDEX = 31;

/**
 * PCR0–15 are measured at boot and every document an NSM makes carries all 16 (so does every real
 * document in `../shared/fixtures`; AWS's `attestation_process.md` only bounds the map at 1–32
 * entries, which is looser than any NSM). Requiring them stops a document that simply leaves out
 * PCR0/1/2: it would pass as neither debug mode nor a mismatch under a policy that pins other PCRs.
 */
export const BOOT_PCR_COUNT = 16;

/** SHA-384 PCR values are 48 bytes. */
export const PCR_BYTES = 48;

/** Upper bound of `certificate` and each `cabundle` entry (AWS: 1 to 1024 bytes). */
export const MAX_CERTIFICATE_BYTES = 1024;

/** Upper bound of the optional `public_key`, `user_data` and `nonce` fields (DESIGN.md 4.4). */
export const MAX_OPTIONAL_FIELD_BYTES = 1024;

/** Longest chain accepted: AWS issues root, regional, zonal and instance CAs. */
export const MAX_CABUNDLE_ENTRIES = 8;

/** Longest module id accepted; real ones are `i-<17 hex>-enc<16 hex>` (39 characters). */
export const MAX_MODULE_ID_LENGTH = 128;

/**
 * Most CBOR items in a payload. The largest valid one has 9 fields (18 items), 32 PCRs (64 items
 * and the map), 8 cabundle entries and the array: 92 items. 256 leaves room for strings sent in
 * chunks; the NSM writes none.
 */
export const MAX_PAYLOAD_ITEMS = 256;

/**
 * Largest decoded-size estimate of a payload (`cbor-scan.ts`). The largest valid one: two maps
 * (2 × 400), 92 members (92 × 48), 41 byte-string views (41 × 160) and two short text strings
 * (≈ 2 × 100): ≈ 12 KiB. Chunked strings add at most one joined copy of the 16 KiB input, twice
 * for text (UTF-16): 12 + 32 = 44 KiB < 64 KiB.
 */
export const MAX_PAYLOAD_DECODED_BYTES = 64 * 1024;

/** A parsed, type-checked attestation document payload. Nothing in it is verified yet. */
export interface AttestationDocument {
  /** Issuing NSM's module id, e.g. `i-0f1c…-enc018e…`. */
  readonly moduleId: string;
  /** Always `SHA384`. */
  readonly digest: 'SHA384';
  /** Milliseconds since the Unix epoch at which the NSM made the document. */
  readonly timestamp: number;
  /** PCR index → 48-byte value. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  /** The leaf certificate (DER). */
  readonly certificate: Uint8Array;
  /** `[root, …intermediates]` (DER), root first. */
  readonly cabundle: readonly Uint8Array[];
  /** Optional fields; `undefined` where the document carries `null` or omits them. */
  readonly publicKey: Uint8Array | undefined;
  readonly userData: Uint8Array | undefined;
  readonly nonce: Uint8Array | undefined;
}

const FIELDS = new Set([
  'module_id',
  'digest',
  'timestamp',
  'pcrs',
  'certificate',
  'cabundle',
  'public_key',
  'user_data',
  'nonce',
]);

/**
 * Decodes and type-checks the payload of an attestation document.
 * @throws {AttestationError} `ERR_ATTESTATION_PAYLOAD_INVALID`.
 */
export function parseAttestationPayload(payload: Uint8Array): AttestationDocument {
  let map: unknown;
  try {
    map = decodeCbor(payload, {
      maxBytes: MAX_ATTESTATION_DOCUMENT_BYTES,
      maxItems: MAX_PAYLOAD_ITEMS,
      maxDecodedBytes: MAX_PAYLOAD_DECODED_BYTES,
    });
  } catch (error) {
    if (isNitroInferError(error)) throw invalid(`payload: ${error.message}`, error);
    throw error;
  }
  if (!(map instanceof Map)) throw invalid('payload must be a map');
  for (const key of map.keys()) {
    if (typeof key !== 'string' || !FIELDS.has(key))
      throw invalid(`unexpected payload field ${describeKey(key)}`);
  }

  const moduleId = map.get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0 || moduleId.length > MAX_MODULE_ID_LENGTH) {
    throw invalid('module_id must be a non-empty text string');
  }
  if (map.get('digest') !== 'SHA384') throw invalid('digest must be "SHA384"');

  return {
    moduleId,
    digest: 'SHA384',
    timestamp: parseTimestamp(map.get('timestamp')),
    pcrs: parsePcrs(map.get('pcrs')),
    certificate: bytesField(map.get('certificate'), 'certificate', 1, MAX_CERTIFICATE_BYTES),
    cabundle: parseCabundle(map.get('cabundle')),
    publicKey: optionalBytesField(map.get('public_key'), 'public_key', 1),
    userData: optionalBytesField(map.get('user_data'), 'user_data', 0),
    nonce: optionalBytesField(map.get('nonce'), 'nonce', 0),
  };
}

function parseTimestamp(value: unknown): number {
  // A uint64 of milliseconds; anything beyond 2^53 cannot be a real time.
  const timestamp =
    typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw invalid('timestamp must be a positive integer of milliseconds');
  }
  return timestamp;
}

function parsePcrs(value: unknown): ReadonlyMap<number, Uint8Array> {
  if (!(value instanceof Map) || value.size < BOOT_PCR_COUNT || value.size > MAX_PCR_INDEX + 1) {
    throw invalid(`pcrs must be a map of ${BOOT_PCR_COUNT} to 32 entries`);
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, pcr] of value as Map<unknown, unknown>) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > MAX_PCR_INDEX) {
      throw invalid('pcrs keys must be integers from 0 to 31');
    }
    if (!(pcr instanceof Uint8Array) || pcr.byteLength !== PCR_BYTES) {
      throw invalid(`PCR${index} must be ${PCR_BYTES} bytes`);
    }
    pcrs.set(index, pcr);
  }
  for (let index = 0; index < BOOT_PCR_COUNT; index++) {
    if (!pcrs.has(index))
      throw invalid(`pcrs must include PCR0 to PCR${BOOT_PCR_COUNT - 1}; PCR${index} is absent`);
  }
  return pcrs;
}

function parseCabundle(value: unknown): readonly Uint8Array[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_CABUNDLE_ENTRIES) {
    throw invalid(`cabundle must be an array of 1 to ${MAX_CABUNDLE_ENTRIES} certificates`);
  }
  return value.map((entry: unknown, index) =>
    bytesField(entry, `cabundle[${index}]`, 1, MAX_CERTIFICATE_BYTES),
  );
}

function bytesField(value: unknown, name: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.byteLength < min || value.byteLength > max) {
    throw invalid(`${name} must be a byte string of ${min} to ${max} bytes`);
  }
  return value;
}

function optionalBytesField(value: unknown, name: string, min: number): Uint8Array | undefined {
  // `null` is how the NSM writes an absent field; an omitted key means the same.
  if (value === null || value === undefined) return undefined;
  return bytesField(value, name, min, MAX_OPTIONAL_FIELD_BYTES);
}

function describeKey(key: unknown): string {
  return typeof key === 'string' ? JSON.stringify(key.slice(0, 32)) : `of type ${typeof key}`;
}

function invalid(message: string, cause?: unknown): AttestationError {
  return new AttestationError(
    'ERR_ATTESTATION_PAYLOAD_INVALID',
    message,
    cause === undefined ? undefined : { cause },
  );
}

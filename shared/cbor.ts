/**
 * The one CBOR codec of nitro-infer (RFC 8949), configured for untrusted input.
 *
 * Decoding uses `cbor2`, which reads every form the Nitro Secure Module may produce: documents made
 * from 2025 on use an indefinite-length payload map, and indefinite-length byte and text strings
 * are valid CBOR too (`cbor-x` rejects those: "Indefinite length not supported for byte or text
 * strings"). Encoding uses `cbor-x`, which writes the same preferred-form bytes about 70 times
 * faster than `cbor2` for link frames (measured: 2.8 µs against 199 µs for a 5 KB frame), and
 * `cbor2` again for the rare deterministic (sorted-key) encodings.
 *
 * Decoding is bounded before it starts: byte count first, then a pre-scan of the heads
 * (`cbor-scan.ts`) bounds nesting depth, item count and the memory the decoded value will take,
 * so a hostile input costs one pass and nothing is allocated for it. Decoding also rejects
 * trailing bytes, never applies global tag decoders (so tag 0 stays a tag rather than becoming a
 * `Date`), and returns maps as `Map` so integer keys survive. It is strict where our formats are:
 * - map keys are integers or text strings, and a key may appear once by *value*: a second,
 *   non-shortest encoding of `nonce` or of a PCR index is a duplicate, not a silent override
 *   (cbor2's own check compares encoded bytes, so only byte-identical duplicates were caught);
 * - floats are refused: no message we decode (frames, Nitro documents, COSE, receipts,
 *   user_data, NSM responses) carries one, and a float where a format says unsigned integer
 *   (timestamps, PCR indices, COSE labels) must not pass as a number.
 * Every failure is a {@link CborError}; nothing else escapes.
 */
import { Tag, decode, encode } from 'cbor2';
import type { DecodeOptions } from 'cbor2';
import { Encoder } from 'cbor-x';
import { DIRECT_UNSUPPORTED, decodeCborDirect } from './cbor-direct.ts';
import { scanCbor } from './cbor-scan.ts';
import { CborError } from './errors.ts';

/** Deepest nesting accepted. Attestation documents nest 3 deep (COSE array, payload map, pcrs map). */
export const MAX_CBOR_DEPTH = 16;

/** Options for {@link decodeCbor}. */
export interface DecodeCborOptions {
  /** Largest input accepted, in bytes; checked before any byte is read. */
  readonly maxBytes: number;
  /** Deepest nesting accepted; defaults to {@link MAX_CBOR_DEPTH}. */
  readonly maxDepth?: number;
  /** Most data items accepted (each integer, string, array, map, tag or simple value is one). */
  readonly maxItems: number;
  /**
   * Largest estimate of the memory the decoded value takes, in bytes (`cbor-scan.ts` explains
   * the estimate); checked before anything is decoded.
   */
  readonly maxDecodedBytes: number;
  /**
   * Decode the plain forms directly (`cbor-direct.ts`), falling back to `cbor2` for any other:
   * the same values and refusals, several times cheaper for small maps (link frame headers).
   */
  readonly direct?: boolean;
}

/**
 * Decodes exactly one CBOR data item that must span all of `bytes`.
 *
 * Byte strings come back as `Uint8Array` views, maps as `Map`, tags as {@link Tag}.
 * @throws {CborError} `ERR_CBOR_TOO_LARGE`, `ERR_CBOR_LIMIT_EXCEEDED`, `ERR_CBOR_MALFORMED`,
 *   `ERR_CBOR_DUPLICATE_KEY` or `ERR_CBOR_FLOAT_REFUSED`.
 */
export function decodeCbor(bytes: Uint8Array, options: DecodeCborOptions): unknown {
  return decodeCborMeasured(bytes, options).value;
}

/**
 * Like {@link decodeCbor}, also returning the decoded-size estimate, for callers that account
 * for the memory decoded values hold (the link server's in-flight budget).
 * @throws {CborError} as {@link decodeCbor}.
 */
export function decodeCborMeasured(
  bytes: Uint8Array,
  options: DecodeCborOptions,
): { readonly value: unknown; readonly decodedBytes: number } {
  if (bytes.byteLength > options.maxBytes) {
    throw new CborError(
      'ERR_CBOR_TOO_LARGE',
      `CBOR input of ${bytes.byteLength} bytes exceeds ${options.maxBytes}`,
    );
  }
  if (bytes.byteLength === 0) {
    throw new CborError('ERR_CBOR_MALFORMED', 'CBOR input is empty');
  }
  const maxDepth = options.maxDepth ?? MAX_CBOR_DEPTH;
  const { decodedBytes } = scanCbor(bytes, {
    maxDepth,
    maxItems: options.maxItems,
    maxDecodedBytes: options.maxDecodedBytes,
  });
  // Decode from a plain Uint8Array view so byte strings come back as Uint8Array, never Buffer.
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (options.direct === true) {
    const value = decodeCborDirect(plain);
    if (value !== DIRECT_UNSUPPORTED) return { value, decodedBytes };
  }
  try {
    const value = decode(plain, {
      preferMap: true,
      // Duplicates are found by value in createMap; cbor2's byte comparison would also cost a
      // view per key.
      createObject: createMap,
      rejectFloats: true,
      ignoreGlobalTags: true,
      // cbor2 counts two steps of depth per level of nesting (measured: 8 nested arrays pass maxDepth 16, 9 do not).
      // The scan has checked depth already; this stays as a second guard.
      maxDepth: 2 * maxDepth,
      // Plain numbers where they are exact; larger integers arrive as bigint and are range-checked by callers.
      preferBigInt: false,
    });
    return { value, decodedBytes };
  } catch (error) {
    if (error instanceof CborError) throw error;
    // cbor2 reports floats only by message ("Decoding unwanted floating point number"); matched
    // here, inside the one module that calls it, so callers still switch on codes.
    if (error instanceof Error && error.message.startsWith('Decoding unwanted floating point')) {
      throw new CborError('ERR_CBOR_FLOAT_REFUSED', 'CBOR floats are not accepted');
    }
    throw new CborError('ERR_CBOR_MALFORMED', `malformed CBOR: ${describe(error)}`, { cause: error });
  }
}

type MapEntries = Parameters<NonNullable<DecodeOptions['createObject']>>[0];

/**
 * Builds each decoded map, refusing keys that are not integers or text and keys seen before.
 * Integers arrive as `number` when safe and `bigint` otherwise, text as `string`: all primitives,
 * so `Map` compares them by value whatever their encoding (shortest or not, definite or chunked).
 */
function createMap(entries: MapEntries): Map<unknown, unknown> {
  const map = new Map<unknown, unknown>();
  for (const [key, value] of entries) {
    const type = typeof key;
    if (type !== 'string' && type !== 'number' && type !== 'bigint') {
      throw new CborError('ERR_CBOR_MALFORMED', 'CBOR map keys must be integers or text strings');
    }
    if (map.has(key)) throw new CborError('ERR_CBOR_DUPLICATE_KEY', 'CBOR map repeats a key');
    map.set(key, value);
  }
  return map;
}

// Plain byte strings (no typed-array tags), no cbor-x record extensions, shortest map headers.
const encoder = new Encoder({
  useRecords: false,
  tagUint8Array: false,
  variableMapSize: true,
  mapsAsObjects: false,
});

/**
 * Encodes `value` in preferred (shortest-form, definite-length) CBOR: maps, arrays, text, byte
 * strings (Buffer or Uint8Array), integers, booleans and null.
 * @throws {CborError} `ERR_CBOR_FLOAT_REFUSED` for a number that is not an integer.
 */
export function encodeCbor(value: unknown): Uint8Array {
  // cbor-x writes into a buffer it reuses for the next call: keep a copy of our own.
  return new Uint8Array(encoder.encode(integersOnly(value)));
}

/**
 * Like {@link encodeCbor}, but the result is only valid until the next encode: for callers that
 * copy it at once (the frame writer), saving a copy of every model chunk.
 * @throws {CborError} `ERR_CBOR_FLOAT_REFUSED` for a number that is not an integer.
 */
export function encodeCborTransient(value: unknown): Uint8Array {
  return encoder.encode(integersOnly(value));
}

/**
 * cbor-x writes every integer beyond 32 bits as a float64 (measured: 2^32 → fb41f0000000000000),
 * which our decoder refuses; such integers become bigint, which cbor-x writes as a CBOR integer.
 * A number that is not an integer is refused here, at the writer, rather than by the reader.
 */
function integersOnly(value: unknown): unknown {
  if (typeof value === 'number') {
    if (!Number.isInteger(value))
      throw new CborError('ERR_CBOR_FLOAT_REFUSED', 'CBOR floats are not written');
    return value > 0xffff_ffff || value < -0x1_0000_0000 ? BigInt(value) : value;
  }
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map(integersOnly);
  if (value instanceof Map)
    return new Map([...value].map(([key, entry]) => [integersOnly(key), integersOnly(entry)]));
  if (Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, integersOnly(entry)]));
  }
  return value;
}

/**
 * Encodes `value` in Core Deterministic Encoding (RFC 8949 section 4.2.1): preferred forms and map
 * keys sorted by their encoded bytes, so the same value always gives the same bytes. Used wherever
 * bytes are hashed or bound into an attestation (DESIGN.md 4.3).
 */
export function encodeDeterministicCbor(value: unknown): Uint8Array {
  return encode(withoutBuffers(value), { cde: true });
}

/**
 * cbor2 serializes a Node `Buffer` through its `toJSON` (as `{type: 'Buffer', data: [...]}`), not
 * as a byte string; every Buffer becomes a plain Uint8Array view (no copy) before encoding. Floats
 * are refused, as the decoder refuses them (cbor2 writes large integers as integers already).
 */
function withoutBuffers(value: unknown): unknown {
  if (typeof value === 'number' && !Number.isInteger(value))
    throw new CborError('ERR_CBOR_FLOAT_REFUSED', 'CBOR floats are not written');
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : value;
  }
  if (Array.isArray(value)) return value.map(withoutBuffers);
  if (value instanceof Map)
    return new Map([...value].map(([key, entry]) => [withoutBuffers(key), withoutBuffers(entry)]));
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, withoutBuffers(entry)]));
  }
  return value;
}

/** True when `value` is a CBOR tag with the given number. */
export function isTag(value: unknown, tagNumber: number): value is Tag {
  return value instanceof Tag && Number(value.tag) === tagNumber;
}

// The library's messages describe the encoding (offsets, lengths, depth) but quote duplicate keys;
// quoted parts are dropped so that no decoded content can reach a log through an error.
function describe(error: unknown): string {
  const message = (error instanceof Error ? error.message : String(error)).replace(/"[^"]*"/g, '"…"');
  return message.length > 120 ? `${message.slice(0, 120)}…` : message;
}

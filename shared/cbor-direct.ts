/**
 * A direct decoder for the plain CBOR forms link frame headers use (issue 11): `cbor2` builds a
 * container object and a child list per item and cost ~50 µs a frame header, which was a large
 * share of the parent's cost per relayed request. This one reads definite-length maps, arrays,
 * text and byte strings, integers up to 2^53 - 1 (any head width), and `false`/`true`/`null`/
 * `undefined` straight into values, and gives up ({@link DIRECT_UNSUPPORTED}) at the first other
 * form — tags, indefinite lengths, integers beyond 2^53 - 1, other simple values, non-ASCII text — so that the
 * caller decodes the whole input with `cbor2` instead. It therefore accepts nothing `cbor2` does
 * not, and returns the same values (`cbor.test.ts` compares the two on arbitrary input).
 *
 * It runs only after `scanCbor` has checked the input (lengths within it, depth, items, map key
 * types, no floats, no trailing bytes); it still checks every length it reads, and refuses a
 * repeated map key, as `cbor.ts` `createMap` does.
 */
import { CborError } from './errors.ts';

/** Returned when the input holds a form this decoder leaves to `cbor2`. */
export const DIRECT_UNSUPPORTED: unique symbol = Symbol('cbor-direct-unsupported');

/** Thrown inside (one instance, created once) and turned into {@link DIRECT_UNSUPPORTED}. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('unsupported CBOR form');
const ASCII = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes one scanned CBOR item spanning all of `bytes`, or returns {@link DIRECT_UNSUPPORTED}.
 * @throws {CborError} `ERR_CBOR_DUPLICATE_KEY`, or `ERR_CBOR_MALFORMED` for input the scan let through.
 */
export function decodeCborDirect(bytes: Uint8Array): unknown {
  const reader = { bytes, offset: 0 };
  try {
    const value = readItem(reader, 0);
    if (reader.offset !== bytes.byteLength) throw malformed('bytes follow the CBOR item');
    return value;
  } catch (error) {
    if (error === UNSUPPORTED) return DIRECT_UNSUPPORTED;
    throw error;
  }
}

interface Reader {
  readonly bytes: Uint8Array;
  offset: number;
}

/** Deeper than any scan limit in use; recursion stops here whatever the caller scanned. */
const MAX_DIRECT_DEPTH = 32;

function readItem(reader: Reader, depth: number): unknown {
  const { bytes } = reader;
  if (reader.offset >= bytes.byteLength) throw malformed('CBOR input ends inside an item');
  const initial = bytes[reader.offset++] as number;
  const type = initial >> 5;
  const info = initial & 0x1f;
  if (type === 7) {
    // Simple values; floats were refused by the scan, and others are cbor2's (`Simple`).
    if (info === 20) return false;
    if (info === 21) return true;
    if (info === 22) return null;
    if (info === 23) return undefined;
    throw UNSUPPORTED;
  }
  if (type === 6 || info > 27) throw UNSUPPORTED; // tags, indefinite lengths
  const argument = readArgument(reader, info);
  switch (type) {
    case 0:
      return argument;
    case 1:
      return -1 - argument;
    case 2:
      return new Uint8Array(bytes.buffer, bytes.byteOffset + take(reader, argument), argument);
    case 3:
      return readAscii(bytes, take(reader, argument), argument);
    case 4: {
      if (depth >= MAX_DIRECT_DEPTH) throw UNSUPPORTED;
      if (argument > bytes.byteLength - reader.offset) throw malformed('CBOR array is longer than the input');
      const array = new Array<unknown>(argument);
      for (let index = 0; index < argument; index++) array[index] = readItem(reader, depth + 1);
      return array;
    }
    default: {
      if (depth >= MAX_DIRECT_DEPTH) throw UNSUPPORTED;
      if (argument > bytes.byteLength - reader.offset) throw malformed('CBOR map is longer than the input');
      const map = new Map<unknown, unknown>();
      for (let index = 0; index < argument; index++) {
        const key = readItem(reader, depth + 1);
        if (typeof key !== 'string' && typeof key !== 'number')
          throw malformed('CBOR map keys must be integers or text strings');
        const value = readItem(reader, depth + 1);
        if (map.has(key)) throw new CborError('ERR_CBOR_DUPLICATE_KEY', 'CBOR map repeats a key');
        map.set(key, value);
      }
      return map;
    }
  }
}

function readArgument(reader: Reader, info: number): number {
  if (info < 24) return info;
  const size = 1 << (info - 24);
  const { bytes, offset } = reader;
  if (offset + size > bytes.byteLength) throw malformed('CBOR input ends inside a head');
  reader.offset += size;
  if (size === 1) return bytes[offset] as number;
  if (size === 2) return ((bytes[offset] as number) << 8) | (bytes[offset + 1] as number);
  if (size === 4) return uint32(bytes, offset);
  // A 64-bit argument (a receipt's time in milliseconds is one): a number while it is a safe
  // integer, as cbor2 returns it; above 2^53 - 1 cbor2 returns a bigint, so that is left to it.
  // (For a negative integer, -1 - argument is then at least -2^53, which cbor2 also returns as a
  // number.) Lengths this large fail the length checks after, as the scan already refused them.
  const high = uint32(bytes, offset);
  if (high > 0x1f_ffff) throw UNSUPPORTED;
  return high * 0x1_0000_0000 + uint32(bytes, offset + 4);
}

function uint32(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset] as number) * 0x100_0000 +
    (((bytes[offset + 1] as number) << 16) |
      ((bytes[offset + 2] as number) << 8) |
      (bytes[offset + 3] as number))
  );
}

/** Advances past `length` bytes and returns where they start. */
function take(reader: Reader, length: number): number {
  const start = reader.offset;
  if (length > reader.bytes.byteLength - start) throw malformed('CBOR string is longer than the input');
  reader.offset = start + length;
  return start;
}

/** ASCII text only: anything else goes to cbor2's strict UTF-8 decoding, with its exact errors. */
function readAscii(bytes: Uint8Array, start: number, length: number): string {
  let text = '';
  for (let index = start; index < start + length; index++) {
    const byte = bytes[index] as number;
    if (byte > 0x7f) throw UNSUPPORTED;
    if (length <= 32) text += String.fromCharCode(byte);
  }
  return length <= 32 ? text : ASCII.decode(bytes.subarray(start, start + length));
}

function malformed(message: string): CborError {
  return new CborError('ERR_CBOR_MALFORMED', message);
}
